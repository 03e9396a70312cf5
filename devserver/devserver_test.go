package devserver_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", for inspecting the file

	"github.com/dispatchflow/dispatchflow/devserver"
)

const taskQueue = "devserver-test"

func okWorkflow(workflow.Context) (string, error) { return "ok", nil }

// waitForSignal blocks until it receives the "go" signal.
func waitForSignal(ctx workflow.Context) (string, error) {
	var v string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &v)
	return "got " + v, nil
}

func dial(t *testing.T, s *devserver.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.FrontendHostPort(),
		Namespace: s.Namespace(),
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.FrontendHostPort(), err)
	}
	t.Cleanup(c.Close)
	return c
}

func startWorker(t *testing.T, c client.Client) worker.Worker {
	t.Helper()
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(okWorkflow)
	w.RegisterWorkflow(waitForSignal)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	return w
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInMemoryWorkflow(t *testing.T) {
	begin := time.Now()
	s := devserver.StartForTest(t, devserver.Options{})
	t.Logf("in-memory startup: %v", time.Since(begin))
	if got := s.Namespace(); got != "default" {
		t.Errorf("Namespace() = %q, want default", got)
	}
	if !strings.HasPrefix(s.FrontendHostPort(), "127.0.0.1:") {
		t.Errorf("FrontendHostPort() = %q, want 127.0.0.1:port", s.FrontendHostPort())
	}
	if s.UIURL() != "" {
		t.Errorf("UIURL() = %q without UI", s.UIURL())
	}

	c := dial(t, s)
	w := startWorker(t, c)
	defer w.Stop()
	ctx := testContext(t)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: taskQueue}, okWorkflow)
	if err != nil {
		t.Fatalf("execute workflow: %v", err)
	}
	var result string
	if err := run.Get(ctx, &result); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if result != "ok" {
		t.Errorf("result = %q, want ok", result)
	}
}

// TestStopReleasesPorts starts two servers one after the other on the same
// frontend port: the second one can only start if Stop released everything.
func TestStopReleasesPorts(t *testing.T) {
	s1, err := devserver.Start(devserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(s1.FrontendHostPort())
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := s1.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stop: %v", time.Since(begin))
	if err := s1.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	begin = time.Now()
	s2, err := devserver.Start(devserver.Options{Port: port})
	if err != nil {
		t.Fatalf("start again on port %d: %v", port, err)
	}
	defer s2.Stop()
	t.Logf("second in-memory startup: %v", time.Since(begin))
	if got, want := s2.FrontendHostPort(), "127.0.0.1:"+portStr; got != want {
		t.Errorf("FrontendHostPort() = %q, want %q", got, want)
	}
}

// TestFileBackedRestart proves that workflows survive a restart, both of the
// whole process (phase 1 runs in a child process) and of the server within a
// process.
func TestFileBackedRestart(t *testing.T) {
	if db := os.Getenv("DEVSERVER_TEST_PHASE1_DB"); db != "" {
		phase1(t, db)
		return
	}

	db := filepath.Join(t.TempDir(), "temporal.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileBackedRestart$", "-test.v")
	cmd.Env = append(os.Environ(), "DEVSERVER_TEST_PHASE1_DB="+db)
	out, err := cmd.CombinedOutput()
	t.Logf("phase 1 (child process):\n%s", out)
	if err != nil {
		t.Fatalf("phase 1: %v", err)
	}

	// Phase 2: a new process opens the existing file.
	begin := time.Now()
	s, err := devserver.Start(devserver.Options{DBFile: db})
	if err != nil {
		t.Fatalf("restart on %s: %v", db, err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	t.Logf("file startup (existing file): %v", time.Since(begin))
	assertWAL(t, db)
	c := dial(t, s)
	w := startWorker(t, c)
	signalAndCheck(t, c, "wf-1", "one")

	// Phase 3: stop and start again within this process.
	ctx := testContext(t)
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "wf-2", TaskQueue: taskQueue}, waitForSignal); err != nil {
		t.Fatalf("start wf-2: %v", err)
	}
	waitBlocked(t, c, "wf-2")
	w.Stop()
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	begin = time.Now()
	s2, err := devserver.Start(devserver.Options{
		DBFile:           db,
		SearchAttributes: map[string]enumspb.IndexedValueType{"AddedLater": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	})
	if err != nil {
		t.Fatalf("second restart: %v", err)
	}
	t.Cleanup(func() { _ = s2.Stop() })
	t.Logf("file startup (in-process restart): %v", time.Since(begin))
	c = dial(t, s2)
	w = startWorker(t, c)
	defer w.Stop()
	signalAndCheck(t, c, "wf-2", "two")
	assertSearchAttributes(t, c, s2.Namespace(), map[string]enumspb.IndexedValueType{"AddedLater": enumspb.INDEXED_VALUE_TYPE_KEYWORD})
}

// phase1 creates the database and leaves workflow wf-1 waiting for a signal.
func phase1(t *testing.T, db string) {
	begin := time.Now()
	s, err := devserver.Start(devserver.Options{DBFile: db})
	if err != nil {
		t.Fatalf("start on new file %s: %v", db, err)
	}
	t.Logf("file startup (new file): %v", time.Since(begin))
	if _, err := os.Stat(db + "-wal"); err != nil {
		t.Errorf("no write-ahead log while running: %v", err)
	}
	c := dial(t, s)
	w := startWorker(t, c)
	run, err := c.ExecuteWorkflow(testContext(t), client.StartWorkflowOptions{ID: "wf-1", TaskQueue: taskQueue}, waitForSignal)
	if err != nil {
		t.Fatalf("start wf-1: %v", err)
	}
	waitBlocked(t, c, run.GetID())
	w.Stop()
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// waitBlocked waits until a worker completed the first workflow task of
// workflow id, so that it is really blocked on its signal. (Stopping the
// worker while it holds that task would delay the workflow by the 10s
// workflow task timeout.)
func waitBlocked(t *testing.T, c client.Client, id string) {
	t.Helper()
	ctx := testContext(t)
	for {
		desc, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatalf("describe %s: %v", id, err)
		}
		if desc.GetPendingWorkflowTask() == nil && desc.GetWorkflowExecutionInfo().GetHistoryLength() >= 4 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not block on its signal: %v", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func signalAndCheck(t *testing.T, c client.Client, id, value string) {
	t.Helper()
	ctx := testContext(t)
	if err := c.SignalWorkflow(ctx, id, "", "go", value); err != nil {
		t.Fatalf("signal %s: %v", id, err)
	}
	var result string
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &result); err != nil {
		t.Fatalf("result of %s: %v", id, err)
	}
	if want := "got " + value; result != want {
		t.Errorf("%s result = %q, want %q", id, result, want)
	}
}

func assertWAL(t *testing.T, db string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("query journal mode: %v", err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestSearchAttributes(t *testing.T) {
	want := map[string]enumspb.IndexedValueType{
		"CustomerId": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"Priority":   enumspb.INDEXED_VALUE_TYPE_INT,
	}
	logs := &recordingHandler{}
	s := devserver.StartForTest(t, devserver.Options{
		Namespace:        "sa-test",
		SearchAttributes: want,
		Logger:           slog.New(logs),
	})
	assertSearchAttributes(t, dial(t, s), "sa-test", want)
	for _, r := range logs.all() {
		t.Logf("server log: %s %s", r.Level, r.Message)
		if r.Level < slog.LevelWarn {
			t.Errorf("server logged below warning level: %s %q", r.Level, r.Message)
		}
	}
}

// recordingHandler is an slog.Handler that keeps every record at any level.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

func (h *recordingHandler) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.records...)
}

func assertSearchAttributes(t *testing.T, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(testContext(t), &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		t.Fatalf("list search attributes: %v", err)
	}
	for name, typ := range want {
		if got, ok := resp.GetCustomAttributes()[name]; !ok || got != typ {
			t.Errorf("search attribute %s = %v (present %v), want %v", name, got, ok, typ)
		}
	}
}

func TestUI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	s := devserver.StartForTest(t, devserver.Options{UIPort: port})
	resp, err := http.Get(s.UIURL() + "/")
	if err != nil {
		t.Fatalf("GET %s/: %v", s.UIURL(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/: status %d", s.UIURL(), resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	if !strings.Contains(strings.ToLower(string(body)), "<html") {
		t.Errorf("body is not HTML: %.200s", body)
	}

	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		t.Errorf("UI port still bound after Stop: %v", err)
	} else {
		l.Close()
	}
}

// TestBusyPorts checks that fixed ports already in use are reported as
// errors (the server itself would call logger.Fatal).
func TestBusyPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	if s, err := devserver.Start(devserver.Options{Port: busy}); err == nil {
		s.Stop()
		t.Error("Start on a busy frontend port succeeded")
	} else {
		t.Logf("busy frontend port: %v", err)
	}
	if s, err := devserver.Start(devserver.Options{UIPort: busy}); err == nil {
		s.Stop()
		t.Error("Start on a busy UI port succeeded")
	} else {
		t.Logf("busy UI port: %v", err)
	}
}
