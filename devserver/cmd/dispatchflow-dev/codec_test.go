package main

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/config"
)

const testPayloadKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// make run serves the codec server only with a payload key: on loopback,
// without keys, for the embedded UI's origins; the configuration it makes is one
// the API accepts. A configured DISPATCHFLOW_CODEC_ADDR is kept, with its auth.
func TestDevCodec(t *testing.T) {
	base := config.Config{Auth: "off", IDSecret: strings.Repeat("s", config.MinIDSecretLength), HTTPAddr: ":8080", MetricsAddr: ":9090"}

	cfg := base
	if dc, err := useDevCodec(&cfg, 8233); dc != nil || err != nil || cfg.CodecAddr != "" || cfg.CodecCORSOrigins != nil {
		t.Fatalf("without a payload key: %+v %v, config %q %v; want nothing", dc, err, cfg.CodecAddr, cfg.CodecCORSOrigins)
	}

	cfg = base
	cfg.PayloadKey = testPayloadKey
	dc, err := useDevCodec(&cfg, 8233)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(cfg.CodecAddr)
	if host != "127.0.0.1" || port == "" || cfg.CodecAuth != "off" || !dc.AuthOff || dc.Endpoint != "http://"+cfg.CodecAddr+"/codec" {
		t.Errorf("codec %+v on %q auth %q: want 127.0.0.1, auth off, endpoint http://<addr>/codec", dc, cfg.CodecAddr, cfg.CodecAuth)
	}
	want := []string{"http://127.0.0.1:8233", "http://localhost:8233"}
	if !slices.Equal(cfg.CodecCORSOrigins, want) {
		t.Errorf("CORS origins %v, want %v", cfg.CodecCORSOrigins, want)
	}
	if err := cfg.ValidateAPI(); err != nil {
		t.Errorf("the API refuses make run's codec configuration: %v", err)
	}

	// 8081 is taken by a listener of the configuration: another port.
	cfg = base
	cfg.PayloadKey, cfg.IntakeAddr = testPayloadKey, ":8081"
	if _, err := useDevCodec(&cfg, 0); err != nil || strings.HasSuffix(cfg.CodecAddr, ":8081") || cfg.CodecCORSOrigins != nil {
		t.Errorf("with the intake on :8081: codec on %q (%v), origins %v; want another port, no UI origin", cfg.CodecAddr, err, cfg.CodecCORSOrigins)
	}

	cfg = base
	cfg.PayloadKey, cfg.CodecAddr, cfg.CodecAuth, cfg.CodecCORSOrigins = testPayloadKey, ":9999", "on", []string{"https://ui.example.com"}
	dc, err = useDevCodec(&cfg, 8233)
	if err != nil || dc.AuthOff || cfg.CodecAuth != "on" || dc.Endpoint != "http://127.0.0.1:9999/codec" || len(cfg.CodecCORSOrigins) != 3 {
		t.Errorf("configured codec: %+v %v, auth %q, origins %v", dc, err, cfg.CodecAuth, cfg.CodecCORSOrigins)
	}
}
