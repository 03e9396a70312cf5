package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/message"
)

// Failover between email providers, when DISPATCHFLOW_ESP names several
// (sendgrid,postmark): a message is handed to the first; a transient failure
// that lasts Policy.FailoverAfter moves it to the next, and so on, the last
// provider getting what is left of Policy.SendRetryWindow. A refusal for good
// never moves it on. Each provider's circuit (one Circuit workflow per
// provider) lets new messages skip a provider that is failing until a probe
// succeeds.

// ESPRoute is one provider of a message's failover list.
type ESPRoute struct {
	// Name is the provider as DISPATCHFLOW_ESP names it: the sender the worker
	// hands the email to.
	Name string `json:"name"`
	// Intake is the provider whose webhook events report on mail handed to
	// Name, when it is another (smtp: DISPATCHFLOW_SMTP_PROVIDER).
	Intake string `json:"intake,omitempty"`
}

// events is the provider name the events of mail handed to r carry.
func (r ESPRoute) events() string {
	if r.Intake != "" {
		return r.Intake
	}
	return r.Name
}

// Handover outcomes (Handover.Outcome).
const (
	// HandoverSent: the provider accepted the email.
	HandoverSent = "sent"
	// HandoverRefused: the provider refused it for good: the message is aborted.
	HandoverRefused = "refused"
	// HandoverFailed: its transient failures lasted the provider's budget (the
	// last provider: the rest of the send retry window).
	HandoverFailed = "failed"
	// HandoverSkipped: the provider's circuit was open: it was not tried
	// (Attempts 0), or no longer (Attempts made before it opened).
	HandoverSkipped = "skipped"
)

// Handover is one provider of the failover list a message went through, in
// order (State.Handovers). Events are accepted from each provider the email
// was handed to: every one but those skipped without an attempt.
type Handover struct {
	Provider string `json:"provider"`
	// Intake is the provider its events come from, when another (smtp).
	Intake  string `json:"intake,omitempty"`
	Outcome string `json:"outcome"`
	// StartedAt is when the hand-over to this provider was scheduled, EndedAt
	// when its outcome was known.
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Attempts made with this provider, when known.
	Attempts int `json:"attempts,omitempty"`
	// Error is its last failure, or why it was skipped (at most 500 bytes).
	Error string `json:"error,omitempty"`
}

// maxHandoverError bounds Handover.Error, in bytes.
const maxHandoverError = 500

// handedTo reports whether the email was handed to h's provider (at least one
// attempt was made: it may have taken the email even if the attempt failed).
func (h Handover) handedTo() bool {
	return h.Outcome != HandoverSkipped || h.Attempts > 0
}

// EventFailover is the type of the timeline's record of a provider the
// message moved on from (failed, or skipped for its open circuit). Our own
// record, like the send's: never a status change.
const EventFailover message.EventType = "failover"

// DefaultFailoverAfter is Policy.FailoverAfter's default.
const DefaultFailoverAfter = 2 * time.Minute

// failoverMaxInterval bounds the wait between two attempts with one provider:
// a quarter of its budget (at least a second, at most five minutes), so that
// the attempts spread over the budget.
func failoverMaxInterval(budget time.Duration) time.Duration {
	return min(5*time.Minute, max(time.Second, budget/4))
}

// handOver hands the email to the providers of the failover list in turn. It
// moves to provider i+1 only once provider i's activity has failed for good —
// Temporal has recorded its last attempt's failure — so no two providers are
// ever handed the email at once. It returns the accepting provider's result,
// or the error that ends the send: a refusal, or the last provider's failure.
func (m *messageImpl) handOver(ctx workflow.Context, in activities.SendInput) (activities.SendResult, error) {
	var a *activities.Activities
	routes := m.in.Providers
	end := workflow.Now(ctx).Add(m.in.Policy.SendRetryWindow)
	var lastErr error
	for i, r := range routes {
		now := workflow.Now(ctx)
		last := i == len(routes)-1
		budget := end.Sub(now)
		if !last {
			budget = min(budget, m.in.Policy.FailoverAfter)
		}
		policy := retryPolicyWithin(max(budget, 0), time.Second, failoverMaxInterval(budget))
		in.Provider, in.Failover, in.FinalAttempt = r.Name, !last, 0
		if !last {
			in.FinalAttempt = policy.MaximumAttempts
		}
		id, summary := sendEventID, "hand the email to "+r.Name
		if i > 0 {
			id += "-" + r.Name
			summary += " (failover from " + routes[i-1].Name + ")"
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID:          id,
			StartToCloseTimeout: sendAttemptTimeout,
			RetryPolicy:         policy,
			Summary:             summary,
		})
		var res activities.SendResult
		err := workflow.ExecuteActivity(actx, a.Send, in).Get(actx, &res)
		h := Handover{Provider: r.Name, Intake: r.Intake, StartedAt: now, EndedAt: workflow.Now(ctx)}
		var appErr *temporal.ApplicationError
		isApp := errors.As(err, &appErr)
		switch {
		case err == nil:
			h.Outcome, h.Attempts = HandoverSent, int(res.Attempt)
			m.state.Handovers = append(m.state.Handovers, h)
			return res, nil
		case isApp && appErr.Type() == activities.ErrSuppressed:
			return res, err // no provider was called
		case isApp && appErr.Type() == activities.ErrRefused:
			h.Outcome, h.Error = HandoverRefused, message.Cut(appErr.Message(), maxHandoverError)
			m.state.Handovers = append(m.state.Handovers, h)
			return res, err
		case isApp && appErr.Type() == activities.ErrCircuitOpen:
			var made int32
			_ = appErr.Details(&made)
			h.Outcome, h.Attempts, h.Error = HandoverSkipped, int(made), message.Cut(appErr.Message(), maxHandoverError)
		default:
			h.Outcome, h.Error = HandoverFailed, message.Cut(lastErrorMessage(err), maxHandoverError)
			var made int32
			var actErr *temporal.ActivityError
			switch {
			case isApp && appErr.Type() == activities.ErrUnavailable && appErr.Details(&made) == nil:
				h.Attempts = int(made) // the last attempt's number
			case errors.As(err, &actErr) && actErr.RetryState() == enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED:
				h.Attempts = int(policy.MaximumAttempts) // the last one timed out
			}
		}
		lastErr = err
		m.state.Handovers = append(m.state.Handovers, h)
		if !last {
			m.recordFailover(h, routes[i+1].Name)
		}
	}
	return activities.SendResult{}, lastErr
}

// recordFailover puts the move from h's provider to next in the timeline.
func (m *messageImpl) recordFailover(h Handover, next string) {
	note := "moved on to " + next
	switch {
	case h.Outcome == HandoverSkipped && h.Attempts == 0:
		note += ": circuit open, not tried"
	case h.Attempts > 0:
		note += fmt.Sprintf(" after %d attempts over %s", h.Attempts, h.EndedAt.Sub(h.StartedAt).Round(time.Second))
	}
	provider := h.Provider
	if h.Intake != "" {
		provider = h.Intake
	}
	m.state.Events = append(m.state.Events, EventRecord{
		Provider: provider, Type: EventFailover, RawType: h.Outcome, ID: "failover-" + h.Provider,
		Timestamp: h.EndedAt, ReceivedAt: h.EndedAt, Reason: h.Error, Note: note,
	})
}

// handedTo reports whether events of provider may move the message: the
// email was handed to it in the failover list (none with one provider).
func (m *messageImpl) handedTo(provider string) bool {
	for _, h := range m.state.Handovers {
		if h.handedTo() && (h.Provider == provider || h.Intake == provider) {
			return true
		}
	}
	return false
}

// handedToNames lists the providers the message was handed to, for notes.
func (m *messageImpl) handedToNames() string {
	var names []string
	for _, h := range m.state.Handovers {
		if h.handedTo() {
			names = append(names, ESPRoute{Name: h.Provider, Intake: h.Intake}.events())
		}
	}
	return strings.Join(names, ", ")
}

// describeHandovers is the hand-overs' line of the UI's current details.
func (st *State) describeHandovers() string {
	if len(st.Handovers) < 2 {
		return ""
	}
	parts := make([]string, len(st.Handovers))
	for i, h := range st.Handovers {
		parts[i] = h.Provider + " " + h.Outcome
	}
	return "\n\n**Hand-overs:** " + strings.Join(parts, " → ")
}

// Temporal names of the Circuit workflow.
const (
	// CircuitWorkflow is the workflow type of Circuit: one per email provider
	// of a failover list, holding its circuit breaker's state.
	CircuitWorkflow = "Circuit"
	// SignalCircuitReport carries a CircuitReport from a worker.
	SignalCircuitReport = "circuit-report"
	// QueryCircuit answers the CircuitState.
	QueryCircuit = "circuit"
)

// CircuitWorkflowID is the workflow ID of provider's Circuit workflow.
func CircuitWorkflowID(provider string) string { return "dispatchflow-circuit-" + provider }

// Circuit states (CircuitState.State).
const (
	// CircuitClosed: messages are handed to the provider.
	CircuitClosed = "closed"
	// CircuitOpen: new messages skip the provider (unless it is their last)
	// until NextProbeAt.
	CircuitOpen = "open"
	// CircuitHalfOpen: NextProbeAt has passed; one message at a time (per
	// worker) probes the provider, the others still skip it. A success
	// closes the circuit, a failure opens it again.
	CircuitHalfOpen = "half_open"
)

// DefaultCircuitOpenFor is how long a circuit stays open before a probe when
// a report does not say (CircuitReport.OpenFor).
const DefaultCircuitOpenFor = time.Minute

// CircuitState is a provider's circuit, as GET /v1/providers shows it.
type CircuitState struct {
	Provider string `json:"provider"`
	State    string `json:"state"`
	// Since is when the circuit entered State.
	Since time.Time `json:"since,omitzero"`
	// Failures counts the transient failures reported since the circuit last
	// closed: those that opened it, then each failed probe.
	Failures  int    `json:"failures"`
	LastError string `json:"last_error,omitempty"`
	// LastFailureAt is the time of the last failure reported.
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	// Reason says why the circuit last changed ("5 consecutive failures on
	// one worker", "a probe succeeded").
	Reason string `json:"reason,omitempty"`
	// OpenedAt is when the circuit opened (zero while closed); NextProbeAt
	// when it lets a probe through.
	OpenedAt    time.Time `json:"opened_at,omitzero"`
	NextProbeAt time.Time `json:"next_probe_at,omitzero"`
	// Opens counts the times the circuit opened, ever.
	Opens int `json:"opens"`
}

// NewCircuitState is the circuit of a provider never reported on: closed.
func NewCircuitState(provider string) CircuitState {
	return CircuitState{Provider: provider, State: CircuitClosed}
}

// At is the state as of now: an open circuit whose NextProbeAt has passed is
// half-open, whether or not its workflow's timer has fired yet.
func (st CircuitState) At(now time.Time) CircuitState {
	if st.State == CircuitOpen && !st.NextProbeAt.IsZero() && !now.Before(st.NextProbeAt) {
		st.State, st.Since = CircuitHalfOpen, st.NextProbeAt
	}
	return st
}

// Circuit report kinds (CircuitReport.Kind).
const (
	// ReportTrip: a worker saw the provider fail enough to open the circuit
	// (consecutive failures, or a message's budget spent on it).
	ReportTrip = "trip"
	// ReportProbeFailed: the probe of a half-open circuit failed.
	ReportProbeFailed = "probe_failed"
	// ReportClose: the provider took a message while the circuit was not
	// closed (a probe, or a message it was the last provider of).
	ReportClose = "close"
)

// CircuitReport is what a worker tells a provider's circuit. Workers report
// only what may change it — a trip, a probe's outcome, a success while not
// closed — so that a healthy provider's circuit gets no signal at all.
type CircuitReport struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	// Failures the report accounts for (a trip: the consecutive failures
	// that caused it).
	Failures int    `json:"failures,omitempty"`
	Error    string `json:"error,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// OpenFor is the worker's DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR: how long the
	// circuit stays open before a probe. It travels with each report so that
	// the workflow reads no configuration.
	OpenFor time.Duration `json:"open_for,omitempty"`
}

// circuitSignalsPerRun bounds one run's history; the state carries over.
const circuitSignalsPerRun = 500

// maxCircuitText bounds the error and reason texts a circuit keeps.
const maxCircuitText = 500

// Circuit keeps one provider's circuit breaker: closed until a worker reports
// a trip, then open for the report's OpenFor, then half-open (a timer) until
// a probe's outcome closes it or opens it again. It never ends by itself: it
// continues as new every circuitSignalsPerRun signals, carrying its state.
func Circuit(ctx workflow.Context, st CircuitState) error {
	if st.State == "" {
		st.State = CircuitClosed
	}
	if err := workflow.SetQueryHandler(ctx, QueryCircuit, func() (CircuitState, error) { return st, nil }); err != nil {
		return err
	}
	st.describe(ctx)
	// Turns the circuit half-open when its probe is due. A report that moves
	// NextProbeAt later is met when the timer fires: it waits again.
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			if err := workflow.Await(ctx, func() bool { return st.State == CircuitOpen }); err != nil {
				return
			}
			if d := st.NextProbeAt.Sub(workflow.Now(ctx)); d > 0 {
				_ = workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "probe due: half-open"}).Get(ctx, nil)
			}
			if st.State == CircuitOpen && !workflow.Now(ctx).Before(st.NextProbeAt) {
				st.State, st.Since = CircuitHalfOpen, st.NextProbeAt
				st.describe(ctx)
			}
		}
	})
	reports := workflow.GetSignalChannel(ctx, SignalCircuitReport)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
		var r CircuitReport
		c.Receive(ctx, &r)
		before := st.State
		st.Apply(r)
		if st.State != before {
			workflow.GetLogger(ctx).Warn("ESP circuit changed", "provider", st.Provider, "from", before, "to", st.State,
				"reason", st.Reason, "last_error", st.LastError)
		}
		st.describe(ctx)
	})
	for n := 0; n < circuitSignalsPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested(); n++ {
		sel.Select(ctx)
	}
	// Take in what is already buffered, so that no report is lost across runs.
	for sel.HasPending() {
		sel.Select(ctx)
	}
	return workflow.NewContinueAsNewError(ctx, CircuitWorkflow, st)
}

// Apply changes the circuit as report r says. Times are the reports' own: the
// workers' clocks, as every reader of NextProbeAt compares it to its own.
func (st *CircuitState) Apply(r CircuitReport) {
	openFor := r.OpenFor
	if openFor <= 0 {
		openFor = DefaultCircuitOpenFor
	}
	reason := message.Cut(r.Reason, maxCircuitText)
	switch r.Kind {
	case ReportTrip, ReportProbeFailed:
		st.Failures += max(r.Failures, 1)
		if r.At.After(st.LastFailureAt) || st.LastFailureAt.IsZero() {
			st.LastFailureAt, st.LastError = r.At, message.Cut(r.Error, maxCircuitText)
		}
		switch {
		case st.State == CircuitClosed && r.Kind == ReportTrip:
			st.State, st.Since, st.OpenedAt, st.Reason = CircuitOpen, r.At, r.At, reason
			st.NextProbeAt = r.At.Add(openFor)
			st.Opens++
		case st.State != CircuitClosed && r.Kind == ReportProbeFailed:
			// Open again for another period; OpenedAt still says when the
			// outage began.
			st.State, st.Since, st.Reason = CircuitOpen, r.At, reason
			st.NextProbeAt = r.At.Add(openFor)
		}
		// A trip while open, or a probe's failure after another worker's
		// success closed it: counted, and nothing changes.
	case ReportClose:
		if st.State != CircuitClosed {
			st.State, st.Since, st.Reason = CircuitClosed, r.At, reason
			st.Failures, st.OpenedAt, st.NextProbeAt = 0, time.Time{}, time.Time{}
		}
	}
}

// describe keeps the workflow's current details (the Temporal UI) in words.
func (st CircuitState) describe(ctx workflow.Context) {
	const layout = "2006-01-02 15:04:05 MST"
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**Circuit of %s:** %s", st.Provider, strings.ReplaceAll(st.State, "_", "-")))
	if !st.Since.IsZero() {
		b.WriteString(fmt.Sprintf(" since %s", st.Since.UTC().Format(layout)))
	}
	if st.Reason != "" {
		b.WriteString(fmt.Sprintf(" — %s", st.Reason))
	}
	switch st.State {
	case CircuitOpen:
		b.WriteString(fmt.Sprintf("\n\n**Next probe:** %s; new messages skip %s until then", st.NextProbeAt.UTC().Format(layout), st.Provider))
	case CircuitHalfOpen:
		b.WriteString("\n\n**Probing:** one message at a time per worker; a success closes the circuit")
	}
	b.WriteString(fmt.Sprintf("\n\n**Failures since it last closed:** %d", st.Failures))
	if st.LastError != "" {
		b.WriteString(fmt.Sprintf(" (last: %s)", st.LastError))
	}
	b.WriteString(fmt.Sprintf("\n\n**Opened:** %d times", st.Opens))
	workflow.SetCurrentDetails(ctx, b.String())
}
