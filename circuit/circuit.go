// Package circuit keeps a circuit breaker per email provider when
// DISPATCHFLOW_ESP names several (sendgrid,postmark): while a provider is
// failing, new messages go straight to the next one until a probe succeeds.
//
// The state lives in Temporal, one Circuit workflow per provider (ID
// dispatchflow-circuit-<provider>), so that every worker shares it and the
// Temporal UI and GET /v1/providers show it. Each process caches what it read
// for CacheTTL and never waits more than readTimeout for it. It reports only
// what may change a circuit — a trip, a probe's outcome, a success while the
// circuit is not closed — so a healthy provider costs no RPC at all:
//
//   - closed → open: Threshold consecutive transient failures of the provider
//     on one process (no success between them), or a message that spent its
//     whole budget on the provider (the last attempt before its failover);
//   - open → half-open: OpenFor later;
//   - half-open: one attempt at a time per process probes the provider (the
//     others skip it); a success closes the circuit, a failure opens it again
//     for OpenFor;
//   - any success while the circuit is not closed (a message whose last
//     provider it was) closes it.
package circuit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Defaults and bounds of Store.
const (
	// CacheTTL is how long a circuit read is trusted before it is read again:
	// another worker's trip or close reaches this one within it.
	CacheTTL = 5 * time.Second
	// DefaultThreshold is Store.Threshold's default (DISPATCHFLOW_ESP_CIRCUIT_FAILURES).
	DefaultThreshold = 5
	// readTimeout bounds one read of a circuit: a send never waits longer for
	// it (the circuit's workflow may be on a worker that is starting).
	readTimeout = time.Second
	// readBackoff is how long a failed read is not tried again; meanwhile the
	// last state read (or closed) stands.
	readBackoff = 2 * time.Second
	// reportTimeout bounds one report (a signal) to a circuit.
	reportTimeout = 2 * time.Second
	// probeHold is how long a probe under way keeps this process's other
	// attempts off a half-open provider: a Send attempt's 30 s timeout and a
	// margin. A probe whose outcome never comes (a crash) frees it after that.
	probeHold = 45 * time.Second
	// maxErrorText bounds the error a report carries, in bytes.
	maxErrorText = 500
)

// Store reads and reports the circuits of the providers. Create it with New.
type Store struct {
	// OpenFor goes with every report (CircuitReport.OpenFor): how long an
	// open circuit stays open before a probe (DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR).
	// Zero: workflows.DefaultCircuitOpenFor.
	OpenFor time.Duration
	// Threshold is how many consecutive transient failures of a provider on
	// this process open its circuit (DISPATCHFLOW_ESP_CIRCUIT_FAILURES). Zero:
	// DefaultThreshold.
	Threshold int

	client    client.Client
	taskQueue string
	logger    *slog.Logger
	now       func() time.Time

	mu       sync.Mutex
	circuits map[string]*local
}

// local is what this process knows of one provider's circuit.
type local struct {
	state  workflows.CircuitState
	readAt time.Time // zero: never read
	// failures counts the provider's consecutive transient failures on this
	// process since its last success.
	failures int
	// probeUntil: a probe of the half-open circuit is under way until then.
	probeUntil time.Time
	// reports counts the reports this process applied to state: a read that
	// started before one must not undo it.
	reports int
}

var _ activities.Circuits = (*Store)(nil)

// New returns a Store whose Circuit workflows run on taskQueue.
func New(c client.Client, taskQueue string, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{client: c, taskQueue: taskQueue, logger: logger, now: time.Now, circuits: map[string]*local{}}
}

// Read answers provider's circuit from its workflow; a provider never
// reported on has a closed circuit.
func Read(ctx context.Context, c client.Client, provider string) (workflows.CircuitState, error) {
	resp, err := c.QueryWorkflow(ctx, workflows.CircuitWorkflowID(provider), "", workflows.QueryCircuit)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return workflows.NewCircuitState(provider), nil
	}
	if err != nil {
		return workflows.CircuitState{}, err
	}
	var st workflows.CircuitState
	if err := resp.Get(&st); err != nil {
		return workflows.CircuitState{}, err
	}
	return st, nil
}

// entry returns provider's local record, read again from its workflow when
// older than CacheTTL. Called without s.mu held; returns with it held.
func (s *Store) entry(ctx context.Context, provider string) *local {
	s.mu.Lock()
	l := s.circuits[provider]
	if l == nil {
		l = &local{state: workflows.NewCircuitState(provider)}
		s.circuits[provider] = l
	}
	if !l.readAt.IsZero() && s.now().Sub(l.readAt) <= CacheTTL {
		return l
	}
	// Read outside the lock; the others meanwhile use what is cached.
	l.readAt = s.now().Add(readBackoff - CacheTTL)
	reports := l.reports
	s.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	st, err := Read(rctx, s.client, provider)
	cancel()
	s.mu.Lock()
	switch {
	case err != nil:
		s.logger.Warn("reading ESP circuit", "provider", provider, "error", err)
	case l.reports == reports:
		l.state, l.readAt = st, s.now()
	}
	return l
}

// Allow implements activities.Circuits.
func (s *Store) Allow(ctx context.Context, provider string) (ok, probe bool, why string) {
	l := s.entry(ctx, provider)
	defer s.mu.Unlock()
	now := s.now()
	st := l.state.At(now)
	switch st.State {
	case workflows.CircuitOpen:
		return false, false, fmt.Sprintf("circuit open since %s (%s); next probe at %s",
			st.Since.UTC().Format(time.RFC3339), st.Reason, st.NextProbeAt.UTC().Format(time.RFC3339))
	case workflows.CircuitHalfOpen:
		if now.Before(l.probeUntil) {
			return false, false, "circuit half-open since " + st.Since.UTC().Format(time.RFC3339) + ": another message is probing it"
		}
		l.probeUntil = now.Add(probeHold)
		return true, true, ""
	}
	return true, false, ""
}

// Record implements activities.Circuits. It signals the provider's circuit
// only when the attempt may change it, and waits at most reportTimeout. The
// error it reports has its email addresses hidden and is cut to maxErrorText.
func (s *Store) Record(ctx context.Context, provider string, probe bool, failure error, final bool) {
	s.mu.Lock()
	l := s.circuits[provider]
	if l == nil {
		l = &local{state: workflows.NewCircuitState(provider)}
		s.circuits[provider] = l
	}
	now := s.now()
	if probe {
		l.probeUntil = time.Time{}
	}
	r := workflows.CircuitReport{At: now.UTC(), OpenFor: s.OpenFor}
	switch {
	case failure == nil:
		l.failures = 0
		if l.state.State == workflows.CircuitClosed {
			s.mu.Unlock()
			return // the happy path: nothing to tell
		}
		r.Kind, r.Reason = workflows.ReportClose, "a message was handed to it"
		if probe {
			r.Reason = "a probe succeeded"
		}
	case probe:
		l.failures++
		r.Kind, r.Failures, r.Reason = workflows.ReportProbeFailed, 1, "the probe failed"
	case l.state.State == workflows.CircuitClosed && (l.failures+1 >= s.threshold() || final):
		l.failures++
		r.Kind, r.Failures = workflows.ReportTrip, l.failures
		r.Reason = fmt.Sprintf("%d consecutive failures on one worker", l.failures)
		if l.failures < s.threshold() {
			r.Reason = "a message failed over after its budget"
		}
	default:
		l.failures++
		s.mu.Unlock()
		return // below the threshold, or already open: nothing new to tell
	}
	if failure != nil {
		r.Error = cut(redactAddresses(failure.Error()), maxErrorText)
	}
	// What this process does next follows the report at once; the others see
	// it within CacheTTL.
	l.state.Apply(r)
	l.reports++
	s.mu.Unlock()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	if err := s.signal(sctx, provider, r); err != nil {
		s.logger.Warn("reporting to ESP circuit", "provider", provider, "report", r.Kind, "error", err)
	}
}

func (s *Store) threshold() int {
	if s.Threshold > 0 {
		return s.Threshold
	}
	return DefaultThreshold
}

// signal delivers r to provider's Circuit workflow, starting it if needed.
func (s *Store) signal(ctx context.Context, provider string, r workflows.CircuitReport) error {
	id := workflows.CircuitWorkflowID(provider)
	_, err := s.client.SignalWithStartWorkflow(ctx, id, workflows.SignalCircuitReport, r,
		client.StartWorkflowOptions{
			ID: id, TaskQueue: s.taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			// SignalWithStart would reuse a closed ID anyway (its default);
			// said explicitly: a terminated circuit starts again, closed.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         "ESP circuit: " + provider,
			StaticDetails: "The circuit breaker of email provider " + provider + " (DISPATCHFLOW_ESP failover): " +
				"open, new messages skip it until a probe succeeds. GET /v1/providers shows it.",
		}, workflows.CircuitWorkflow, workflows.NewCircuitState(provider))
	return err
}

// address matches what looks like an email address in a provider's answer.
var address = regexp.MustCompile(`[^\s<>()\[\]"',;:]+@[^\s<>()\[\]"',;:]+`)

// redactAddresses hides the email addresses of a provider's error (an SMTP
// relay's "450 4.2.1 <ann@example.com>: mailbox busy"): a circuit is shown to
// every workspace (GET /v1/providers), and its errors come from any
// workspace's messages.
func redactAddresses(s string) string { return address.ReplaceAllString(s, "<address>") }

// cut returns s cut to at most n bytes (on a UTF-8 boundary), marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
