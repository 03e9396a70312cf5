package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/suppression"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// supCalls records the Suppress activity's calls in a message harness.
type supCalls struct {
	mu    sync.Mutex
	calls []activities.SuppressInput
	local []bool
}

// mockSuppress registers the Suppress activity on h's environment, answering
// call n (0-based, local and regular attempts together) with fn (nil:
// recorded) after delay(n) on the workflow clock (nil: at once).
func mockSuppress(h *harness, delay func(n int) time.Duration, fn func(n int) error) *supCalls {
	rec := &supCalls{}
	s := &activities.Suppressions{}
	h.env.RegisterActivity(s)
	started := 0
	h.env.OnActivity(s.Suppress, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := started
		started++
		if delay == nil {
			return 0
		}
		return delay(n)
	}).Return(
		func(ctx context.Context, in activities.SuppressInput) (activities.SuppressResult, error) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			n := len(rec.calls)
			rec.calls = append(rec.calls, in)
			rec.local = append(rec.local, activity.GetInfo(ctx).IsLocalActivity)
			if fn != nil {
				if err := fn(n); err != nil {
					return activities.SuppressResult{}, err
				}
			}
			return activities.SuppressResult{Recorded: true}, nil
		})
	return rec
}

func (r *supCalls) get() ([]activities.SuppressInput, []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]activities.SuppressInput(nil), r.calls...), append([]bool(nil), r.local...)
}

// A hard bounce, a complaint or an unsubscribe the message accepts adds its
// address to its workspace's list, with the cause, provider, dispatch_id and
// the event's time; any other event, or one the message ignores, adds
// nothing.
func TestMessageSuppressesOnFinalEvents(t *testing.T) {
	sendgrid := esp.Receipt{Provider: "sendgrid", MessageID: "sg-1", Response: "202 Accepted"}
	tests := []struct {
		name    string
		receipt esp.Receipt // the ESP the message was handed to (default okReceipt)
		ev      message.Event
		want    suppression.Cause // "": no Suppress call
	}{
		{name: "hard bounce", ev: event(message.EventBounced, "b"), want: suppression.CauseHardBounce},
		{name: "complaint", ev: event(message.EventComplaint, "c"), want: suppression.CauseComplaint},
		{name: "unsubscribe", ev: event(message.EventUnsubscribe, "u"), want: suppression.CauseUnsubscribe},
		{name: "generic intake's bounce", ev: message.Event{Provider: "generic", Type: message.EventBounced, ID: "g",
			Workspace: message.DefaultWorkspace}, want: suppression.CauseHardBounce},
		{name: "sendgrid hard bounce", receipt: sendgrid,
			ev: message.Event{Provider: "sendgrid", Type: message.EventBounced, RawType: "bounce/bounce", ID: "sg"}, want: suppression.CauseHardBounce},
		{name: "sendgrid block: not the address", receipt: sendgrid,
			ev: message.Event{Provider: "sendgrid", Type: message.EventBounced, RawType: "bounce/blocked", ID: "sg"}},
		{name: "soft bounce", ev: event(message.EventDeferred, "d")},
		{name: "open", ev: event(message.EventOpen, "o")},
		{name: "delivered", ev: event(message.EventDelivered, "dl")},
		{name: "aborted by the ESP", ev: event(message.EventAborted, "a")},
		// Reported by a provider that did not carry the message: ignored.
		{name: "another provider's bounce", ev: message.Event{Provider: "mailgun", Type: message.EventBounced, ID: "mg"}},
		// The generic intake, signed by another workspace: ignored.
		{name: "another workspace's generic bounce", ev: message.Event{Provider: "generic", Type: message.EventBounced, ID: "g2",
			Workspace: "globex"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.in.Request.Workspace = message.DefaultWorkspace // as the API sets it
			if tc.receipt.Provider != "" {
				h.sendFn = func(int) (activities.SendResult, error) {
					return activities.SendResult{Receipt: tc.receipt, ExecutedAt: executedAt, SentAt: sentAt}, nil
				}
			}
			calls := mockSuppress(h, nil, nil)
			tc.ev.DispatchID = testDispatchID
			tc.ev.Timestamp = t0.Add(90 * time.Second)
			h.signalAt(2*time.Minute, tc.ev)
			st := h.result()

			got, local := calls.get()
			if tc.want == "" {
				require.Empty(t, got, "Suppress calls for %s", tc.ev.Type)
				return
			}
			require.Len(t, got, 1)
			require.True(t, local[0], "the first attempt is local")
			require.Equal(t, activities.SuppressInput{Workspace: message.DefaultWorkspace, Recipient: "ann@example.com",
				Entry: suppression.Entry{Cause: tc.want, Provider: tc.ev.Provider, DispatchID: testDispatchID, At: t0.Add(90 * time.Second)}},
				got[0])
			require.NotEqual(t, message.StatusQueued, st.Status)
		})
	}
}

// A Suppress that fails is retried as a regular activity, and the message
// does not close before it ends, however long that takes.
func TestMessageWaitsForSuppress(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	window := h.in.Policy.TrackingWindow
	slow := 3 * window // the last attempt outlasts the tracking window
	calls := mockSuppress(h, func(n int) time.Duration {
		if n == 2 {
			return slow
		}
		return 0
	}, func(n int) error {
		if n < 2 {
			return errors.New("temporal: unavailable")
		}
		return nil
	})
	h.signalAt(time.Minute, event(message.EventBounced, "b"))
	st := h.result()
	require.Equal(t, message.StatusBounced, st.Status)
	got, local := calls.get()
	require.Len(t, got, 3, "a local attempt, then regular ones until one succeeds")
	require.Equal(t, []bool{true, false, false}, local)
	require.Greater(t, h.elapsed(), time.Minute+slow, "closed before Suppress ended")
}

// A send the check found suppressed is aborted with the entry's reason, at
// once (not retried), the aborted postback carries it, and the fallback
// escalates when its policy is on aborted.
func TestSuppressedSendAbortsAndEscalates(t *testing.T) {
	t.Parallel()
	const reason = "suppressed (hard bounce via sendgrid, dispatch 0123456789abcdef0123456789abcdef, 2026-11-28T09:25:00Z)"
	h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusAborted), fbWebhook(fbHook)))
	h.in.Request.Workspace = "eu"
	h.sendFn = func(int) (activities.SendResult, error) {
		return activities.SendResult{}, temporal.NewNonRetryableApplicationError(reason, activities.ErrSuppressed, nil)
	}
	st := h.run()

	require.Equal(t, message.StatusAborted, st.Status)
	require.Equal(t, reason, st.Reason)
	sends := h.sendCalls()
	require.Len(t, sends, 1, "a suppressed send is not retried")
	require.Equal(t, "eu", sends[0].SendIn.Workspace, "the list checked is the message's workspace's")
	require.Nil(t, st.ESP, "no ESP receipt")
	last := st.Events[0]
	require.Equal(t, message.EventAborted, last.Type)
	require.Equal(t, reason, last.Reason)

	var aborted *workflows.PostbackRecord
	for i := range st.Postbacks {
		if st.Postbacks[i].Status == message.StatusAborted {
			aborted = &st.Postbacks[i]
		}
	}
	require.NotNil(t, aborted, "aborted postback")
	require.Equal(t, reason, aborted.Body.Metadata.Reason)

	require.Equal(t, workflows.FallbackEscalated, st.Fallback.State)
	require.Equal(t, fallback.ReasonAborted, st.Fallback.Reason)
	require.Len(t, h.fallbackCalls(), 1)
}

// suppressionEnv runs one Suppression workflow.
func suppressionEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	return env
}

func supEntry(i int, cause suppression.Cause) suppression.Entry {
	return suppression.Entry{Cause: cause, Provider: "sendgrid", DispatchID: fmt.Sprintf("%032x", i), At: t0.Add(time.Duration(i) * time.Second)}
}

func querySuppression(t *testing.T, env *testsuite.TestWorkflowEnvironment) suppression.State {
	t.Helper()
	v, err := env.QueryWorkflow(suppression.QueryState)
	require.NoError(t, err)
	var st suppression.State
	require.NoError(t, v.Get(&st))
	return st
}

// removeCallback records an update's outcome.
type removeCallback struct {
	rejected error
	done     bool
	err      error
	state    suppression.State
}

func (c *removeCallback) callbacks() *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { c.rejected = err },
		OnComplete: func(v any, err error) {
			c.done, c.err = true, err
			if err == nil {
				b, _ := v.(converter.EncodedValue)
				if b != nil {
					c.err = b.Get(&c.state)
				} else if st, ok := v.(suppression.State); ok {
					c.state = st
				}
			}
		},
	}
}

// Entries accumulate (a message's repeated report of one cause once); the
// query answers them; the remove update lifts the suppression and the
// workflow completes with it, in the same workflow task.
func TestSuppressionWorkflow(t *testing.T) {
	t.Parallel()
	env := suppressionEnv(t)
	first, second := supEntry(1, suppression.CauseHardBounce), supEntry(2, suppression.CauseComplaint)
	var mid suppression.State
	rm := &removeCallback{}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(suppression.SignalAdd, first) }, time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(suppression.SignalAdd, second) }, 2*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(suppression.SignalAdd, first) }, 3*time.Second) // retried activity
	env.RegisterDelayedCallback(func() { mid = querySuppression(t, env) }, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(suppression.UpdateRemove, "rm", rm.callbacks(), suppression.RemoveInput{Reason: "asked by the recipient"})
	}, 2*time.Hour)
	env.ExecuteWorkflow(workflows.Suppression, suppression.Input{Workspace: "eu", Hint: "a***@example.com"})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 2*time.Hour, env.Now().Sub(t0), "completed when lifted, not before")
	require.Equal(t, "eu", mid.Workspace)
	require.Equal(t, "a***@example.com", mid.Hint)
	require.Equal(t, []suppression.Entry{first, second}, normalizeEntries(mid.Entries))
	require.Equal(t, 2, mid.Count)
	sameTime(t, t0.Add(time.Second), mid.Since, "since")
	require.Nil(t, mid.Lifted)

	require.NoError(t, rm.rejected)
	require.True(t, rm.done)
	require.NoError(t, rm.err)
	require.NotNil(t, rm.state.Lifted)
	require.Equal(t, "asked by the recipient", rm.state.Lifted.Reason)
	var result suppression.State
	require.NoError(t, env.GetWorkflowResult(&result))
	require.NotNil(t, result.Lifted)
	sameTime(t, t0.Add(2*time.Hour), result.Lifted.At, "lifted at")
}

// Times decoded from payloads may differ in *time.Location only.
func normalizeEntries(es []suppression.Entry) []suppression.Entry {
	out := make([]suppression.Entry, len(es))
	for i, e := range es {
		e.At = e.At.UTC()
		out[i] = e
	}
	return out
}

// However many reports, the state keeps the first (what suppressed) and the
// latest, and counts them all.
func TestSuppressionBounded(t *testing.T) {
	t.Parallel()
	env := suppressionEnv(t)
	const n = 50
	var st suppression.State
	env.RegisterDelayedCallback(func() {
		for i := range n {
			env.SignalWorkflow(suppression.SignalAdd, supEntry(i, suppression.CauseHardBounce))
		}
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		st = querySuppression(t, env)
		env.UpdateWorkflow(suppression.UpdateRemove, "rm", (&removeCallback{}).callbacks(), suppression.RemoveInput{})
	}, time.Minute)
	env.ExecuteWorkflow(workflows.Suppression, suppression.Input{Workspace: "default", Hint: "a***@example.com"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, n, st.Count)
	require.Len(t, st.Entries, 20)
	require.Equal(t, supEntry(0, suppression.CauseHardBounce).DispatchID, st.Entries[0].DispatchID, "the first stays")
	require.Equal(t, supEntry(n-1, suppression.CauseHardBounce).DispatchID, st.Entries[19].DispatchID, "then the latest")
}

// A remove with a reason over the bound is refused, naming the field, and
// the address stays suppressed until a valid remove.
func TestSuppressionRemoveRefused(t *testing.T) {
	t.Parallel()
	env := suppressionEnv(t)
	long, ok := &removeCallback{}, &removeCallback{}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(suppression.SignalAdd, supEntry(1, suppression.CauseUnsubscribe)) }, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(suppression.UpdateRemove, "long", long.callbacks(), suppression.RemoveInput{Reason: strings.Repeat("x", 501)})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(suppression.UpdateRemove, "ok", ok.callbacks(), suppression.RemoveInput{})
	}, 2*time.Minute)
	env.ExecuteWorkflow(workflows.Suppression, suppression.Input{Workspace: "default"})
	require.NoError(t, env.GetWorkflowError())

	var appErr *temporal.ApplicationError
	require.True(t, errors.As(long.rejected, &appErr), "got %v, want a rejection", long.rejected)
	require.Equal(t, workflows.ErrSuppressionInvalid, appErr.Type())
	require.Contains(t, appErr.Message(), "reason")
	require.False(t, long.done)
	require.True(t, ok.done)
	require.NoError(t, ok.err)
	require.Equal(t, 2*time.Minute, env.Now().Sub(t0), "suppressed until the valid remove")
}

// An address reported again and again continues as new, its state carried.
func TestSuppressionContinuesAsNew(t *testing.T) {
	t.Parallel()
	env := suppressionEnv(t)
	env.RegisterDelayedCallback(func() {
		for i := range 1000 {
			env.SignalWorkflow(suppression.SignalAdd, supEntry(i, suppression.CauseHardBounce))
		}
	}, time.Second)
	env.ExecuteWorkflow(workflows.Suppression, suppression.Input{Workspace: "default", Hint: "a***@example.com"})
	err := env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "got %v, want a continue-as-new", err)
	var canErr *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &canErr))
	require.Equal(t, suppression.WorkflowType, canErr.WorkflowType.Name)
	var next suppression.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(canErr.Input, &next))
	require.NotNil(t, next.Carried)
	require.Equal(t, 1000, next.Carried.Count)
	require.Equal(t, "a***@example.com", next.Hint)
	require.Equal(t, supEntry(0, suppression.CauseHardBounce).DispatchID, next.Carried.Entries[0].DispatchID)
}
