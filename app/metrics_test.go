package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/metrics"
)

// freeAddr returns a loopback address nothing listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// A worker-only process serves /metrics on its own listener until stopped.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.ServeMetrics(ctx, addr, logger) }()

	metrics.EventIngested("serve-metrics-test", "delivered")
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics: %d, want 200", resp.StatusCode)
			}
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`dispatchflow_events_ingested_total{provider="serve-metrics-test",type="delivered"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if resp, err := http.Get("http://" + addr + "/v1/messages"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /v1/messages on the metrics listener: %d, want 404 (metrics only)", resp.StatusCode)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeMetrics after stop: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeMetrics did not return after its context was done")
	}
}

func TestServeMetricsAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = app.ServeMetrics(context.Background(), ln.Addr().String(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "DISPATCHFLOW_METRICS_ADDR") {
		t.Errorf("got %v, want an error naming DISPATCHFLOW_METRICS_ADDR", err)
	}
}

// The API refuses to start a codec server that has no payload key to decode with.
func TestRunCodecWithoutPayloadKey(t *testing.T) {
	t.Parallel()
	cfg := config.Config{Auth: "off", IDSecret: strings.Repeat("s", config.MinIDSecretLength), HTTPAddr: freeAddr(t),
		CodecAddr: freeAddr(t), CodecAuth: "off"}
	err := app.Run(context.Background(), nil, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Roles{API: true})
	if err == nil || !strings.Contains(err.Error(), "DISPATCHFLOW_CODEC_ADDR") || !strings.Contains(err.Error(), "DISPATCHFLOW_PAYLOAD_KEY") {
		t.Errorf("got %v, want an error naming DISPATCHFLOW_CODEC_ADDR and DISPATCHFLOW_PAYLOAD_KEY", err)
	}
}
