package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func msd(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// fixedReport is a run's figures, made up: the rendering below is the one the
// bench's main printed before the package existed, to the byte.
func fixedReport(o Options) Report {
	return Report{
		Options: o,
		Ceiling: 61.25,
		Naive: Result{Name: "naive", Throughput: 10.5, HalfRate: 5.25,
			EventLatency: []time.Duration{msd(300), msd(100), msd(200), msd(120)}, SendLatency: []time.Duration{msd(80), msd(50)},
			HistoryEvents: 30.5, WorkflowTasks: 9.25, WorkerCPU: 12 * time.Second, ServerCPU: 30 * time.Second,
			WorkerRSS: 102400, ServerRSS: 204800, Messages: 600},
		Dispatchflow: Result{Name: "dispatchflow", Throughput: 21, HalfRate: 10.5,
			EventLatency: []time.Duration{msd(45), msd(40), msd(90), msd(50)}, SendLatency: []time.Duration{msd(30), msd(20)},
			HistoryEvents: 17, WorkflowTasks: 4.5, WorkerCPU: 6 * time.Second, ServerCPU: 15 * time.Second,
			WorkerRSS: 81920, ServerRSS: 153600, Messages: 600},
	}
}

// wantTable is fixedReport's table with a server of ours; serverRows are the
// rows only such a server has.
const (
	wantTable = `| figure                               | dispatchflow | naive       | dispatchflow / naive |
|---                                   |---           |---          |---                   |
| throughput, full lifecycle           | 21.00 msg/s  | 10.50 msg/s | 2.00×                |
| event → postback p50 (half load)     | 45.0 ms      | 120.0 ms    | 0.38×                |
| event → postback p95 (half load)     | 90.0 ms      | 300.0 ms    | 0.30×                |
| event → postback p99 (half load)     | 90.0 ms      | 300.0 ms    | 0.30×                |
| send → sent postback p50 (half load) | 20.0 ms      | 50.0 ms     | 0.40×                |
| send → sent postback p99 (half load) | 30.0 ms      | 80.0 ms     | 0.38×                |
| history events per message           | 17.00        | 30.50       | 0.56×                |
| workflow tasks per message           | 4.50         | 9.25        | 0.49×                |
| worker CPU per 1,000 messages        | 10.00 s      | 20.00 s     | 0.50×                |
| server CPU per 1,000 messages        | 25.00 s      | 50.00 s     | 0.50×                |
| server peak RSS                      | 150.00 MB    | 200.00 MB   | 0.75×                |
| worker peak RSS                      | 80.00 MB     | 100.00 MB   | 0.80×                |
`
	serverRows = `| server CPU per 1,000 messages        | 25.00 s      | 50.00 s     | 0.50×                |
| server peak RSS                      | 150.00 MB    | 200.00 MB   | 0.75×                |
`
)

func TestReportString(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"defaults", Options{Messages: 300, Concurrency: 24, Rounds: 2},
			`2 rounds of 300 messages per system (alternating), 24 in flight; half load = half of each system's own maximum, 150 messages.
Server ceiling (empty workflows started and completed): 61.2/s.

` + wantTable},
		// With a server of someone else's (-temporal), its CPU and memory are not
		// measured: no server rows. A fixed rate names itself in the header.
		{"other server, fixed rate", Options{Messages: 60, Concurrency: 8, Rounds: 1, Rate: 7.5, Temporal: "127.0.0.1:7233"},
			`1 rounds of 60 messages per system (alternating), 8 in flight; latency run ("half load") at 7.5 messages/s, 30 messages.
Server ceiling (empty workflows started and completed): 61.2/s.

` + strings.Replace(wantTable, serverRows, "", 1)},
	} {
		if got := fixedReport(c.o).String(); got != c.want {
			t.Errorf("%s: report:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
}

func TestReportStringScale(t *testing.T) {
	r := fixedReport(Options{Messages: 100, Concurrency: 24, Rounds: 1, Scale: 50000})
	r.Scale = []ScaleStep{
		{Open: 5200, Throughput: 20.04, P50: msd(597.7), P99: msd(1021), WorkerRSS: 344064},
		{Open: 25200, Throughput: 25.1, P50: msd(499.7), P99: msd(818), WorkerRSS: 692224},
		{Open: 50200, Throughput: 24.4, P50: msd(519.7), P99: msd(926.4), WorkerRSS: 694272},
	}
	want := r.table() + `
Scale: messages left open on their tracking windows, then 200 full lifecycles

| open messages | burst throughput (msg/s) | event→postback p50 (saturated) | p99       | worker RSS (MB) |
|---            |---                       |---                             |---        |---              |
| 5200          | 20.0                     | 597.7 ms                       | 1021.0 ms | 336             |
| 25200         | 25.1                     | 499.7 ms                       | 818.0 ms  | 676             |
| 50200         | 24.4                     | 519.7 ms                       | 926.4 ms  | 678             |
`
	if got := r.String(); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	// The progress line of a step is its row, the tabs turned into bars.
	if got, want := r.Scale[0].row(), "| 5200\t 20.0\t 597.7 ms\t 1021.0 ms\t 336\t\n"; got != want {
		t.Errorf("row %q, want %q", got, want)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // out of order
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	orig := slices.Clone(ds)
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{0, 1 * time.Millisecond}, {1, 1 * time.Millisecond}, {50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("Percentile(1…100 ms, %d) = %s, want %s", c.p, got, c.want)
		}
	}
	if !slices.Equal(ds, orig) {
		t.Error("Percentile reordered its argument")
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(none) = %s, want 0", got)
	}
	// Nearest rank: the p99 of 4 values is the largest, the p50 the second.
	four := []time.Duration{msd(300), msd(100), msd(200), msd(120)}
	if got := Percentile(four, 99); got != msd(300) {
		t.Errorf("p99 of 4 = %s, want 300ms", got)
	}
	if got := Percentile(four, 50); got != msd(120) {
		t.Errorf("p50 of 4 = %s, want 120ms", got)
	}
}
