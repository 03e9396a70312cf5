// Command bench-naive is `dispatchflow serve` with the naive Message workflow
// (package bench/naive) in place of the real one: the same HTTP API, activities
// and configuration, so that the benchmark drives both with the same load.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	tworker "go.temporal.io/sdk/worker"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/bench/naive"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/starter"
	"github.com/dispatchflow/dispatchflow/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-naive:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	logger := app.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := app.Dial(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	sender, err := worker.NewESP(cfg, logger)
	if err != nil {
		return err
	}
	w := tworker.New(c, cfg.TaskQueue, tworker.Options{})
	naive.Register(w, worker.NewActivities(cfg, sender, nil))
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	return starter.Serve(ctx, "API", cfg.HTTPAddr, starter.New(c, cfg, logger).Handler(), logger)
}
