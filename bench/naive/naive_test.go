package naive_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/bench/naive"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

var (
	t0     = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	sentAt = t0.Add(900 * time.Millisecond)
	window = time.Hour
	id     = message.Identity{DispatchID: "d-1", ExternalSendID: "ext-1", CampaignAPIID: "camp-1"}
)

type run struct {
	env       *testsuite.TestWorkflowEnvironment
	posts     []message.Postback
	locals    int
	sendDelay time.Duration // how long Send takes on the workflow clock
	sendTime  message.SendTimes
}

// newRun mocks Send (sendErr: its failure) and Postback, and records the postbacks.
func newRun(t *testing.T, sendErr error) *run {
	var suite testsuite.WorkflowTestSuite
	r := &run{env: suite.NewTestWorkflowEnvironment()}
	r.env.SetStartTime(t0)
	acts := &activities.Activities{}
	naive.Register(r.env, acts)
	r.env.OnActivity(acts.Send, mock.Anything, mock.Anything).AfterFn(func() time.Duration { return r.sendDelay }).Return(
		func(ctx context.Context, _ activities.SendInput) (activities.SendResult, error) {
			if activity.GetInfo(ctx).IsLocalActivity {
				r.locals++
			}
			return activities.SendResult{Receipt: esp.Receipt{Provider: "sandbox"}, ExecutedAt: t0, SentAt: sentAt}, sendErr
		})
	r.env.OnActivity(acts.Postback, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.PostbackInput) (activities.PostbackResult, error) {
			if activity.GetInfo(ctx).IsLocalActivity {
				r.locals++
			}
			r.posts = append(r.posts, in.Notification.Postback)
			at := postback.Attempt{At: r.env.Now(), StatusCode: 200, Class: postback.ClassSuccess}
			return activities.PostbackResult{Outcome: activities.OutcomeDelivered, Attempt: at, DeliveredAt: r.env.Now()}, nil
		})
	r.sendTime = message.SendTimes{ReceivedAt: t0.Add(-time.Second), EnqueuedAt: t0, ExecutedAt: t0, SentAt: sentAt}
	return r
}

func (r *run) signal(d time.Duration, typ message.EventType, evID string) time.Time {
	at := t0.Add(d)
	r.env.RegisterDelayedCallback(func() {
		r.env.SignalWorkflow(workflows.SignalEvent, message.Event{DispatchID: id.DispatchID, Provider: "sandbox", Type: typ, ID: evID, Timestamp: at, ReceivedAt: at, Reason: "550 no such user"})
	}, d)
	return at
}

// exec runs the workflow and returns its final state (also checked against the query).
func (r *run) exec(t *testing.T) workflows.State {
	r.env.ExecuteWorkflow(workflows.MessageWorkflow, workflows.MessageInput{
		DispatchID: id.DispatchID, Recipient: "ann@example.com", ReceivedAt: t0.Add(-time.Second),
		Routes:  []workflows.Route{{URL: "https://hook.test/", Label: "hook.test", Events: []string{"sent", "processed", "delivered", "bounced", "aborted"}}},
		Request: message.SendRequest{To: "ann@example.com", From: "me@example.com", Subject: "Hi", ExternalSendID: id.ExternalSendID, CampaignAPIID: id.CampaignAPIID},
		Policy:  workflows.Policy{TrackingWindow: window},
	})
	require.True(t, r.env.IsWorkflowCompleted())
	require.NoError(t, r.env.GetWorkflowError())
	var st workflows.State
	require.NoError(t, r.env.GetWorkflowResult(&st))
	require.Zero(t, r.locals, "naive runs no local activity")
	return st
}

func TestHappyPath(t *testing.T) {
	r := newRun(t, nil)
	processed := r.signal(time.Minute, message.EventProcessed, "e1")
	delivered := r.signal(2*time.Minute, message.EventDelivered, "e2")
	var q workflows.State
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow(workflows.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&q))
	}, 3*time.Minute)
	st := r.exec(t)

	requireJSON(t, []message.Postback{
		message.NewPostback(id, message.StatusSent, sentAt, "", r.sendTime),
		message.NewPostback(id, message.StatusProcessed, processed, "", r.sendTime),
		message.NewPostback(id, message.StatusDelivered, delivered, "", r.sendTime),
	}, r.posts)
	require.Equal(t, message.StatusDelivered, q.Status)
	require.Equal(t, id.DispatchID, q.DispatchID)
	require.Len(t, q.Postbacks, 3)
	for _, p := range q.Postbacks {
		require.Equal(t, workflows.PostbackDelivered, p.State)
		require.Len(t, p.Attempts, 1)
	}
	require.Equal(t, message.StatusDelivered, st.Status)
	require.Len(t, st.Events, 3)
	requireAt(t, delivered.Add(window), r.env.Now(), "completes TrackingWindow after delivered")
}

func TestDuplicateIgnored(t *testing.T) {
	r := newRun(t, nil)
	r.signal(time.Minute, message.EventDelivered, "e1")
	r.signal(2*time.Minute, message.EventDelivered, "e1")
	r.signal(3*time.Minute, message.EventOpen, "e2") // distinct, but changes nothing
	st := r.exec(t)
	require.Len(t, r.posts, 2)
	require.Equal(t, 1, st.DuplicateEvents)
	require.Len(t, st.Events, 3)
	require.False(t, st.Events[2].ChangedStatus)
	requireAt(t, t0.Add(time.Minute+window), r.env.Now(), "a non-change does not move the window")
}

func TestBounce(t *testing.T) {
	r := newRun(t, nil)
	r.signal(time.Minute, message.EventDelivered, "e1")
	bounced := r.signal(50*time.Minute, message.EventBounced, "e2")
	st := r.exec(t)
	require.Equal(t, message.StatusBounced, st.Status)
	require.Equal(t, "550 no such user", st.Reason)
	require.Len(t, r.posts, 3)
	requireJSON(t, message.NewPostback(id, message.StatusBounced, bounced, "550 no such user", r.sendTime), r.posts[2])
	requireAt(t, bounced.Add(window), r.env.Now(), "the timer restarts on every change")
}

func TestEventBeforeSendWaits(t *testing.T) {
	r := newRun(t, nil)
	r.sendDelay = time.Minute
	r.signal(10*time.Second, message.EventDelivered, "e1") // the ESP's webhook beats Send's answer
	st := r.exec(t)
	require.Equal(t, message.StatusDelivered, st.Status)
	require.Len(t, r.posts, 2)
	require.Equal(t, message.StatusSent, r.posts[0].Status, "sent is always the first postback")
	require.Equal(t, message.StatusDelivered, r.posts[1].Status)
	requireAt(t, t0.Add(time.Minute+window), r.env.Now(), "delivered applied once Send answered")
}

func TestRefusalAborts(t *testing.T) {
	r := newRun(t, temporal.NewNonRetryableApplicationError("address suppressed", activities.ErrRefused, nil))
	r.signal(time.Minute, message.EventDelivered, "e1") // too late: aborted is final
	st := r.exec(t)
	require.Equal(t, message.StatusAborted, st.Status)
	require.Equal(t, "address suppressed", st.Reason)
	require.Len(t, r.posts, 1)
	want := message.NewPostback(id, message.StatusAborted, t0, "address suppressed", message.SendTimes{ReceivedAt: t0.Add(-time.Second), EnqueuedAt: t0})
	requireJSON(t, want, r.posts[0])
}

// requireJSON compares postbacks as receivers see them: their JSON bodies.
func requireJSON(t *testing.T, want, got any) {
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

func requireAt(t *testing.T, want, got time.Time, msg string) {
	require.True(t, want.Equal(got), "%s: want %s, got %s", msg, want, got)
}
