// Command chaos runs dispatchflow's fault-injection harness (package
// bench/chaos): messages sent and reported on by a simulated ESP while the
// worker, the API and the Temporal server are killed and the postback receiver
// fails for a while; then every message is checked. It prints the report and
// exits 1 when the report is not clean. See docs/benchmarks.md, section Chaos.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dispatchflow/dispatchflow/bench/chaos"
)

func main() {
	o := chaos.DefaultOptions()
	flag.StringVar(&o.Bin, "bin", o.Bin, "directory of the dispatchflow and dispatchflow-dev binaries")
	flag.StringVar(&o.Dir, "dir", "", "keep the run's files (Temporal database, process logs) in this directory (default: a temporary one, removed)")
	flag.IntVar(&o.Messages, "n", o.Messages, "messages to send")
	flag.IntVar(&o.Concurrency, "c", o.Concurrency, "messages in flight at once")
	flag.DurationVar(&o.WorkerKillMin, "worker-kill-min", o.WorkerKillMin, "shortest wait before each worker kill")
	flag.DurationVar(&o.WorkerKillMax, "worker-kill-max", o.WorkerKillMax, "longest wait before each worker kill")
	flag.IntVar(&o.WorkerKills, "worker-kills", o.WorkerKills, "at most this many worker kills (negative: no cap)")
	flag.IntVar(&o.APIKills, "api-kills", o.APIKills, "API kills, spread over the sends")
	flag.IntVar(&o.ServerKills, "server-kills", o.ServerKills, "Temporal server kills, spread over the sends")
	flag.DurationVar(&o.RestartDelay, "restart-delay", o.RestartDelay, "how long a killed process stays down")
	flag.DurationVar(&o.Outage, "outage", o.Outage, "how long the postback receiver answers 500 (0: never)")
	flag.Float64Var(&o.OutageAt, "outage-at", o.OutageAt, "share of the messages accepted (0 to 1) when the receiver's outage starts")
	flag.DurationVar(&o.MaxAnswerDelay, "answer-delay", o.MaxAnswerDelay, "longest random delay of the receiver's answers")
	flag.DurationVar(&o.SettleTimeout, "settle", o.SettleTimeout, "longest wait for the last postbacks once the load is over")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the messages' lives and the faults' timing (0: from the clock)")
	flag.BoolVar(&o.Cluster, "cluster", false, "the scale-out shape: Temporal on PostgreSQL (make cluster), several workers and APIs; the first of each is killed (no server kills)")
	flag.IntVar(&o.Shards, "shards", 16, "with -cluster: history shards")
	flag.IntVar(&o.Workers, "workers", 2, "with -cluster: worker processes")
	flag.IntVar(&o.APIs, "apis", 2, "with -cluster: API processes")
	quiet := flag.Bool("q", false, "no progress lines")
	flag.Parse()
	serverKillsSet := false
	flag.Visit(func(f *flag.Flag) { serverKillsSet = serverKillsSet || f.Name == "server-kills" })
	if o.Cluster && !serverKillsSet {
		o.ServerKills = 0 // not played on a cluster
	}
	if !*quiet {
		o.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	fmt.Print(r)
	if !r.Clean() {
		os.Exit(1)
	}
}
