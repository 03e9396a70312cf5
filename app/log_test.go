package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/workflows"
)

const id = "0123456789abcdef0123456789abcdef"

// syncBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines decodes JSON log lines; raw keeps each line as written.
func lines(t *testing.T, out string) (recs []map[string]any, raw []string) {
	t.Helper()
	for l := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		recs, raw = append(recs, m), append(raw, l)
	}
	return recs, raw
}

func jsonLogger(w *syncBuffer) *slog.Logger {
	return app.NewLogger(config.Config{LogLevel: "debug", LogFormat: "json"}, w)
}

func TestDispatchIDHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string // dispatch_id, "" for none
	}{
		{"WorkflowID from With", func(l *slog.Logger) { l.With("WorkflowID", id).Info("m") }, id},
		{"WorkflowID on the line", func(l *slog.Logger) { l.Info("m", "WorkflowID", id) }, id},
		{"dispatch_id already there", func(l *slog.Logger) { l.With("WorkflowID", id).Info("m", "dispatch_id", id) }, id},
		{"dispatch_id from With", func(l *slog.Logger) { l.With("dispatch_id", id).Info("m", "WorkflowID", id) }, id},
		{"before a group", func(l *slog.Logger) { l.With("WorkflowID", id).WithGroup("g").Info("m", "k", "v") }, id},
		{"not a dispatch_id", func(l *slog.Logger) { l.With("WorkflowID", "bench-naive-1").Info("m") }, ""},
		{"WorkflowID inside a group", func(l *slog.Logger) { l.WithGroup("g").Info("m", "WorkflowID", id) }, ""},
		{"no WorkflowID", func(l *slog.Logger) { l.Info("m", "provider", "sandbox") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf syncBuffer
			tt.log(jsonLogger(&buf))
			recs, raw := lines(t, buf.String())
			if len(recs) != 1 {
				t.Fatalf("got %d lines, want 1", len(recs))
			}
			got, _ := recs[0]["dispatch_id"].(string)
			if got != tt.want {
				t.Errorf("dispatch_id = %q, want %q in %s", got, tt.want, raw[0])
			}
			if n := strings.Count(raw[0], `"dispatch_id"`); tt.want != "" && n != 1 {
				t.Errorf("dispatch_id appears %d times, want once: %s", n, raw[0])
			}
		})
	}
}

func TestNewLoggerFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format, want string
	}{
		{"text", `level=INFO msg="status changed" WorkflowID=` + id + ` status=sent dispatch_id=` + id},
		{"json", `"level":"INFO","msg":"status changed","WorkflowID":"` + id + `","status":"sent","dispatch_id":"` + id + `"}`},
	}
	for _, tt := range tests {
		var buf syncBuffer
		l := app.NewLogger(config.Config{LogLevel: "info", LogFormat: tt.format}, &buf)
		l.Debug("below the level")
		l.Info("status changed", "WorkflowID", id, "status", "sent")
		if got := buf.String(); !strings.Contains(got, tt.want) || strings.Contains(got, "below the level") {
			t.Errorf("%s: got %q, want one info line containing %q", tt.format, got, tt.want)
		}
	}
}

// The handler takes the Temporal workflow ID for the dispatch_id.
func TestWorkflowIDIsDispatchID(t *testing.T) {
	if got := workflows.WorkflowID(id); got != id {
		t.Fatalf("workflows.WorkflowID(%s) = %s: DispatchIDHandler must map it back", id, got)
	}
}

func loggingActivity(ctx context.Context) error {
	activity.GetLogger(ctx).Info("activity says hello")
	return nil
}

func loggingWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10e9})
	return workflow.ExecuteActivity(ctx, loggingActivity).Get(ctx, nil)
}

// TestSDKLogsCarryDispatchID: the SDK's activity logger, routed through our
// handler as Dial does, writes dispatch_id on its lines. (The test environment
// does not tag workflow lines with WorkflowID as a worker does: those are
// checked on a real server in devserver/integration/metrics_test.go.)
func TestSDKLogsCarryDispatchID(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(jsonLogger(&buf).With("component", "temporal-sdk")))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(loggingWorkflow)
	env.RegisterActivity(loggingActivity)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(id)})
	env.ExecuteWorkflow(loggingWorkflow)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	recs, raw := lines(t, buf.String())
	seen := map[string]bool{}
	for i, r := range recs {
		msg, _ := r["msg"].(string)
		if msg != "activity says hello" {
			continue
		}
		seen[msg] = true
		if r["dispatch_id"] != id || r["component"] != "temporal-sdk" {
			t.Errorf("line %s: want dispatch_id %s and component temporal-sdk", raw[i], id)
		}
	}
	if !seen["activity says hello"] {
		t.Errorf("got lines %q, want the activity's", raw)
	}
}
