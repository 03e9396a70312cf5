// Package bench measures dispatchflow against the naive design (package
// bench/naive), in the same run on the same Temporal server: messages per second
// through their whole life, ESP event → postback latency, history events and
// workflow tasks per message, and the CPU and memory of the worker and server
// processes. See docs/benchmarks.md.
//
// Run starts (unless Options.Temporal is set) the embedded Temporal server as a
// separate process, file-backed SQLite in WAL mode — the configuration users run
// — then `dispatchflow serve` and `bench-naive` on their own task queues, a
// postback receiver that answers 204 at once, and drives the real HTTP API:
// POST /v1/messages (to silent@, so the sandbox reports nothing), then the ESP's
// processed and delivered events through /v1/events/generic, each posted once the
// previous postback arrived.
//
// The package also holds what the harnesses share (bench/chaos uses it): child
// processes with their CPU and memory read from /proc, free ports, waiting for
// the Temporal server and for a health check, the keys file, percentiles.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/auth"
)

// Options configure a run. DefaultOptions are those of `make bench`.
type Options struct {
	// Bin is the directory of the dispatchflow, bench-naive and dispatchflow-dev
	// binaries.
	Bin string
	// Temporal is the address of a Temporal server to use instead of starting the
	// embedded one (its CPU and memory are then not measured).
	Temporal string
	// Messages is how many messages each system sends in each saturation round
	// (the latency run sends half as many); Concurrency how many are in flight at
	// once there, in the server-ceiling run and in the scale run.
	Messages, Concurrency int
	// Rounds is how many saturation rounds each system runs, alternating which
	// system goes first (the machine's speed drifts).
	Rounds int
	// Rate is the arrival rate of the latency run, in messages per second; 0: half
	// of each system's own measured maximum.
	Rate float64
	// Scale, above 0, adds the scale run: this many messages of ours opened (in
	// three steps) and left open, and after each step 200 full lifecycles.
	Scale int
	// Eager is eager workflow start for dispatchflow (DISPATCHFLOW_EAGER_START).
	Eager bool
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// DefaultOptions are `make bench`'s: 2 rounds of 300 messages per system, 24 in
// flight, the latency run at half of each system's maximum, eager start.
func DefaultOptions() Options {
	return Options{Bin: "bin", Messages: 300, Concurrency: 24, Rounds: 2, Eager: true}
}

// check refuses options a run cannot use, naming the field.
func (o Options) check() error {
	switch {
	case o.Bin == "":
		return errors.New("option Bin: the directory of the binaries is required")
	case o.Messages < 2:
		return fmt.Errorf("option Messages: %d, want at least 2 (the latency run sends half as many)", o.Messages)
	case o.Concurrency < 1:
		return fmt.Errorf("option Concurrency: %d, want at least 1", o.Concurrency)
	case o.Rounds < 1:
		return fmt.Errorf("option Rounds: %d, want at least 1", o.Rounds)
	case !(o.Rate >= 0) || o.Rate > 0 && time.Duration(float64(time.Second)/o.Rate) <= 0:
		return fmt.Errorf("option Rate: %g, want 0 (half of each system's maximum) or a positive rate below 1e9/s", o.Rate)
	case o.Scale < 0:
		return fmt.Errorf("option Scale: %d, want 0 (no scale run) or more", o.Scale)
	}
	return nil
}

// Run measures the server's ceiling and both systems, then (with o.Scale) runs
// the scale run, and reports the figures. Progress lines go to o.Log.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.check(); err != nil {
		return Report{}, err
	}
	dir, err := os.MkdirTemp("", "dispatchflow-bench-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &stage{o: o, dir: dir, logf: func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}}
	defer s.stop()
	if err := s.setUp(ctx); err != nil {
		return Report{}, err
	}
	return s.measure(ctx)
}

// stage is everything a run starts: the server, the client, the receiver, the
// systems.
type stage struct {
	o       Options
	dir     string // the run's files: Temporal's database, the keys file, the logs
	logf    func(string, ...any)
	keyEnv  []string // the variables that point a system at the run's keys
	rec     *receiver
	drv     *driver
	server  *Process // nil with Options.Temporal
	addr    string   // Temporal's
	c       client.Client
	systems []*system
}

// system is one system under measurement: its process, its API and its figures.
type system struct {
	name, api string
	p         *Process
	r         Result
	ids       []string // messages whose history cost is read back
}

// setUp writes the keys, starts the Temporal server (unless Options.Temporal)
// and the postback receiver, and connects a client.
func (s *stage) setUp(ctx context.Context) error {
	// The API as deployed: every send authenticated with a key of a keys file.
	path := filepath.Join(s.dir, "keys.json")
	keys, err := WriteKeys(path, "bench", nil)
	if err != nil {
		return err
	}
	s.keyEnv = []string{"DISPATCHFLOW_API_KEYS_FILE=" + path, "DISPATCHFLOW_ID_SECRET=" + strings.Repeat("b", 32),
		"DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET=" + auth.NewSigningSecret()}

	s.addr = s.o.Temporal
	if s.addr == "" {
		ports, err := FreePorts(1)
		if err != nil {
			return err
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.server, err = s.start(ctx, "temporal", "dispatchflow-dev", nil,
			"-server-only", "-data-dir", s.dir, "-port", strconv.Itoa(ports[0]), "-ui-port", "0")
		if err != nil {
			return err
		}
		if err := WaitTemporal(ctx, s.addr, 60*time.Second); err != nil {
			return fmt.Errorf("%w (log: %s)", err, s.server.Log)
		}
	}
	if s.c, err = client.Dial(client.Options{HostPort: s.addr, Logger: QuietLogger{}}); err != nil {
		return err
	}
	if s.rec, err = startReceiver(); err != nil {
		return err
	}
	s.drv = newDriver(keys, s.rec)
	return nil
}

// stop ends the systems, the receiver, the client and the server.
func (s *stage) stop() {
	for _, sys := range s.systems {
		sys.p.Stop()
	}
	s.rec.close()
	if s.c != nil {
		s.c.Close()
	}
	s.server.Stop()
}

// start starts binary of Options.Bin with this process's environment plus env,
// its log name.log in the run's directory.
func (s *stage) start(ctx context.Context, name, binary string, env []string, args ...string) (*Process, error) {
	p, err := StartProcess(ctx, name, filepath.Join(s.o.Bin, binary), filepath.Join(s.dir, name+".log"), append(os.Environ(), env...), args...)
	if err != nil {
		return nil, fmt.Errorf("%w (run `make bench`, which builds it)", err)
	}
	return p, nil
}

// startSystem starts binary (with args) as an API and worker on task queue
// queue, with env beside the run's settings, and waits until it is healthy.
func (s *stage) startSystem(ctx context.Context, name, binary, queue string, env []string, args ...string) (*system, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	env = append([]string{
		"TEMPORAL_ADDRESS=" + s.addr,
		fmt.Sprintf("DISPATCHFLOW_HTTP_ADDR=127.0.0.1:%d", ports[0]),
		"DISPATCHFLOW_TASK_QUEUE=" + queue,
		"DISPATCHFLOW_POSTBACK_URL=" + s.rec.url,
		"DISPATCHFLOW_ALLOW_NETWORKS=127.0.0.0/8", // the receiver is on loopback
		"DISPATCHFLOW_LOG_LEVEL=warn",
		"DISPATCHFLOW_METRICS_ADDR=", // two processes: no shared metrics port
	}, env...)
	p, err := s.start(ctx, name, binary, append(env, s.keyEnv...), args...)
	if err != nil {
		return nil, err
	}
	sys := &system{name: name, api: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), p: p, r: Result{Name: name}}
	if err := WaitHealthy(ctx, sys.api+"/healthz", 30*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w (log: %s)", name, err, p.Log)
	}
	return sys, nil
}

// measure runs the server ceiling, starts both systems, runs the saturation
// rounds, the latency run and (with Options.Scale) the scale run.
func (s *stage) measure(ctx context.Context) (Report, error) {
	o := s.o
	r := Report{Options: o}
	var err error
	if r.Ceiling, err = measureCeiling(ctx, s.c, o.Messages, o.Concurrency); err != nil {
		return Report{}, fmt.Errorf("ceiling: %w", err)
	}
	s.logf("server ceiling: %.1f empty workflows/s", r.Ceiling)

	for _, sys := range []struct{ name, binary, queue string }{
		{"naive", "bench-naive", "bench-naive"},
		{"dispatchflow", "dispatchflow", "bench-dispatchflow"},
	} {
		var args []string
		if sys.binary == "dispatchflow" {
			args = []string{"serve"}
		}
		started, err := s.startSystem(ctx, sys.name, sys.binary, sys.queue,
			[]string{"DISPATCHFLOW_EAGER_START=" + strconv.FormatBool(o.Eager)}, args...)
		if err != nil {
			return Report{}, err
		}
		s.systems = append(s.systems, started)
		// Warm up: connections, caches, the first workflow tasks.
		if _, err := s.drv.runClosed(ctx, []string{started.api}, 20, 4); err != nil {
			return Report{}, started.fail(err)
		}
	}
	for round := range o.Rounds {
		order := slices.Clone(s.systems)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, sys := range order {
			if err := s.saturate(ctx, round, sys); err != nil {
				return Report{}, err
			}
		}
	}
	for _, sys := range s.systems {
		if err := s.halfLoad(ctx, sys); err != nil {
			return Report{}, err
		}
	}
	r.Naive, r.Dispatchflow = s.systems[0].r, s.systems[1].r
	if o.Scale > 0 {
		if r.Scale, err = s.measureScale(ctx); err != nil {
			return Report{}, fmt.Errorf("scale: %w", err)
		}
	}
	return r, nil
}

// fail names the system and its log in err.
func (sys *system) fail(err error) error {
	return fmt.Errorf("%s: %w (log: %s)", sys.name, err, sys.p.Log)
}

// saturate runs one saturation round of sys: Options.Messages lifecycles,
// Options.Concurrency at a time, the processes' CPU and peak memory measured.
func (s *stage) saturate(ctx context.Context, round int, sys *system) error {
	o := s.o
	sys.p.ResetPeak()
	s.server.ResetPeak()
	w0, s0 := sys.p.CPU(), s.server.CPU()
	s.logf("round %d, %s: saturation, %d messages, %d in flight", round+1, sys.name, o.Messages, o.Concurrency)
	start := time.Now()
	sat, err := s.drv.runClosed(ctx, []string{sys.api}, o.Messages, o.Concurrency)
	if err != nil {
		return sys.fail(err)
	}
	tp := float64(o.Messages) / time.Since(start).Seconds()
	s.logf("  %.1f msg/s", tp)
	r := &sys.r
	r.Throughput += tp / float64(o.Rounds)
	r.Messages += o.Messages
	r.WorkerCPU += sys.p.CPU() - w0
	r.ServerCPU += s.server.CPU() - s0
	r.WorkerRSS = max(r.WorkerRSS, sys.p.PeakRSS())
	r.ServerRSS = max(r.ServerRSS, s.server.PeakRSS())
	for _, l := range sat[:min(15, len(sat))] {
		sys.ids = append(sys.ids, l.id)
	}
	return nil
}

// halfLoad runs the latency run of sys (open loop, at half its throughput or at
// Options.Rate), then reads back the history cost of its messages.
func (s *stage) halfLoad(ctx context.Context, sys *system) error {
	r := &sys.r
	r.HalfRate = r.Throughput / 2
	if s.o.Rate > 0 {
		r.HalfRate = s.o.Rate
	}
	s.logf("%s: half load at %.1f msg/s, %d messages", sys.name, r.HalfRate, s.o.Messages/2)
	half, err := s.drv.runOpen(ctx, []string{sys.api}, s.o.Messages/2, r.HalfRate)
	if err != nil {
		return sys.fail(err)
	}
	for _, l := range half {
		r.EventLatency = append(r.EventLatency, l.processed, l.delivered)
		r.SendLatency = append(r.SendLatency, l.sent)
	}
	r.HistoryEvents, r.WorkflowTasks, err = historyCost(ctx, s.c, sys.ids)
	return err
}
