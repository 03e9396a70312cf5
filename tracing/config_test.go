package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/tracing"
)

// otelVariables are the variables that could turn tracing on or change it:
// each test starts from none of them, whatever the machine's environment says.
var otelVariables = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_INSECURE",
	"OTEL_EXPORTER_OTLP_TRACES_INSECURE",
}

func setup(t *testing.T, env map[string]string) {
	t.Helper()
	for _, v := range otelVariables {
		t.Setenv(v, "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Tracing is off unless asked for; OTEL_TRACES_EXPORTER=otlp or an OTLP
// endpoint turns it on; OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none
// win over an endpoint.
func TestTracesOn(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		on   bool
		line string // what Describe says
	}{
		{"off by default", nil, false, "tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"a protocol alone", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "tracing is off"},
		// The Go exporters' default endpoints are https (go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp doc.go).
		{"exporter otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true,
			"traces go to https://localhost:4318/v1/traces (the exporter's default) over OTLP http/protobuf"},
		{"exporter otlp, grpc", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true,
			"traces go to https://localhost:4317 (the exporter's default) over OTLP grpc"},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true,
			"traces go to http://collector:4318/v1/traces over OTLP http/protobuf"},
		{"endpoint, grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true,
			"traces go to http://collector:4317 over OTLP grpc"},
		{"traces endpoint, as is", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/otlp/traces"}, true,
			"traces go to https://collector.example/otlp/traces over OTLP http/protobuf"},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, true,
			"traces go to http://collector:4317 over OTLP grpc"},
		{"credentials not shown", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:hunter2@collector.example:4318/base?token=hunter3"}, true,
			"traces go to https://collector.example:4318/base/v1/traces over OTLP http/protobuf"},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false, "tracing is off (OTEL_SDK_DISABLED=true)"},
		{"sdk disabled, any case", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false,
			"tracing is off (OTEL_SDK_DISABLED=true)"},
		{"sdk enabled", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true,
			"traces go to http://collector:4318/v1/traces"},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false,
			"tracing is off (OTEL_TRACES_EXPORTER=none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setup(t, tt.env)
			cfg, err := config.Load()
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.OTel.TracesOn(); got != tt.on {
				t.Errorf("TracesOn() = %v, want %v", got, tt.on)
			}
			line := tracing.Describe(cfg.OTel)
			if !strings.HasPrefix(line, tt.line) {
				t.Errorf("Describe() = %q, want it to start %q", line, tt.line)
			}
			if strings.Contains(line, "hunter") {
				t.Errorf("Describe() = %q shows a credential", line)
			}
			tp, err := tracing.New(context.Background(), cfg.OTel, quiet)
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != tt.on {
				t.Errorf("New() = %v, want a provider: %v", tp, tt.on)
			}
			if tp != nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = tp.Shutdown(ctx) // nothing to export
			}
		})
	}
}

// A bad value stops the process at start with an error naming its variable,
// whether tracing is on or not.
func TestBadVariables(t *testing.T) {
	tests := []struct{ env, value string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http"},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpcs"},
		{"OTEL_TRACES_EXPORTER", "jaeger"},
		{"OTEL_TRACES_EXPORTER", "otlp,console"},
		{"OTEL_SDK_DISABLED", "yes"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces"},
		{"OTEL_TRACES_SAMPLER", "sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			setup(t, map[string]string{tt.env: tt.value})
			_, err := config.Load()
			if err == nil || !strings.HasPrefix(err.Error(), tt.env+":") {
				t.Errorf("Load() with %s=%q: got %v, want an error naming %s", tt.env, tt.value, err, tt.env)
			}
		})
	}
	t.Run("sampler ratio", func(t *testing.T) {
		setup(t, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"})
		if _, err := config.Load(); err == nil || !strings.HasPrefix(err.Error(), "OTEL_TRACES_SAMPLER_ARG:") {
			t.Errorf("got %v, want an error naming OTEL_TRACES_SAMPLER_ARG", err)
		}
	})
	t.Run("endpoint not quoted", func(t *testing.T) {
		setup(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector.example?token=hunter2"})
		if _, err := config.Load(); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("got %v, want an error that does not quote the endpoint", err)
		}
	})
}

// collector records what an OTLP receiver is sent.
type collector struct {
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	// paths and headers of the OTLP/HTTP requests.
	paths   []string
	headers []http.Header
}

func (c *collector) add(req *coltracepb.ExportTraceServiceRequest, path string, h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs, c.paths, c.headers = append(c.reqs, req), append(c.paths, path), append(c.headers, h)
}

// spans returns the names of the spans received and the service.name of their resources.
func (c *collector) spans() (names, services []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.reqs {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					services = append(services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}
	return names, services
}

// exportOne starts and ends one span on the provider of the environment,
// then shuts it down: the span must be exported by then.
func exportOne(t *testing.T) {
	t.Helper()
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tracing.New(context.Background(), cfg.OTel, quiet)
	if err != nil || tp == nil {
		t.Fatalf("New() = %v, %v: want a provider", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "POST /v1/messages")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// The collector speaks OTLP/HTTP as https://opentelemetry.io/docs/specs/otlp/#otlphttp
// says (POST of a binary protobuf ExportTraceServiceRequest to /v1/traces); the
// variables are those of https://opentelemetry.io/docs/specs/otel/protocol/exporter/.
//
// Spans reach an OTLP/HTTP collector at the endpoint's /v1/traces, with the
// headers of OTEL_EXPORTER_OTLP_HEADERS, under service.name dispatchflow; the
// shutdown exports what was queued.
func TestExportOTLPHTTP(t *testing.T) {
	var got collector
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: body is not an OTLP export request: %v", err)
		}
		got.add(&req, r.URL.Path, r.Header)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	setup(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=k1"})
	exportOne(t)

	names, services := got.spans()
	if len(names) != 1 || names[0] != "POST /v1/messages" {
		t.Fatalf("collector got spans %v, want [POST /v1/messages]", names)
	}
	if len(services) != 1 || services[0] != tracing.ServiceName {
		t.Errorf("service.name %v, want %s", services, tracing.ServiceName)
	}
	if got.paths[0] != "/v1/traces" || got.headers[0].Get("X-Collector-Key") != "k1" {
		t.Errorf("collector got %s with X-Collector-Key %q, want /v1/traces with k1", got.paths[0], got.headers[0].Get("X-Collector-Key"))
	}
}

// traceService is an OTLP/gRPC trace receiver.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	got *collector
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.got.add(req, "", nil)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// The collector is the TraceService of OTLP/gRPC
// (https://opentelemetry.io/docs/specs/otlp/#otlpgrpc), from go.opentelemetry.io/proto/otlp.
//
// With OTEL_EXPORTER_OTLP_PROTOCOL=grpc, spans reach an OTLP/gRPC collector
// (plaintext: an http:// endpoint), under OTEL_SERVICE_NAME.
func TestExportOTLPGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, traceService{got: &got})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	setup(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + ln.Addr().String(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "dispatchflow-worker"})
	exportOne(t)

	names, services := got.spans()
	if len(names) != 1 || names[0] != "POST /v1/messages" {
		t.Fatalf("collector got spans %v, want [POST /v1/messages]", names)
	}
	if len(services) != 1 || services[0] != "dispatchflow-worker" {
		t.Errorf("service.name %v, want dispatchflow-worker (OTEL_SERVICE_NAME)", services)
	}
}
