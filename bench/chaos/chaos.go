// Package chaos is dispatchflow's fault-injection harness. Run starts the
// embedded Temporal server, one `dispatchflow worker` and one `dispatchflow api`
// as separate processes, with the smtp ESP pointed at an SMTP sink of its own and
// postbacks pointed at a receiver of its own; it sends messages through the HTTP
// API and plays the ESP's part (signed generic events: processed, delivered or
// bounced, opens, some posted twice, some out of order) while it SIGKILLs the
// worker, the API and the Temporal server and makes the receiver fail for a
// while. Then it checks every message: handed over once, its final status, its
// postbacks all delivered, in order, each webhook-id with one body. See
// docs/benchmarks.md, section Chaos.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/bench"
	"github.com/dispatchflow/dispatchflow/postback"
)

// Options configure a run. DefaultOptions are those of `make chaos`.
type Options struct {
	// Bin is the directory holding the dispatchflow and dispatchflow-dev binaries.
	Bin string
	// Dir keeps the run's files (Temporal's database, process logs); empty: a
	// temporary directory, removed after the run.
	Dir string
	// Messages is how many messages are sent; Concurrency how many are in flight.
	Messages, Concurrency int
	// WorkerKillMin and WorkerKillMax bound the wait before each worker kill.
	WorkerKillMin, WorkerKillMax time.Duration
	// WorkerKills caps the worker kills; negative: no cap (every
	// WorkerKillMin–WorkerKillMax while messages flow).
	WorkerKills int
	// APIKills and ServerKills are how many times the API and the Temporal server
	// are killed, spread over the sends.
	APIKills, ServerKills int
	// RestartDelay is how long a killed process stays down.
	RestartDelay time.Duration
	// Outage is how long the postback receiver answers 500 (0: never), from
	// OutageAt (the share of messages accepted, 0 to 1) on.
	Outage   time.Duration
	OutageAt float64
	// MaxAnswerDelay bounds the receiver's random delay before each answer.
	MaxAnswerDelay time.Duration
	// RetryFor bounds the retries of one API request (send, event, read).
	RetryFor time.Duration
	// HandOverTimeout bounds the wait for a message to reach the SMTP sink.
	HandOverTimeout time.Duration
	// SettleTimeout bounds the wait for the last postbacks once the load is over.
	SettleTimeout time.Duration
	// Seed draws the messages' lives and the faults' timing; 0: from the clock.
	Seed uint64
	// Cluster runs the scale-out shape instead (`dispatchflow-dev -cluster`):
	// Temporal on PostgreSQL with Shards history shards, Workers worker and APIs
	// API processes, the load spread over the APIs (a client moves to the next
	// one when one fails, as behind a load balancer). Worker and API kills hit
	// the first of each, so the others carry the load while it is down; server
	// kills are not played.
	Cluster               bool
	Shards, Workers, APIs int
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// DefaultOptions are `make chaos`'s: 1,000 messages, 16 in flight, the worker
// killed every 15–30 s, the API twice, the server once, the receiver failing
// for 30 s.
func DefaultOptions() Options {
	return Options{
		Bin: "bin", Messages: 1000, Concurrency: 16,
		WorkerKillMin: 15 * time.Second, WorkerKillMax: 30 * time.Second, WorkerKills: -1,
		APIKills: 2, ServerKills: 1, RestartDelay: time.Second,
		Outage: 30 * time.Second, OutageAt: 0.25, MaxAnswerDelay: 300 * time.Millisecond,
		RetryFor: 3 * time.Minute, HandOverTimeout: 3 * time.Minute, SettleTimeout: 3 * time.Minute,
	}
}

// check refuses options a run cannot use, naming the field.
func (o Options) check() error {
	switch {
	case o.Bin == "":
		return errors.New("chaos: Bin: the directory of the binaries is required")
	case o.Messages < 1:
		return fmt.Errorf("chaos: Messages: %d, want at least 1", o.Messages)
	case o.Concurrency < 1:
		return fmt.Errorf("chaos: Concurrency: %d, want at least 1", o.Concurrency)
	case o.WorkerKills != 0 && (o.WorkerKillMin <= 0 || o.WorkerKillMax < o.WorkerKillMin):
		return fmt.Errorf("chaos: WorkerKillMin, WorkerKillMax: %s and %s, want 0 < min <= max", o.WorkerKillMin, o.WorkerKillMax)
	case o.APIKills < 0 || o.ServerKills < 0:
		return fmt.Errorf("chaos: APIKills, ServerKills: %d and %d, want 0 or more", o.APIKills, o.ServerKills)
	case o.OutageAt < 0 || o.OutageAt > 1:
		return fmt.Errorf("chaos: OutageAt: %g, want 0 to 1", o.OutageAt)
	case o.RestartDelay < 0 || o.Outage < 0 || o.MaxAnswerDelay < 0:
		return errors.New("chaos: RestartDelay, Outage, MaxAnswerDelay: must not be negative")
	case o.RetryFor <= 0 || o.HandOverTimeout <= 0 || o.SettleTimeout <= 0:
		return errors.New("chaos: RetryFor, HandOverTimeout, SettleTimeout: must be positive")
	case o.Cluster && (o.Shards < 1 || o.Workers < 2 || o.APIs < 2):
		return fmt.Errorf("chaos: Cluster: %d shards, %d workers, %d APIs: want at least 1, 2, 2 (one of each is killed)", o.Shards, o.Workers, o.APIs)
	case o.Cluster && o.ServerKills > 0:
		return errors.New("chaos: ServerKills: not played on a cluster")
	}
	return nil
}

// Run plays one chaos run and reports what it found. The error is for a run that
// could not be played (a binary missing, a process that never came up); what
// went wrong with the messages is in the report.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.check(); err != nil {
		return Report{}, err
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "chaos: "+format+"\n", args...)
		}
	}
	dir := o.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Report{}, fmt.Errorf("chaos: Dir: %w", err)
		}
	} else {
		tmp, err := os.MkdirTemp("", "dispatchflow-chaos-")
		if err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	s, err := newStage(ctx, o, dir, logf)
	if s != nil {
		defer s.stop()
	}
	if err != nil {
		return Report{}, err
	}
	return s.play(ctx)
}

// stage is everything a run starts: the processes, the sink and the receiver.
type stage struct {
	o             Options
	dir           string
	logf          func(string, ...any)
	keys          bench.Keys
	sink          *sink
	rec           *receiver
	server        *process
	workers, apis []*process
	temporalAddr  string
	apiURLs       []string
}

// newStage starts the sink, the receiver, the Temporal server, the worker and
// the API, and waits until they answer. On error, what was started is returned
// too, for stop.
func newStage(ctx context.Context, o Options, dir string, logf func(string, ...any)) (*stage, error) {
	bins := map[string]string{}
	for _, name := range []string{"dispatchflow", "dispatchflow-dev"} {
		path, err := filepath.Abs(filepath.Join(o.Bin, name))
		if err == nil {
			_, err = os.Stat(path)
		}
		if err != nil {
			return nil, fmt.Errorf("chaos: binary %s: %w (make chaos builds it)", name, err)
		}
		bins[name] = path
	}
	s := &stage{o: o, dir: dir, logf: logf}
	var err error
	// A key whose rate limit the run cannot reach.
	if s.keys, err = bench.WriteKeys(filepath.Join(dir, "keys.json"), "chaos", &auth.RateLimit{PerSecond: 10000, Burst: 10000}); err != nil {
		return s, fmt.Errorf("chaos: %w", err)
	}
	if s.sink, err = startSink(); err != nil {
		return s, fmt.Errorf("chaos: SMTP sink: %w", err)
	}
	if s.rec, err = startReceiver(s.keys.Signing, o.MaxAnswerDelay, o.Seed); err != nil {
		return s, fmt.Errorf("chaos: postback receiver: %w", err)
	}
	if err := writeEndpoints(filepath.Join(dir, "endpoints.json"), s.rec.url, o); err != nil {
		return s, err
	}

	// Temporal's port, PostgreSQL's and the APIs', kept across restarts.
	apis := max(o.APIs, 1)
	ports, err := bench.FreePorts(2 + apis)
	if err != nil {
		return s, err
	}
	if err := s.startServer(ctx, bins["dispatchflow-dev"], ports[0], ports[1]); err != nil {
		return s, err
	}
	return s, s.startDispatchflow(ctx, bins["dispatchflow"], ports[2:])
}

// startServer starts the embedded Temporal server on port (with Cluster, on
// PostgreSQL on pgPort), its data in the run's directory, and waits until it
// answers.
func (s *stage) startServer(ctx context.Context, bin string, port, pgPort int) error {
	s.temporalAddr = "127.0.0.1:" + strconv.Itoa(port)
	env := childEnv("DISPATCHFLOW_LOG_LEVEL=info", "DISPATCHFLOW_METRICS_ADDR=")
	args := []string{"-server-only", "-data-dir", filepath.Join(s.dir, "temporal"), "-port", strconv.Itoa(port), "-ui-port", "0"}
	if s.o.Cluster {
		// As root, PostgreSQL runs as "postgres", who must reach its directory.
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return err
		}
		args = append(args, "-cluster", "-shards", strconv.Itoa(s.o.Shards), "-pg-port", strconv.Itoa(pgPort))
	}
	var err error
	s.server, err = startProcess("temporal server", bin, filepath.Join(s.dir, "temporal.log"), env, s.o.RestartDelay, s.logf, args...)
	if err != nil {
		return err
	}
	if err := waitLogged(ctx, s.server.logPath, "Temporal is up", 3*time.Minute); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// waitLogged waits until the log at path holds line, for at most d.
func waitLogged(ctx context.Context, path, line string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if raw, err := os.ReadFile(path); err == nil && strings.Contains(string(raw), line) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q not logged within %s (log: %s)", line, d, path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startDispatchflow starts the `dispatchflow worker`s and `dispatchflow api`s
// (on apiPorts), and waits until the APIs are healthy.
func (s *stage) startDispatchflow(ctx context.Context, bin string, apiPorts []int) error {
	common := []string{
		"TEMPORAL_ADDRESS=" + s.temporalAddr,
		"DISPATCHFLOW_TASK_QUEUE=chaos",
		"DISPATCHFLOW_API_KEYS_FILE=" + filepath.Join(s.dir, "keys.json"),
		"DISPATCHFLOW_ID_SECRET=chaos-run-dispatch-id-secret-0123456789",
		"DISPATCHFLOW_ESP=smtp",
		"DISPATCHFLOW_SMTP_ADDR=" + s.sink.addr,
		"DISPATCHFLOW_ENDPOINTS_FILE=" + filepath.Join(s.dir, "endpoints.json"),
		"DISPATCHFLOW_ALLOW_NETWORKS=127.0.0.0/8", // the receiver is on loopback
		"DISPATCHFLOW_METRICS_ADDR=",              // several processes: no shared metrics port
		"DISPATCHFLOW_LOG_LEVEL=warn",
	}
	name := func(role string, i, n int) string {
		if n == 1 {
			return role
		}
		return fmt.Sprintf("%s-%d", role, i+1)
	}
	workers := max(s.o.Workers, 1)
	for i := range workers {
		n := name("worker", i, workers)
		p, err := startProcess(n, bin, filepath.Join(s.dir, n+".log"), childEnv(common...), s.o.RestartDelay, s.logf, "worker")
		if err != nil {
			return err
		}
		s.workers = append(s.workers, p)
	}
	for i, port := range apiPorts {
		n := name("api", i, len(apiPorts))
		env := childEnv(append(common, "DISPATCHFLOW_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port))...)
		p, err := startProcess(n, bin, filepath.Join(s.dir, n+".log"), env, s.o.RestartDelay, s.logf, "api")
		if err != nil {
			return err
		}
		s.apis = append(s.apis, p)
		s.apiURLs = append(s.apiURLs, "http://127.0.0.1:"+strconv.Itoa(port))
		if err := bench.WaitHealthy(ctx, s.apiURLs[i]+"/healthz", time.Minute); err != nil {
			return fmt.Errorf("chaos: %s: %w (log: %s)", n, err, p.logPath)
		}
	}
	return nil
}

// stop ends the processes, then the sink and the receiver.
func (s *stage) stop() {
	for _, p := range append(s.apis, s.workers...) {
		p.stop()
	}
	s.server.stop()
	if s.sink != nil {
		s.sink.close()
	}
	if s.rec != nil {
		s.rec.close()
	}
}

// play runs the load under faults, waits for the postbacks and checks.
func (s *stage) play(ctx context.Context) (Report, error) {
	o := s.o
	start := time.Now()
	api := newAPIClient(s.apiURLs, s.keys.APIKey, s.keys.Intake, o.RetryFor)
	l := &load{o: o, api: api, sink: s.sink, run: strconv.FormatUint(o.Seed, 36)}
	// The first worker and the first API are the ones killed.
	in := newInjector(o, s.workers[0], s.apis[0], s.server, s.rec, s.apiURLs[0]+"/healthz", s.temporalAddr, l.progress, s.logf)

	s.logf("%d messages, %d in flight, seed %d; logs in %s", o.Messages, o.Concurrency, o.Seed, s.dir)
	fctx, stopFaults := context.WithCancel(ctx)
	faultsDone := make(chan struct{})
	go func() { in.run(fctx); close(faultsDone) }()
	progressDone := make(chan struct{})
	go s.reportProgress(fctx, l, in, progressDone)
	lives := l.play(ctx)
	stopFaults()
	<-faultsDone
	<-progressDone
	s.logf("load done in %s; waiting up to %s for the last postbacks", time.Since(start).Round(time.Second), o.SettleTimeout)

	s.settle(ctx, lives)
	r := s.check(ctx, api, lives, start, in.times("SIGKILL worker"))
	r.Faults, r.Timeline = in.faults(), in.timeline(start)
	r.ClientRetries = int(api.retries.Load())
	r.Seed = o.Seed
	r.Duration = time.Since(start)
	return r, ctx.Err()
}

// reportProgress logs the load's progress every 10 s until ctx is done.
func (s *stage) reportProgress(ctx context.Context, l *load, in *injector, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f := in.faults()
			s.logf("%d/%d accepted, %d done; faults: %d worker, %d API, %d server kills",
				l.accepted.Load(), s.o.Messages, l.done.Load(), f.WorkerKills, f.APIKills, f.ServerKills)
		}
	}
}

// settle waits until every message's expected postbacks were delivered, or
// SettleTimeout.
func (s *stage) settle(ctx context.Context, lives []*life) {
	deadline := time.Now().Add(s.o.SettleTimeout)
	for {
		waiting := 0
		for _, lv := range lives {
			if lv.dispatchID != "" && !s.rec.has(lv.dispatchID, lv.expected()) {
				waiting++
			}
		}
		if waiting == 0 {
			return
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			s.logf("%d messages still miss postbacks after %s", waiting, s.o.SettleTimeout)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// writeEndpoints writes the endpoints file: one braze-format endpoint, the
// receiver, signed with the workspace's signing secret. Its retry schedule is
// short (the default waits 5 minutes after the second failure) and long enough to
// outlast the receiver's outage and the kills: 1, 2 and 4 s, then steps of 5 s,
// longer where the schedule's bound (postback.MaxScheduleSteps) asks for it.
func writeEndpoints(path, url string, o Options) error {
	var schedule []string
	total := time.Duration(0)
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		schedule, total = append(schedule, d.String()), total+d
	}
	need, step := o.Outage+2*time.Minute, 5*time.Second
	if left := time.Duration(postback.MaxScheduleSteps - len(schedule)); left*step < need-total {
		step = ((need - total) / left).Truncate(time.Second) + time.Second
	}
	for total < need && len(schedule) < postback.MaxScheduleSteps {
		schedule, total = append(schedule, step.String()), total+step
	}
	raw, err := json.Marshal(map[string]any{"endpoints": []map[string]any{{
		"id": "chaos", "url": url, "schedule": schedule, "timeout": "10s",
	}}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return fmt.Errorf("chaos: endpoints file: %w", err)
	}
	return nil
}
