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
	flag.Parse()
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := bench.Run(ctx, o)
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
