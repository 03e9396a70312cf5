// Package app runs dispatchflow's processes: the HTTP API, the worker, or both in
// one process. It is the wiring shared by cmd/dispatchflow and the embedded
// development runner (devserver/cmd/dispatchflow-dev).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/starter"
	"github.com/dispatchflow/dispatchflow/tracing"
	"github.com/dispatchflow/dispatchflow/worker"
)

// Roles chooses what a process runs.
type Roles struct {
	API    bool
	Worker bool
}

// Dial connects to the Temporal cluster of cfg — over TLS or mTLS, with an API
// key, as TEMPORAL_TLS_* and TEMPORAL_API_KEY say (config.Temporal). The SDK logs through logger (its
// workflow and activity lines with dispatch_id, see NewLogger) and reports its
// metrics to metrics.Registry, as does workflow code (metrics.StatusTransition).
// Tracing is as the OTEL_* variables say (config.OTel, tracing.New): Dial logs
// one line saying where the spans go, or that tracing is off. When on, the
// client's calls, and the workers made from it, are traced
// (tracing.Interceptors), and the provider becomes the process's, OpenTelemetry's
// global one, whose spans Run gives the API's routes and flushes when it returns.
func Dial(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	tp, err := tracing.New(ctx, cfg.OTel, logger)
	if err != nil {
		return nil, err
	}
	logger.Info(tracing.Describe(cfg.OTel))
	if tp == nil {
		return DialTraced(ctx, cfg, logger, nil)
	}
	c, err := DialTraced(ctx, cfg, logger, tp)
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, err
	}
	otel.SetTracerProvider(tp)
	return c, nil
}

// DialTraced is Dial with its calls, and the workers made from it, traced by
// tp (nil: not at all), whatever the OTEL_* variables say; tp stays the
// caller's, not the process's. The integration tests trace to memory with it.
func DialTraced(ctx context.Context, cfg config.Config, logger *slog.Logger, tp trace.TracerProvider) (client.Client, error) {
	opts := client.Options{
		HostPort:       cfg.Temporal.Address,
		Namespace:      cfg.Temporal.Namespace,
		Logger:         sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler: metrics.TemporalHandler(),
	}
	interceptors, err := tracing.Interceptors(tp)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	opts.Interceptors = interceptors
	tlsConf, err := cfg.Temporal.TLSConfig()
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.TLS = tlsConf
	if cfg.Temporal.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.Temporal.APIKey)
	}
	if keys := cfg.PayloadKeyList(); len(keys) > 0 {
		dc, ring, err := codec.ForKeys(keys)
		if err != nil {
			return nil, fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEY(S): %w", err)
		}
		opts.DataConverter = dc
		logger.Info("Temporal payloads are encrypted", "key_id", ring.KeyID(), "keys", len(keys))
	}
	deadline := time.Now().Add(ConnectWait)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		var unavailable *serviceerror.Unavailable
		transient := errors.As(err, &unavailable) && !tlsFailure(err)
		if !transient || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("connecting to Temporal at %s (TEMPORAL_ADDRESS), namespace %s (TEMPORAL_NAMESPACE): %w",
				cfg.Temporal.Address, cfg.Temporal.Namespace, err)
		}
		logger.Warn("Temporal is not reachable yet; retrying", "address", cfg.Temporal.Address, "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// tlsFailure reports whether err is a TLS handshake's refusal (a certificate
// missing, unknown or expired): gRPC reports it as Unavailable, but waiting
// does not mend it.
func tlsFailure(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "authentication handshake failed")
}

// ConnectWait is how long Dial keeps trying while Temporal is unreachable
// (starting, restarting): a process started with its cluster, or restarted
// during a server restart, waits for it instead of exiting. Other errors (TLS,
// credentials, an unknown namespace) stop it at once.
const ConnectWait = time.Minute

// Run runs roles on client c until ctx is done or one of them ends; the first
// error is returned. The API serves the management routes on cfg.HTTPAddr and the
// ESP intake there too, or on cfg.IntakeAddr when set. /metrics is served on its
// own listener, cfg.MetricsAddr (unless empty), never on a listener that faces
// the ESPs — unless cfg.MetricsAddr is cfg.HTTPAddr, which asks for exactly that.
// The API serves the codec server (starter.API.CodecHandler) on cfg.CodecAddr
// when set, a listener of its own too. With tracing on (Dial), the API's and
// the intake's routes have server spans (tracing.Handler), and the spans still
// queued are exported before Run returns (at most FlushTimeout).
func Run(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger, roles Roles) error {
	if !roles.API && !roles.Worker {
		return errors.New("nothing to run")
	}
	if roles.API {
		if err := cfg.ValidateAPI(); err != nil {
			return err
		}
		if cfg.WebhookVerify == "off" {
			logger.Warn("DISPATCHFLOW_WEBHOOK_VERIFY=off: intakes without a credential accept anyone's events; anyone who reaches them may move messages", "intakes", cfg.MountedIntakes())
		}
		if cfg.Auth == "off" {
			logger.Warn("DISPATCHFLOW_AUTH=off: the management API needs no key; anyone who reaches " + cfg.HTTPAddr + " may send, read and change every workspace's messages")
		}
		if cfg.CodecAddr != "" && cfg.CodecAuth == "off" {
			logger.Warn("DISPATCHFLOW_CODEC_AUTH=off: the codec server needs no key; anyone who reaches " + cfg.CodecAddr + " may decode every message's payloads (a developer's machine only)")
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	n := 0
	if roles.Worker {
		n++
		go func() { errc <- worker.Run(ctx, c, cfg, logger) }()
	}
	metricsOnAPI := roles.API && cfg.MetricsAddr == cfg.HTTPAddr
	if cfg.MetricsAddr != "" && !metricsOnAPI {
		n++
		go func() { errc <- ServeMetrics(ctx, cfg.MetricsAddr, logger) }()
	}
	var tp trace.TracerProvider
	if p, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok { // Dial's, tracing on
		tp = p
		defer func() {
			flushCtx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
			defer cancel()
			_ = p.ForceFlush(flushCtx) // an export error is logged by the provider's error handler
		}()
	}
	if roles.API {
		api := starter.New(c, cfg, logger)
		h := tracing.Handler(tp, api.Handler())
		if metricsOnAPI {
			mux := http.NewServeMux()
			mux.Handle("/", h)
			mux.Handle("GET /metrics", metrics.Handler())
			h = mux
		}
		n++
		go func() { errc <- starter.Serve(ctx, "API", cfg.HTTPAddr, h, logger) }()
		if ih := api.IntakeHandler(); ih != nil {
			ih = tracing.Handler(tp, ih)
			n++
			go func() { errc <- starter.Serve(ctx, "intake", cfg.IntakeAddr, ih, logger) }()
		}
		if ch := api.CodecHandler(); ch != nil {
			n++
			go func() { errc <- starter.Serve(ctx, "codec", cfg.CodecAddr, ch, logger) }()
		}
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel() // one role ending stops the others
	}
	return first
}

// FlushTimeout bounds the export of the last spans when Run returns.
const FlushTimeout = 5 * time.Second

// ServeMetrics serves GET /metrics (metrics.Handler) on addr until ctx is done:
// the process's metrics, on a listener of their own.
func ServeMetrics(ctx context.Context, addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics on %s (DISPATCHFLOW_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
