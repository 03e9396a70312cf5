package tracing

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dispatchflow/dispatchflow/message"
)

// Instrumentation is the instrumentation scope of the HTTP spans.
const Instrumentation = "github.com/dispatchflow/dispatchflow/tracing"

// Attributes of the HTTP server spans (OpenTelemetry's HTTP semantic
// conventions), and of every span of a message.
const (
	DispatchIDKey    = attribute.Key("dispatch_id")
	MessageCountKey  = attribute.Key("dispatchflow.messages")
	httpMethodKey    = attribute.Key("http.request.method")
	httpRouteKey     = attribute.Key("http.route")
	httpStatusKey    = attribute.Key("http.response.status_code")
	errorTypeKey     = attribute.Key("error.type")
	maxRequestIDsSet = 1000 // the intake's MaxEventsPerRequest: one message per event at most
)

// untraced are the paths served without a span: probes and scrapes, polled
// all day long.
var untraced = map[string]bool{"/healthz": true, "/metrics": true}

// Handler returns next (a ServeMux, or a handler around one) with a server
// span for each request but GET /healthz and GET /metrics. The span is named
// after the route that served it, "POST /v1/events/{provider}/{token}", never
// after the path, which may carry a credential (Sarbacane's token); it records
// the method, the route, the status code, and dispatch_id when the request
// concerned one message (the path's {dispatch_id}, or the one message its
// Temporal calls named), or dispatchflow.messages when it concerned several
// (an intake batch: each signal's span has its dispatch_id). No URL, query,
// header, body or client address is recorded.
//
// An incoming traceparent is anyone's, even on the routes that need a key (the
// span starts before the key is checked): it becomes a link of the span, never
// its parent, so that no caller chooses dispatchflow's trace ids or sampling.
// Nil tp: next itself.
func Handler(tp trace.TracerProvider, next http.Handler) http.Handler {
	if tp == nil {
		return next
	}
	tracer := tp.Tracer(Instrumentation)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if untraced[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		method := knownMethod(r.Method)
		opts := []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithNewRoot(),
			trace.WithAttributes(httpMethodKey.String(method)),
		}
		remote := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
		if remote.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
		}
		ctx, span := tracer.Start(r.Context(), method, opts...)
		defer span.End()
		ids := &requestIDs{}
		r = r.WithContext(context.WithValue(ctx, requestIDsKey{}, ids))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)

		// ServeMux routed r (this very request): r.Pattern and r.PathValue are its.
		if route := routeOf(r.Pattern); route != "" {
			span.SetName(method + " " + route)
			span.SetAttributes(httpRouteKey.String(route))
		}
		ids.add(r.PathValue("dispatch_id"))
		if id, n := ids.result(); n == 1 {
			span.SetAttributes(DispatchIDKey.String(id))
		} else if n > 1 {
			span.SetAttributes(MessageCountKey.Int(n))
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		span.SetAttributes(httpStatusKey.Int(code))
		if code >= 500 {
			span.SetAttributes(errorTypeKey.String(strconv.Itoa(code)))
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	})
}

// routeOf is the path template of a ServeMux pattern: "/v1/messages" of
// "POST /v1/messages"; "" for none (a request no route served).
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	return pattern
}

// knownMethod is the request's method, or "_OTHER" for one outside the HTTP
// standards (the semantic conventions' bound on the attribute's values).
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// statusWriter remembers the status code answered. (http.MaxBytesReader no
// longer sees the server's own writer through it: a body over the limit is
// then drained, up to the server's 256 KB, before the connection is reused.)
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestIDs are the dispatch_ids a request's Temporal calls named (see
// Handler): distinct, at most maxRequestIDsSet kept. Safe for concurrent use:
// the intake signals several messages at once.
type requestIDs struct {
	mu    sync.Mutex
	first string
	seen  map[string]bool
}

type requestIDsKey struct{}

// noteDispatchID records that ctx's request concerns the message of workflow
// id, if it is a message's.
func noteDispatchID(ctx context.Context, workflowID string) {
	if ids, ok := ctx.Value(requestIDsKey{}).(*requestIDs); ok {
		ids.add(workflowID)
	}
}

func (r *requestIDs) add(id string) {
	if !message.ValidDispatchID(id) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.first, r.seen = id, map[string]bool{}
	}
	if len(r.seen) < maxRequestIDsSet {
		r.seen[id] = true
	}
}

// result is the first dispatch_id and the number of distinct ones.
func (r *requestIDs) result() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, len(r.seen)
}
