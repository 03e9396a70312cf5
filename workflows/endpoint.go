package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// Temporal names of the Endpoint workflow.
const (
	// EndpointWorkflow is the workflow type of Endpoint: one per postback endpoint,
	// holding whether it is enabled and how its deliveries go.
	EndpointWorkflow = "Endpoint"
	// SignalEndpointReport carries an EndpointReport from a worker.
	SignalEndpointReport = "endpoint-report"
	// SignalEndpointDisable and SignalEndpointEnable carry an EndpointSwitch.
	SignalEndpointDisable = "endpoint-disable"
	SignalEndpointEnable  = "endpoint-enable"
	// QueryEndpoint answers the EndpointState.
	QueryEndpoint = "endpoint"
)

// EndpointWorkflowID is the workflow ID of endpoint id's Endpoint workflow.
func EndpointWorkflowID(id string) string { return "dispatchflow-endpoint-" + id }

// EndpointState is an endpoint's switch and health, as GET /v1/endpoints shows it.
type EndpointState struct {
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
	LastSuccessAt  time.Time `json:"last_success_at,omitzero"`
	LastFailureAt  time.Time `json:"last_failure_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// ConsecutiveFailures counts failed attempts since the last success.
	ConsecutiveFailures int   `json:"consecutive_failures"`
	Successes           int64 `json:"successes"`
	Failures            int64 `json:"failures"`
}

// EndpointReport sums up a worker's attempts to one endpoint over a few seconds:
// workers batch them so that an endpoint's workflow gets a signal every few
// seconds at most, not one per postback.
type EndpointReport struct {
	Successes     int64     `json:"successes"`
	Failures      int64     `json:"failures"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	// TrailingFailures are the failures after the batch's last success (all of
	// them when it has none).
	TrailingFailures int `json:"trailing_failures"`
}

// EndpointSwitch disables or enables an endpoint, saying why.
type EndpointSwitch struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// endpointSignalsPerRun bounds one run's history; the state carries over.
const endpointSignalsPerRun = 500

// Endpoint keeps one endpoint's state: disabled by a 410 Gone or an operator,
// enabled by an operator; the health workers report. It never ends by itself: it
// continues as new every endpointSignalsPerRun signals, carrying its state.
func Endpoint(ctx workflow.Context, st EndpointState) error {
	if err := workflow.SetQueryHandler(ctx, QueryEndpoint, func() (EndpointState, error) { return st, nil }); err != nil {
		return err
	}
	reports := workflow.GetSignalChannel(ctx, SignalEndpointReport)
	disables := workflow.GetSignalChannel(ctx, SignalEndpointDisable)
	enables := workflow.GetSignalChannel(ctx, SignalEndpointEnable)
	n := 0
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
		var r EndpointReport
		c.Receive(ctx, &r)
		st.apply(r)
	})
	sel.AddReceive(disables, func(c workflow.ReceiveChannel, _ bool) {
		var s EndpointSwitch
		c.Receive(ctx, &s)
		if st.Enabled {
			st.Enabled, st.DisabledReason, st.DisabledAt = false, s.Reason, s.At
		}
	})
	sel.AddReceive(enables, func(c workflow.ReceiveChannel, _ bool) {
		var s EndpointSwitch
		c.Receive(ctx, &s)
		st.Enabled, st.DisabledReason, st.DisabledAt, st.ConsecutiveFailures = true, "", time.Time{}, 0
	})
	for n < endpointSignalsPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		sel.Select(ctx)
		n++
	}
	// Take in what is already buffered, so that no signal is lost across runs.
	for sel.HasPending() {
		sel.Select(ctx)
	}
	return workflow.NewContinueAsNewError(ctx, EndpointWorkflow, st)
}

func (st *EndpointState) apply(r EndpointReport) {
	st.Successes += r.Successes
	st.Failures += r.Failures
	if r.LastSuccessAt.After(st.LastSuccessAt) {
		st.LastSuccessAt = r.LastSuccessAt
	}
	if r.LastFailureAt.After(st.LastFailureAt) {
		st.LastFailureAt, st.LastError = r.LastFailureAt, r.LastError
	}
	if r.Successes > 0 {
		st.ConsecutiveFailures = r.TrailingFailures
	} else {
		st.ConsecutiveFailures += r.TrailingFailures
	}
}

// NewEndpointState is the state of an endpoint never seen before: enabled.
func NewEndpointState() EndpointState { return EndpointState{Enabled: true} }
