package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dispatchflow/dispatchflow/bench"
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
	cur        *bench.Process // the current generation
	killed     bool           // the current exit is ours
	stopped    bool           // no more restarts
	restarted  chan struct{}  // closed when the next generation has started
	exited     chan struct{}  // closed when supervise returns
	unexpected int
}

// startProcess starts path and supervises it until stop.
func startProcess(name, path, logPath string, env []string, delay time.Duration, logf func(string, ...any), args ...string) (*process, error) {
	p := &process{name: name, path: path, args: args, env: env, logPath: logPath, delay: delay, logf: logf,
		restarted: make(chan struct{}), exited: make(chan struct{})}
	cur, err := p.launch()
	if err != nil {
		return nil, err
	}
	p.cur = cur
	go p.supervise()
	return p, nil
}

// launch starts one generation of the process. Its stops are ours (kill, stop),
// not a context's.
func (p *process) launch() (*bench.Process, error) {
	return bench.StartProcess(context.Background(), p.name, p.path, p.logPath, p.env, p.args...)
}

// supervise waits for each generation to exit and starts the next one after
// p.delay, until stop.
func (p *process) supervise() {
	defer close(p.exited)
	for {
		p.mu.Lock()
		cur := p.cur
		p.mu.Unlock()
		err := cur.Wait()

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
				p.cur = next
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
	err := p.cur.Signal(syscall.SIGKILL)
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
	cur := p.cur
	p.mu.Unlock()
	cur.Stop()
	<-p.exited
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
