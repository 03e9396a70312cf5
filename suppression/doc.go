// Package suppression is the domain of the suppression list: the addresses a
// workspace no longer sends to, because a message to them hard-bounced, or its
// recipient complained (spam) or unsubscribed — whichever provider reported it.
//
// An address is kept only as a keyed hash: ID is HMAC-SHA256 under
// DISPATCHFLOW_SUPPRESSION_KEY of the workspace and the normalized address
// (Normalize), so neither Temporal's database nor its UI ever holds the address
// in clear in a suppression, and another workspace's suppression of the same
// address has another ID. An entry keeps a masked hint (Hint: "j***@example.com")
// for operators, and what suppressed it: the cause, the provider, the dispatch_id
// and the time (Entry).
//
// Each suppressed address is one small Temporal workflow, ID WorkflowID, started
// when the first cause is reported and ended when the suppression is lifted
// (DELETE /v1/suppressions/{address}); the names of that workflow and of its
// messages are here, with the ID, so that the workflows and activities packages
// share them without depending on each other (see workflows.Suppression).
//
// Nothing here does I/O or reads the clock: workflow code uses CauseOf.
package suppression
