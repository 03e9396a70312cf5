package bench

import (
	"strings"
	"testing"
	"time"
)

func TestDeployOptionsCheck(t *testing.T) {
	ok := DeployOptions{Bin: "bin", Messages: 10, Concurrency: 2, Rounds: 1,
		Deployments: []Deployment{EmbeddedDeployment(), ClusterDeployment(16, 2, 2)}}
	if err := ok.check(); err != nil {
		t.Fatalf("check() = %v for %+v", err, ok)
	}
	for name, edit := range map[string]func(*DeployOptions){
		"no binaries":            func(o *DeployOptions) { o.Bin = "" },
		"no deployment":          func(o *DeployOptions) { o.Deployments = nil },
		"workers without APIs":   func(o *DeployOptions) { o.Deployments = []Deployment{ClusterDeployment(16, 2, 0)} },
		"no shard":               func(o *DeployOptions) { o.Deployments = []Deployment{ClusterDeployment(0, 2, 2)} },
		"embedded with 4 shards": func(o *DeployOptions) { o.Deployments = []Deployment{{Name: "e", Shards: 4}} },
		"one message":            func(o *DeployOptions) { o.Messages = 1 },
	} {
		o := ok
		edit(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: check() = nil", name)
		}
	}
}

func TestDeployReport(t *testing.T) {
	r := DeployReport{
		Options: DeployOptions{Messages: 100, Concurrency: 8, Rounds: 2},
		Results: []DeployResult{
			{Deployment: EmbeddedDeployment(), Throughput: 30, Messages: 200, ServerCPU: 20 * time.Second, WorkerCPU: 4 * time.Second,
				UpsertCPU: 10 * time.Millisecond, EventLatency: []time.Duration{10 * time.Millisecond}},
			{Deployment: ClusterDeployment(16, 2, 2), Throughput: 40, Messages: 200, ServerCPU: 20 * time.Second,
				PostgresCPU: 10 * time.Second, WorkerCPU: 4 * time.Second, APICPU: 2 * time.Second, UpsertCPU: 20 * time.Millisecond},
		},
	}
	// Column widths aside: runs of spaces count as one.
	squeeze := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	got := squeeze(r.String())
	for _, want := range []string{
		"| Temporal ", "SQLite, 1 shard", "PostgreSQL, 16 shards", "2 workers + 2 APIs", "1 serve",
		"30.00 msg/s", "40.00 msg/s",
		"| CPU per 1,000 msgs: Temporal server | 100.0 s", // 20 s over 200 messages
		"| CPU per 1,000 msgs: PostgreSQL      | –",
		"| CPU per 1,000 msgs: all             | 120.0 s         | 180.0 s",
		"| one upsert / a message's server CPU | 10%             | 13%", // 10 ms of 100 ms; 20 ms of 150 ms
	} {
		if !strings.Contains(got, squeeze(want)) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// pid (comm) state ppid … utime stime cutime cstime (fields 14–17).
	raw := []byte("4242 (postgres: temporal (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 150 50 30 20 20 0 1 0 100 0 0")
	st, ok := parseProcStat(raw)
	if !ok || st.ppid != 17 || st.self != 2*time.Second || st.children != 500*time.Millisecond {
		t.Fatalf("parseProcStat = %+v, %v; want ppid 17, self 2s, children 500ms", st, ok)
	}
	if _, ok := parseProcStat([]byte("no name")); ok {
		t.Error("parseProcStat accepted a line without a command name")
	}
}
