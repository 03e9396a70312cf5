package bench

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured.
type Report struct {
	// Options are the run's (its header and which rows it has follow from them).
	Options Options
	// Ceiling is the server's: empty workflows started (eagerly) and completed per
	// second, Options.Concurrency at a time.
	Ceiling float64
	// Naive and Dispatchflow are the two systems' figures.
	Naive, Dispatchflow Result
	// Scale is the scale run, one step a row; empty without Options.Scale.
	Scale []ScaleStep
}

// Result is one system's figures.
type Result struct {
	Name string
	// Throughput is messages per second through their whole life at saturation,
	// the mean of the rounds; HalfRate the arrival rate of the latency run.
	Throughput, HalfRate float64
	// EventLatency is ESP event posted → its postback, SendLatency send → sent
	// postback, both in the latency run.
	EventLatency, SendLatency []time.Duration
	// HistoryEvents and WorkflowTasks are per message, read back from Temporal.
	HistoryEvents, WorkflowTasks float64
	// WorkerCPU and ServerCPU are the processes' CPU time over the saturation
	// rounds, which sent Messages messages.
	WorkerCPU, ServerCPU time.Duration
	// WorkerRSS and ServerRSS are the peak resident memory, in kB, during the
	// saturation rounds.
	WorkerRSS, ServerRSS int64
	Messages             int
}

// ScaleStep is one step of the scale run: 200 full lifecycles at saturation with
// Open messages open (those 200 included).
type ScaleStep struct {
	Open int
	// Throughput is the 200 lifecycles' messages per second.
	Throughput float64
	// P50 and P99 are of event → postback, saturated.
	P50, P99 time.Duration
	// WorkerRSS is the worker's resident memory after the step, in kB.
	WorkerRSS int64
}

// String renders the report as markdown: the header and the table of figures,
// dispatchflow's as ratios to the naive design's; then the scale run's table.
func (r Report) String() string {
	s := r.table()
	if len(r.Scale) > 0 {
		s += "\n" + r.scaleTable()
	}
	return s
}

func (r Report) table() string {
	o, ours, naive := r.Options, r.Dispatchflow, r.Naive
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "| figure\t dispatchflow\t naive\t dispatchflow / naive\t\n|---\t---\t---\t---\t\n")
	row := func(name, unit string, a, n float64) {
		fmt.Fprintf(tw, "| %s\t %.2f %s\t %.2f %s\t %.2f×\t\n", name, a, unit, n, unit, a/n)
	}
	dur := func(name string, a, n time.Duration) {
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %.2f×\t\n", name, ms(a), ms(n), float64(a)/float64(n))
	}
	row("throughput, full lifecycle", "msg/s", ours.Throughput, naive.Throughput)
	dur("event → postback p50 (half load)", Percentile(ours.EventLatency, 50), Percentile(naive.EventLatency, 50))
	dur("event → postback p95 (half load)", Percentile(ours.EventLatency, 95), Percentile(naive.EventLatency, 95))
	dur("event → postback p99 (half load)", Percentile(ours.EventLatency, 99), Percentile(naive.EventLatency, 99))
	dur("send → sent postback p50 (half load)", Percentile(ours.SendLatency, 50), Percentile(naive.SendLatency, 50))
	dur("send → sent postback p99 (half load)", Percentile(ours.SendLatency, 99), Percentile(naive.SendLatency, 99))
	row("history events per message", "", ours.HistoryEvents, naive.HistoryEvents)
	row("workflow tasks per message", "", ours.WorkflowTasks, naive.WorkflowTasks)
	per := func(d time.Duration, n int) float64 { return d.Seconds() * 1000 / float64(n) }
	row("worker CPU per 1,000 messages", "s", per(ours.WorkerCPU, ours.Messages), per(naive.WorkerCPU, naive.Messages))
	if o.Temporal == "" { // the server is ours: measured
		row("server CPU per 1,000 messages", "s", per(ours.ServerCPU, ours.Messages), per(naive.ServerCPU, naive.Messages))
		row("server peak RSS", "MB", float64(ours.ServerRSS)/1024, float64(naive.ServerRSS)/1024)
	}
	row("worker peak RSS", "MB", float64(ours.WorkerRSS)/1024, float64(naive.WorkerRSS)/1024)
	tw.Flush()
	load := "half load = half of each system's own maximum"
	if o.Rate > 0 {
		load = fmt.Sprintf("latency run (\"half load\") at %.1f messages/s", o.Rate)
	}
	return fmt.Sprintf("%d rounds of %d messages per system (alternating), %d in flight; %s, %d messages.\n"+
		"Server ceiling (empty workflows started and completed): %.1f/s.\n\n%s", o.Rounds, o.Messages, o.Concurrency, load, o.Messages/2, r.Ceiling, b.String())
}

func (r Report) scaleTable() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "| open messages\t burst throughput (msg/s)\t event→postback p50 (saturated)\t p99\t worker RSS (MB)\t\n|---\t---\t---\t---\t---\t\n")
	for _, s := range r.Scale {
		fmt.Fprint(tw, s.row())
	}
	tw.Flush()
	return "Scale: messages left open on their tracking windows, then 200 full lifecycles\n\n" + b.String()
}

// row is the step's row of the scale table, its cells ended by tabs.
func (s ScaleStep) row() string {
	return fmt.Sprintf("| %d\t %.1f\t %s\t %s\t %.0f\t\n", s.Open, s.Throughput, ms(s.P50), ms(s.P99), float64(s.WorkerRSS)/1024)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// Percentile returns the p-th percentile of ds (nearest rank); 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
