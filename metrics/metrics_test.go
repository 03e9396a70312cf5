package metrics_test

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/metrics/metricstest"
)

// nonce makes label values unique to one run of a test.
func nonce() string { return strconv.FormatInt(rand.Int64(), 36) }

// scrape GETs /metrics from metrics.Handler on a loopback server, as Prometheus does.
func scrape(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: got %d %s, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Every metric gathered: an inconsistent one would be left out silently.
	if _, err := metrics.Registry.Gather(); err != nil {
		t.Fatalf("gathering: %v", err)
	}
	return string(body)
}

func TestOurMetrics(t *testing.T) {
	t.Parallel()
	// Label values unique to this run: Registry is the process's (and -count=2
	// runs the test twice in it).
	prov, ep := "prov-"+nonce(), "app-"+nonce()+".example"
	metrics.EventIngested(prov, "delivered")
	metrics.EventIngested(prov, "delivered")
	metrics.EventIngested(prov, "bounced")
	metrics.EventUnmatched(prov)
	metrics.EventDuplicate(prov)
	metrics.EventDuplicate(prov)
	metrics.PostbackAttempt(ep, false)
	metrics.PostbackAttempt(ep, true)
	metrics.PostbackLatency(ep, 40*time.Millisecond)
	metrics.PostbackLatency(ep, 3*time.Second)
	metrics.Send(prov, metrics.SendSent)
	metrics.Send(prov, metrics.SendSent)
	metrics.Send(prov, metrics.SendSuppressed)

	samples := metricstest.Parse(t, scrape(t))
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dispatchflow_events_ingested_total", map[string]string{"provider": prov, "type": "delivered"}, 2},
		{"dispatchflow_events_ingested_total", map[string]string{"provider": prov, "type": "bounced"}, 1},
		{"dispatchflow_events_unmatched_total", map[string]string{"provider": prov}, 1},
		{"dispatchflow_events_duplicate_total", map[string]string{"provider": prov}, 2},
		{"dispatchflow_postback_attempts_total", map[string]string{"endpoint": ep, "outcome": "success"}, 1},
		{"dispatchflow_postback_attempts_total", map[string]string{"endpoint": ep, "outcome": "failure"}, 1},
		{"dispatchflow_postback_latency_seconds_count", map[string]string{"endpoint": ep}, 2},
		{"dispatchflow_postback_latency_seconds_sum", map[string]string{"endpoint": ep}, 3.04},
		{"dispatchflow_postback_latency_seconds_bucket", map[string]string{"endpoint": ep, "le": "0.05"}, 1},
		{"dispatchflow_postback_latency_seconds_bucket", map[string]string{"endpoint": ep, "le": "5"}, 2},
		{"dispatchflow_sends_total", map[string]string{"provider": prov, "outcome": "sent"}, 2},
		{"dispatchflow_sends_total", map[string]string{"provider": prov, "outcome": "suppressed"}, 1},
	}
	for _, tt := range tests {
		got, ok := metricstest.Value(samples, tt.name, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

func TestRuntimeMetrics(t *testing.T) {
	t.Parallel()
	samples := metricstest.Parse(t, scrape(t))
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if v, ok := metricstest.Value(samples, name, nil); !ok || v <= 0 {
			t.Errorf("%s = %v (found %v), want a positive value", name, v, ok)
		}
	}
}

// TestTemporalHandler drives the SDK's handler as the SDK does: tags added on
// the way, one name with different tag sets, counters, gauges and timers.
func TestTemporalHandler(t *testing.T) {
	t.Parallel()
	ns := "ns-" + nonce()
	h := metrics.TemporalHandler().WithTags(map[string]string{"namespace": ns, "client_name": "temporal_go"})
	req := h.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	req.Counter("temporal_request").Inc(1)
	req.Counter("temporal_request").Inc(2)
	req.Timer("temporal_request_latency").Record(3 * time.Millisecond)
	req.Timer("temporal_request_latency").Record(2 * time.Second)
	// Same name, one more tag: both series are served.
	req.WithTags(map[string]string{"status_code": "Unavailable"}).Counter("temporal_request_failure").Inc(1)
	req.Counter("temporal_request_failure").Inc(4)
	// WithTags overrides a tag of the same key.
	h.WithTags(map[string]string{"namespace": ns + "-2"}).Gauge("temporal_num_pollers").Update(2)
	h.Gauge("temporal_num_pollers").Update(5)
	h.Gauge("temporal_num_pollers").Update(3)
	// A name already used by another kind is dropped, not served twice.
	req.Gauge("temporal_request_latency").Update(7)
	// Names and keys outside Prometheus's characters are made valid.
	h.WithTags(map[string]string{"task-queue": "q"}).Counter("temporal.odd-name").Inc(1)
	// Tags that would make an invalid metric are dropped (Gather fails otherwise).
	h.WithTags(map[string]string{"task-queue": "a", "task_queue": "b"}).Counter("temporal_clash").Inc(1)
	h.WithTags(map[string]string{"le": "x"}).Timer("temporal_le_latency").Record(time.Millisecond)

	samples := metricstest.Parse(t, scrape(t))
	base := map[string]string{"namespace": ns, "client_name": "temporal_go", "operation": "StartWorkflowExecution"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"temporal_request_total", base, 3},
		{"temporal_request_latency_count", base, 2},
		{"temporal_request_latency_sum", base, 2.003},
		{"temporal_request_latency_bucket", with(map[string]string{"le": "0.0025"}), 0},
		{"temporal_request_latency_bucket", with(map[string]string{"le": "0.005"}), 1},
		{"temporal_request_latency_bucket", with(map[string]string{"le": "2.5"}), 2},
		{"temporal_request_latency_bucket", with(map[string]string{"le": "+Inf"}), 2},
		{"temporal_request_failure_total", with(map[string]string{"status_code": "Unavailable"}), 1},
		{"temporal_num_pollers", map[string]string{"namespace": ns, "client_name": "temporal_go"}, 3},
		{"temporal_num_pollers", map[string]string{"namespace": ns + "-2", "client_name": "temporal_go"}, 2},
		{"temporal_odd_name_total", map[string]string{"task_queue": "q", "namespace": ns}, 1},
		{"temporal_clash_total", map[string]string{"task_queue": "a", "namespace": ns}, 1},
		{"temporal_le_latency_count", map[string]string{"namespace": ns}, 1},
	}
	for _, tt := range tests {
		got, ok := metricstest.Value(samples, tt.name, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// The failure counter without status_code is its own series.
	var n int
	for _, s := range samples {
		if s.Name == "temporal_request_failure_total" && s.Labels["namespace"] == ns {
			n++
			if _, ok := s.Labels["status_code"]; !ok && s.Value != 4 {
				t.Errorf("temporal_request_failure_total without status_code = %v, want 4", s.Value)
			}
		}
	}
	if n != 2 {
		t.Errorf("temporal_request_failure_total: %d series, want 2", n)
	}
	if v, ok := metricstest.Value(samples, "temporal_request_latency", base); ok {
		t.Errorf("temporal_request_latency also served as a gauge (%v); want the histogram only", v)
	}
}

// transitionsWorkflow reports what a Message workflow would, and odd values.
func transitionsWorkflow(ctx workflow.Context) error {
	metrics.StatusTransition(ctx, "queued", "sent")
	metrics.StatusTransition(ctx, "sent", "delivered")
	metrics.StatusTransition(ctx, "delivered", "bounced")
	metrics.StatusTransition(ctx, "sent", "Delivered ") // not a status
	metrics.WorkflowEscalation(ctx, "not_delivered_in_time")
	metrics.WorkflowEscalation(ctx, "bounced")
	metrics.WorkflowEscalation(ctx, "550 5.1.1 user unknown") // free text: not a label
	return nil
}

func TestWorkflowMetrics(t *testing.T) {
	t.Parallel()
	before := metricstest.Parse(t, scrape(t)) // the labels are fixed: count what this run adds
	var s testsuite.WorkflowTestSuite
	s.SetMetricsHandler(metrics.TemporalHandler())
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(transitionsWorkflow, workflow.RegisterOptions{Name: "MetricsTestWorkflow"})
	env.ExecuteWorkflow("MetricsTestWorkflow")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}

	// The test environment tags no workflow_type (a worker does: see
	// devserver/integration/metrics_test.go).
	samples := metricstest.Parse(t, scrape(t))
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dispatchflow_status_transitions_total", map[string]string{"from": "queued", "to": "sent"}, 1},
		{"dispatchflow_status_transitions_total", map[string]string{"from": "sent", "to": "delivered"}, 1},
		{"dispatchflow_status_transitions_total", map[string]string{"from": "delivered", "to": "bounced"}, 1},
		{"dispatchflow_status_transitions_total", map[string]string{"from": "sent", "to": "other"}, 1},
		{"dispatchflow_fallback_escalations_total", map[string]string{"reason": "not_delivered_in_time"}, 1},
		{"dispatchflow_fallback_escalations_total", map[string]string{"reason": "bounced"}, 1},
		{"dispatchflow_fallback_escalations_total", map[string]string{"reason": "other"}, 1},
	}
	for _, tt := range tests {
		got, ok := metricstest.Value(samples, tt.name, tt.labels)
		was, _ := metricstest.Value(before, tt.name, tt.labels)
		if !ok || got-was != tt.want {
			t.Errorf("%s%v rose by %v (found %v), want %v", tt.name, tt.labels, got-was, ok, tt.want)
		}
	}
	for _, s := range samples {
		if s.Labels["reason"] == "550 5.1.1 user unknown" {
			t.Errorf("free-text reason became a label: %+v", s)
		}
	}
}
