// Command bench measures dispatchflow against the naive design, in the same run on
// the same Temporal server: messages per second through their whole life, ESP
// event → postback latency, history events and workflow tasks per message, and
// the CPU and memory of the worker and server processes. See docs/benchmarks.md.
//
// It starts (unless -temporal is given) the embedded Temporal server as a
// separate process, file-backed SQLite in WAL mode — the configuration users run —
// then `dispatchflow serve` and `bench-naive` on their own task queues, a
// postback receiver that answers 204 at once, and drives the real HTTP API:
// POST /v1/messages (to silent@, so the sandbox reports nothing), then the ESP's
// processed and delivered events through /v1/events/generic, each posted once the
// previous postback arrived.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
)

type options struct {
	rate                          float64
	n, concurrency, scale, rounds int
	temporal, bin, out            string
	eager                         bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 300, "messages per system for the saturation run (the half-load run sends n/2)")
	flag.IntVar(&o.concurrency, "c", 24, "messages in flight at once in the saturation run")
	flag.Float64Var(&o.rate, "rate", 0, "arrival rate (messages/s) of the latency run; 0: half of each system's own measured maximum")
	flag.IntVar(&o.rounds, "rounds", 2, "saturation rounds per system, alternating which system goes first (this machine's speed drifts)")
	flag.IntVar(&o.scale, "scale", 0, "scale run: open this many messages of ours, then burst events at 200 of them (0: skip)")
	flag.StringVar(&o.temporal, "temporal", "", "Temporal address to use instead of starting the embedded server (its CPU and memory are then not measured)")
	flag.StringVar(&o.bin, "bin", "bin", "directory of the dispatchflow, bench-naive and dispatchflow-dev binaries")
	flag.StringVar(&o.out, "out", "", "also write the results table (markdown) to this file")
	flag.BoolVar(&o.eager, "eager", true, "eager workflow start for dispatchflow (DISPATCHFLOW_EAGER_START)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "dispatchflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The API as deployed: every send authenticated with a key of a keys file.
	keyEnv, err := writeKeys(dir)
	if err != nil {
		return err
	}

	var server *proc
	addr := o.temporal
	if addr == "" {
		port := freePort()
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		server, err = start(ctx, dir, "temporal", filepath.Join(o.bin, "dispatchflow-dev"), nil,
			"-server-only", "-data-dir", dir, "-port", strconv.Itoa(port), "-ui-port", "0")
		if err != nil {
			return err
		}
		defer server.stop()
		if err := waitTCP(addr, 60*time.Second); err != nil {
			return fmt.Errorf("temporal server: %w (log: %s)", err, server.log)
		}
	}
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()

	rec := newReceiver()
	defer rec.close()

	var results []result
	ceiling, err := measureCeiling(ctx, c, o)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	fmt.Fprintf(os.Stderr, "server ceiling: %.1f empty workflows/s\n", ceiling)

	type system struct {
		name, api string
		p         *proc
		r         result
		ids       []string
	}
	var systems []*system
	defer func() {
		for _, sys := range systems {
			sys.p.stop()
		}
	}()
	for _, sys := range []struct{ name, binary, queue string }{
		{"naive", "bench-naive", "bench-naive"},
		{"dispatchflow", "dispatchflow", "bench-dispatchflow"},
	} {
		port := freePort()
		env := []string{
			"TEMPORAL_ADDRESS=" + addr,
			fmt.Sprintf("DISPATCHFLOW_HTTP_ADDR=127.0.0.1:%d", port),
			"DISPATCHFLOW_TASK_QUEUE=" + sys.queue,
			"DISPATCHFLOW_POSTBACK_URL=" + rec.url,
			"DISPATCHFLOW_ALLOW_NETWORKS=127.0.0.0/8", // the receiver is on loopback
			"DISPATCHFLOW_LOG_LEVEL=warn",
			"DISPATCHFLOW_EAGER_START=" + strconv.FormatBool(o.eager),
			"DISPATCHFLOW_METRICS_ADDR=", // two processes: no shared metrics port
		}
		env = append(env, keyEnv...)
		args := []string{}
		if sys.binary == "dispatchflow" {
			args = []string{"serve"}
		}
		p, err := start(ctx, dir, sys.name, filepath.Join(o.bin, sys.binary), env, args...)
		if err != nil {
			return err
		}
		s := &system{name: sys.name, api: fmt.Sprintf("http://127.0.0.1:%d", port), p: p, r: result{name: sys.name}}
		systems = append(systems, s)
		if err := waitHTTP(s.api+"/healthz", 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w (log: %s)", sys.name, err, p.log)
		}
		// Warm up: connections, caches, the first workflow tasks.
		if _, err := runClosed(ctx, s.api, rec, 20, 4); err != nil {
			return fmt.Errorf("%s: %w (log: %s)", sys.name, err, p.log)
		}
	}
	for round := range o.rounds {
		order := slices.Clone(systems)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, sys := range order {
			sys.p.resetPeak()
			server.resetPeak()
			w0, s0 := sys.p.cpu(), server.cpu()
			fmt.Fprintf(os.Stderr, "round %d, %s: saturation, %d messages, %d in flight\n", round+1, sys.name, o.n, o.concurrency)
			start := time.Now()
			sat, err := runClosed(ctx, sys.api, rec, o.n, o.concurrency)
			if err != nil {
				return fmt.Errorf("%s: %w (log: %s)", sys.name, err, sys.p.log)
			}
			tp := float64(o.n) / time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "  %.1f msg/s\n", tp)
			sys.r.throughput += tp / float64(o.rounds)
			sys.r.n += o.n
			sys.r.workerCPU += sys.p.cpu() - w0
			sys.r.serverCPU += server.cpu() - s0
			sys.r.workerRSS = max(sys.r.workerRSS, sys.p.peakRSS())
			sys.r.serverRSS = max(sys.r.serverRSS, server.peakRSS())
			for _, l := range sat[:min(15, len(sat))] {
				sys.ids = append(sys.ids, l.id)
			}
		}
	}
	for _, sys := range systems {
		r := &sys.r
		r.halfRate = r.throughput / 2
		if o.rate > 0 {
			r.halfRate = o.rate
		}
		fmt.Fprintf(os.Stderr, "%s: half load at %.1f msg/s, %d messages\n", sys.name, r.halfRate, o.n/2)
		half, err := runOpen(ctx, sys.api, rec, o.n/2, r.halfRate)
		if err != nil {
			return fmt.Errorf("%s: %w (log: %s)", sys.name, err, sys.p.log)
		}
		for _, l := range half {
			r.eventLat = append(r.eventLat, l.processed, l.delivered)
			r.sendLat = append(r.sendLat, l.sent)
		}
		if r.historyEvents, r.workflowTasks, err = historyCost(ctx, c, sys.ids); err != nil {
			return err
		}
		results = append(results, *r)
	}
	table := render(o, ceiling, results)
	if o.scale > 0 {
		s, err := measureScale(ctx, c, o, addr, dir, rec)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		table += "\n" + s
	}
	fmt.Print(table)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(table), 0o644)
	}
	return nil
}

// result is one system's figures.
type result struct {
	name                         string
	throughput, halfRate         float64 // messages/s
	eventLat, sendLat            []time.Duration
	historyEvents, workflowTasks float64 // per message
	workerCPU, serverCPU         time.Duration
	workerRSS, serverRSS         int64 // kB, peak during the saturation run
	n                            int
}

// lifecycle is one message's life as the app and the ESP see it.
type lifecycle struct {
	id                         string
	sent, processed, delivered time.Duration // send → sent postback; event → its postback
}

func one(ctx context.Context, api string, rec *receiver, i int) (lifecycle, error) {
	var l lifecycle
	t := time.Now()
	var out struct {
		DispatchID string `json:"dispatch_id"`
	}
	if err := post(ctx, api+"/v1/messages", map[string]string{"to": "silent@example.com", "subject": "Order " + strconv.Itoa(i), "text": "Thanks"}, &out); err != nil {
		return l, err
	}
	l.id = out.DispatchID
	var err error
	if l.sent, err = rec.wait(ctx, l.id, "sent", t); err != nil {
		return l, err
	}
	for _, ev := range []string{"processed", "delivered"} {
		t := time.Now()
		if err := post(ctx, api+"/v1/events/generic", map[string]string{"dispatch_id": l.id, "event": ev, "event_id": l.id + "-" + ev}, nil); err != nil {
			return l, err
		}
		d, err := rec.wait(ctx, l.id, ev, t)
		if err != nil {
			return l, err
		}
		if ev == "processed" {
			l.processed = d
		} else {
			l.delivered = d
		}
	}
	return l, nil
}

// runClosed runs n lifecycles, c at a time.
func runClosed(ctx context.Context, api string, rec *receiver, n, c int) ([]lifecycle, error) {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		out   []lifecycle
		first error
		wg    sync.WaitGroup
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				l, err := one(ctx, api, rec, i)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out = append(out, l)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, first
}

// runOpen starts n lifecycles at a fixed rate, whatever the ones before are doing.
func runOpen(ctx context.Context, api string, rec *receiver, n int, rate float64) ([]lifecycle, error) {
	var (
		mu    sync.Mutex
		out   []lifecycle
		first error
		wg    sync.WaitGroup
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := one(ctx, api, rec, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out = append(out, l)
		}()
	}
	wg.Wait()
	return out, first
}

// historyCost reads the histories of ids back from Temporal: events and workflow
// tasks per message (the messages are still open, waiting on their tracking windows).
func historyCost(ctx context.Context, c client.Client, ids []string) (events, tasks float64, err error) {
	for _, id := range ids {
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return 0, 0, err
			}
			events++
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				tasks++
			}
		}
	}
	return events / float64(len(ids)), tasks / float64(len(ids)), nil
}

// Empty is the server-ceiling workflow: started and completed, nothing else.
func Empty(workflow.Context) error { return nil }

func measureCeiling(ctx context.Context, c client.Client, o options) (float64, error) {
	const queue = "bench-empty"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(Empty)
	if err := w.Start(); err != nil {
		return 0, err
	}
	defer w.Stop()
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(o.n); i = next.Add(1) {
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue, EnableEagerStart: true}, Empty)
				if err == nil {
					err = run.Get(ctx, nil)
				}
				if err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return 0, err
	}
	return float64(o.n) / time.Since(start).Seconds(), nil
}

// measureScale opens o.scale messages of ours that wait on their tracking
// windows, then bursts events at 200 of them.
func measureScale(ctx context.Context, c client.Client, o options, addr, dir string, rec *receiver) (string, error) {
	port := freePort()
	keyEnv, err := writeKeys(dir)
	if err != nil {
		return "", err
	}
	p, err := start(ctx, dir, "dispatchflow-scale", filepath.Join(o.bin, "dispatchflow"), append([]string{
		"TEMPORAL_ADDRESS=" + addr, fmt.Sprintf("DISPATCHFLOW_HTTP_ADDR=127.0.0.1:%d", port),
		"DISPATCHFLOW_TASK_QUEUE=bench-scale", "DISPATCHFLOW_POSTBACK_URL=" + rec.url, "DISPATCHFLOW_ALLOW_NETWORKS=127.0.0.0/8", "DISPATCHFLOW_LOG_LEVEL=warn",
		"DISPATCHFLOW_METRICS_ADDR=",
	}, keyEnv...), "serve")
	if err != nil {
		return "", err
	}
	defer p.stop()
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHTTP(api+"/healthz", 30*time.Second); err != nil {
		return "", err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "| open messages\t burst throughput (msg/s)\t event→postback p50 (saturated)\t p99\t worker RSS (MB)\t\n|---\t---\t---\t---\t---\t\n")
	opened := 0
	for _, target := range scaleSteps(o.scale) {
		fmt.Fprintf(os.Stderr, "scale: opening messages up to %d\n", target)
		var next atomic.Int64
		next.Store(int64(opened))
		var wg sync.WaitGroup
		var first atomic.Value
		for range o.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= int64(target); i = next.Add(1) {
					var out struct {
						DispatchID string `json:"dispatch_id"`
					}
					if err := post(ctx, api+"/v1/messages", map[string]string{"to": "silent@example.com", "subject": "s", "text": "t"}, &out); err != nil {
						first.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, ok := first.Load().(error); ok {
			return "", err
		}
		opened = target
		start := time.Now()
		burst, err := runClosed(ctx, api, rec, 200, o.concurrency)
		if err != nil {
			return "", err
		}
		var lat []time.Duration
		for _, l := range burst {
			lat = append(lat, l.processed, l.delivered)
		}
		row := fmt.Sprintf("| %d\t %.1f\t %s\t %s\t %.0f\t\n", opened+200, 200/time.Since(start).Seconds(), ms(pct(lat, 50)), ms(pct(lat, 99)), float64(p.rss())/1024)
		fmt.Fprint(tw, row)
		fmt.Fprint(os.Stderr, "scale: "+strings.ReplaceAll(row, "\t", " |"))
		opened += 200
	}
	tw.Flush()
	return "Scale: messages left open on their tracking windows, then 200 full lifecycles\n\n" + b.String(), nil
}

func scaleSteps(n int) []int {
	var s []int
	for _, f := range []float64{0.1, 0.5, 1} {
		s = append(s, int(float64(n)*f))
	}
	return s
}

func render(o options, ceiling float64, rs []result) string {
	naive, ours := rs[0], rs[1]
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "| figure\t dispatchflow\t naive\t dispatchflow / naive\t\n|---\t---\t---\t---\t\n")
	row := func(name, unit string, a, n float64) {
		fmt.Fprintf(tw, "| %s\t %.2f %s\t %.2f %s\t %.2f×\t\n", name, a, unit, n, unit, a/n)
	}
	dur := func(name string, a, n time.Duration) {
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %.2f×\t\n", name, ms(a), ms(n), float64(a)/float64(n))
	}
	row("throughput, full lifecycle", "msg/s", ours.throughput, naive.throughput)
	dur("event → postback p50 (half load)", pct(ours.eventLat, 50), pct(naive.eventLat, 50))
	dur("event → postback p95 (half load)", pct(ours.eventLat, 95), pct(naive.eventLat, 95))
	dur("event → postback p99 (half load)", pct(ours.eventLat, 99), pct(naive.eventLat, 99))
	dur("send → sent postback p50 (half load)", pct(ours.sendLat, 50), pct(naive.sendLat, 50))
	dur("send → sent postback p99 (half load)", pct(ours.sendLat, 99), pct(naive.sendLat, 99))
	row("history events per message", "", ours.historyEvents, naive.historyEvents)
	row("workflow tasks per message", "", ours.workflowTasks, naive.workflowTasks)
	per := func(d time.Duration, n int) float64 { return d.Seconds() * 1000 / float64(n) }
	row("worker CPU per 1,000 messages", "s", per(ours.workerCPU, ours.n), per(naive.workerCPU, naive.n))
	if o.temporal == "" {
		row("server CPU per 1,000 messages", "s", per(ours.serverCPU, ours.n), per(naive.serverCPU, naive.n))
		row("server peak RSS", "MB", float64(ours.serverRSS)/1024, float64(naive.serverRSS)/1024)
	}
	row("worker peak RSS", "MB", float64(ours.workerRSS)/1024, float64(naive.workerRSS)/1024)
	tw.Flush()
	load := "half load = half of each system's own maximum"
	if o.rate > 0 {
		load = fmt.Sprintf("latency run (\"half load\") at %.1f messages/s", o.rate)
	}
	return fmt.Sprintf("%d rounds of %d messages per system (alternating), %d in flight; %s, %d messages.\n"+
		"Server ceiling (empty workflows started and completed): %.1f/s.\n\n%s", o.rounds, o.n, o.concurrency, load, o.n/2, ceiling, b.String())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// receiver is the postback endpoint: it notes when each (dispatch_id, status)
// arrived and answers 204 at once.
type receiver struct {
	srv  *http.Server
	url  string
	mu   sync.Mutex
	cond *sync.Cond
	got  map[string]time.Time
}

func newReceiver() *receiver {
	r := &receiver{got: map[string]time.Time{}}
	r.cond = sync.NewCond(&r.mu)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	r.url = "http://" + ln.Addr().String() + "/postbacks"
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		var p struct {
			DispatchID string `json:"dispatch_id"`
			Status     string `json:"status"`
		}
		_ = json.NewDecoder(req.Body).Decode(&p)
		w.WriteHeader(http.StatusNoContent)
		r.mu.Lock()
		if _, dup := r.got[p.DispatchID+"/"+p.Status]; !dup {
			r.got[p.DispatchID+"/"+p.Status] = now
		}
		r.cond.Broadcast()
		r.mu.Unlock()
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r
}

func (r *receiver) close() { _ = r.srv.Close() }

// wait returns how long after since the postback (id, status) arrived.
func (r *receiver) wait(ctx context.Context, id, status string, since time.Time) (time.Duration, error) {
	deadline := time.Now().Add(60 * time.Second)
	stop := context.AfterFunc(ctx, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer stop()
	timer := time.AfterFunc(time.Until(deadline), func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if t, ok := r.got[id+"/"+status]; ok {
			return t.Sub(since), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("no %s postback for %s within 60s", status, id)
		}
		r.cond.Wait()
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// apiKey authenticates the bench's requests, intakeSecret signs its events
// (writeKeys makes them).
var apiKey, intakeSecret string

// writeKeys writes a keys file with one key of every scope for workspace
// "default" into dir, sets apiKey, and returns the variables that point the API
// at it.
func writeKeys(dir string) ([]string, error) {
	plain, k, err := auth.NewKey("bench", message.DefaultWorkspace, []auth.Scope{auth.ScopeAll})
	if err != nil {
		return nil, err
	}
	apiKey, intakeSecret = plain, auth.NewSigningSecret()
	file := map[string]any{
		"workspaces": []map[string]any{{"name": message.DefaultWorkspace, "signing_secrets": []string{auth.NewSigningSecret()},
			"intake_secrets": []string{intakeSecret}}},
		"keys": []auth.Key{k},
	}
	raw, _ := json.Marshal(file)
	path := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	return []string{"DISPATCHFLOW_API_KEYS_FILE=" + path, "DISPATCHFLOW_ID_SECRET=" + strings.Repeat("b", 32),
		"DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET=" + auth.NewSigningSecret()}, nil
}

func post(ctx context.Context, url string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if strings.Contains(url, "/v1/events/") {
		// As an ESP does: every event post signed (the intake refuses the others).
		if err := intake.SignStandard(req.Header, intakeSecret, "evt_"+message.NewDispatchID(), time.Now(), raw); err != nil {
			return err
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// proc is a child process whose CPU time and peak RSS are read from /proc.
type proc struct {
	cmd *exec.Cmd
	log string
}

func start(ctx context.Context, dir, name, path string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w (run `make bench`, which builds it)", path, err)
	}
	return &proc{cmd: cmd, log: logPath}, nil
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// cpu is the process's user + system time (clock ticks of 10 ms).
func (p *proc) cpu() time.Duration {
	if p == nil {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: utime is the 14th field, stime the 15th.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func (p *proc) status(key string) int64 {
	if p == nil {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func (p *proc) peakRSS() int64 { return p.status("VmHWM") }
func (p *proc) rss() int64     { return p.status("VmRSS") }

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func (p *proc) resetPeak() {
	if p != nil {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy: %w", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// quietLogger drops the SDK's logs: the bench prints its own.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
