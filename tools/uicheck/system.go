package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// stopTimeout bounds how long the system may take to drain and stop after
// SIGINT before it is killed.
const stopTimeout = 30 * time.Second

// system is a running bin/dispatchflow-dev: embedded Temporal server, Web UI,
// worker and API, on ports of its own and a temporary data directory, so that
// it never clashes with a `make run` on the same machine.
type system struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
	dataDir string

	APIURL string // http://127.0.0.1:<port>
	UIURL  string // http://127.0.0.1:<port>
}

// startSystem starts binary with its output appended to log, and env (NAME=value)
// besides ui-check's own settings. It returns once the process runs; call
// waitReady to wait for the API and the UI.
func startSystem(binary string, log io.Writer, env ...string) (*system, error) {
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	uiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "dispatchflow-ui-check-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary,
		"-data-dir", dataDir,
		"-port", "0", // the embedded server picks a free gRPC port
		"-ui-port", strconv.Itoa(uiPort))
	cmd.Env = append(withoutEnv(os.Environ(), "TEMPORAL_ADDRESS", "DISPATCHFLOW_"),
		"DISPATCHFLOW_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(apiPort),
		"DISPATCHFLOW_DEV_INBOX=true",
		"DISPATCHFLOW_METRICS_ADDR=", // no fixed port to collide on
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("start %s: %w (run `make ui-check`, which builds it)", binary, err)
	}
	s := &system{
		cmd:     cmd,
		exited:  make(chan struct{}),
		dataDir: dataDir,
		APIURL:  "http://127.0.0.1:" + strconv.Itoa(apiPort),
		UIURL:   "http://127.0.0.1:" + strconv.Itoa(uiPort),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// waitReady returns once the API's /healthz answers 200 (Temporal is up
// behind it) and the UI serves its page, or fails when the process exits or
// ctx ends first.
func (s *system) waitReady(ctx context.Context) error {
	client := retryablehttp.NewClient()
	client.RetryMax = 0 // the loop below is the retry
	client.Logger = nil
	client.HTTPClient.Timeout = 5 * time.Second
	for _, u := range []string{s.APIURL + "/healthz", s.UIURL + "/"} {
		for {
			if err := get200(ctx, client, u); err == nil {
				break
			} else if ctx.Err() != nil {
				return fmt.Errorf("%s did not answer 200 in time: %w", u, err)
			}
			select {
			case <-s.exited:
				return fmt.Errorf("dispatchflow-dev exited before %s answered: %v", u, s.waitErr)
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return nil
}

func get200(ctx context.Context, client *retryablehttp.Client, url string) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// stop interrupts the process as Ctrl-C would (the API drains, the worker and
// the server stop), kills it if it is still running after stopTimeout, and
// deletes its data directory.
func (s *system) stop() error {
	defer os.RemoveAll(s.dataDir)
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("dispatchflow-dev did not stop within %s of SIGINT; killed", stopTimeout)
	}
	var exit *exec.ExitError
	if errors.As(s.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil // stopped by the signal before it installed its handler
		}
		return fmt.Errorf("dispatchflow-dev: %w", s.waitErr)
	}
	return s.waitErr
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// withoutEnv returns env without the variables named exactly name or starting
// with a prefix ending in "_", so that the caller's shell (a TEMPORAL_ADDRESS,
// a DISPATCHFLOW_ESP=smtp) cannot point the check at another system.
func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		for _, n := range names {
			if name == n || (strings.HasSuffix(n, "_") && strings.HasPrefix(name, n)) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// apiKey is the development API key dispatchflow-dev made in its data directory
// (dev-api-key) before its API came up.
func (s *system) apiKey() (string, error) {
	raw, err := os.ReadFile(filepath.Join(s.dataDir, "dev-api-key"))
	if err != nil {
		return "", fmt.Errorf("the development API key of dispatchflow-dev: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}
