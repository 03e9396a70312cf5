package metrics

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
)

// Metrics emitted from workflow code, through the workflow's metrics handler
// (TemporalHandler, tagged by the SDK with namespace, task_queue and
// workflow_type). The SDK drops them while a workflow replays, so a status
// change counts once however often its history is replayed.
const (
	// StatusTransitions counts status changes, labelled from and to.
	StatusTransitions = "dispatchflow_status_transitions"
	// WorkflowEscalations counts fallback escalations, labelled reason.
	WorkflowEscalations = "dispatchflow_fallback_escalations"
	// PostbacksHoldExpired counts held postbacks given up after the maximum
	// hold, labelled endpoint (a configured endpoint's id: only those hold).
	PostbacksHoldExpired = "dispatchflow_postbacks_hold_expired"
	// EventsFolded counts engagement and repeated events a message's timeline
	// folded into its counts (not kept one by one).
	EventsFolded = "dispatchflow_events_folded"
)

// Other is the label value of anything outside a label's known values: labels
// stay a small, fixed set whatever a caller passes.
const Other = "other"

var workflowHelp = map[string]string{
	StatusTransitions + "_total":    "Message status changes, per previous status (from) and new status (to).",
	WorkflowEscalations + "_total":  "Fallback escalations, per reason: bounced, aborted, not_sent_in_time, not_delivered_in_time.",
	PostbacksHoldExpired + "_total": "Held postbacks given up after DISPATCHFLOW_POSTBACK_MAX_HOLD, per endpoint.",
	EventsFolded + "_total":         "Events a message's timeline folded into per-type counts (engagement storms, repeated statuses).",
}

// escalationReasons are the values of the reason label.
var escalationReasons = []fallback.Reason{
	fallback.ReasonBounced, fallback.ReasonAborted, fallback.ReasonNotSent, fallback.ReasonNotDelivered,
}

// StatusTransition counts one status change of a message, from and to being
// message statuses (anything else counts as Other). Call it from workflow code
// where the status changes; it is replay-safe.
func StatusTransition(ctx workflow.Context, from, to string) {
	workflow.GetMetricsHandler(ctx).
		WithTags(map[string]string{"from": statusLabel(from), "to": statusLabel(to)}).
		Counter(StatusTransitions).Inc(1)
}

// WorkflowEscalation counts one fallback escalation for reason, a fallback.Reason
// (anything else counts as Other). Call it from workflow code where the message
// escalates; it is replay-safe.
func WorkflowEscalation(ctx workflow.Context, reason string) {
	r := Other
	if slices.Contains(escalationReasons, fallback.Reason(reason)) {
		r = reason
	}
	workflow.GetMetricsHandler(ctx).
		WithTags(map[string]string{"reason": r}).
		Counter(WorkflowEscalations).Inc(1)
}

func statusLabel(s string) string {
	if slices.Contains(message.Statuses, message.Status(s)) {
		return s
	}
	return Other
}

// PostbackHoldExpired counts one held postback to endpoint given up after the
// maximum hold. Call it from workflow code; it is replay-safe.
func PostbackHoldExpired(ctx workflow.Context, endpoint string) {
	workflow.GetMetricsHandler(ctx).
		WithTags(map[string]string{"endpoint": endpoint}).
		Counter(PostbacksHoldExpired).Inc(1)
}

// EventFolded counts one event folded into a message's counts. Call it from
// workflow code; it is replay-safe.
func EventFolded(ctx workflow.Context) {
	workflow.GetMetricsHandler(ctx).Counter(EventsFolded).Inc(1)
}
