package health

import (
	"testing"
	"time"

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
