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
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/starter"
	"github.com/dispatchflow/dispatchflow/worker"
)

// Roles chooses what a process runs.
type Roles struct {
	API    bool
	Worker bool
}

// Dial connects to the Temporal cluster of cfg. The SDK logs through logger (its
// workflow and activity lines with dispatch_id, see NewLogger) and reports its
// metrics to metrics.Registry, as does workflow code (metrics.StatusTransition).
func Dial(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	opts := client.Options{
		HostPort:       cfg.Temporal.Address,
		Namespace:      cfg.Temporal.Namespace,
		Logger:         sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler: metrics.TemporalHandler(),
	}
	if cfg.PayloadKey != "" {
		key, err := codec.ParseKey(cfg.PayloadKey)
		if err != nil {
			return nil, fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEY: %w", err)
		}
		aes, err := codec.NewAES(key)
		if err != nil {
			return nil, fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEY: %w", err)
		}
		opts.DataConverter = codec.DataConverter(aes)
		logger.Info("Temporal payloads are encrypted", "key_id", aes.KeyID())
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s (TEMPORAL_ADDRESS), namespace %s (TEMPORAL_NAMESPACE): %w",
			cfg.Temporal.Address, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

// Run runs roles on client c until ctx is done or one of them ends; the first
// error is returned. The API serves /metrics; a worker without the API serves it
// on cfg.MetricsAddr (unless empty).
func Run(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger, roles Roles) error {
	if !roles.API && !roles.Worker {
		return errors.New("nothing to run")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	n := 0
	if roles.Worker {
		n++
		go func() { errc <- worker.Run(ctx, c, cfg, logger) }()
	}
	if roles.Worker && !roles.API && cfg.MetricsAddr != "" {
		n++
		go func() { errc <- ServeMetrics(ctx, cfg.MetricsAddr, logger) }()
	}
	if roles.API {
		n++
		h := starter.New(c, cfg, logger).Handler()
		go func() { errc <- starter.Serve(ctx, cfg.HTTPAddr, h, logger) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel() // one role ending stops the other
	}
	return first
}

// ServeMetrics serves GET /metrics (metrics.Handler) on addr until ctx is done:
// the metrics of a process without the API.
func ServeMetrics(ctx context.Context, addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics on %s (DISPATCHFLOW_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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
