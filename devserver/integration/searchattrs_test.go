package integration

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/worker"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// On a cluster without dispatchflow's search attributes, the worker refuses to
// start and says which command creates them; once they exist (created as that
// command would), it starts.
func TestWorkerChecksSearchAttributes(t *testing.T) {
	t.Parallel()
	srv := devserver.StartForTest(t, devserver.Options{}) // a bare namespace: no custom attributes
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Temporal.Address, cfg.TaskQueue = srv.FrontendHostPort(), "it-search-attributes"
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.Dial(client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	err = worker.Run(ctx, c, cfg, logger)
	var missing *workflows.MissingSearchAttributesError
	if !errors.As(err, &missing) {
		t.Fatalf("worker.Run on a namespace without the attributes: %v, want a MissingSearchAttributesError", err)
	}
	want := "temporal operator search-attribute create --namespace default --name CampaignApiId --type Keyword"
	if !strings.Contains(err.Error(), want) || len(missing.Missing) != len(workflows.SearchAttributes) {
		t.Fatalf("error %q: want every attribute missing and the command starting %q", err, want)
	}

	// What the printed command does.
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: cfg.Temporal.Namespace, SearchAttributes: workflows.SearchAttributeTypes(),
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx, c, cfg, logger) }()
	select {
	case err := <-done:
		t.Fatalf("worker.Run with the attributes created ended at once: %v", err)
	case <-time.After(2 * time.Second): // running
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("worker.Run stopped with %v, want nil", err)
	}
}
