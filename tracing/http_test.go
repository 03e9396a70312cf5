package tracing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	id1 = "acf471119f7449d579e8089032003ded"
	id2 = "0123456789abcdef0123456789abcdef"
	// A Sarbacane token, as its intake carries it in the path.
	token = "sarbacane-secret-token-123"
)

// newTraced serves routes behind Handler, recording the spans in memory.
func newTraced(t *testing.T) (*httptest.Server, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events/{provider}/{token}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /v1/messages/{dispatch_id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{}"))
	})
	// As the intake does for a batch: one Temporal call per message.
	mux.HandleFunc("POST /v1/events/{provider}", func(w http.ResponseWriter, r *http.Request) {
		for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
			noteDispatchID(r.Context(), id)
		}
		if r.URL.Query().Has("fail") {
			http.Error(w, "Temporal unavailable", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(Handler(tp, mux))
	t.Cleanup(srv.Close)
	return srv, exp
}

func post(t *testing.T, url string, header http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes {
		m[a.Key] = a.Value
	}
	return m
}

func oneSpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1: %v", len(spans), spans)
	}
	exp.Reset()
	return spans[0]
}

// The span is named after the route, never the path: a token in the path
// appears nowhere in it.
func TestHandlerNamesTheRoute(t *testing.T) {
	t.Parallel()
	srv, exp := newTraced(t)
	post(t, srv.URL+"/v1/events/sarbacane/"+token+"?token="+token, nil)
	s := oneSpan(t, exp)
	if s.Name != "POST /v1/events/{provider}/{token}" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q (%v), want POST /v1/events/{provider}/{token}, a server span", s.Name, s.SpanKind)
	}
	a := attrs(s)
	if a[httpRouteKey].AsString() != "/v1/events/{provider}/{token}" || a[httpMethodKey].AsString() != "POST" || a[httpStatusKey].AsInt64() != 200 {
		t.Errorf("attributes %v, want the route, POST and 200", s.Attributes)
	}
	for _, kv := range s.Attributes {
		if strings.Contains(kv.Value.Emit(), token) {
			t.Errorf("attribute %s = %q carries the path's token", kv.Key, kv.Value.Emit())
		}
	}
	if s.Status.Code == codes.Error {
		t.Errorf("status %v, want unset for a 200", s.Status)
	}

	// No route: the method alone.
	post(t, srv.URL+"/v1/nowhere/"+token, nil)
	if s := oneSpan(t, exp); s.Name != "POST" || attrs(s)[httpStatusKey].AsInt64() != 404 {
		t.Errorf("unrouted request: span %q %v, want POST with 404", s.Name, s.Attributes)
	}
	// Probes: no span.
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("GET /healthz made spans %v, want none", spans)
	}
}

// An incoming traceparent is linked, never the parent: the caller chooses
// neither the trace id nor the sampling.
func TestHandlerLinksRemoteContext(t *testing.T) {
	t.Parallel()
	srv, exp := newTraced(t)
	// The example traceparent of W3C Trace Context
	// (https://www.w3.org/TR/trace-context/#traceparent-header).
	const remoteTrace, remoteSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	post(t, srv.URL+"/v1/events/generic", http.Header{"Traceparent": {"00-" + remoteTrace + "-" + remoteSpan + "-01"}})
	s := oneSpan(t, exp)
	if s.Parent.IsValid() || s.SpanContext.TraceID().String() == remoteTrace {
		t.Errorf("span has parent %v, trace %s: want a new root, not the caller's trace", s.Parent, s.SpanContext.TraceID())
	}
	if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != remoteTrace || s.Links[0].SpanContext.SpanID().String() != remoteSpan {
		t.Errorf("links %v, want one to %s/%s", s.Links, remoteTrace, remoteSpan)
	}
}

// dispatch_id: the path's, or the one message a request's Temporal calls
// named; several: their count. A 5xx is an error.
func TestHandlerDispatchID(t *testing.T) {
	t.Parallel()
	srv, exp := newTraced(t)
	resp, err := http.Get(srv.URL + "/v1/messages/" + id1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := attrs(oneSpan(t, exp))[DispatchIDKey].AsString(); got != id1 {
		t.Errorf("GET /v1/messages/{dispatch_id}: dispatch_id %q, want %s", got, id1)
	}

	post(t, srv.URL+"/v1/events/generic?ids="+id2+","+id2+",not-an-id", nil)
	if got := attrs(oneSpan(t, exp))[DispatchIDKey].AsString(); got != id2 {
		t.Errorf("events of one message: dispatch_id %q, want %s", got, id2)
	}

	post(t, srv.URL+"/v1/events/generic?fail&ids="+id1+","+id2, nil)
	s := oneSpan(t, exp)
	a := attrs(s)
	if _, ok := a[DispatchIDKey]; ok || a[MessageCountKey].AsInt64() != 2 {
		t.Errorf("events of two messages: attributes %v, want dispatchflow.messages 2 and no dispatch_id", s.Attributes)
	}
	if s.Status.Code != codes.Error || a[errorTypeKey].AsString() != "503" {
		t.Errorf("503: status %v, error.type %q, want an error, 503", s.Status, a[errorTypeKey].AsString())
	}
}

// The Temporal interceptor's spans of a message get its dispatch_id beside
// temporalWorkflowID; other workflows' (an endpoint's) do not.
func TestMessageSpanDispatchID(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)).Tracer(TemporalInstrumentation)
	for _, wf := range []string{id1, "dispatchflow-endpoint-crm"} {
		span := startMessageSpan(t.Context(), tracer, "RunWorkflow:Message")
		span.SetAttributes(attribute.String("temporalWorkflowID", wf), attribute.String("temporalRunID", "r1"))
		span.End()
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	if a := attrs(spans[0]); a[DispatchIDKey].AsString() != id1 || a[workflowIDKey].AsString() != id1 || a["temporalRunID"].AsString() != "r1" {
		t.Errorf("message span attributes %v, want dispatch_id %s beside the SDK's", spans[0].Attributes, id1)
	}
	if _, ok := attrs(spans[1])[DispatchIDKey]; ok {
		t.Errorf("endpoint workflow span has dispatch_id: %v", spans[1].Attributes)
	}
}
