package activities

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/suppression"
)

var supKey = []byte("activities-test-suppression-key-0123456789")

// supTemporal is the part of Temporal the suppression list talks to: it
// records SignalWithStart calls and answers Describe from executions (by
// workflow ID; missing: NotFound) or with describeErr. The real server's
// behaviour is checked end to end in devserver/integration (suppression_test.go).
type supTemporal struct {
	client.Client
	mu          sync.Mutex
	starts      []supStart
	described   []string
	executions  map[string]*workflowpb.WorkflowExecutionInfo
	describeErr error
}

type supStart struct {
	id, signal string
	arg        any
	opts       client.StartWorkflowOptions
	workflow   any
	args       []any
}

func (f *supTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, opts client.StartWorkflowOptions,
	wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, supStart{id: id, signal: signal, arg: arg, opts: opts, workflow: wf, args: args})
	return nil, nil
}

func (f *supTemporal) DescribeWorkflowExecution(ctx context.Context, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.described = append(f.described, id)
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("the check must bound its read")
	}
	if f.describeErr != nil {
		return nil, f.describeErr
	}
	info, ok := f.executions[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: info}, nil
}

// countingESP counts hand-overs.
type countingESP struct {
	mu sync.Mutex
	n  int
}

func (c *countingESP) Name() string { return "sandbox" }
func (c *countingESP) Send(context.Context, esp.Email) (esp.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return esp.Receipt{Provider: "sandbox", MessageID: "m-1"}, nil
}
func (c *countingESP) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

var supEntry = suppression.Entry{Cause: suppression.CauseHardBounce, Provider: "sendgrid",
	DispatchID: "acf471119f7449d579e8089032003ded", At: time.Date(2026, 11, 28, 9, 25, 0, 0, time.UTC)}

// The first report of an address starts its workflow and signals the entry
// in one atomic call, under its keyed ID, with the reuse policy stated and
// the memo the check reads; the address itself goes nowhere.
func TestSuppress(t *testing.T) {
	t.Parallel()
	f := &supTemporal{}
	s := &Suppressions{Client: f, TaskQueue: "q", Key: supKey}
	var env testsuite.WorkflowTestSuite
	aenv := env.NewTestActivityEnvironment()
	aenv.RegisterActivity(s)
	val, err := aenv.ExecuteActivity(s.Suppress, SuppressInput{Workspace: "eu", Recipient: "Ann Lee <Ann@Example.com>", Entry: supEntry})
	if err != nil {
		t.Fatal(err)
	}
	var res SuppressResult
	if err := val.Get(&res); err != nil || !res.Recorded {
		t.Fatalf("result %+v, %v; want recorded", res, err)
	}
	if len(f.starts) != 1 {
		t.Fatalf("%d SignalWithStart calls, want 1", len(f.starts))
	}
	got := f.starts[0]
	wantID := "dispatchflow-suppression-eu-" + suppression.ID(supKey, "eu", "ann@example.com")
	if got.id != wantID || got.opts.ID != wantID {
		t.Errorf("workflow ID %q (options %q), want %q", got.id, got.opts.ID, wantID)
	}
	if got.signal != suppression.SignalAdd || got.arg != supEntry {
		t.Errorf("signal %s %+v, want %s with the entry", got.signal, got.arg, suppression.SignalAdd)
	}
	if got.opts.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		got.opts.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE || got.opts.TaskQueue != "q" {
		t.Errorf("options %+v: want use-existing, allow-duplicate (a lifted suppression starts afresh), task queue q", got.opts)
	}
	wantSum := suppression.Summary{Hint: "a***@example.com", Entry: supEntry}
	if m := got.opts.Memo[suppression.MemoSummary]; m != wantSum {
		t.Errorf("memo %+v, want %+v", m, wantSum)
	}
	if got.workflow != suppression.WorkflowType || len(got.args) != 1 ||
		got.args[0] != (suppression.Input{Workspace: "eu", Hint: "a***@example.com"}) {
		t.Errorf("workflow %v %+v, want %s with the workspace and the hint", got.workflow, got.args, suppression.WorkflowType)
	}
	all, _ := json.Marshal([]any{got.id, got.arg, got.opts.Memo, got.opts.StaticSummary, got.args})
	if s := strings.ToLower(string(all)); strings.Contains(s, "ann@") || strings.Contains(s, "ann lee") {
		t.Errorf("the address reaches Temporal in clear: %s", all)
	}
}

// Without a key there is no list: nothing is recorded. An address that
// cannot be keyed is a permanent failure, not retried.
func TestSuppressOffAndInvalid(t *testing.T) {
	t.Parallel()
	var env testsuite.WorkflowTestSuite
	f := &supTemporal{}
	off := &Suppressions{Client: f}
	aenv := env.NewTestActivityEnvironment()
	aenv.RegisterActivity(off)
	val, err := aenv.ExecuteActivity(off.Suppress, SuppressInput{Workspace: "default", Recipient: "ann@example.com", Entry: supEntry})
	var res SuppressResult
	if err != nil || val.Get(&res) != nil || res.Recorded || len(f.starts) != 0 {
		t.Errorf("without a key: %+v, %v, %d starts; want nothing recorded", res, err, len(f.starts))
	}

	on := &Suppressions{Client: f, Key: supKey}
	aenv = env.NewTestActivityEnvironment()
	aenv.RegisterActivity(on)
	_, err = aenv.ExecuteActivity(on.Suppress, SuppressInput{Workspace: "default", Recipient: "not an address", Entry: supEntry})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrSuppressInvalid || !appErr.NonRetryable() || !strings.Contains(appErr.Message(), "recipient") {
		t.Errorf("bad recipient: %v; want a non-retryable %s naming recipient", err, ErrSuppressInvalid)
	}
	if strings.Contains(err.Error(), "not an address") {
		t.Errorf("error %q quotes the address", err)
	}
}

// running is a suppression's execution as Describe answers it, its memo
// encoded with dc.
func running(t *testing.T, dc converter.DataConverter, status enumspb.WorkflowExecutionStatus, sum *suppression.Summary) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	info := &workflowpb.WorkflowExecutionInfo{Status: status}
	if sum != nil {
		p, err := dc.ToPayload(*sum)
		if err != nil {
			t.Fatal(err)
		}
		info.Memo = &commonpb.Memo{Fields: map[string]*commonpb.Payload{suppression.MemoSummary: p}}
	}
	return info
}

// Send checks the recipient's workspace's list first: a running suppression
// aborts it with the entry's reason and no ESP call; a lifted one, none, or
// another workspace's lets it go out; a list that cannot be read fails the
// attempt (retried) without any ESP call.
func TestSendChecksSuppressions(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	encrypted, _, err := codec.ForKeys([]string{base64.StdEncoding.EncodeToString(raw)})
	if err != nil {
		t.Fatal(err)
	}
	id := suppression.WorkflowID("default", suppression.ID(supKey, "default", "ann@example.com"))
	sum := &suppression.Summary{Hint: "a***@example.com", Entry: supEntry}
	tests := []struct {
		name      string
		to        string
		workspace string
		exec      *workflowpb.WorkflowExecutionInfo // nil: none
		descErr   error
		dc        converter.DataConverter
		wantErr   string // "": sent
		retryable bool
		described bool
	}{
		{name: "not suppressed", to: "ann@example.com", workspace: "default", described: true},
		{name: "suppressed", to: "Ann <ANN@example.com>", workspace: "default", described: true,
			exec: running(t, converter.GetDefaultDataConverter(), enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, sum), wantErr: supEntry.Reason()},
		{name: "suppressed, memo encrypted", to: "ann@example.com", workspace: "default", described: true, dc: encrypted,
			exec: running(t, encrypted, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, sum), wantErr: supEntry.Reason()},
		{name: "suppressed, memo unreadable", to: "ann@example.com", workspace: "default", described: true,
			exec: running(t, encrypted, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, sum), wantErr: "suppressed"},
		{name: "lifted", to: "ann@example.com", workspace: "default", described: true,
			exec: running(t, converter.GetDefaultDataConverter(), enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, sum)},
		{name: "another workspace's", to: "ann@example.com", workspace: "globex", described: true,
			exec: running(t, converter.GetDefaultDataConverter(), enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, sum)},
		{name: "list unreadable", to: "ann@example.com", workspace: "default", described: true,
			descErr: serviceerror.NewUnavailable("connection refused"), wantErr: "checking the suppression list", retryable: true},
		{name: "attempt scheduled before the list", to: "ann@example.com", workspace: "",
			exec: running(t, converter.GetDefaultDataConverter(), enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, sum)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &supTemporal{executions: map[string]*workflowpb.WorkflowExecutionInfo{}, describeErr: tt.descErr}
			if tt.exec != nil {
				f.executions[id] = tt.exec
			}
			sender := &countingESP{}
			acts := &Activities{ESP: sender, Suppressions: &Suppressions{Client: f, Key: supKey, DataConverter: tt.dc}}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(acts)
			_, err := env.ExecuteActivity(acts.Send, SendInput{Email: esp.Email{DispatchID: "d", To: tt.to}, Workspace: tt.workspace})

			if got := len(f.described) > 0; got != tt.described {
				t.Errorf("described %v, want %v", f.described, tt.described)
			}
			if tt.wantErr == "" {
				if err != nil || sender.count() != 1 {
					t.Fatalf("got %v, %d ESP calls; want sent once", err, sender.count())
				}
				return
			}
			if sender.count() != 0 {
				t.Errorf("%d ESP calls, want none", sender.count())
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || !strings.Contains(appErr.Message(), tt.wantErr) {
				t.Fatalf("got %v, want an error saying %q", err, tt.wantErr)
			}
			if tt.retryable {
				if appErr.NonRetryable() {
					t.Errorf("%v is not retried; want a retryable failure", err)
				}
				return
			}
			if appErr.Type() != ErrSuppressed || !appErr.NonRetryable() || appErr.Message() != tt.wantErr {
				t.Errorf("got %s %q (non-retryable %v), want a non-retryable %s %q", appErr.Type(), appErr.Message(), appErr.NonRetryable(), ErrSuppressed, tt.wantErr)
			}
		})
	}
}

// Without a list (no key, or none given), Send reads nothing before the ESP.
func TestSendWithoutSuppressions(t *testing.T) {
	t.Parallel()
	for name, sup := range map[string]*Suppressions{"none": nil, "no key": {Client: &supTemporal{}}} {
		sender := &countingESP{}
		acts := &Activities{ESP: sender, Suppressions: sup}
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(acts)
		if _, err := env.ExecuteActivity(acts.Send, SendInput{Email: esp.Email{DispatchID: "d", To: "ann@example.com"}, Workspace: "default"}); err != nil || sender.count() != 1 {
			t.Errorf("%s: %v, %d ESP calls; want sent", name, err, sender.count())
		}
	}
}
