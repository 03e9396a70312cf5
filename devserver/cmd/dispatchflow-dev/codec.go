package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/starter"
)

// devCodecAddr is where make run serves the codec server when a payload key is
// set, unless the port is taken (then a free one) or DISPATCHFLOW_CODEC_ADDR says.
const devCodecAddr = "127.0.0.1:8081"

// devCodec is make run's codec server, as printed at start.
type devCodec struct {
	Endpoint string // the UI's codec endpoint: http://127.0.0.1:8081/codec
	AuthOff  bool   // made by make run: on loopback, without keys
}

// useDevCodec serves the codec server when payloads are encrypted, so that the
// embedded Temporal UI (on uiPort; 0: none) shows them in clear: on
// DISPATCHFLOW_CODEC_ADDR as configured, else on 127.0.0.1:8081 (or a free port)
// without keys (DISPATCHFLOW_CODEC_AUTH=off, which config allows on loopback
// only). The UI's origins, http://127.0.0.1:<uiPort> and http://localhost:<uiPort>,
// are added to DISPATCHFLOW_CODEC_CORS_ORIGINS. Nil without a payload key:
// then nothing changes.
func useDevCodec(cfg *config.Config, uiPort int) (*devCodec, error) {
	if len(cfg.PayloadKeyList()) == 0 {
		return nil, nil
	}
	dc := &devCodec{}
	if cfg.CodecAddr == "" {
		addr, err := freeLoopbackAddr(devCodecAddr, cfg.HTTPAddr, cfg.IntakeAddr, cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("codec server: %w", err)
		}
		cfg.CodecAddr, cfg.CodecAuth, dc.AuthOff = addr, "off", true
	}
	if uiPort != 0 {
		for _, host := range []string{"127.0.0.1", "localhost"} {
			if o := "http://" + net.JoinHostPort(host, strconv.Itoa(uiPort)); !slices.Contains(cfg.CodecCORSOrigins, o) {
				cfg.CodecCORSOrigins = append(cfg.CodecCORSOrigins, o)
			}
		}
	}
	host, port, err := net.SplitHostPort(cfg.CodecAddr)
	if err != nil {
		return nil, fmt.Errorf("DISPATCHFLOW_CODEC_ADDR: %q is not host:port", cfg.CodecAddr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	dc.Endpoint = "http://" + net.JoinHostPort(host, port) + starter.CodecPath
	return dc, nil
}

// freeLoopbackAddr is preferred if it is free and no listener of the
// configuration (taken) uses its port, else a free port of 127.0.0.1. The port
// is free a moment ago: the API binds it a little later.
func freeLoopbackAddr(preferred string, taken ...string) (string, error) {
	_, port, _ := net.SplitHostPort(preferred)
	clash := slices.ContainsFunc(taken, func(addr string) bool {
		_, p, err := net.SplitHostPort(addr)
		return err == nil && p == port
	})
	if !clash {
		if l, err := net.Listen("tcp", preferred); err == nil {
			_ = l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", errors.Join(errors.New("no free port on 127.0.0.1"), err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// endpoint is the UI's codec endpoint ("" without a codec server).
func (d *devCodec) endpoint() string {
	if d == nil {
		return ""
	}
	return d.Endpoint
}
