package integration

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/tracing"
	"github.com/dispatchflow/dispatchflow/worker"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// TestTraceEndToEnd sends one message and posts its ESP event on a traced
// system (spans kept in memory), then reads the spans as a tracing backend
// shows them: one trace goes from POST /v1/messages through the start, the
// workflow run, the Send activity and every postback attempt (a failed one and
// its retry included), each span with the message's dispatch_id; the event's
// POST has its own trace, which reaches the workflow's signal handler; every
// postback request carries the W3C traceparent of its attempt's span, and its
// Standard Webhooks signature still verifies over the body alone.
func TestTraceEndToEnd(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	secret := newSecret(t)
	h := newHook(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError // the sent postback's first attempt fails, its retry succeeds
		}
		return http.StatusOK
	})
	// An endpoints file entry as docs/postbacks.md documents it.
	endpoints := withEndpoints(t, map[string]any{"id": uniqueID("traced"), "url": h.URL + "/hooks",
		"secrets": []string{secret}, "schedule": schedule(3, "200ms")})
	s := setupTraced(t, newReceiver(t), tp, func(c *config.Config) {
		endpoints(c)
		c.TrackingWindow = 2 * time.Second // the workflow, and its span, end soon after the event
	})

	// A send request as README.md ("HTTP API", POST /v1/messages) documents it;
	// silent@ makes the sandbox ESP accept it and post no event (README.md, "Try it").
	id := s.send(message.SendRequest{To: "silent@example.com", Subject: "Your order", Text: "Thanks for your order."})
	eventually(t, "the sent postback, retried", func() bool { return len(h.acked(id)) == 1 })
	// An event in the generic format (README.md, "The generic event format"),
	// signed with the workspace's intake secret by s.do.
	event := map[string]any{"dispatch_id": id, "event": "delivered", "event_id": "trace-evt-1"}
	if resp := s.do("POST", "/v1/events/generic", event, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/events/generic: %d, want 200", resp.StatusCode)
	}
	eventually(t, "the delivered postback", func() bool { return len(h.acked(id)) == 2 })
	waitClosed(t, s, id) // the workflow's span ends with it

	spans := exp.GetSpans()
	api := onlySpan(t, spans, "POST /v1/messages", id)
	send := api.SpanContext.TraceID()
	if api.SpanKind != trace.SpanKindServer || attr(api, "http.response.status_code").AsInt64() != http.StatusAccepted {
		t.Errorf("API span: kind %v, status code %v, want a server span answering 202", api.SpanKind, attr(api, "http.response.status_code").Emit())
	}
	start := onlySpan(t, spans, "StartWorkflow:"+workflows.MessageWorkflow, id)
	run := onlySpan(t, spans, "RunWorkflow:"+workflows.MessageWorkflow, id)
	sendActivity := onlySpan(t, spans, "RunActivity:Send", id)
	for _, s := range []tracetest.SpanStub{start, run, sendActivity} {
		if s.SpanContext.TraceID() != send {
			t.Errorf("span %s is in trace %s, want the send's %s", s.Name, s.SpanContext.TraceID(), send)
		}
	}
	if start.Parent.SpanID() != api.SpanContext.SpanID() || run.Parent.SpanID() != start.SpanContext.SpanID() {
		t.Errorf("parents: start's %s (want the API span's %s), run's %s (want the start's %s)",
			start.Parent.SpanID(), api.SpanContext.SpanID(), run.Parent.SpanID(), start.SpanContext.SpanID())
	}

	// Every postback attempt: a span in the send's trace, and the traceparent
	// its receiver got names that span.
	attempts := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spansNamed(spans, "RunActivity:Postback") {
		if attr(s, string(tracing.DispatchIDKey)).AsString() == id {
			attempts[s.SpanContext.SpanID()] = s
		}
	}
	reqs := h.requests(func(r hookRequest) bool { return r.JSON["dispatch_id"] == id })
	if len(reqs) != 3 || len(attempts) != 3 {
		t.Fatalf("receiver got %d requests and there are %d postback attempt spans, want 3 of each (sent twice, delivered)", len(reqs), len(attempts))
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[trace.SpanID]bool{}
	for i, r := range reqs {
		tp := r.Header.Get("Traceparent")
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[0] != "00" || parts[1] != send.String() {
			t.Errorf("postback %d (%s): traceparent %q, want version 00 in trace %s", i, r.JSON["status"], tp, send)
			continue
		}
		sid, err := trace.SpanIDFromHex(parts[2])
		if _, ok := attempts[sid]; err != nil || !ok || seen[sid] {
			t.Errorf("postback %d (%s): traceparent %q names no attempt span of its own", i, r.JSON["status"], tp)
		}
		seen[sid] = true
		if err := wh.Verify(r.Body, r.Header); err != nil {
			t.Errorf("postback %d (%s): the reference library refuses its signature: %v", i, r.JSON["status"], err)
		}
	}
	for _, a := range attempts {
		if a.SpanContext.TraceID() != send {
			t.Errorf("postback attempt span %s is in trace %s, want the send's %s", a.SpanContext.SpanID(), a.SpanContext.TraceID(), send)
		}
	}

	// The event: its own trace, from its POST to the workflow's signal handler.
	intake := onlySpan(t, spans, "POST /v1/events/{provider}", id)
	evTrace := intake.SpanContext.TraceID()
	for _, name := range []string{"SignalWorkflow:" + workflows.SignalEvent, "HandleSignal:" + workflows.SignalEvent} {
		if s := onlySpan(t, spans, name, id); s.SpanContext.TraceID() != evTrace {
			t.Errorf("span %s is in trace %s, want the event POST's %s", name, s.SpanContext.TraceID(), evTrace)
		}
	}
	// Nothing of the message's lies outside these two traces.
	for _, s := range spans {
		if attr(s, string(tracing.DispatchIDKey)).AsString() == id && s.SpanContext.TraceID() != send && s.SpanContext.TraceID() != evTrace {
			t.Errorf("span %s of the message is in trace %s, neither the send's nor the event's", s.Name, s.SpanContext.TraceID())
		}
	}
}

// TestTracesExportedByTheProcess runs the API as a process does (app.Dial,
// app.Run) with OTEL_EXPORTER_OTLP_ENDPOINT naming a real OTLP/HTTP collector
// (httptest), and the worker on the same client: a send's spans, the API's
// and the worker's, reach the collector under OTEL_SERVICE_NAME, in one trace.
// The batcher's delay is ten minutes, so they can only have come with the
// flush when Run returns.
func TestTracesExportedByTheProcess(t *testing.T) {
	// Not parallel: t.Setenv, and Dial makes its provider the process's.
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("collector: %s %s is not an OTLP/HTTP export", r.Method, r.URL.Path)
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "dispatchflow-it")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000") // ms
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	s := setup(t, nil) // keys, secrets, task queue; its untraced worker gives way to the traced one
	s.stopWorker()
	cfg := s.cfg
	cfg.HTTPAddr, cfg.MetricsAddr = freeAddr(t), ""
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := app.Dial(ctx, cfg, s.logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sender, err := worker.NewESP(cfg, s.logger)
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, cfg, sender)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	var stopWorker sync.Once
	t.Cleanup(func() { stopWorker.Do(w.Stop) })
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, c, cfg, s.logger, app.Roles{API: true}) }()

	p := s.as("admin")
	p.api = "http://" + cfg.HTTPAddr
	eventually(t, "the API to listen", func() bool {
		resp, err := http.Get(p.api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	// A send request as README.md ("HTTP API", POST /v1/messages) documents it.
	id := p.send(message.SendRequest{To: "ok@example.com", Subject: "Your order", Text: "Thanks.", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 1)
	mu.Lock()
	early := len(got)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("the collector got %d exports before Run returned, want none (OTEL_BSP_SCHEDULE_DELAY is 10 min)", early)
	}
	stopWorker.Do(w.Stop) // its activities, and their spans, end
	stop()
	if err := <-done; err != nil {
		t.Fatalf("app.Run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	traces := map[string]map[string]bool{} // span name → trace ids, of this message's spans
	var services []string
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					services = append(services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					for _, a := range sp.GetAttributes() {
						if a.GetKey() == string(tracing.DispatchIDKey) && a.GetValue().GetStringValue() == id {
							if traces[sp.GetName()] == nil {
								traces[sp.GetName()] = map[string]bool{}
							}
							traces[sp.GetName()][fmt.Sprintf("%x", sp.GetTraceId())] = true
						}
					}
				}
			}
		}
	}
	api := traces["POST /v1/messages"]
	if len(api) != 1 {
		t.Fatalf("the collector got spans %v of the message, want one POST /v1/messages", traces)
	}
	for _, name := range []string{"StartWorkflow:" + workflows.MessageWorkflow, "RunActivity:Send", "RunActivity:Postback"} {
		if len(traces[name]) == 0 || !maps.Equal(traces[name], api) {
			t.Errorf("span %s in traces %v, want the API span's %v", name, traces[name], api)
		}
	}
	for _, svc := range services {
		if svc != "dispatchflow-it" {
			t.Errorf("service.name %q, want dispatchflow-it (OTEL_SERVICE_NAME)", svc)
		}
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// attr is span s's attribute key (an empty value without it).
func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

func spansNamed(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// onlySpan is the one span named name whose dispatch_id is id.
func onlySpan(t *testing.T, spans tracetest.SpanStubs, name, id string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spansNamed(spans, name) {
		if attr(s, string(tracing.DispatchIDKey)).AsString() == id {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name+" "+attr(s, string(tracing.DispatchIDKey)).Emit())
		}
		t.Fatalf("got %d spans %q with dispatch_id %s, want 1; spans: %v", len(found), name, id, names)
	}
	return found[0]
}
