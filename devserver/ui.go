package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// uiServer is a running Temporal Web UI (with the assets embedded in the
// ui-server module).
type uiServer struct {
	srv  *uiserver.Server
	done chan error // result of srv.Start, which blocks while serving
}

// startUI serves the Web UI on ip:port for the frontend at frontendHostPort
// (decoding payloads with the codec server at codecEndpoint, if any) and
// returns once the UI accepts connections.
func startUI(ctx context.Context, ip string, port int, frontendHostPort, namespace, codecEndpoint string) (*uiServer, error) {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	// ui-server exits the whole process (echo's Logger.Fatal) when it cannot
	// listen, so make sure the port is free first. Another process could
	// still grab it in between, but that is unlikely for a fixed dev port.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devserver: UI port: %w", err)
	}
	_ = l.Close()

	host := ip
	if strings.Contains(ip, ":") {
		host = "[" + ip + "]" // ui-server formats its address as host:port
	}
	srv := uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: frontendHostPort,
		EnableUI:            true,
		DefaultNamespace:    namespace,
		// Plain HTTP on a developer machine.
		CORS: uiconfig.CORS{CookieInsecure: true},
		// No request logging to stdout, no fetching news from the internet.
		HideLogs:         true,
		DisableNewsFetch: true,
		// The browser calls the codec server itself (CORS). No access token:
		// the UI passes one to an https endpoint only, and make run's codec
		// server on loopback needs none.
		Codec: uiconfig.Codec{Endpoint: codecEndpoint},
	}))
	u := &uiServer{srv: srv, done: make(chan error, 1)}
	go func() { u.done <- srv.Start() }()

	dialAddr := addr
	if parsed := net.ParseIP(ip); parsed != nil && parsed.IsUnspecified() {
		dialAddr = net.JoinHostPort(defaultIP, strconv.Itoa(port))
	}
	for {
		conn, err := net.DialTimeout("tcp", dialAddr, time.Second)
		if err == nil {
			_ = conn.Close()
			return u, nil
		}
		select {
		case err := <-u.done:
			return nil, fmt.Errorf("devserver: UI server exited: %w", err)
		case <-ctx.Done():
			_ = u.stop()
			return nil, fmt.Errorf("devserver: UI not listening on %s: %w", dialAddr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop closes the UI's listener and waits for it to finish serving.
func (u *uiServer) stop() error {
	u.srv.Stop()
	select {
	case err := <-u.done:
		if err != nil {
			return fmt.Errorf("devserver: stop UI: %w", err)
		}
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("devserver: stop UI: timed out")
	}
}
