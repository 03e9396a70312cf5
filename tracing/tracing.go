// Package tracing is dispatchflow's OpenTelemetry tracing: the tracer provider
// the OTEL_* variables ask for (config.OTel), the Temporal SDK's tracing
// interceptor with dispatch_id on every span of a message, the HTTP server span
// of the API's routes, and the W3C trace context a postback carries to its
// receiver. One trace follows a send from POST /v1/messages through its workflow
// to each activity and each postback attempt (docs/observability.md, "Traces").
//
// A nil trace.TracerProvider means tracing is off: every function here then
// adds nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dispatchflow/dispatchflow/config"
)

// ServiceName is the spans' service.name unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) names another.
const ServiceName = "dispatchflow"

// MaxAttributeLength bounds every span attribute's value (bytes), unless
// OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
// says otherwise (the SDK's own default is no bound). Ours are short — routes,
// ids, status codes — but a span's error message comes from elsewhere.
const MaxAttributeLength = 1024

// New returns the tracer provider cfg asks for: spans batched (the SDK's bounded
// queue, OTEL_BSP_*) and exported over OTLP by the exporter of cfg's protocol,
// which reads the endpoint, headers, TLS, timeout and compression from the
// OTEL_EXPORTER_OTLP_* variables itself; sampled as OTEL_TRACES_SAMPLER says.
// It returns nil, and no error, when tracing is off (cfg.TracesOn). Export
// errors are logged through logger, never with the exporter's headers. Shut the
// provider down on exit: that exports the spans still queued.
func New(ctx context.Context, cfg config.OTel, logger *slog.Logger) (*sdktrace.TracerProvider, error) {
	if !cfg.TracesOn() {
		return nil, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch p := cfg.TracesProtocolOrDefault(); p {
	case config.OTLPGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case config.OTLPHTTPProtobuf:
		exp, err = otlptracehttp.New(ctx)
	default: // config.Load refuses any other
		err = fmt.Errorf("protocol %q", p)
	}
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: the OTLP exporter: %w", err)
	}
	res, err := newResource(ctx)
	if err != nil {
		return nil, err
	}
	limits := sdktrace.NewSpanLimits() // the OTEL_SPAN_* variables
	if os.Getenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" && os.Getenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" {
		limits.AttributeValueLengthLimit = MaxAttributeLength
	}
	// The exporter's errors (an unreachable collector) would otherwise go to
	// the standard library's log; the provider is the process's one.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("exporting traces", "component", "opentelemetry", "error", err)
	}))
	// The sampler is the SDK's reading of OTEL_TRACES_SAMPLER(_ARG), which
	// config.Load has checked.
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(limits),
	), nil
}

// newResource is the process's resource: service.name dispatchflow, then what
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say (they win), and the SDK's
// name and version.
func newResource(ctx context.Context) (*resource.Resource, error) {
	env, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		if errors.Is(err, resource.ErrPartialResource) {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
		}
		return nil, err
	}
	return resource.Merge(resource.NewSchemaless(attribute.String("service.name", ServiceName)), env)
}

// Describe says in one line where cfg sends the spans, or that tracing is off
// and how to turn it on. An endpoint is shown without credentials, query or
// fragment.
func Describe(cfg config.OTel) string {
	if !cfg.TracesOn() {
		switch {
		case strings.EqualFold(cfg.SDKDisabled, "true"):
			return "tracing is off (OTEL_SDK_DISABLED=true)"
		case cfg.TracesExporter == "none":
			return "tracing is off (OTEL_TRACES_EXPORTER=none)"
		}
		return "tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp, to export spans)"
	}
	proto := cfg.TracesProtocolOrDefault()
	var where string
	switch {
	case cfg.TracesEndpoint != "":
		where = redact(cfg.TracesEndpoint, "")
	case cfg.Endpoint != "" && proto == config.OTLPHTTPProtobuf:
		where = redact(cfg.Endpoint, "/v1/traces")
	case cfg.Endpoint != "":
		where = redact(cfg.Endpoint, "")
	case proto == config.OTLPGRPC:
		where = "https://localhost:4317 (the exporter's default)"
	default:
		where = "https://localhost:4318/v1/traces (the exporter's default)"
	}
	return fmt.Sprintf("traces go to %s over OTLP %s", where, proto)
}

// redact returns rawURL (a base URL with suffix joined to its path) without
// its user information, query and fragment.
func redact(rawURL, suffix string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an invalid URL)" // config.Load refuses it
	}
	clean := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if suffix != "" {
		clean = *clean.JoinPath(suffix)
	}
	return clean.String()
}
