package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
)

// Temporal names of the Recovery workflow.
const (
	// RecoveryWorkflow is the workflow type of Recovery: one endpoint's
	// postbacks replayed across its open messages (POST
	// /v1/endpoints/{id}/replay, or an enable with replay_held).
	RecoveryWorkflow = "Recovery"
	// QueryRecovery answers the RecoveryStatus.
	QueryRecovery = "recovery"
	// SignalRecoveryProgress carries the activity's RecoveryProgress.
	SignalRecoveryProgress = "recovery-progress"
)

// RecoveryWorkflowID is the workflow ID of endpoint id's recovery. One ID per
// endpoint: a second recovery of the same endpoint cannot start while one
// runs (the API answers 409), and can once it has closed.
func RecoveryWorkflowID(endpoint string) string { return "dispatchflow-recovery-" + endpoint }

// RecoveryProgress counts what a recovery did (the workflow's result).
type RecoveryProgress = activities.RecoveryProgress

// RecoveryInput is what a Recovery replays: the postbacks of one endpoint, in
// the given states, whose events reached dispatchflow in [Since, Until).
type RecoveryInput struct {
	Endpoint  string `json:"endpoint"`
	Workspace string `json:"workspace"`
	// States: of delivered, failed and held, those to replay.
	States []string  `json:"states"`
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	// PerSecond paces the recovery, in messages per second (zero:
	// activities.DefaultRecoveryRate).
	PerSecond float64 `json:"per_second,omitempty"`
	// Delay is waited before the first message: workers read an endpoint's
	// switch up to health.CacheTTL late, and a postback replayed before they
	// see it enabled would be held again.
	Delay time.Duration `json:"delay,omitempty"`
}

// Recovery states (RecoveryStatus.State).
const (
	RecoveryWaiting   = "waiting"   // the start delay
	RecoveryRunning   = "running"   // replaying
	RecoveryCompleted = "completed" // every selected message was visited
	RecoveryFailed    = "failed"    // the activity gave up (retries or time exhausted)
)

// RecoveryStatus is the recovery query's answer: the input, the state, and
// the progress as last reported (every minute while running).
type RecoveryStatus struct {
	State      string        `json:"state"`
	Input      RecoveryInput `json:"input"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
	RecoveryProgress
	Error string `json:"error,omitempty"`
}

// Bounds of a recovery's activity: it heartbeats after every message, so a
// dead worker is noticed within recoveryHeartbeatTimeout and the retry resumes
// from the last heartbeat; the whole recovery has recoveryMaxDuration (at the
// default pace, over two million messages).
const (
	recoveryHeartbeatTimeout = 30 * time.Second
	recoveryMaxDuration      = 72 * time.Hour
)

var recoveryRetry = &temporal.RetryPolicy{
	InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 20,
}

// RecoveryQuery is the visibility query of the messages a recovery of
// endpoint (of workspace) visits: the open messages holding, or having failed,
// postbacks for it, as states ask. With "delivered" no search attribute says
// which messages delivered to the endpoint: every open message of the
// workspace is visited, and those without a match are skipped.
func RecoveryQuery(workspace, endpoint string, states []string) string {
	q := fmt.Sprintf("WorkflowType = %s AND ExecutionStatus = 'Running' AND %s = %s",
		quoteQuery(MessageWorkflow), SearchWorkspace.GetName(), quoteQuery(workspace))
	var or []string
	for _, s := range states {
		switch s {
		case PostbackHeld:
			or = append(or, SearchHeldEndpoints.GetName()+" = "+quoteQuery(endpoint))
		case PostbackFailed:
			or = append(or, SearchFailedEndpoints.GetName()+" = "+quoteQuery(endpoint))
		case PostbackDelivered:
			return q
		}
	}
	if len(or) == 0 {
		return q
	}
	return q + " AND (" + strings.Join(or, " OR ") + ")"
}

// quoteQuery is s as a string literal of a visibility query: quoted, its
// quotes and backslashes escaped, so that no value changes the query's meaning.
func quoteQuery(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Recovery replays one endpoint's postbacks across its open messages: after
// in.Delay, one long activity (activities.Recovery.ReplayMessages) pages
// through RecoveryQuery and sends each message the replay update
// (UpdateReplayPostbacks) for the endpoint, states and times of in, paced; each
// message's own workflow then re-sends them, in its order, with the same
// webhook-id. The result, and the query QueryRecovery, count the messages
// reached, the postbacks replayed, the messages skipped and the errors.
func Recovery(ctx workflow.Context, in RecoveryInput) (RecoveryProgress, error) {
	st := RecoveryStatus{State: RecoveryRunning, Input: in, StartedAt: workflow.Now(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryRecovery, func() (RecoveryStatus, error) { return st, nil }); err != nil {
		return RecoveryProgress{}, err
	}
	progress := workflow.GetSignalChannel(ctx, SignalRecoveryProgress)
	if in.Delay > 0 {
		st.State = RecoveryWaiting
		if err := workflow.NewTimerWithOptions(ctx, in.Delay, workflow.TimerOptions{
			Summary: "until every worker sees endpoint " + in.Endpoint + " enabled",
		}).Get(ctx, nil); err != nil {
			return st.RecoveryProgress, err
		}
		st.State = RecoveryRunning
	}
	// A struct without maps encodes the same bytes every time: deterministic,
	// whatever workflowcheck infers from encoding/json's map support.
	arg, err := json.Marshal(ReplayInput{Endpoint: in.Endpoint, States: in.States, Since: in.Since, Until: in.Until}) //workflowcheck:ignore
	if err != nil {
		return RecoveryProgress{}, err
	}
	var r *activities.Recovery
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: recoveryMaxDuration,
		HeartbeatTimeout:       recoveryHeartbeatTimeout,
		RetryPolicy:            recoveryRetry,
		Summary:                fmt.Sprintf("replay the %s postbacks of endpoint %s", strings.Join(in.States, ", "), in.Endpoint),
	})
	fut := workflow.ExecuteActivity(actx, r.ReplayMessages, activities.ReplayMessagesInput{
		Query: RecoveryQuery(in.Workspace, in.Endpoint, in.States), Update: UpdateReplayPostbacks, Arg: arg,
		Rejected: ErrReplayNothing, PerSecond: in.PerSecond, ProgressSignal: SignalRecoveryProgress,
	})
	sel := workflow.NewSelector(ctx)
	done := false
	sel.AddFuture(fut, func(workflow.Future) { done = true })
	sel.AddReceive(progress, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &st.RecoveryProgress) })
	for !done {
		sel.Select(ctx)
	}
	for progress.ReceiveAsync(nil) { // reports overtaken by the result
	}
	st.FinishedAt = workflow.Now(ctx)
	var res RecoveryProgress
	if err := fut.Get(ctx, &res); err != nil {
		st.State, st.Error = RecoveryFailed, err.Error()
		workflow.GetLogger(ctx).Warn("recovery failed", "endpoint", in.Endpoint, "error", err)
		return st.RecoveryProgress, err
	}
	st.State, st.RecoveryProgress = RecoveryCompleted, res
	workflow.GetLogger(ctx).Info("recovery completed", "endpoint", in.Endpoint, "messages_reached", res.MessagesReached,
		"postbacks_replayed", res.PostbacksReplayed, "skipped", res.Skipped, "errors", res.Errors)
	return res, nil
}
