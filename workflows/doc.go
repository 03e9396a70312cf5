// Package workflows holds the Message workflow: the durable life of one
// transactional email, from the hand-over to the ESP to the end of its tracking
// window. One workflow per send; its workflow ID is the dispatch_id.
//
// The code here is deterministic orchestration only: every side effect is an
// activity in package activities, every decision about statuses is the table in
// package message.
//
// Cost is a design constraint: each workflow task and history event is paid for
// per message. The workflow therefore
//   - tries each activity once as a local activity (no server round trip, one
//     MarkerRecorded event) and falls back to a regular activity with a durable
//     retry policy only when that first attempt fails;
//   - keeps one tracking timer, never cancelled: started with a grace so that it
//     usually fires after the last status change's window, and re-armed otherwise;
//   - handles all the events that reach it in one workflow task together.
//
// A happy-path message (sent, processed, delivered, three postbacks, tracking
// window) costs 22 history events; see README "Design notes".
package workflows
