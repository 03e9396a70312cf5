package health

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func ok(at time.Time) postback.Attempt {
	return postback.Attempt{At: at, StatusCode: 200, Class: postback.ClassSuccess}
}
func failed(at time.Time, code int) postback.Attempt {
	return postback.Attempt{At: at, StatusCode: code, Class: postback.ClassFailure}
}

// A batch sums attempts per endpoint, and its trailing failures are those after
// its last success: what the Endpoint workflow needs to keep consecutive failures.
func TestReportBatches(t *testing.T) {
	s := New(nil, "q", nil)
	s.Report("crm", failed(t0, 500))
	s.Report("crm", ok(t0.Add(time.Second)))
	s.Report("crm", failed(t0.Add(2*time.Second), 503))
	s.Report("crm", failed(t0.Add(3*time.Second), 0))
	s.Report("bi", ok(t0))
	s.Report("", failed(t0, 500)) // a message's own postback_url: not an endpoint

	if len(s.pending) != 2 {
		t.Fatalf("pending reports for %d endpoints, want 2 (crm, bi)", len(s.pending))
	}
	want := workflows.EndpointReport{Successes: 1, Failures: 3, LastSuccessAt: t0.Add(time.Second),
		LastFailureAt: t0.Add(3 * time.Second), LastError: "", TrailingFailures: 2, FailingSince: t0.Add(2 * time.Second)}
	if got := *s.pending["crm"]; got != want {
		t.Errorf("crm report = %+v, want %+v", got, want)
	}
	if got := s.pending["bi"]; got.Successes != 1 || got.TrailingFailures != 0 {
		t.Errorf("bi report = %+v, want one success", got)
	}
}

func TestReportNamesTheStatusWithoutError(t *testing.T) {
	s := New(nil, "q", nil)
	s.Report("crm", failed(t0, 502))
	if got := s.pending["crm"].LastError; got != "answered 502" {
		t.Errorf("LastError = %q, want %q", got, "answered 502")
	}
}

// An unsent batch merged before a newer one loses no count, and the newer one's
// success ends the older one's run of failures.
func TestMerge(t *testing.T) {
	older := &workflows.EndpointReport{Failures: 2, TrailingFailures: 2, LastFailureAt: t0, LastError: "answered 500", FailingSince: t0.Add(-time.Minute)}
	tests := []struct {
		name  string
		newer *workflows.EndpointReport
		want  workflows.EndpointReport
	}{
		{"nothing newer", nil, *older},
		{"newer failures add up", &workflows.EndpointReport{Failures: 1, TrailingFailures: 1, LastFailureAt: t0.Add(time.Minute), LastError: "timeout", FailingSince: t0.Add(time.Minute)},
			workflows.EndpointReport{Failures: 3, TrailingFailures: 3, LastFailureAt: t0.Add(time.Minute), LastError: "timeout", FailingSince: t0.Add(-time.Minute)}},
		{"newer success resets the run", &workflows.EndpointReport{Successes: 1, LastSuccessAt: t0.Add(time.Minute)},
			workflows.EndpointReport{Successes: 1, Failures: 2, LastSuccessAt: t0.Add(time.Minute), LastFailureAt: t0, LastError: "answered 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := *merge(older, tt.newer); got != tt.want {
				t.Errorf("merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// unreadable is a Temporal client whose queries never answer (the endpoint's
// workflow is on a worker that is starting): it counts them.
type unreadable struct {
	client.Client
	queries atomic.Int32
}

func (u *unreadable) QueryWorkflow(ctx context.Context, _, _, _ string, _ ...any) (converter.EncodedValue, error) {
	u.queries.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// An unreadable switch costs a postback attempt at most readTimeout, keeps the
// last state read (enabled when none was), and is not read again for
// readBackoff: a burst of attempts after a restart does not each wait for it.
func TestDisabledWhenUnreadable(t *testing.T) {
	c := &unreadable{}
	now := t0
	s := New(c, "q", slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return now }

	start := time.Now()
	if _, off := s.Disabled(context.Background(), "crm"); off {
		t.Error("unreadable and never read: got disabled, want enabled")
	}
	if took := time.Since(start); took > readTimeout+time.Second {
		t.Errorf("the read took %s, want at most %s", took, readTimeout)
	}
	for range 10 {
		s.Disabled(context.Background(), "crm")
	}
	if n := c.queries.Load(); n != 1 {
		t.Errorf("%d reads within the backoff, want 1", n)
	}

	s.remember("crm", workflows.EndpointState{Enabled: false, DisabledReason: "answered 410 Gone"})
	now = now.Add(CacheTTL + time.Second)
	if reason, off := s.Disabled(context.Background(), "crm"); !off || reason != "answered 410 Gone" {
		t.Errorf("unreadable once read: got %q %v, want the last state read (disabled)", reason, off)
	}
	now = now.Add(readBackoff + time.Second)
	s.Disabled(context.Background(), "crm")
	if n := c.queries.Load(); n != 3 {
		t.Errorf("%d reads, want one more after each backoff", n)
	}
}
