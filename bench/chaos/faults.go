package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dispatchflow/dispatchflow/bench"
)

// Faults counts the faults injected, by kind.
type Faults struct {
	// WorkerKills, APIKills and ServerKills are SIGKILLs of the worker, the API
	// and the Temporal server processes (each restarted after Options.RestartDelay).
	WorkerKills, APIKills, ServerKills int
	// ReceiverOutages are stretches of 500 answers from the postback receiver.
	ReceiverOutages int
	// UnexpectedExits are exits of the worker, API or server that were not kills.
	UnexpectedExits int
}

// Total is the number of faults injected (unexpected exits excluded).
func (f Faults) Total() int { return f.WorkerKills + f.APIKills + f.ServerKills + f.ReceiverOutages }

// injector injects the faults while the load runs, one at a time.
type injector struct {
	o                   Options
	worker, api, server *process
	rec                 *receiver
	healthURL, temporal string
	progress            func() float64
	logf                func(string, ...any)
	rnd                 *rand.Rand
	apiAt, serverAt     []float64 // progress thresholds still to come
	outageDone          bool
	nextWorkerKill      time.Time

	mu     sync.Mutex // guards counts and events
	counts Faults
	events []fault
}

// fault is one fault injected: what, and when it began.
type fault struct {
	what string
	at   time.Time
}

func newInjector(o Options, worker, api, server *process, rec *receiver, healthURL, temporal string,
	progress func() float64, logf func(string, ...any)) *injector {
	in := &injector{o: o, worker: worker, api: api, server: server, rec: rec, healthURL: healthURL, temporal: temporal,
		progress: progress, logf: logf, rnd: rand.New(rand.NewPCG(o.Seed, 0xfa17))}
	// API kills spread evenly over the sends; server kills a tenth later, so that
	// they do not coincide with an API kill.
	for k := range o.APIKills {
		in.apiAt = append(in.apiAt, float64(k+1)/float64(o.APIKills+1))
	}
	for k := range o.ServerKills {
		in.serverAt = append(in.serverAt, min(0.95, float64(k+1)/float64(o.ServerKills+1)+0.1))
	}
	in.outageDone = o.Outage <= 0
	in.nextWorkerKill = time.Now().Add(in.workerInterval())
	return in
}

// workerInterval draws the wait before the next worker kill.
func (in *injector) workerInterval() time.Duration {
	lo, hi := in.o.WorkerKillMin, in.o.WorkerKillMax
	return lo + time.Duration(in.rnd.Int64N(int64(hi-lo)+1))
}

// run injects faults until ctx is done; a fault under way is finished first
// (the process restarted and answering).
func (in *injector) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := in.progress()
		// One fault per tick, kills first: a fault that falls due while another
		// is under way waits for the next tick.
		switch {
		case len(in.apiAt) > 0 && p >= in.apiAt[0]:
			in.apiAt = in.apiAt[1:]
			in.killAPI(ctx)
		case len(in.serverAt) > 0 && p >= in.serverAt[0]:
			in.serverAt = in.serverAt[1:]
			in.killServer(ctx)
		case in.workerKillsLeft() && !time.Now().Before(in.nextWorkerKill):
			in.killWorker()
			in.nextWorkerKill = time.Now().Add(in.workerInterval())
		case !in.outageDone && p >= in.o.OutageAt:
			in.outageDone = true
			in.logf("fault: postback receiver answers 500 for %s", in.o.Outage)
			in.rec.failFor(in.o.Outage)
			in.count("receiver outage", time.Now(), func(f *Faults) { f.ReceiverOutages++ })
		}
	}
}

func (in *injector) workerKillsLeft() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.o.WorkerKills < 0 || in.counts.WorkerKills < in.o.WorkerKills
}

func (in *injector) killWorker() {
	in.logf("fault: SIGKILL worker (progress %.0f%%)", 100*in.progress())
	at := time.Now()
	if err := in.worker.kill(); err != nil {
		in.logf("fault: %v", err)
		return
	}
	in.count("SIGKILL worker", at, func(f *Faults) { f.WorkerKills++ })
}

func (in *injector) killAPI(ctx context.Context) {
	in.logf("fault: SIGKILL API (progress %.0f%%)", 100*in.progress())
	at := time.Now()
	if err := in.api.kill(); err != nil {
		in.logf("fault: %v", err)
		return
	}
	in.count("SIGKILL API", at, func(f *Faults) { f.APIKills++ })
	if err := bench.WaitHealthy(ctx, in.healthURL, time.Minute); err != nil {
		in.logf("fault: API restarted, but: %v", err)
	}
}

func (in *injector) killServer(ctx context.Context) {
	in.logf("fault: SIGKILL Temporal server (progress %.0f%%)", 100*in.progress())
	at := time.Now()
	if err := in.server.kill(); err != nil {
		in.logf("fault: %v", err)
		return
	}
	in.count("SIGKILL Temporal server", at, func(f *Faults) { f.ServerKills++ })
	if err := bench.WaitTemporal(ctx, in.temporal, time.Minute); err != nil {
		in.logf("fault: Temporal server restarted, but: %v", err)
	}
}

// count records a fault that began at at.
func (in *injector) count(what string, at time.Time, f func(*Faults)) {
	in.mu.Lock()
	f(&in.counts)
	in.events = append(in.events, fault{what, at})
	in.mu.Unlock()
}

// timeline lists the faults, each as its time since start and what it was.
func (in *injector) timeline(start time.Time) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, len(in.events))
	for i, f := range in.events {
		out[i] = fmt.Sprintf("%.1f s %s", f.at.Sub(start).Seconds(), f.what)
	}
	return out
}

// times are when the faults named what began.
func (in *injector) times(what string) []time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []time.Time
	for _, f := range in.events {
		if f.what == what {
			out = append(out, f.at)
		}
	}
	return out
}

// faults returns the counts so far.
func (in *injector) faults() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.counts
	f.UnexpectedExits = in.worker.unexpectedExits() + in.api.unexpectedExits() + in.server.unexpectedExits()
	return f
}
