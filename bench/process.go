package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Process is a child process started once, its output in a log file; while it
// runs, its CPU time and memory are read from /proc. The methods that read or
// stop it do nothing (or answer 0) on a nil *Process: a process not started.
type Process struct {
	// Name names it in errors; Log is the path of its log file.
	Name, Log string

	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	err  error         // how it exited, set before done is closed
}

// StartProcess starts path with args and exactly the environment env (nil: this
// process's), its stdout and stderr appended to logPath. When ctx is done the
// process gets SIGINT, and SIGKILL 10 s later.
func StartProcess(ctx context.Context, name, path, logPath string, env []string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Wait waits until the process has exited and returns how (exec.Cmd.Wait).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process; it fails once the process has exited.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop ends the process: SIGINT, then SIGKILL after 15 s; it returns once the
// process has exited.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// CPU is the process's user + system time so far.
func (p *Process) CPU() time.Duration {
	if p == nil {
		return 0
	}
	return cpuTime(p.Pid())
}

// RSS is the process's resident memory now, in kB (VmRSS).
func (p *Process) RSS() int64 {
	if p == nil {
		return 0
	}
	return statusKB(p.Pid(), "VmRSS")
}

// PeakRSS is the process's peak resident memory, in kB (VmHWM), since it
// started or since the last ResetPeak.
func (p *Process) PeakRSS() int64 {
	if p == nil {
		return 0
	}
	return statusKB(p.Pid(), "VmHWM")
}

// ResetPeak resets the peak resident memory to the current one (Linux:
// clear_refs 5).
func (p *Process) ResetPeak() {
	if p != nil {
		resetPeak(p.Pid())
	}
}

// cpuTime is the user + system time of process pid; 0 when it cannot be read.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	d, _ := parseStat(raw)
	return d
}

// parseStat reads utime + stime from the content of /proc/PID/stat, counted in
// clock ticks of 10 ms.
func parseStat(raw []byte) (time.Duration, error) {
	// The command name is in parentheses and may hold spaces and parentheses: the
	// fields are counted after the last ')'. utime is the 14th field, stime the
	// 15th; the state (3rd) is the first after the name.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: stime: %w", err)
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// statusKB is the value of key (VmRSS, VmHWM, …) in /proc/PID/status, in kB; 0
// when it cannot be read.
func statusKB(pid int, key string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	n, _ := parseStatus(raw, key)
	return n
}

// parseStatus finds "key:  N kB" in the content of /proc/PID/status.
func parseStatus(raw []byte, key string) (int64, bool) {
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// resetPeak resets process pid's VmHWM to its current RSS.
func resetPeak(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// FreePorts picks n distinct free loopback ports.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close() // held until all are picked, so that they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitTemporal waits until the Temporal frontend at addr serves the default
// namespace, for at most d.
func WaitTemporal(ctx context.Context, addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, client.Options{HostPort: addr, Logger: QuietLogger{}})
		if err == nil {
			// The frontend answers before the server has registered its
			// namespace (PostgreSQL): wait until the namespace is served.
			_, err = c.DescribeWorkflowExecution(dctx, "bench-readiness-probe", "")
			var notFound *serviceerror.NotFound
			if errors.As(err, &notFound) {
				err = nil
			}
			c.Close()
		}
		dcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal server at %s not answering after %s: %w", addr, d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitLog waits until p's log holds line, for at most d; it fails early when p
// exits.
func WaitLog(ctx context.Context, p *Process, line string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if raw, err := os.ReadFile(p.Log); err == nil && bytes.Contains(raw, []byte(line)) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before logging %q (log: %s)", p.Name, p.err, line, p.Log)
		case <-ctx.Done():
			return fmt.Errorf("%s did not log %q within %s (log: %s)", p.Name, line, d, p.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitHealthy waits until url answers 200, for at most d.
func WaitHealthy(ctx context.Context, url string, d time.Duration) error {
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

// QuietLogger drops the Temporal SDK's logs: the harnesses print their own.
type QuietLogger struct{}

func (QuietLogger) Debug(string, ...any) {}
func (QuietLogger) Info(string, ...any)  {}
func (QuietLogger) Warn(string, ...any)  {}
func (QuietLogger) Error(string, ...any) {}

// procStat is what readStat reads of /proc/PID/stat.
type procStat struct {
	ppid int
	// self is utime + stime; children is cutime + cstime (reaped children).
	self, children time.Duration
}

// readStat reads process pid's parent and CPU times; false when it cannot.
func readStat(pid int) (procStat, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	return parseProcStat(raw)
}

// parseProcStat reads ppid (the 4th field), utime, stime, cutime and cstime
// (the 14th to 17th) of the content of /proc/PID/stat.
func parseProcStat(raw []byte) (procStat, bool) {
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return procStat{}, false
		}
		n[j] = v
	}
	const tick = 10 * time.Millisecond
	return procStat{ppid: int(n[0]), self: time.Duration(n[1]+n[2]) * tick, children: time.Duration(n[3]+n[4]) * tick}, true
}
