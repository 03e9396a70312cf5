package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 1234, stime 766.
	raw := []byte("4242 (a (b) c) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 766 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n")
	got, err := parseStat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := 20 * time.Second; got != want { // 2,000 ticks of 10 ms
		t.Errorf("parseStat = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "4242 no name", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 u 766 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	raw := []byte("Name:\tbench\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n")
	for key, want := range map[string]int64{"VmHWM": 51200, "VmRSS": 40960, "Threads": 9} {
		if got, ok := parseStatus(raw, key); !ok || got != want {
			t.Errorf("parseStatus(%s) = %d, %v; want %d", key, got, ok, want)
		}
	}
	for _, key := range []string{"VmSwap", "Vm", "Name"} {
		if got, ok := parseStatus(raw, key); ok {
			t.Errorf("parseStatus(%s) = %d, want not found", key, got)
		}
	}
}

// The test process's own figures, read from /proc as the bench reads its
// children's.
func TestProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	pid := os.Getpid()
	// Spin until the CPU time read has grown by two ticks at least.
	before := cpuTime(pid)
	if before <= 0 {
		t.Errorf("CPU time %s, want more than 0", before)
	}
	for deadline := time.Now().Add(10 * time.Second); cpuTime(pid) < before+20*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time still %s after 10 s of spinning", cpuTime(pid))
		}
	}
	rss, hwm := statusKB(pid, "VmRSS"), statusKB(pid, "VmHWM")
	if rss < 1024 || hwm < rss {
		t.Errorf("VmRSS %d kB, VmHWM %d kB: want at least 1 MB and peak >= current", rss, hwm)
	}

	if got := cpuTime(1 << 30); got != 0 {
		t.Errorf("cpuTime of no process = %s, want 0", got)
	}
	if got := statusKB(1<<30, "VmRSS"); got != 0 {
		t.Errorf("statusKB of no process = %d, want 0", got)
	}

	// The peak rises with 64 MB touched, and resetPeak brings it back down once
	// they are returned to the system.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skip("clear_refs not writable here:", err)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	if hwm := statusKB(pid, "VmHWM"); hwm < rss+32<<10 {
		t.Errorf("VmHWM %d kB after touching 64 MB with %d kB resident before: want 32 MB more at least", hwm, rss)
	}
	debug.FreeOSMemory() // big is dead: returned to the system
	resetPeak(pid)
	if hwm, now := statusKB(pid, "VmHWM"), statusKB(pid, "VmRSS"); hwm > now+16<<10 {
		t.Errorf("VmHWM %d kB after resetPeak, VmRSS %d kB: want the peak reset to about the current", hwm, now)
	}
}

// A child process: its output in its log, its memory read, stopped by SIGINT.
func TestStartProcess(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	log := filepath.Join(t.TempDir(), "child.log")
	p, err := StartProcess(context.Background(), "child", sh, log, []string{"GREETING=hello"}, "-c", `echo "$GREETING"; exec sleep 60`)
	if err != nil {
		t.Fatal(err)
	}
	// Once the line is in the log, the shell has become sleep.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if out, _ := os.ReadFile(log); len(out) > 0 {
			break
		}
	}
	if p.RSS() <= 0 || p.PeakRSS() < p.RSS() {
		t.Errorf("child RSS %d kB, peak %d kB", p.RSS(), p.PeakRSS())
	}
	p.ResetPeak()
	start := time.Now()
	p.Stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s: SIGINT should end sleep at once", d)
	}
	if err := p.Wait(); err == nil {
		t.Error("Wait: no error for a process ended by SIGINT")
	}
	if p.RSS() != 0 || p.CPU() != 0 {
		t.Errorf("after Stop: RSS %d, CPU %s; want 0 (no such process)", p.RSS(), p.CPU())
	}
	out, err := os.ReadFile(log)
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("log %q (%v), want hello: the environment given, the output appended", out, err)
	}

	if _, err := StartProcess(context.Background(), "missing", filepath.Join(t.TempDir(), "nope"), log, nil); err == nil ||
		!strings.Contains(err.Error(), "starting missing") {
		t.Errorf("StartProcess of a missing binary: %v", err)
	}
}

// A context done interrupts the process.
func TestStartProcessContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartProcess(ctx, "sleep", "/bin/sleep", filepath.Join(t.TempDir(), "sleep.log"), nil, "60")
	if err != nil {
		t.Skip(err)
	}
	cancel()
	done := make(chan error)
	go func() { done <- p.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.Stop()
		t.Fatal("the process outlived its context by 5 s")
	}
}

// A process not started: what reads or stops it does nothing.
func TestNilProcess(t *testing.T) {
	var p *Process
	p.Stop()
	p.ResetPeak()
	if p.CPU() != 0 || p.RSS() != 0 || p.PeakRSS() != 0 {
		t.Error("a nil Process has figures")
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Errorf("FreePorts(3) = %v, want 3 distinct ports", ports)
	}
}
