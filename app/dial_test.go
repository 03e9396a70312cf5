package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
)

// Dial keeps trying while Temporal is unreachable (a process started before its
// server, or during a server restart) until its context ends, rather than
// failing at the first refused connection.
func TestDialWaitsForTemporal(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var cfg config.Config
	cfg.Temporal.Address, cfg.Temporal.Namespace = addr, "default"
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want Dial still trying when its context ended", err)
	}
}
