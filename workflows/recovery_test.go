package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/workflows"
)

func TestRecoveryWorkflowID(t *testing.T) {
	require.Equal(t, "dispatchflow-recovery-crm", workflows.RecoveryWorkflowID("crm"))
}

// The visibility query selects the workspace's open messages holding (or
// having failed) postbacks for the endpoint, as the states ask; values are
// quoted and escaped.
func TestRecoveryQuery(t *testing.T) {
	const open = "WorkflowType = 'Message' AND ExecutionStatus = 'Running' AND Workspace = 'default'"
	tests := []struct {
		name, workspace, endpoint string
		states                    []string
		want                      string
	}{
		{"held", "default", "crm", []string{"held"}, open + " AND (HeldEndpoints = 'crm')"},
		{"failed and held", "default", "crm", []string{"failed", "held"}, open + " AND (FailedEndpoints = 'crm' OR HeldEndpoints = 'crm')"},
		{"delivered: every open message of the workspace", "default", "crm", []string{"held", "delivered"}, open},
		{"quotes and backslashes escaped", `a'b`, `x\' OR 1=1 --`, []string{"held"},
			`WorkflowType = 'Message' AND ExecutionStatus = 'Running' AND Workspace = 'a\'b' AND (HeldEndpoints = 'x\\\' OR 1=1 --')`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, workflows.RecoveryQuery(tc.workspace, tc.endpoint, tc.states))
		})
	}
}

// recoveryHarness runs a Recovery workflow with ReplayMessages mocked by replay.
type recoveryHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
}

func newRecoveryHarness(t *testing.T, replay func(context.Context, activities.ReplayMessagesInput) (activities.RecoveryProgress, error)) *recoveryHarness {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	var r *activities.Recovery
	env.RegisterActivity(r)
	env.OnActivity(r.ReplayMessages, mock.Anything, mock.Anything).Return(replay)
	return &recoveryHarness{t: t, env: env}
}

func (h *recoveryHarness) status() workflows.RecoveryStatus {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(workflows.QueryRecovery)
	require.NoError(h.t, err)
	var st workflows.RecoveryStatus
	require.NoError(h.t, v.Get(&st))
	return st
}

// A recovery waits its delay, then runs one activity over the endpoint's
// messages (heartbeating, retried), which sends each the replay update for the
// endpoint, states and window; the query answers the progress the activity
// reports while it runs, and the result at the end.
func TestRecoveryWorkflow(t *testing.T) {
	since, until := t0.Add(-48*time.Hour), t0.Add(-time.Hour)
	in := workflows.RecoveryInput{Endpoint: "crm", Workspace: "eu", States: []string{"failed", "held"},
		Since: since, Until: until, Delay: 6 * time.Second}
	final := activities.RecoveryProgress{MessagesReached: 3, PostbacksReplayed: 7, Skipped: 1, Errors: 1, LastError: "message x: boom"}
	var got activities.ReplayMessagesInput
	var startedAt time.Time
	var info activity.Info
	var h *recoveryHarness
	h = newRecoveryHarness(t, func(ctx context.Context, in activities.ReplayMessagesInput) (activities.RecoveryProgress, error) {
		got, info, startedAt = in, activity.GetInfo(ctx), h.env.Now()
		return final, nil
	})
	var waiting workflows.RecoveryStatus
	h.env.RegisterDelayedCallback(func() { waiting = h.status() }, time.Second)
	h.env.ExecuteWorkflow(workflows.Recovery, in)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res workflows.RecoveryProgress
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, final, res)

	require.Equal(t, workflows.RecoveryWaiting, waiting.State, "during the delay")
	require.False(t, startedAt.Before(t0.Add(in.Delay)), "the activity started at %s, before the delay ran out", startedAt)
	require.Equal(t, workflows.RecoveryQuery("eu", "crm", in.States), got.Query)
	require.Equal(t, workflows.UpdateReplayPostbacks, got.Update)
	require.Equal(t, workflows.ErrReplayNothing, got.Rejected)
	require.Equal(t, workflows.SignalRecoveryProgress, got.ProgressSignal)
	var arg workflows.ReplayInput
	require.NoError(t, json.Unmarshal(got.Arg, &arg))
	require.Equal(t, "crm", arg.Endpoint)
	require.Equal(t, in.States, arg.States)
	sameTime(t, since, arg.Since, "since")
	sameTime(t, until, arg.Until, "until")
	require.Empty(t, arg.Status)
	require.Equal(t, 30*time.Second, info.HeartbeatTimeout, "a dead worker is noticed within the heartbeat timeout")

	st := h.status()
	require.Equal(t, workflows.RecoveryCompleted, st.State)
	require.Equal(t, final, st.RecoveryProgress)
	require.Equal(t, "crm", st.Input.Endpoint)
	require.False(t, st.FinishedAt.IsZero())
}

// The progress the activity signals shows in the query while it runs.
func TestRecoveryWorkflowProgress(t *testing.T) {
	var h *recoveryHarness
	mid := activities.RecoveryProgress{MessagesReached: 100, PostbacksReplayed: 250}
	h = newRecoveryHarness(t, func(ctx context.Context, _ activities.ReplayMessagesInput) (activities.RecoveryProgress, error) {
		time.Sleep(50 * time.Millisecond) // the progress signal and query run meanwhile
		return activities.RecoveryProgress{MessagesReached: 200, PostbacksReplayed: 500}, nil
	})
	var running workflows.RecoveryStatus
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalRecoveryProgress, mid)
	}, time.Millisecond)
	h.env.RegisterDelayedCallback(func() { running = h.status() }, 2*time.Millisecond)
	h.env.SetTestTimeout(10 * time.Second)
	h.env.ExecuteWorkflow(workflows.Recovery, workflows.RecoveryInput{Endpoint: "crm", Workspace: "default", States: []string{"held"}})
	require.NoError(t, h.env.GetWorkflowError())
	require.Equal(t, workflows.RecoveryRunning, running.State)
	require.Equal(t, mid, running.RecoveryProgress)
	require.Equal(t, 200, h.status().MessagesReached)
}

// An activity that keeps failing fails the recovery after its retries; the
// query says so with the last progress known.
func TestRecoveryWorkflowFails(t *testing.T) {
	attempts := 0
	h := newRecoveryHarness(t, func(ctx context.Context, _ activities.ReplayMessagesInput) (activities.RecoveryProgress, error) {
		attempts++
		return activities.RecoveryProgress{}, temporal.NewApplicationError("temporal unavailable", "Unavailable")
	})
	h.env.ExecuteWorkflow(workflows.Recovery, workflows.RecoveryInput{Endpoint: "crm", Workspace: "default", States: []string{"held"}})
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "got %v", err)
	require.Equal(t, 20, attempts, "the retry policy's attempts")
	st := h.status()
	require.Equal(t, workflows.RecoveryFailed, st.State)
	require.Contains(t, st.Error, "temporal unavailable")
}
