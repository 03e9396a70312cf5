package integration

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/metrics/metricstest"
	"github.com/dispatchflow/dispatchflow/worker"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// TestMetrics sends messages through the API, lets them close, replays them (a
// query on a closed workflow), and reads GET /metrics as Prometheus would: our
// postback metrics, status transitions and escalations counted once each despite
// the replay, and the Temporal SDK's metrics for this test's task queue.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) { c.TrackingWindow = 2 * time.Second })
	endpoint := mustHost(t, s.postback.URL)
	// Registry is the process's: with -count=2 this test's labels are already
	// there. What counts is what this run adds.
	before := metricstest.Scrape(t, s.metricsURL())
	var ids []string
	for range 2 {
		ids = append(ids, s.send(message.SendRequest{To: "ok@example.com", Subject: "Your order", Text: "Thanks.", PostbackURL: s.postback.URL}))
	}
	// Bounced: escalates (reason bounced) to the sandbox channel.
	ids = append(ids, s.sendFallback("bounce@example.com", map[string]any{
		"steps": []any{map[string]any{"channel": "sandbox", "to": "+33612345678", "text": "hi"}},
	}))

	// What the metrics must say, from the messages' own records.
	wantTransitions := map[[2]string]float64{}
	var postbacks float64
	for _, id := range ids {
		waitClosed(t, s, id)
		st := s.state(id) // a query on a closed workflow: the worker replays it
		from := message.StatusQueued
		for _, ev := range st.Events {
			if !ev.ChangedStatus {
				continue
			}
			to, _ := message.Next(from, ev.Type)
			wantTransitions[[2]string{string(from), string(to)}]++
			from = to
		}
		if from != st.Status {
			t.Fatalf("%s: events lead to %s, state says %s", id, from, st.Status)
		}
		for _, p := range st.Postbacks {
			if p.State != workflows.PostbackDelivered {
				t.Fatalf("%s: postback %d is %s, want delivered", id, p.Seq, p.State)
			}
			postbacks++
		}
	}
	if len(wantTransitions) < 3 || postbacks < 6 {
		t.Fatalf("transitions %v, %v postbacks: want a delivered and a bounced message's", wantTransitions, postbacks)
	}

	samples := metricstest.Scrape(t, s.metricsURL())
	tq := map[string]string{"task_queue": s.cfg.TaskQueue}
	tests := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		what   string
	}{
		{"dispatchflow_postback_attempts_total", map[string]string{"endpoint": endpoint, "outcome": "success"}, equals(postbacks), "one per postback"},
		{"dispatchflow_postback_latency_seconds_count", map[string]string{"endpoint": endpoint}, equals(postbacks), "one per postback"},
		{"dispatchflow_postback_latency_seconds_bucket", map[string]string{"endpoint": endpoint, "le": "+Inf"}, equals(postbacks), "one per postback"},
		{"dispatchflow_postback_latency_seconds_sum", map[string]string{"endpoint": endpoint}, positive, "positive"},
		{"temporal_request_total", withLabel(withLabel(tq, "operation", "StartWorkflowExecution"), "namespace", s.cfg.Temporal.Namespace), equals(3), "3"},
		{"temporal_workflow_completed_total", withLabel(tq, "workflow_type", workflows.MessageWorkflow), equals(3), "3"},
		{"temporal_workflow_task_execution_latency_count", withLabel(tq, "workflow_type", workflows.MessageWorkflow), positive, "positive"},
		{"temporal_activity_execution_latency_count", withLabel(tq, "activity_type", "Send"), equals(3), "3"}, // one hand-over each, a regular activity
		{"dispatchflow_fallback_escalations_total", withLabel(withLabel(tq, "workflow_type", workflows.MessageWorkflow), "reason", "bounced"), equals(1), "1"},
	}
	for k, n := range wantTransitions {
		labels := withLabel(withLabel(withLabel(tq, "workflow_type", workflows.MessageWorkflow), "from", k[0]), "to", k[1])
		tests = append(tests, struct {
			name   string
			labels map[string]string
			want   func(float64) bool
			what   string
		}{"dispatchflow_status_transitions_total", labels, equals(n), strconv.FormatFloat(n, 'f', -1, 64) + " (once per change, replays not counted)"})
	}
	for _, tt := range tests {
		got, ok := metricstest.Value(samples, tt.name, tt.labels)
		was, _ := metricstest.Value(before, tt.name, tt.labels)
		if !ok || !tt.want(got-was) {
			t.Errorf("%s%v rose by %v (found %v), want %s", tt.name, tt.labels, got-was, ok, tt.what)
		}
	}
}

// TestWorkflowLogsCarryDispatchID runs a message on a worker whose client logs
// JSON through app.NewLogger, as dispatchflow does: every line the SDK writes
// for the message's workflow carries its dispatch_id once, the SDK's own lines
// (NewTimer, at debug) included. (Activity lines: app/log_test.go.)
func TestWorkflowLogsCarryDispatchID(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) { c.LogFormat, c.LogLevel = "json", "debug" })
	s.stopWorker()
	var buf lockedBuffer
	logger := app.NewLogger(s.cfg, &buf)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := app.Dial(ctx, s.cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sender, err := worker.NewESP(s.cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, s.cfg, sender)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "Your order", Text: "Thanks.", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 3)

	var sdkLines int
	for l := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if rec["WorkflowID"] != id {
			continue
		}
		if rec["dispatch_id"] != id || strings.Count(l, `"dispatch_id"`) != 1 {
			t.Errorf("line about %s without its dispatch_id once: %s", id, l)
		}
		if rec["component"] != "temporal-sdk" {
			t.Errorf("SDK line without component=temporal-sdk: %s", l)
		}
		if rec["msg"] == "NewTimer" {
			sdkLines++
		}
	}
	if sdkLines == 0 {
		t.Errorf("no NewTimer line of the SDK for %s in:\n%s", id, buf.String())
	}
}

// lockedBuffer is a log destination shared by goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func equals(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func positive(v float64) bool                { return v > 0 }

func withLabel(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for mk, mv := range m {
		out[mk] = mv
	}
	return out
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// metricsURL serves this process's /metrics (as DISPATCHFLOW_METRICS_ADDR
// does, beside the API) for the test's life.
func (s *system) metricsURL() string {
	srv := httptest.NewServer(metrics.Handler())
	s.t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}
