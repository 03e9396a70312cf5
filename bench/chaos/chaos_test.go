package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/postback"
)

// TestChaos plays a short run — 80 messages, one kill of each process, a 5 s
// receiver outage — on binaries built from this tree, and wants a clean report
// (about a minute, the build included, on 2 cores).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: builds both binaries and runs them for about a minute")
	}
	o := DefaultOptions()
	// Few in flight, so that the faults fall on distinct stretches of the load.
	o.Messages, o.Concurrency = 80, 6
	o.APIKills, o.ServerKills = 1, 1
	r := playShort(t, o)
	if f := r.Faults; f.WorkerKills < 1 || f.APIKills < 1 || f.ServerKills < 1 || f.ReceiverOutages < 1 {
		t.Errorf("faults %+v: want at least one worker, API and server kill and one receiver outage", f)
	}
}

// TestChaosCluster is the scale-out fault test: on Temporal with PostgreSQL and
// 8 shards, two workers and two API processes share the load; one worker and
// one API process are killed mid-run (each down 5 s while the other carries
// on), and nothing may be lost, doubled or reordered.
func TestChaosCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: builds both binaries and runs a PostgreSQL cluster for about a minute")
	}
	o := DefaultOptions()
	o.Cluster, o.Shards, o.Workers, o.APIs = true, 8, 2, 2
	// Enough messages that the load outlasts the worker kill's 5 s down time
	// (faults are injected one after the other).
	o.Messages, o.Concurrency = 200, 8
	o.APIKills, o.ServerKills = 1, 0
	o.RestartDelay = 5 * time.Second
	r := playShort(t, o)
	if f := r.Faults; f.WorkerKills < 1 || f.APIKills < 1 || f.ReceiverOutages < 1 {
		t.Errorf("faults %+v: want at least one worker and one API kill and one receiver outage", f)
	}
}

// playShort plays a short run of o on binaries built from this tree and wants
// a clean report.
func playShort(t *testing.T, o Options) Report {
	t.Helper()
	o.Bin = buildBinaries(t)
	dir, err := os.MkdirTemp("", "chaos-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	o.Dir = dir
	// The worker is killed early, before the receiver fails: a Postback activity
	// being retried on a killed worker waits out its StartToClose timeout (90 s)
	// before it is tried again, longer than this test should take.
	o.WorkerKillMin, o.WorkerKillMax, o.WorkerKills = time.Second, 1500*time.Millisecond, 1
	o.Outage, o.OutageAt = 5*time.Second, 0.75
	o.SettleTimeout = 90 * time.Second
	o.Log = testWriter{t}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("%v (process logs in %s)", err, dir)
	}
	if !r.Clean() {
		t.Errorf("report not clean (process logs in %s):\n%s", dir, r)
	} else {
		t.Logf("report:\n%s", r)
	}
	return r
}

// Binaries built once for the package's tests (TestMain removes them).
var (
	builtOnce sync.Once
	builtDir  string
	builtErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// buildBinaries builds dispatchflow and dispatchflow-dev from this tree into a
// temporary directory, both at once, once for all the tests.
func buildBinaries(t *testing.T) string {
	t.Helper()
	builtOnce.Do(func() { builtDir, builtErr = build() })
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return builtDir
}

func build() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "devserver", "go.mod")); err != nil {
		return "", fmt.Errorf("repository root not found at %s: %w", root, err)
	}
	bin, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		return "", err
	}
	builtDir = bin
	builds := [][]string{
		{"build", "-o", filepath.Join(bin, "dispatchflow"), "./cmd/dispatchflow"},
		{"build", "-C", "devserver", "-o", filepath.Join(bin, "dispatchflow-dev"), "./cmd/dispatchflow-dev"},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(builds))
	outs := make([][]byte, len(builds))
	for i, args := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return "", fmt.Errorf("go %s: %w\n%s", strings.Join(builds[i], " "), err, outs[i])
		}
	}
	return bin, nil
}

// testWriter sends the run's progress lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The drawn lives have the shares the run promises, and the expected postbacks
// follow from the order of the events.
func TestPlan(t *testing.T) {
	const n = 10000
	var bounced, outOfOrder, twice, events int
	for i := range n {
		p := newPlan(42, "t", i)
		if p.outcome == statusBounced {
			bounced++
		}
		if p.outOfOrder {
			outOfOrder++
			if want := []string{statusSent, p.outcome}; !slices.Equal(p.expected(), want) {
				t.Fatalf("plan %d out of order: expected %v, want %v", i, p.expected(), want)
			}
			if p.events[0].typ != p.outcome || p.events[1].typ != statusProcessed {
				t.Fatalf("plan %d out of order: events %v", i, p.events)
			}
		} else if p.events[0].typ != statusProcessed || p.events[1].typ != p.outcome {
			t.Fatalf("plan %d: events %v", i, p.events)
		}
		for k, ev := range p.events {
			if want := fmt.Sprintf("evt-%d", k+1); ev.id != want {
				t.Fatalf("plan %d: event %d has id %q, want %q", i, k, ev.id, want)
			}
			if ev.typ == eventOpen && p.outcome != statusDelivered {
				t.Fatalf("plan %d: open on a %s message", i, p.outcome)
			}
			twice += btoi(ev.twice)
			events++
		}
	}
	for name, got := range map[string]float64{
		"bounced": float64(bounced) / n, "out of order": float64(outOfOrder) / n, "posted twice": float64(twice) / float64(events),
	} {
		if got < 0.08 || got > 0.12 {
			t.Errorf("%s: %.3f of the messages (events), want about 0.1", name, got)
		}
	}
}

func TestInOrder(t *testing.T) {
	for _, c := range []struct {
		got  []string
		want bool
	}{
		{[]string{statusSent, statusProcessed, statusDelivered}, true},
		{[]string{statusSent, statusBounced}, true},
		{[]string{statusSent, statusDelivered, statusBounced}, true}, // a delayed bounce
		{[]string{statusProcessed, statusSent}, false},
		{[]string{statusSent, statusDelivered, statusProcessed}, false},
		{[]string{statusSent, statusSent}, false}, // one status under two webhook-ids
	} {
		if inOrder(c.got) != c.want {
			t.Errorf("inOrder(%v) = %v, want %v", c.got, !c.want, c.want)
		}
	}
}

// The endpoints file is one the API loads, its schedule within the bound and
// long enough to outlast the outage and the kills.
func TestWriteEndpoints(t *testing.T) {
	for _, outage := range []time.Duration{0, 5 * time.Second, 30 * time.Second, 10 * time.Minute} {
		o := DefaultOptions()
		o.Outage = outage
		path := filepath.Join(t.TempDir(), "endpoints.json")
		if err := writeEndpoints(path, "http://127.0.0.1:1/postbacks", o); err != nil {
			t.Fatal(err)
		}
		set, err := postback.LoadFile(path)
		if err != nil {
			t.Fatalf("outage %s: %v", outage, err)
		}
		ep, ok := set.Get("chaos")
		if !ok {
			t.Fatalf("outage %s: no endpoint chaos", outage)
		}
		var total time.Duration
		for _, d := range ep.Schedule {
			total += time.Duration(d)
		}
		if total < outage+2*time.Minute {
			t.Errorf("outage %s: schedule %v lasts %s, want at least the outage and 2 minutes", outage, ep.Schedule, total)
		}
	}
}

// A mail received twice is a double hand-over, unless a worker was killed
// right as the first was made (the window SMTP cannot close); received once
// or never is counted as such.
func TestHandOversAfterAKill(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	sk := &sink{times: map[string][]time.Time{
		"once":        {t0},
		"killed":      {t0.Add(time.Second), t0.Add(31 * time.Second)},
		"not-killed":  {t0.Add(10 * time.Second), t0.Add(40 * time.Second)},
		"three-times": {t0.Add(time.Second), t0.Add(31 * time.Second), t0.Add(61 * time.Second)},
	}}
	c := &checker{s: &stage{sink: sk}, start: t0, workerKills: []time.Time{t0.Add(1100 * time.Millisecond)}}
	for _, id := range []string{"once", "killed", "not-killed", "three-times", "never"} {
		c.handOvers(id)
	}
	if c.r.CrashWindowRepeats != 1 || c.r.DoubleHandOvers != 2 || c.r.NotHandedOver != 1 {
		t.Errorf("crash-window repeats %d, double hand-overs %d, never handed over %d; want 1, 2, 1",
			c.r.CrashWindowRepeats, c.r.DoubleHandOvers, c.r.NotHandedOver)
	}
}
