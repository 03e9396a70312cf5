// Package message is dispatchflow's domain model of one transactional email: its
// statuses and the one table of rules that moves between them, the ESP events that
// drive those rules, the send request, and the postback body sent to the customer on
// every status change.
//
// The contract is Braze's "Transactional Event Status Postback" (seed 002): a
// dispatch_id per send, the statuses sent, processed, aborted, delivered and bounced,
// and a body {"dispatch_id", "status", "metadata": {...}} whose timestamps look like
// 2020-08-31T18:58:41.000+00:00.
//
// Nothing here does I/O or reads the clock, so the Temporal workflow can use all of it.
package message
