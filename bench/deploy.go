package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/auth"
)

// Deployment is one shape of Temporal and dispatchflow that the deployment
// comparison (`bench -cluster`) measures.
type Deployment struct {
	// Name labels its column.
	Name string
	// Cluster is Temporal on PostgreSQL (`dispatchflow-dev -cluster`, Debian's
	// PostgreSQL) with Shards history shards; else the embedded server on SQLite,
	// one shard.
	Cluster bool
	Shards  int
	// Workers and APIs are processes of `dispatchflow worker` and `dispatchflow
	// api`; both 0 is one `dispatchflow serve` (make run's shape, with eager
	// workflow start, which needs the worker in the API's process).
	Workers, APIs int
}

// EmbeddedDeployment is make run's: SQLite, one shard, one process.
func EmbeddedDeployment() Deployment {
	return Deployment{Name: "embedded", Shards: 1}
}

// ClusterDeployment is make cluster's shape.
func ClusterDeployment(shards, workers, apis int) Deployment {
	return Deployment{Name: "cluster", Cluster: true, Shards: shards, Workers: workers, APIs: apis}
}

// DeployOptions configure RunDeployments.
type DeployOptions struct {
	// Bin is the directory of the dispatchflow and dispatchflow-dev binaries.
	Bin string
	// Messages per saturation round, Concurrency in flight; Rounds alternate
	// which deployment goes first. The latency run sends Messages/2 at half of
	// each deployment's own throughput.
	Messages, Concurrency, Rounds int
	Deployments                   []Deployment
	// Log receives progress lines; nil: none.
	Log io.Writer
}

func (o DeployOptions) check() error {
	switch {
	case o.Bin == "":
		return errors.New("option Bin: the directory of the binaries is required")
	case o.Messages < 2 || o.Concurrency < 1 || o.Rounds < 1:
		return fmt.Errorf("options Messages %d, Concurrency %d, Rounds %d: want at least 2, 1, 1", o.Messages, o.Concurrency, o.Rounds)
	case len(o.Deployments) == 0:
		return errors.New("option Deployments: nothing to measure")
	}
	for _, d := range o.Deployments {
		if d.Shards < 1 || d.Workers < 0 || d.APIs < 0 || (d.Workers == 0) != (d.APIs == 0) {
			return fmt.Errorf("deployment %s: %d shards, %d workers, %d APIs: want at least 1 shard, and workers and APIs both 0 (one serve process) or both at least 1", d.Name, d.Shards, d.Workers, d.APIs)
		}
		if !d.Cluster && d.Shards != 1 {
			return fmt.Errorf("deployment %s: the embedded server has 1 shard", d.Name)
		}
	}
	return nil
}

// DeployResult is one deployment's figures.
type DeployResult struct {
	Deployment Deployment
	// Ceiling is the server's: empty workflows per second.
	Ceiling float64
	// Throughput is full lifecycles per second at saturation, the mean of the
	// rounds; EventLatency is ESP event → postback in the latency run.
	Throughput   float64
	EventLatency []time.Duration
	// Messages were sent in the saturation rounds, over which the CPU times
	// are counted: the Temporal server's process, PostgreSQL's (the postmaster
	// and every backend), the workers' and the APIs' (a serve process counts
	// as a worker).
	Messages                                  int
	ServerCPU, PostgresCPU, WorkerCPU, APICPU time.Duration
	// UpsertCPU is the server's CPU (Temporal and PostgreSQL) per search
	// attribute upsert, UpsertBase per workflow of three tasks without one.
	UpsertCPU, UpsertBase time.Duration
}

// DeployReport is what RunDeployments measured.
type DeployReport struct {
	Options DeployOptions
	Results []DeployResult
}

// RunDeployments starts every deployment side by side (each its own Temporal
// server, and PostgreSQL for a cluster), then measures them in turn: the
// server's ceiling, the saturation rounds (alternating), the latency run.
func RunDeployments(ctx context.Context, o DeployOptions) (report DeployReport, err error) {
	if err := o.check(); err != nil {
		return DeployReport{}, err
	}
	dir, err := os.MkdirTemp("", "dispatchflow-bench-deploy-")
	if err != nil {
		return DeployReport{}, err
	}
	defer func() {
		if err == nil {
			os.RemoveAll(dir)
		} else { // the logs of a failed run stay
			err = fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}()
	// As root, PostgreSQL runs as "postgres", who must reach its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return DeployReport{}, err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	keys, err := WriteKeys(filepath.Join(dir, "keys.json"), "bench", nil)
	if err != nil {
		return DeployReport{}, err
	}
	rec, err := startReceiver()
	if err != nil {
		return DeployReport{}, err
	}
	defer rec.close()
	env := []string{
		"DISPATCHFLOW_API_KEYS_FILE=" + filepath.Join(dir, "keys.json"),
		"DISPATCHFLOW_ID_SECRET=" + strings.Repeat("b", 32),
		"DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET=" + auth.NewSigningSecret(),
		"DISPATCHFLOW_POSTBACK_URL=" + rec.url,
		"DISPATCHFLOW_ALLOW_NETWORKS=127.0.0.0/8", // the receiver is on loopback
		"DISPATCHFLOW_LOG_LEVEL=warn",
		"DISPATCHFLOW_METRICS_ADDR=", // several processes: no shared metrics port
	}
	drv := newDriver(keys, rec)
	var all []*deployed
	defer func() {
		for _, d := range all {
			d.stop()
		}
	}()
	for i, dep := range o.Deployments {
		d := &deployed{d: dep, dir: filepath.Join(dir, strconv.Itoa(i)), bin: o.Bin, env: env, logf: logf, r: DeployResult{Deployment: dep}}
		all = append(all, d)
		if err := d.start(ctx); err != nil {
			return DeployReport{}, fmt.Errorf("%s: %w", dep.Name, err)
		}
		logf("%s: server ceiling…", dep.Name)
		if d.r.Ceiling, err = measureCeiling(ctx, d.c, o.Messages, o.Concurrency); err != nil {
			return DeployReport{}, fmt.Errorf("%s: ceiling: %w", dep.Name, err)
		}
		logf("%s: server ceiling %.1f empty workflows/s", dep.Name, d.r.Ceiling)
		serverCPU := func() time.Duration { c := d.cpu(); return c[0] + c[1] }
		if d.r.UpsertCPU, d.r.UpsertBase, err = measureUpserts(ctx, d.c, o.Messages, o.Concurrency, serverCPU); err != nil {
			return DeployReport{}, fmt.Errorf("%s: upserts: %w", dep.Name, err)
		}
		logf("%s: a search-attribute upsert costs %s of server CPU (a 3-task workflow without: %s)", dep.Name, d.r.UpsertCPU, d.r.UpsertBase)
		if _, err := drv.runClosed(ctx, d.urls, 20, 4); err != nil { // warm up
			return DeployReport{}, fmt.Errorf("%s: warm-up: %w", dep.Name, err)
		}
	}
	for round := range o.Rounds {
		for i := range all {
			d := all[(i+round)%len(all)]
			cpu0 := d.cpu()
			logf("round %d, %s: saturation, %d messages, %d in flight", round+1, d.d.Name, o.Messages, o.Concurrency)
			start := time.Now()
			if _, err := drv.runClosed(ctx, d.urls, o.Messages, o.Concurrency); err != nil {
				return DeployReport{}, fmt.Errorf("%s: %w (logs in %s)", d.d.Name, err, d.dir)
			}
			tp := float64(o.Messages) / time.Since(start).Seconds()
			logf("  %.1f msg/s", tp)
			d.r.Throughput += tp / float64(o.Rounds)
			d.r.Messages += o.Messages
			cpu := d.cpu()
			d.r.ServerCPU += cpu[0] - cpu0[0]
			d.r.PostgresCPU += cpu[1] - cpu0[1]
			d.r.WorkerCPU += cpu[2] - cpu0[2]
			d.r.APICPU += cpu[3] - cpu0[3]
		}
	}
	report = DeployReport{Options: o}
	for _, d := range all {
		rate := d.r.Throughput / 2
		logf("%s: half load at %.1f msg/s, %d messages", d.d.Name, rate, o.Messages/2)
		half, err := drv.runOpen(ctx, d.urls, o.Messages/2, rate)
		if err != nil {
			return DeployReport{}, fmt.Errorf("%s: %w", d.d.Name, err)
		}
		for _, l := range half {
			d.r.EventLatency = append(d.r.EventLatency, l.processed, l.delivered)
		}
		report.Results = append(report.Results, d.r)
	}
	return report, nil
}

// deployed is a running deployment.
type deployed struct {
	d         Deployment
	dir, bin  string
	env       []string
	logf      func(string, ...any)
	server    *Process
	processes []*Process // the workers first, then the APIs
	urls      []string
	c         client.Client
	r         DeployResult
}

// start starts the Temporal server (and PostgreSQL) and the dispatchflow
// processes, and connects a client.
func (d *deployed) start(ctx context.Context) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	ports, err := FreePorts(2 + max(d.d.APIs, 1))
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := []string{"-server-only", "-data-dir", d.dir, "-port", strconv.Itoa(ports[0]), "-ui-port", "0"}
	if d.d.Cluster {
		args = append(args, "-cluster", "-shards", strconv.Itoa(d.d.Shards), "-pg-port", strconv.Itoa(ports[1]))
	}
	d.logf("%s: starting Temporal (%s)", d.d.Name, strings.Join(args, " "))
	if d.server, err = d.run(ctx, "temporal", "dispatchflow-dev", nil, args...); err != nil {
		return err
	}
	// Up once it says so: the namespace registered, the search attributes too.
	if err := WaitLog(ctx, d.server, "Temporal is up", 3*time.Minute); err != nil {
		return err
	}
	if d.c, err = client.Dial(client.Options{HostPort: addr, Logger: QuietLogger{}}); err != nil {
		return err
	}
	common := append([]string{"TEMPORAL_ADDRESS=" + addr}, d.env...)
	apiEnv := func(port int) []string {
		return append(append([]string{}, common...), fmt.Sprintf("DISPATCHFLOW_HTTP_ADDR=127.0.0.1:%d", port))
	}
	if d.d.Workers == 0 {
		p, err := d.run(ctx, "serve", "dispatchflow", append(apiEnv(ports[2]), "DISPATCHFLOW_EAGER_START=true"), "serve")
		if err != nil {
			return err
		}
		d.processes = append(d.processes, p)
		d.urls = append(d.urls, fmt.Sprintf("http://127.0.0.1:%d", ports[2]))
	}
	for i := range d.d.Workers {
		p, err := d.run(ctx, fmt.Sprintf("worker-%d", i+1), "dispatchflow", common, "worker")
		if err != nil {
			return err
		}
		d.processes = append(d.processes, p)
	}
	for i := range d.d.APIs {
		p, err := d.run(ctx, fmt.Sprintf("api-%d", i+1), "dispatchflow", apiEnv(ports[2+i]), "api")
		if err != nil {
			return err
		}
		d.processes = append(d.processes, p)
		d.urls = append(d.urls, fmt.Sprintf("http://127.0.0.1:%d", ports[2+i]))
	}
	for _, u := range d.urls {
		if err := WaitHealthy(ctx, u+"/healthz", 60*time.Second); err != nil {
			return fmt.Errorf("%w (logs in %s)", err, d.dir)
		}
	}
	return nil
}

func (d *deployed) run(ctx context.Context, name, binary string, env []string, args ...string) (*Process, error) {
	p, err := StartProcess(ctx, name, filepath.Join(d.bin, binary), filepath.Join(d.dir, name+".log"), append(os.Environ(), env...), args...)
	if err != nil {
		return nil, fmt.Errorf("%w (run `make bench`, which builds it)", err)
	}
	return p, nil
}

// cpu is the CPU time so far of the server, PostgreSQL, the workers and the
// APIs.
func (d *deployed) cpu() [4]time.Duration {
	var c [4]time.Duration
	c[0] = d.server.CPU()
	if d.d.Cluster {
		c[1] = postgresCPU(filepath.Join(d.dir, "cluster", "postgres", "data", "postmaster.pid"))
	}
	for i, p := range d.processes {
		if i < max(d.d.Workers, 1) {
			c[2] += p.CPU()
		} else {
			c[3] += p.CPU()
		}
	}
	return c
}

func (d *deployed) stop() {
	for _, p := range d.processes {
		p.Stop()
	}
	if d.c != nil {
		d.c.Close()
	}
	d.server.Stop()
}

// postgresCPU is the CPU time of a PostgreSQL server: the postmaster's own,
// its children's that have exited (reaped: the backends of closed sessions)
// and its live children's (the other backends, the checkpointer, the WAL
// writer…). pidFile is the data directory's postmaster.pid. 0 when unreadable.
func postgresCPU(pidFile string) time.Duration {
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	return treeCPU(pid)
}

// treeCPU is the CPU time of process pid, of its reaped children, and of its
// live children (one level: PostgreSQL's backends are the postmaster's).
func treeCPU(pid int) time.Duration {
	st, ok := readStat(pid)
	if !ok {
		return 0
	}
	total := st.self + st.children
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if cs, ok := readStat(child); ok && cs.ppid == pid {
			total += cs.self
		}
	}
	return total
}

// String renders the report as a markdown table, one column per deployment.
func (r DeployReport) String() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "%d rounds of %d messages per deployment, %d in flight; latency run: %d messages at half of each deployment's throughput.\n\n",
		o.Rounds, o.Messages, o.Concurrency, o.Messages/2)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprint(tw, "| figure\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, " %s\t", res.Deployment.Name)
	}
	fmt.Fprint(tw, "\n|---\t")
	for range r.Results {
		fmt.Fprint(tw, "---\t")
	}
	fmt.Fprintln(tw)
	row := func(name string, f func(DeployResult) string) {
		fmt.Fprintf(tw, "| %s\t", name)
		for _, res := range r.Results {
			fmt.Fprintf(tw, " %s\t", f(res))
		}
		fmt.Fprintln(tw)
	}
	per1000 := func(d time.Duration, n int) string {
		if n == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f s", d.Seconds()*1000/float64(n))
	}
	row("Temporal", func(res DeployResult) string {
		if res.Deployment.Cluster {
			return fmt.Sprintf("PostgreSQL, %d shards", res.Deployment.Shards)
		}
		return "SQLite, 1 shard"
	})
	row("dispatchflow processes", func(res DeployResult) string {
		if res.Deployment.Workers == 0 {
			return "1 serve"
		}
		return fmt.Sprintf("%d workers + %d APIs", res.Deployment.Workers, res.Deployment.APIs)
	})
	row("server ceiling", func(res DeployResult) string { return fmt.Sprintf("%.1f wf/s", res.Ceiling) })
	row("throughput, full lifecycle", func(res DeployResult) string { return fmt.Sprintf("%.2f msg/s", res.Throughput) })
	row("event → postback p50 (half load)", func(res DeployResult) string { return ms(Percentile(res.EventLatency, 50)) })
	row("event → postback p99 (half load)", func(res DeployResult) string { return ms(Percentile(res.EventLatency, 99)) })
	row("CPU per 1,000 msgs: Temporal server", func(res DeployResult) string { return per1000(res.ServerCPU, res.Messages) })
	row("CPU per 1,000 msgs: PostgreSQL", func(res DeployResult) string {
		if !res.Deployment.Cluster {
			return "–"
		}
		return per1000(res.PostgresCPU, res.Messages)
	})
	row("CPU per 1,000 msgs: workers", func(res DeployResult) string { return per1000(res.WorkerCPU, res.Messages) })
	row("CPU per 1,000 msgs: APIs", func(res DeployResult) string {
		if res.Deployment.Workers == 0 {
			return "(in serve)"
		}
		return per1000(res.APICPU, res.Messages)
	})
	row("CPU per 1,000 msgs: all", func(res DeployResult) string {
		return per1000(res.ServerCPU+res.PostgresCPU+res.WorkerCPU+res.APICPU, res.Messages)
	})
	row("server CPU per search-attribute upsert", func(res DeployResult) string { return ms(res.UpsertCPU) })
	row("server CPU per 3-task workflow without", func(res DeployResult) string { return ms(res.UpsertBase) })
	row("one upsert / a message's server CPU", func(res DeployResult) string {
		if res.Messages == 0 {
			return "–"
		}
		perMsg := (res.ServerCPU + res.PostgresCPU) / time.Duration(res.Messages)
		return fmt.Sprintf("%.0f%%", 100*float64(res.UpsertCPU)/float64(perMsg))
	})
	tw.Flush()
	return b.String()
}
