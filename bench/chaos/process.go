package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
)

// process is a child process that is restarted, with the same arguments and
// environment, whenever it exits: after a kill of ours, or by itself (counted as
// an unexpected exit). Its output is appended to one log file across restarts.
type process struct {
	name, path string
	args, env  []string
	logPath    string
	delay      time.Duration // before each restart
	logf       func(format string, args ...any)

	mu         sync.Mutex
	cmd        *exec.Cmd
	killed     bool          // the current exit is ours
	stopped    bool          // no more restarts
	restarted  chan struct{} // closed when the next generation has started
	exited     chan struct{} // closed when supervise returns
	unexpected int
}

// startProcess starts path and supervises it until stop.
func startProcess(name, path, logPath string, env []string, delay time.Duration, logf func(string, ...any), args ...string) (*process, error) {
	p := &process{name: name, path: path, args: args, env: env, logPath: logPath, delay: delay, logf: logf,
		restarted: make(chan struct{}), exited: make(chan struct{})}
	cmd, err := p.launch()
	if err != nil {
		return nil, err
	}
	p.cmd = cmd
	go p.supervise()
	return p, nil
}

// launch starts one generation of the process.
func (p *process) launch() (*exec.Cmd, error) {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", p.name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", p.name, p.path, err)
	}
	return cmd, nil
}

// supervise waits for each generation to exit and starts the next one after
// p.delay, until stop.
func (p *process) supervise() {
	defer close(p.exited)
	for {
		p.mu.Lock()
		cmd := p.cmd
		p.mu.Unlock()
		err := cmd.Wait()

		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return
		}
		if !p.killed {
			p.unexpected++
			p.logf("%s exited by itself (%v); restarting it; its log ends with: %s", p.name, err, tail(p.logPath, 400))
		}
		p.killed = false
		p.mu.Unlock()

		time.Sleep(p.delay)
		for {
			p.mu.Lock()
			if p.stopped {
				p.mu.Unlock()
				return
			}
			next, err := p.launch()
			if err == nil {
				p.cmd = next
				close(p.restarted)
				p.restarted = make(chan struct{})
				p.mu.Unlock()
				break
			}
			p.mu.Unlock()
			p.logf("%s: %v; trying again", p.name, err)
			time.Sleep(p.delay)
		}
	}
}

// kill sends SIGKILL to the current generation and waits until the next one has
// started.
func (p *process) kill() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return fmt.Errorf("%s: already stopped", p.name)
	}
	p.killed = true
	restarted := p.restarted
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	if err != nil {
		p.killed = false // it exited by itself: supervise counts it and restarts it
	}
	p.mu.Unlock()
	<-restarted
	if err != nil {
		return fmt.Errorf("killing %s: %w", p.name, err)
	}
	return nil
}

// unexpectedExits counts the exits that were not kills of ours.
func (p *process) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unexpected
}

// stop ends the process for good: SIGINT, then SIGKILL after 15 s.
func (p *process) stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stopped = true
	_ = p.cmd.Process.Signal(os.Interrupt)
	cmd := p.cmd
	p.mu.Unlock()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-p.exited
	}
}

// childEnv is the harness's environment without dispatchflow's and Temporal's
// variables (so that a developer's own settings cannot change the run), plus env.
func childEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DISPATCHFLOW_") || strings.HasPrefix(kv, "TEMPORAL_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// waitTemporal waits until the Temporal frontend at addr answers a client.
func waitTemporal(ctx context.Context, addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, client.Options{HostPort: addr, Logger: quietLogger{}})
		dcancel()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal server at %s not answering after %s: %w", addr, d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitHealthy waits until url answers 200.
func waitHealthy(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s: %w", url, d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// quietLogger drops the Temporal SDK's logs.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// tail returns the last n bytes of the file at path, on one line.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	buf := make([]byte, min(n, st.Size()))
	if _, err := f.ReadAt(buf, st.Size()-int64(len(buf))); err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(string(buf)), " ")
}
