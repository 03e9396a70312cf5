// Package app runs dispatchflow's processes: the HTTP API, the worker, or both in
// one process. It is the wiring shared by cmd/dispatchflow and the embedded
// development runner (devserver/cmd/dispatchflow-dev).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/starter"
	"github.com/dispatchflow/dispatchflow/worker"
)

// Roles chooses what a process runs.
type Roles struct {
	API    bool
	Worker bool
}

// NewLogger returns the process's logger at cfg.LogLevel, as text on w (stderr).
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config.Load
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Dial connects to the Temporal cluster of cfg; the SDK logs through logger.
func Dial(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		Logger:    sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s (TEMPORAL_ADDRESS), namespace %s (TEMPORAL_NAMESPACE): %w",
			cfg.Temporal.Address, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

// Run runs roles on client c until ctx is done or one of them ends; the first
// error is returned.
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
