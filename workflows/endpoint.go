package workflows

import (
	"fmt"
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
	ConsecutiveFailures int `json:"consecutive_failures"`
	// FailingSince is the first failed attempt after the last success: the
	// endpoint has failed ever since. Zero once a success comes, and after an
	// enable. The endpoint is disabled automatically once its failures span
	// EndpointReport.DisableAfter.
	FailingSince time.Time `json:"failing_since,omitzero"`
	Successes    int64     `json:"successes"`
	Failures     int64     `json:"failures"`
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
	// FailingSince is the first of the trailing failures (zero without any);
	// reports of older workers leave it out, and LastFailureAt stands for it.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// DisableAfter is the worker's DISPATCHFLOW_ENDPOINT_DISABLE_AFTER: an
	// endpoint failing for that long, without a success, is disabled. Zero:
	// never. It travels with each report so that the workflow reads no
	// configuration.
	DisableAfter time.Duration `json:"disable_after,omitempty"`
}

// EndpointSwitch disables or enables an endpoint, saying why.
type EndpointSwitch struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// endpointSignalsPerRun bounds one run's history; the state carries over.
const endpointSignalsPerRun = 500

// Endpoint keeps one endpoint's state: disabled by a 410 Gone, an operator, or
// failures without a success for EndpointReport.DisableAfter; enabled by an
// operator; the health workers report. It never ends by itself: it
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
		if st.failingTooLong(r.DisableAfter) {
			st.Enabled, st.DisabledAt = false, workflow.Now(ctx)
			st.DisabledReason = fmt.Sprintf("failing since %s (%s): disabled automatically",
				st.FailingSince.UTC().Format(time.RFC3339), days(r.DisableAfter))
			workflow.GetLogger(ctx).Warn("endpoint disabled automatically", "reason", st.DisabledReason,
				"consecutive_failures", st.ConsecutiveFailures, "last_error", st.LastError)
		}
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
		st.FailingSince = time.Time{}
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
	// A success after the run of failures began ends it. Workers report
	// independently, so a batch may be older than what is known: times decide,
	// not arrival.
	if !st.FailingSince.IsZero() && st.LastSuccessAt.After(st.FailingSince) {
		st.FailingSince = time.Time{}
	}
	if r.TrailingFailures == 0 || !r.LastFailureAt.After(st.LastSuccessAt) {
		return // no failure after the last known success
	}
	since := r.FailingSince
	if since.IsZero() || !since.After(st.LastSuccessAt) {
		// Unknown, or before a success another worker saw: the batch's last
		// failure is the earliest known to follow that success.
		since = r.LastFailureAt
	}
	if st.FailingSince.IsZero() || since.Before(st.FailingSince) {
		st.FailingSince = since
	}
}

// failingTooLong reports whether the enabled endpoint has failed, without a
// success, for at least after (its first failure to its last); after 0: never.
func (st *EndpointState) failingTooLong(after time.Duration) bool {
	return st.Enabled && after > 0 && !st.FailingSince.IsZero() &&
		st.LastFailureAt.After(st.LastSuccessAt) && st.LastFailureAt.Sub(st.FailingSince) >= after
}

// days writes d in days when it is a whole number of them ("5 days"), else as
// a duration.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// NewEndpointState is the state of an endpoint never seen before: enabled.
func NewEndpointState() EndpointState { return EndpointState{Enabled: true} }
