package circuit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/workflows"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// temporalDouble stands in for the cluster: it answers the circuit queries
// with the state the Circuit workflow would hold after the signals it got
// (workflows.CircuitState.Apply, the workflow's own rule), or NotFound before
// any; with hang, queries never answer (a worker that is starting).
type temporalDouble struct {
	client.Client
	mu      sync.Mutex
	states  map[string]*workflows.CircuitState
	reports []workflows.CircuitReport
	opts    []client.StartWorkflowOptions
	queries int
	hang    bool
}

func newDouble() *temporalDouble {
	return &temporalDouble{states: map[string]*workflows.CircuitState{}}
}

type encoded struct{ raw []byte }

func (e encoded) HasValue() bool    { return true }
func (e encoded) Get(ptr any) error { return json.Unmarshal(e.raw, ptr) }

func (d *temporalDouble) QueryWorkflow(ctx context.Context, id, _, query string, _ ...any) (converter.EncodedValue, error) {
	d.mu.Lock()
	d.queries++
	hang := d.hang
	st := d.states[id]
	d.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if query != workflows.QueryCircuit {
		return nil, errors.New("unknown query " + query)
	}
	if st == nil {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	raw, _ := json.Marshal(st)
	return encoded{raw}, nil
}

func (d *temporalDouble) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any,
	opts client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := arg.(workflows.CircuitReport)
	if signal != workflows.SignalCircuitReport {
		return nil, errors.New("unknown signal " + signal)
	}
	st := d.states[id]
	if st == nil {
		start := args[0].(workflows.CircuitState)
		st = &start
		d.states[id] = st
	}
	st.Apply(r)
	d.reports = append(d.reports, r)
	d.opts = append(d.opts, opts)
	return nil, nil
}

func (d *temporalDouble) sent() []workflows.CircuitReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]workflows.CircuitReport(nil), d.reports...)
}

// setup returns a Store over a fresh double, on a clock the test moves.
func setup(t *testing.T) (*Store, *temporalDouble, *time.Time) {
	t.Helper()
	d := newDouble()
	s := New(d, "q", nil)
	s.OpenFor, s.Threshold = time.Minute, 3
	now := t0
	s.now = func() time.Time { return now }
	return s, d, &now
}

var errUnavailable = errors.New("sendgrid answered 503 Service Unavailable")

// A healthy provider costs nothing: successes are not reported, and its
// (never started) circuit is read once per CacheTTL, not once per send.
func TestHealthyProviderSendsNothing(t *testing.T) {
	t.Parallel()
	s, d, now := setup(t)
	for range 100 {
		ok, probe, _ := s.Allow(context.Background(), "sendgrid")
		if !ok || probe {
			t.Fatalf("closed circuit: Allow = %v (probe %v), want allowed, no probe", ok, probe)
		}
		s.Record(context.Background(), "sendgrid", false, nil, false)
	}
	if got := d.sent(); len(got) != 0 {
		t.Errorf("reports %+v, want none", got)
	}
	if d.queries != 1 {
		t.Errorf("%d reads, want 1 within CacheTTL", d.queries)
	}
	*now = now.Add(CacheTTL + time.Second)
	s.Allow(context.Background(), "sendgrid")
	if d.queries != 2 {
		t.Errorf("%d reads, want a second one after CacheTTL", d.queries)
	}
}

// Threshold consecutive failures open the circuit (one report), a success
// between them starts the count again; once open, the provider is skipped
// with a reason, and further failures are not reported again.
func TestConsecutiveFailuresTrip(t *testing.T) {
	t.Parallel()
	s, d, _ := setup(t)
	ctx := context.Background()
	s.Record(ctx, "sendgrid", false, errUnavailable, false)
	s.Record(ctx, "sendgrid", false, errUnavailable, false)
	s.Record(ctx, "sendgrid", false, nil, false) // a success: the run of failures ends
	s.Record(ctx, "sendgrid", false, errUnavailable, false)
	s.Record(ctx, "sendgrid", false, errUnavailable, false)
	if got := d.sent(); len(got) != 0 {
		t.Fatalf("reports %+v, want none below the threshold", got)
	}
	s.Record(ctx, "sendgrid", false, errUnavailable, false)
	got := d.sent()
	if len(got) != 1 || got[0].Kind != workflows.ReportTrip || got[0].Failures != 3 || got[0].OpenFor != time.Minute ||
		got[0].Error != errUnavailable.Error() || got[0].Reason != "3 consecutive failures on one worker" {
		t.Fatalf("reports %+v, want one trip of 3 failures", got)
	}
	o := d.opts[0]
	if o.ID != "dispatchflow-circuit-sendgrid" || o.TaskQueue != "q" ||
		o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE || !strings.Contains(o.StaticSummary, "sendgrid") {
		t.Errorf("start options %+v, want the circuit's ID, task queue, use-existing and a summary", o)
	}
	ok, _, why := s.Allow(ctx, "sendgrid")
	if ok || !strings.Contains(why, "circuit open since 2026-11-22T10:00:00Z") || !strings.Contains(why, "next probe at 2026-11-22T10:01:00Z") {
		t.Errorf("Allow = %v %q, want skipped, saying since when and the next probe", ok, why)
	}
	s.Record(ctx, "sendgrid", false, errUnavailable, false) // a last provider's failure while open
	if n := len(d.sent()); n != 1 {
		t.Errorf("%d reports, want no more while open", n)
	}
	if ok, _, _ := s.Allow(ctx, "postmark"); !ok {
		t.Error("another provider's circuit is its own: want postmark allowed")
	}
}

// The last attempt before a message fails over opens the circuit at once:
// the provider failed for the message's whole budget.
func TestFailoverTrips(t *testing.T) {
	t.Parallel()
	s, d, _ := setup(t)
	s.Record(context.Background(), "sendgrid", false, errUnavailable, true)
	got := d.sent()
	if len(got) != 1 || got[0].Kind != workflows.ReportTrip || got[0].Reason != "a message failed over after its budget" {
		t.Fatalf("reports %+v, want a trip for the failover", got)
	}
}

// After OpenFor the circuit is half-open: one attempt per process probes it
// while the others still skip it; the probe's success closes the circuit,
// and every attempt goes through again.
func TestHalfOpenProbeCloses(t *testing.T) {
	t.Parallel()
	s, d, now := setup(t)
	ctx := context.Background()
	s.Record(ctx, "sendgrid", false, errUnavailable, true)
	*now = now.Add(time.Minute)

	ok, probe, _ := s.Allow(ctx, "sendgrid")
	if !ok || !probe {
		t.Fatalf("half-open: Allow = %v (probe %v), want the probe", ok, probe)
	}
	if ok, _, why := s.Allow(ctx, "sendgrid"); ok || !strings.Contains(why, "another message is probing it") {
		t.Errorf("second attempt while probing: %v %q, want skipped", ok, why)
	}
	s.Record(ctx, "sendgrid", true, nil, false)
	got := d.sent()
	if len(got) != 2 || got[1].Kind != workflows.ReportClose || got[1].Reason != "a probe succeeded" {
		t.Fatalf("reports %+v, want the trip, then a close", got)
	}
	for range 3 {
		if ok, probe, _ := s.Allow(ctx, "sendgrid"); !ok || probe {
			t.Errorf("closed again: Allow = %v (probe %v), want allowed", ok, probe)
		}
	}
	*now = now.Add(CacheTTL + time.Second) // read again: the workflow closed it too
	if ok, _, _ := s.Allow(ctx, "sendgrid"); !ok {
		t.Error("after a read of the workflow: want closed")
	}
}

// A failed probe opens the circuit again for OpenFor; a probe whose outcome
// never comes (a crash) frees the provider for another probe after probeHold.
func TestFailedProbeReopens(t *testing.T) {
	t.Parallel()
	s, d, now := setup(t)
	ctx := context.Background()
	s.Record(ctx, "sendgrid", false, errUnavailable, true)
	*now = now.Add(time.Minute)
	if ok, probe, _ := s.Allow(ctx, "sendgrid"); !ok || !probe {
		t.Fatal("want a probe")
	}
	s.Record(ctx, "sendgrid", true, errors.New("timeout"), false)
	got := d.sent()
	if len(got) != 2 || got[1].Kind != workflows.ReportProbeFailed || got[1].Error != "timeout" {
		t.Fatalf("reports %+v, want the trip, then the probe's failure", got)
	}
	if ok, _, _ := s.Allow(ctx, "sendgrid"); ok {
		t.Error("after a failed probe: want skipped")
	}
	*now = now.Add(time.Minute) // due again
	if ok, probe, _ := s.Allow(ctx, "sendgrid"); !ok || !probe {
		t.Fatal("want another probe after OpenFor")
	}
	*now = now.Add(probeHold + time.Second) // that probe never reported
	if ok, probe, _ := s.Allow(ctx, "sendgrid"); !ok || !probe {
		t.Error("a probe lost for probeHold: want a new probe")
	}
}

// A message whose last provider is one with an open circuit is still sent
// there; when that succeeds, the circuit closes.
func TestSuccessWhileOpenCloses(t *testing.T) {
	t.Parallel()
	s, d, _ := setup(t)
	ctx := context.Background()
	s.Record(ctx, "postmark", false, errUnavailable, true)
	s.Record(ctx, "postmark", false, nil, false)
	got := d.sent()
	if len(got) != 2 || got[1].Kind != workflows.ReportClose || got[1].Reason != "a message was handed to it" {
		t.Fatalf("reports %+v, want the trip, then a close", got)
	}
	if st := d.states["dispatchflow-circuit-postmark"]; st.State != workflows.CircuitClosed {
		t.Errorf("circuit %s, want closed", st.State)
	}
}

// Another worker's trip reaches this one at its next read: it then skips the
// provider too.
func TestSharedState(t *testing.T) {
	t.Parallel()
	d := newDouble()
	a, b := New(d, "q", nil), New(d, "q", nil)
	now := t0
	a.now, b.now = func() time.Time { return now }, func() time.Time { return now }
	ctx := context.Background()
	if ok, _, _ := b.Allow(ctx, "sendgrid"); !ok {
		t.Fatal("want allowed before any trip")
	}
	a.Record(ctx, "sendgrid", false, errUnavailable, true)
	now = now.Add(CacheTTL + time.Second)
	if ok, _, _ := b.Allow(ctx, "sendgrid"); ok {
		t.Error("after another worker's trip and a read: want skipped")
	}
}

// An unreadable circuit costs a send at most readTimeout, counts as closed
// (a provider is better tried than skipped for an unreadable state), and is
// not read again for readBackoff.
func TestUnreadableCircuit(t *testing.T) {
	t.Parallel()
	s, d, now := setup(t)
	d.hang = true
	start := time.Now()
	if ok, _, _ := s.Allow(context.Background(), "sendgrid"); !ok {
		t.Error("unreadable: want allowed")
	}
	if took := time.Since(start); took > readTimeout+time.Second {
		t.Errorf("the read took %s, want at most %s", took, readTimeout)
	}
	for range 10 {
		s.Allow(context.Background(), "sendgrid")
	}
	if d.queries != 1 {
		t.Errorf("%d reads within the backoff, want 1", d.queries)
	}
	*now = now.Add(readBackoff + time.Second)
	s.Allow(context.Background(), "sendgrid")
	if d.queries != 2 {
		t.Errorf("%d reads, want one more after the backoff", d.queries)
	}
}

// Read answers a closed circuit for a provider never reported on.
func TestReadNeverReported(t *testing.T) {
	t.Parallel()
	st, err := Read(context.Background(), newDouble(), "resend")
	if err != nil || st.State != workflows.CircuitClosed || st.Provider != "resend" {
		t.Errorf("got %+v, %v; want resend closed", st, err)
	}
}

// A report carries at most maxErrorText bytes of the error.
func TestReportErrorBounded(t *testing.T) {
	t.Parallel()
	s, d, _ := setup(t)
	s.Record(context.Background(), "sendgrid", false, errors.New(strings.Repeat("é", 1000)), true)
	got := d.sent()
	if len(got) != 1 || len(got[0].Error) > maxErrorText+len("…") || !strings.HasSuffix(got[0].Error, "…") {
		t.Errorf("error of %d bytes, want at most %d and marked cut", len(got[0].Error), maxErrorText)
	}
}

// A circuit is shown to every workspace: the error it keeps has no address
// (an SMTP relay's transient reply names the recipient).
func TestReportRedactsAddresses(t *testing.T) {
	t.Parallel()
	s, d, _ := setup(t)
	s.Record(context.Background(), "smtp", false, errors.New("smtp: 450 4.2.1 <ann@example.com>: Recipient address rejected: try bob.smith+x@mail.example.org later"), true)
	got := d.sent()
	want := "smtp: 450 4.2.1 <<address>>: Recipient address rejected: try <address> later"
	if len(got) != 1 || got[0].Error != want {
		t.Errorf("reported error %q, want %q", got[0].Error, want)
	}
}
