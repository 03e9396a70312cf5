package activities

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// fakeTemporal serves ListWorkflow from pages (by page token, "" the first)
// and answers each message's update as outcomes says: a count of replayed
// postbacks, or an error.
type fakeTemporal struct {
	client.Client
	t       *testing.T
	query   string
	pages   map[string]fakePage
	outcome map[string]any

	mu      sync.Mutex
	updates []string
	at      []time.Time
	args    []any
	listErr error
}

type fakePage struct {
	ids  []string
	next string
}

func (f *fakeTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	if req.GetQuery() != f.query || req.GetPageSize() != RecoveryPageSize || req.GetNamespace() != "ns" {
		f.t.Errorf("ListWorkflow(%q, page size %d, namespace %q), want %q, %d, ns", req.GetQuery(), req.GetPageSize(), req.GetNamespace(), f.query, RecoveryPageSize)
	}
	p, ok := f.pages[string(req.GetNextPageToken())]
	if !ok {
		f.t.Fatalf("no page %q", req.GetNextPageToken())
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{NextPageToken: []byte(p.next)}
	for _, id := range p.ids {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{Execution: &commonpb.WorkflowExecution{WorkflowId: id}})
	}
	return resp, nil
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, opts.WorkflowID)
	f.at = append(f.at, time.Now())
	f.args = append(f.args, opts.Args...)
	if opts.UpdateName != "postbacks-replay" || opts.WaitForStage != client.WorkflowUpdateStageCompleted || opts.RunID != "" {
		f.t.Errorf("update %+v, want postbacks-replay to the current run, waiting for its completion", opts)
	}
	switch o := f.outcome[opts.WorkflowID].(type) {
	case error:
		return nil, o
	case int:
		return fakeHandle{replayed: o}, nil
	}
	f.t.Fatalf("no outcome for %s", opts.WorkflowID)
	return nil, nil
}

func (f *fakeTemporal) SignalWorkflow(context.Context, string, string, string, any) error { return nil }

type fakeHandle struct {
	client.WorkflowUpdateHandle
	replayed int
}

func (h fakeHandle) Get(_ context.Context, v any) error {
	b, _ := json.Marshal(map[string]int{"replayed": h.replayed})
	return json.Unmarshal(b, v)
}

func recoveryInput(perSecond float64) ReplayMessagesInput {
	return ReplayMessagesInput{Query: "the query", Update: "postbacks-replay", Arg: json.RawMessage(`{"endpoint":"crm","states":["held"]}`),
		Rejected: "ReplayNothing", PerSecond: perSecond}
}

func newFake(t *testing.T) *fakeTemporal {
	return &fakeTemporal{t: t, query: "the query",
		pages: map[string]fakePage{"": {ids: []string{"m1", "m2", "m3"}, next: "p2"}, "p2": {ids: []string{"m4", "m5"}}},
		outcome: map[string]any{
			"m1": 2,
			"m2": temporal.NewApplicationError("no finished postback matches the replay", "ReplayNothing"),
			"m3": serviceerror.NewNotFound("workflow execution already completed"),
			"m4": errors.New("update failed"),
			"m5": 1,
		}}
}

// runRecovery runs ReplayMessages against f, from heartbeat details hb (nil:
// none), and returns its result, its error and the last heartbeat.
func runRecovery(t *testing.T, f *fakeTemporal, in ReplayMessagesInput, hb *recoveryCheckpoint) (RecoveryProgress, error, recoveryCheckpoint) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(&Recovery{Client: f, Namespace: "ns"})
	if hb != nil {
		env.SetHeartbeatDetails(*hb)
	}
	var mu sync.Mutex
	var last recoveryCheckpoint
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var cp recoveryCheckpoint
		if err := details.Get(&cp); err != nil {
			t.Errorf("heartbeat details: %v", err)
		}
		mu.Lock()
		last = cp
		mu.Unlock()
	})
	var r *Recovery
	v, err := env.ExecuteActivity(r.ReplayMessages, in)
	var res RecoveryProgress
	if err == nil {
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return res, err, last
}

// Every message of every page is sent the update, paced, and counted: reached
// (with its postbacks), skipped (nothing matched, or closed) or an error.
func TestReplayMessages(t *testing.T) {
	f := newFake(t)
	in := recoveryInput(50)
	start := time.Now()
	res, err, last := runRecovery(t, f, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m1", "m2", "m3", "m4", "m5"}; !slices.Equal(f.updates, want) {
		t.Errorf("updates sent to %v, want %v", f.updates, want)
	}
	for _, a := range f.args {
		if raw, _ := json.Marshal(a); string(raw) != string(in.Arg) {
			t.Errorf("update argument %s, want %s", raw, in.Arg)
		}
	}
	want := RecoveryProgress{MessagesReached: 2, PostbacksReplayed: 3, Skipped: 2, Errors: 1}
	if res.LastError == "" || !strings.Contains(res.LastError, "m4") {
		t.Errorf("last error %q, want m4's", res.LastError)
	}
	res.LastError = ""
	if res != want {
		t.Errorf("progress %+v, want %+v", res, want)
	}
	// 50 a second: 20ms at least between two updates.
	for i := 1; i < len(f.at); i++ {
		if gap := f.at[i].Sub(f.at[i-1]); gap < 10*time.Millisecond { // 20ms, less the scheduling noise
			t.Errorf("%s between updates %d and %d, want about 20ms (50/s)", gap, i, i+1)
		}
	}
	if elapsed := time.Since(start); elapsed < 80*time.Millisecond {
		t.Errorf("5 messages in %s, want 80ms at least at 50/s", elapsed)
	}
	// Heartbeats are throttled: the first goes out at once, the others batched.
	if !slices.Equal(last.Done, []string{"m1"}) && len(last.Page) == 0 {
		t.Errorf("first heartbeat %+v, want m1 done", last)
	}
}

// A retried attempt resumes from the heartbeat: the page it was on, without
// the messages of it already done, with the counts so far.
func TestReplayMessagesResumes(t *testing.T) {
	f := newFake(t)
	hb := recoveryCheckpoint{Progress: RecoveryProgress{MessagesReached: 1, PostbacksReplayed: 2, Skipped: 2}, Page: []byte("p2"), Done: []string{"m4"}}
	res, err, _ := runRecovery(t, f, recoveryInput(1000), &hb)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.updates, []string{"m5"}) {
		t.Errorf("updates sent to %v, want only m5", f.updates)
	}
	if want := (RecoveryProgress{MessagesReached: 2, PostbacksReplayed: 3, Skipped: 2}); res != want {
		t.Errorf("progress %+v, want %+v", res, want)
	}
}

// An unavailable Temporal ends the attempt with an error (retried by the
// workflow's policy), leaving the message it stopped at to the next attempt.
func TestReplayMessagesUnavailable(t *testing.T) {
	f := newFake(t)
	f.outcome["m3"] = serviceerror.NewUnavailable("frontend down")
	_, err, last := runRecovery(t, f, recoveryInput(1000), nil)
	if err == nil || !strings.Contains(err.Error(), "frontend down") {
		t.Fatalf("error %v, want the unavailable update's", err)
	}
	if len(last.Page) != 0 || !slices.Equal(last.Done, []string{"m1", "m2"}) {
		t.Errorf("last heartbeat %+v, want the first page with m1 and m2 done", last)
	}

	f = newFake(t)
	f.listErr = serviceerror.NewUnavailable("frontend down")
	if _, err, _ := runRecovery(t, f, recoveryInput(1000), nil); err == nil {
		t.Errorf("a failed list: no error")
	}
}
