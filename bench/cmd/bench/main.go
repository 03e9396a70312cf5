// Command bench measures dispatchflow against the naive design, in the same run on
// the same Temporal server (package bench): messages per second through their
// whole life, ESP event → postback latency, history events and workflow tasks per
// message, and the CPU and memory of the worker and server processes. It prints
// the results table (markdown), progress on stderr. See docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dispatchflow/dispatchflow/bench"
)

func main() {
	o := bench.DefaultOptions()
	flag.IntVar(&o.Messages, "n", o.Messages, "messages per system for the saturation run (the half-load run sends n/2)")
	flag.IntVar(&o.Concurrency, "c", o.Concurrency, "messages in flight at once in the saturation run")
	flag.Float64Var(&o.Rate, "rate", o.Rate, "arrival rate (messages/s) of the latency run; 0: half of each system's own measured maximum")
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "saturation rounds per system, alternating which system goes first (this machine's speed drifts)")
	flag.IntVar(&o.Scale, "scale", o.Scale, "scale run: open this many messages of ours, then burst events at 200 of them (0: skip)")
	flag.StringVar(&o.Temporal, "temporal", o.Temporal, "Temporal address to use instead of starting the embedded server (its CPU and memory are then not measured)")
	flag.StringVar(&o.Bin, "bin", o.Bin, "directory of the dispatchflow, bench-naive and dispatchflow-dev binaries")
	out := flag.String("out", "", "also write the results table (markdown) to this file")
	flag.BoolVar(&o.Eager, "eager", o.Eager, "eager workflow start for dispatchflow (DISPATCHFLOW_EAGER_START)")
	cluster := flag.Bool("cluster", false, "instead: the embedded deployment and make cluster's (PostgreSQL) side by side, dispatchflow only")
	shards := flag.Int("shards", 16, "with -cluster: history shards of the cluster")
	workers := flag.Int("workers", 2, "with -cluster: worker processes of the cluster")
	apis := flag.Int("apis", 2, "with -cluster: API processes of the cluster (the load is spread over them)")
	flag.Parse()
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var r fmt.Stringer
	var err error
	if *cluster {
		r, err = bench.RunDeployments(ctx, bench.DeployOptions{
			Bin: o.Bin, Messages: o.Messages, Concurrency: o.Concurrency, Rounds: o.Rounds, Log: os.Stderr,
			Deployments: []bench.Deployment{bench.EmbeddedDeployment(), bench.ClusterDeployment(*shards, *workers, *apis)},
		})
	} else {
		r, err = bench.Run(ctx, o)
	}
	if err == nil {
		table := r.String()
		fmt.Print(table)
		if *out != "" {
			err = os.WriteFile(*out, []byte(table), 0o644)
		}
	}
	if err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
