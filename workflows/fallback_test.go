package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Fallback test fixtures. Every identifier of this file starts with fb so that it
// cannot collide with message_test.go's.
const (
	fbPhone       = "+33612345678"
	fbPhoneMasked = "+33*******78"
	fbPhone2      = "+447700900123"
	fbHook        = "https://ops.example.test/fallback"
	fbHook2       = "https://ops2.example.test/fallback"
	fbSMSText     = "Your code is 123456"
)

var (
	// fbRefused is a step's permanent failure: the ladder moves on.
	fbRefused = temporal.NewNonRetryableApplicationError("21211 invalid number", activities.ErrFallbackRefused, nil)
	// fbTransient is a step's transient failure: the activity is retried.
	fbTransient = errors.New("twilio: 503 Service Unavailable")
)

func fbSMS(to string, wait time.Duration) fallback.Step {
	return fallback.Step{Channel: fallback.ChannelSMS, To: to, Text: fbSMSText, Wait: fallback.Dur(wait)}
}

func fbWebhook(url string) fallback.Step {
	return fallback.Step{Channel: fallback.ChannelWebhook, URL: url}
}

func fbOn(s ...message.Status) []message.Status { return s }

// fbPolicy is a policy with defaults applied: 0 turns a deadline off.
func fbPolicy(sentWithin, deliveredWithin time.Duration, on []message.Status, steps ...fallback.Step) *fallback.Policy {
	if on == nil {
		on = []message.Status{}
	}
	return &fallback.Policy{
		SentWithin: fallback.Dur(sentWithin), DeliveredWithin: fallback.Dur(deliveredWithin), On: on, Steps: steps,
	}
}

// fbCall is one call of the mocked Fallback activity.
type fbCall struct {
	At      time.Time
	Local   bool
	Attempt int32
	Msg     channel.Message
	Err     error
}

// fbUpdate is what the update callbacks saw.
type fbUpdate struct {
	Accepted, Rejected, Completed bool
	RejectErr, Err                error
	State                         workflows.FallbackState
	At                            time.Time
}

// fbHarness is the message harness with the Fallback activity mocked and update and
// fallback-status helpers.
type fbHarness struct {
	*harness
	// fallbackFn answers Fallback call n (0-based, every call of every step); nil:
	// webhook steps are confirmed, others accepted unconfirmed ("queued").
	fallbackFn func(n int, m channel.Message) (channel.Result, error)
	// fallbackDelay is how long (workflow clock) Fallback call n takes.
	fallbackDelay func(n int) time.Duration

	calls   []fbCall
	updates map[string]*fbUpdate
}

func newFBHarness(t *testing.T, p *fallback.Policy) *fbHarness {
	t.Helper()
	h := &fbHarness{harness: newHarness(t), updates: map[string]*fbUpdate{}}
	h.in.Fallback = p
	return h
}

func fbDefaultResult(m channel.Message) channel.Result {
	res := channel.Result{Channel: m.Channel, ProviderID: fmt.Sprintf("prov-%d", m.Step), Status: "queued"}
	if m.Channel == fallback.ChannelWebhook {
		res.Status, res.Confirmed = "200 OK", true
	}
	return res
}

func (h *fbHarness) install() {
	h.installMocks()
	acts := &activities.Activities{}
	delayCalls := 0
	h.env.OnActivity(acts.Fallback, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := delayCalls
		delayCalls++
		if h.fallbackDelay == nil {
			return 0
		}
		return h.fallbackDelay(n)
	}).Return(func(ctx context.Context, in activities.FallbackInput) (channel.Result, error) {
		info := activity.GetInfo(ctx)
		h.mu.Lock()
		n := len(h.calls)
		fn := h.fallbackFn
		h.mu.Unlock()
		res, err := fbDefaultResult(in.Message), error(nil)
		if fn != nil {
			res, err = fn(n, in.Message)
		}
		h.mu.Lock()
		h.calls = append(h.calls, fbCall{At: h.env.Now(), Local: info.IsLocalActivity, Attempt: info.Attempt, Msg: in.Message, Err: err})
		h.mu.Unlock()
		return res, err
	})
}

// run runs the workflow to its end and returns its final state.
func (h *fbHarness) run() workflows.State {
	h.t.Helper()
	h.install()
	h.env.ExecuteWorkflow(workflows.Message, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
	require.NoError(h.t, h.env.GetWorkflowError())
	var st workflows.State
	require.NoError(h.t, h.env.GetWorkflowResult(&st))
	return st
}

func (h *fbHarness) fallbackCalls() []fbCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// fbStatusAt signals a fallback channel's report at t0+d.
func (h *fbHarness) statusAt(d time.Duration, st workflows.FallbackStatus) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(workflows.SignalFallbackStatus, st) }, d)
}

// updateAt sends update name (with arg) at t0+d; its outcome is h.update(id).
func (h *fbHarness) updateAt(d time.Duration, id, name string, arg any) {
	h.mu.Lock()
	u := &fbUpdate{}
	h.updates[id] = u
	h.mu.Unlock()
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {
				h.mu.Lock()
				defer h.mu.Unlock()
				u.Accepted = true
			},
			OnReject: func(err error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				u.Rejected, u.RejectErr, u.At = true, err, h.env.Now()
			},
			OnComplete: func(v any, err error) {
				var st workflows.FallbackState
				if err == nil {
					st, err = fbDecodeState(v)
				}
				h.mu.Lock()
				defer h.mu.Unlock()
				u.Completed, u.Err, u.State, u.At = true, err, st, h.env.Now()
			},
		}, arg)
	}, d)
}

// fbDecodeState turns an update's success value into a FallbackState.
func fbDecodeState(v any) (workflows.FallbackState, error) {
	switch s := v.(type) {
	case workflows.FallbackState:
		return s, nil
	case *workflows.FallbackState:
		return *s, nil
	case converter.EncodedValue:
		var st workflows.FallbackState
		err := s.Get(&st)
		return st, err
	}
	var st workflows.FallbackState
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

func (h *fbHarness) update(id string) fbUpdate {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.updates[id]
	require.Truef(h.t, ok, "update %q was never sent", id)
	return *u
}

// requireAccepted requires update id to be accepted and completed without error.
func (h *fbHarness) requireAccepted(id string) workflows.FallbackState {
	h.t.Helper()
	u := h.update(id)
	require.Falsef(h.t, u.Rejected, "update %s: got rejected (%v), want accepted", id, u.RejectErr)
	require.Truef(h.t, u.Accepted, "update %s: got not accepted, want accepted", id)
	require.Truef(h.t, u.Completed, "update %s: got not completed, want completed", id)
	require.NoErrorf(h.t, u.Err, "update %s", id)
	return u.State
}

// requireRejected requires update id to be rejected with an ApplicationError of errType.
func (h *fbHarness) requireRejected(id, errType string) {
	h.t.Helper()
	u := h.update(id)
	require.Falsef(h.t, u.Accepted, "update %s: got accepted, want rejected (%s)", id, errType)
	require.Truef(h.t, u.Rejected, "update %s: got not rejected, want rejected (%s)", id, errType)
	var appErr *temporal.ApplicationError
	require.Truef(h.t, errors.As(u.RejectErr, &appErr), "update %s: got error %T %v, want an ApplicationError", id, u.RejectErr, u.RejectErr)
	require.Equalf(h.t, errType, appErr.Type(), "update %s: error type (message %q)", id, appErr.Message())
}

func fbStepStates(steps []workflows.StepRecord) []string {
	out := []string{}
	for _, s := range steps {
		out = append(out, s.State)
	}
	return out
}

func fbCallOffsets(calls []fbCall) []time.Duration {
	out := []time.Duration{}
	for _, c := range calls {
		out = append(out, c.At.Sub(t0))
	}
	return out
}

// fbDeadline finds deadline name in fb; nil if absent.
func fbDeadline(fb workflows.FallbackState, name string) *workflows.DeadlineRecord {
	for i := range fb.Deadlines {
		if fb.Deadlines[i].Name == name {
			return &fb.Deadlines[i]
		}
	}
	return nil
}

// fbDeadlineStates maps each deadline to its state.
func fbDeadlineStates(fb workflows.FallbackState) map[string]string {
	out := map[string]string{}
	for _, d := range fb.Deadlines {
		out[d.Name] = d.State
	}
	return out
}

// fbEvent finds the (last) event of type typ.
func fbEvent(t *testing.T, st workflows.State, typ message.EventType) workflows.EventRecord {
	t.Helper()
	for i := len(st.Events) - 1; i >= 0; i-- {
		if st.Events[i].Type == typ {
			return st.Events[i]
		}
	}
	require.Failf(t, "event missing", "no %s event in %v", typ, eventTypes(st.Events))
	return workflows.EventRecord{}
}

// fbRequireMessage checks what a fallback call was asked to send for step i (0-based).
func fbRequireMessage(t *testing.T, c fbCall, i int, st fallback.Step, reason fallback.Reason, emailStatus message.Status) {
	t.Helper()
	in := testInput()
	m := c.Msg
	require.Equalf(t, testDispatchID, m.DispatchID, "call for step %d: dispatch id", i)
	require.Equalf(t, i, m.Step, "call for step %d: Step (0-based)", i)
	require.Equalf(t, fmt.Sprintf("%s-fallback-%d", testDispatchID, i), m.IdempotencyKey, "call for step %d: idempotency key", i)
	require.Equalf(t, st.Channel, m.Channel, "call for step %d: channel", i)
	require.Equalf(t, st.To, m.To, "call for step %d: To (the real number, not masked)", i)
	require.Equalf(t, st.URL, m.URL, "call for step %d: URL", i)
	require.Equalf(t, st.Text, m.Text, "call for step %d: text", i)
	require.Equalf(t, string(reason), m.Reason, "call for step %d: reason", i)
	require.Equalf(t, string(emailStatus), m.EmailStatus, "call for step %d: email status", i)
	require.Equalf(t, in.Recipient, m.Recipient, "call for step %d: recipient", i)
	require.Equalf(t, in.Request.Subject, m.Subject, "call for step %d: subject", i)
	require.Equalf(t, in.Request.ExternalSendID, m.ExternalSendID, "call for step %d: external send id", i)
	require.Equalf(t, in.Request.CampaignAPIID, m.CampaignAPIID, "call for step %d: campaign api id", i)
}

// fbSendOKAfter makes Send fail retryably before t0+d, and then succeed with the
// workflow clock's times.
func (h *fbHarness) sendOKAfter(d time.Duration) {
	h.sendFn = func(int) (activities.SendResult, error) {
		now := h.env.Now()
		if now.Before(t0.Add(d)) {
			return activities.SendResult{}, errors.New("sandbox: connection refused")
		}
		return activities.SendResult{Receipt: okReceipt, ExecutedAt: now, SentAt: now}, nil
	}
}

type fbSignal struct {
	at time.Duration
	ev message.Event
}

// Deadlines are workflow timers; whatever comes first (the deadline or the status
// that settles it) wins.
func TestFallbackDeadlines(t *testing.T) {
	const sentWithin, deliveredWithin = 5 * time.Minute, 10 * time.Minute
	dueDelivered := sentAt.Add(deliveredWithin) // counted from sent (the ESP's acceptance)
	tests := []struct {
		name    string
		sendOK  time.Duration // Send fails retryably until t0+sendOK; 0: the default Send
		signals []fbSignal
		// want: the escalation (reason "" = none), when, and the deadline records.
		wantReason    fallback.Reason
		wantAt        time.Time
		wantDeadlines []workflows.DeadlineRecord
		// wantNote: FallbackState.Note, and the Note of event wantNoteOn.
		wantNote   string
		wantNoteOn message.EventType
	}{
		{
			name:          "sent within: the ESP never accepts in time",
			sendOK:        10 * time.Minute,
			wantReason:    fallback.ReasonNotSent,
			wantAt:        t0.Add(sentWithin),
			wantDeadlines: []workflows.DeadlineRecord{{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineFired}},
			// The send keeps being retried: the email goes out after the fallback.
			wantNote: "sent after fallback", wantNoteOn: message.EventSent,
		},
		{
			name:   "sent within: the ESP accepts after retries, in time",
			sendOK: 2 * time.Minute,
			signals: []fbSignal{
				{at: 3 * time.Minute, ev: event(message.EventDelivered, "d")},
			},
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				// The retries that succeeded at +127s: delivered_within counts from then.
				{Name: workflows.DeadlineDelivered, DueAt: t0.Add(127*time.Second + deliveredWithin), State: workflows.DeadlineCancelled},
			},
		},
		{
			name:       "delivered within: never delivered",
			wantReason: fallback.ReasonNotDelivered,
			wantAt:     dueDelivered,
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				{Name: workflows.DeadlineDelivered, DueAt: dueDelivered, State: workflows.DeadlineFired},
			},
		},
		{
			name: "delivered one instant before the deadline",
			signals: []fbSignal{
				{at: dueDelivered.Sub(t0) - time.Millisecond, ev: event(message.EventDelivered, "d")},
			},
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				{Name: workflows.DeadlineDelivered, DueAt: dueDelivered, State: workflows.DeadlineCancelled},
			},
		},
		{
			name: "delivered one instant after the deadline",
			signals: []fbSignal{
				{at: dueDelivered.Sub(t0) + time.Millisecond, ev: event(message.EventDelivered, "d")},
			},
			wantReason: fallback.ReasonNotDelivered,
			wantAt:     dueDelivered,
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				{Name: workflows.DeadlineDelivered, DueAt: dueDelivered, State: workflows.DeadlineFired},
			},
			wantNote: "delivered after fallback", wantNoteOn: message.EventDelivered,
		},
		{
			name: "bounced after the deadline: recorded, never escalating twice",
			signals: []fbSignal{
				{at: dueDelivered.Sub(t0) + time.Minute, ev: event(message.EventBounced, "b")},
			},
			wantReason: fallback.ReasonNotDelivered,
			wantAt:     dueDelivered,
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				{Name: workflows.DeadlineDelivered, DueAt: dueDelivered, State: workflows.DeadlineFired},
			},
			wantNote: "bounced after fallback", wantNoteOn: message.EventBounced,
		},
		{
			// Send retries run out (the last at +1711s): aborted, after the escalation.
			name:          "aborted after sent_within: recorded, never escalating twice",
			sendOK:        2 * time.Hour,
			wantReason:    fallback.ReasonNotSent,
			wantAt:        t0.Add(sentWithin),
			wantDeadlines: []workflows.DeadlineRecord{{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineFired}},
			wantNote:      "aborted after fallback", wantNoteOn: message.EventAborted,
		},
		{
			name: "delivered by an open, in time",
			signals: []fbSignal{
				{at: time.Minute, ev: event(message.EventProcessed, "p")},
				{at: 2 * time.Minute, ev: event(message.EventOpen, "o")},
			},
			wantDeadlines: []workflows.DeadlineRecord{
				{Name: workflows.DeadlineSent, DueAt: t0.Add(sentWithin), State: workflows.DeadlineCancelled},
				{Name: workflows.DeadlineDelivered, DueAt: dueDelivered, State: workflows.DeadlineCancelled},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(sentWithin, deliveredWithin, fbOn(message.StatusBounced, message.StatusAborted), fbWebhook(fbHook)))
			if tc.sendOK > 0 {
				h.sendOKAfter(tc.sendOK)
			}
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			st := h.run()
			fb := st.Fallback
			calls := h.fallbackCalls()

			jsonEqual(t, tc.wantDeadlines, fb.Deadlines, "deadlines")
			if tc.wantReason == "" {
				require.Equal(t, workflows.FallbackPending, fb.State, "fallback state")
				require.Empty(t, fb.Reason)
				require.True(t, fb.EscalatedAt.IsZero(), "got EscalatedAt %s, want none", fb.EscalatedAt)
				require.Empty(t, calls, "Fallback calls")
				require.Empty(t, fb.Steps)
				require.Empty(t, fb.Note)
				return
			}
			require.Equal(t, workflows.FallbackEscalated, fb.State, "fallback state")
			require.Equal(t, tc.wantReason, fb.Reason)
			sameTime(t, tc.wantAt, fb.EscalatedAt, "EscalatedAt")
			require.Len(t, calls, 1, "Fallback calls: one escalation, one step")
			// The workflow's clock. (The mock's clock may run a millisecond ahead here: the
			// test environment fires a timer due 1ms later on wall time while a local
			// activity runs.)
			sameTime(t, tc.wantAt, fb.Steps[0].FiredAt, "step 1 fired at")
			require.False(t, calls[0].At.Before(tc.wantAt), "fallback call at %s, before the escalation", calls[0].At)
			fbRequireMessage(t, calls[0], 0, fbWebhook(fbHook), tc.wantReason, map[fallback.Reason]message.Status{
				fallback.ReasonNotSent: message.StatusQueued, fallback.ReasonNotDelivered: message.StatusSent,
			}[tc.wantReason])
			require.Equal(t, []string{workflows.StepConfirmed}, fbStepStates(fb.Steps))
			require.Equal(t, workflows.OutcomeSent, fb.Outcome)
			require.Equal(t, tc.wantNote, fb.Note, "FallbackState.Note")
			if tc.wantNoteOn != "" {
				ev := fbEvent(t, st, tc.wantNoteOn)
				require.True(t, ev.ChangedStatus)
				require.Equal(t, tc.wantNote, ev.Note, "note of the %s event", tc.wantNoteOn)
			}
		})
	}
}

// While pending, the state query shows the deadlines as they run.
func TestFallbackStateWhilePending(t *testing.T) {
	h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)))
	h.sendOKAfter(2 * time.Minute)
	h.queryAt(time.Minute, "queued")
	h.queryAt(3*time.Minute, "sent")
	h.run()

	queued := h.query("queued").Fallback
	require.Equal(t, workflows.FallbackPending, queued.State)
	jsonEqual(t, []workflows.DeadlineRecord{{Name: workflows.DeadlineSent, DueAt: t0.Add(5 * time.Minute), State: workflows.DeadlinePending}}, queued.Deadlines)
	require.NotNil(t, queued.Policy)

	sent := h.query("sent").Fallback
	require.Equal(t, workflows.FallbackPending, sent.State)
	require.Equal(t, map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlinePending}, fbDeadlineStates(sent))
	sameTime(t, t0.Add(127*time.Second+10*time.Minute), fbDeadline(sent, workflows.DeadlineDelivered).DueAt, "delivered_within due")
}

// Without a policy the fallback is "none" and nothing escalates.
func TestFallbackNoPolicy(t *testing.T) {
	h := newFBHarness(t, nil)
	b := event(message.EventBounced, "b")
	h.signalAt(time.Minute, b)
	st := h.run()
	require.Equal(t, workflows.FallbackNone, st.Fallback.State)
	require.Nil(t, st.Fallback.Policy)
	require.Empty(t, st.Fallback.Deadlines)
	require.Empty(t, h.fallbackCalls())
}

// The statuses of "on" escalate at once; others only settle the deadlines.
func TestFallbackOnStatuses(t *testing.T) {
	refused := temporal.NewNonRetryableApplicationError("User not emailable", activities.ErrRefused, nil)
	bounce := event(message.EventBounced, "b")
	bounce.Reason = "550 5.1.1 user unknown"
	tests := []struct {
		name       string
		on         []message.Status
		sendErr    error
		signals    []fbSignal
		wantReason fallback.Reason // "": no escalation
		wantAt     time.Duration
		wantStatus message.Status
		// wantDeadlines: the deadline states at the end.
		wantDeadlines map[string]string
	}{
		{
			name: "bounced", on: fbOn(message.StatusBounced, message.StatusAborted),
			signals:    []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantReason: fallback.ReasonBounced, wantAt: 2 * time.Minute, wantStatus: message.StatusBounced,
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlineCancelled},
		},
		{
			name: "send refused for good: aborted", on: fbOn(message.StatusAborted), sendErr: refused,
			wantReason: fallback.ReasonAborted, wantAt: 0, wantStatus: message.StatusAborted,
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled},
		},
		{
			name: "bounced, not in on", on: fbOn(message.StatusAborted),
			signals:    []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantStatus: message.StatusBounced,
			// The bounce settles the deadlines: delivered_within (t0+10m) never fires.
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlineCancelled},
		},
		{
			name: "aborted, not in on", on: fbOn(message.StatusBounced), sendErr: refused,
			wantStatus:    message.StatusAborted,
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled},
		},
		{
			name: "delayed bounce after delivered", on: fbOn(message.StatusBounced),
			signals: []fbSignal{
				{at: 3 * time.Minute, ev: event(message.EventDelivered, "d")},
				{at: 40 * time.Minute, ev: bounce},
			},
			wantReason: fallback.ReasonBounced, wantAt: 40 * time.Minute, wantStatus: message.StatusBounced,
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlineCancelled},
		},
		{
			name: "delayed bounce after delivered, not in on", on: fbOn(),
			signals: []fbSignal{
				{at: 3 * time.Minute, ev: event(message.EventDelivered, "d")},
				{at: 40 * time.Minute, ev: bounce},
			},
			wantStatus:    message.StatusBounced,
			wantDeadlines: map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlineCancelled},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, tc.on, fbWebhook(fbHook)))
			if tc.sendErr != nil {
				h.sendFn = func(int) (activities.SendResult, error) { return activities.SendResult{}, tc.sendErr }
			}
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			st := h.run()
			fb := st.Fallback
			calls := h.fallbackCalls()

			require.Equal(t, tc.wantStatus, st.Status)
			require.Equal(t, tc.wantDeadlines, fbDeadlineStates(fb), "deadline states")
			if tc.wantReason == "" {
				require.Equal(t, workflows.FallbackPending, fb.State)
				require.Empty(t, calls, "Fallback calls")
				return
			}
			require.Equal(t, workflows.FallbackEscalated, fb.State)
			require.Equal(t, tc.wantReason, fb.Reason)
			sameTime(t, t0.Add(tc.wantAt), fb.EscalatedAt, "EscalatedAt")
			require.Len(t, calls, 1)
			fbRequireMessage(t, calls[0], 0, fbWebhook(fbHook), tc.wantReason, tc.wantStatus)
			require.Equal(t, workflows.OutcomeSent, fb.Outcome)
		})
	}
}

// The ladder: steps in order until one is confirmed.
func TestFallbackLadder(t *testing.T) {
	const bounceAt = time.Minute
	sms := fbSMS(fbPhone, 30*time.Minute)
	tests := []struct {
		name     string
		steps    []fallback.Step
		fn       func(n int, m channel.Message) (channel.Result, error)
		statuses []struct {
			at time.Duration
			s  workflows.FallbackStatus
		}
		wantStates  []string
		wantCallsAt []time.Duration
		wantOutcome string
		// wantErrors: StepRecord.Error per step.
		wantErrors []string
		// wantWaitUntil: StepRecord.WaitUntil per step (0: none).
		wantWaitUntil []time.Duration
	}{
		{
			name:        "first step confirmed",
			steps:       []fallback.Step{fbWebhook(fbHook), sms},
			wantStates:  []string{workflows.StepConfirmed},
			wantCallsAt: []time.Duration{bounceAt},
			wantOutcome: workflows.OutcomeSent,
		},
		{
			name:  "refused for good: the next step",
			steps: []fallback.Step{sms, fbWebhook(fbHook)},
			fn: func(n int, m channel.Message) (channel.Result, error) {
				if m.Step == 0 {
					return channel.Result{}, fbRefused
				}
				return fbDefaultResult(m), nil
			},
			wantStates:  []string{workflows.StepFailed, workflows.StepConfirmed},
			wantCallsAt: []time.Duration{bounceAt, bounceAt},
			wantOutcome: workflows.OutcomeSent,
			wantErrors:  []string{"21211 invalid number", ""},
		},
		{
			name:          "wait runs out unconfirmed: the next step",
			steps:         []fallback.Step{sms, fbWebhook(fbHook)},
			wantStates:    []string{workflows.StepUnconfirmed, workflows.StepConfirmed},
			wantCallsAt:   []time.Duration{bounceAt, bounceAt + 30*time.Minute},
			wantOutcome:   workflows.OutcomeSent,
			wantWaitUntil: []time.Duration{bounceAt + 30*time.Minute, 0},
		},
		{
			name:  "delivered during the wait: confirmed, the ladder stops",
			steps: []fallback.Step{sms, fbWebhook(fbHook)},
			statuses: []struct {
				at time.Duration
				s  workflows.FallbackStatus
			}{
				{at: 3 * time.Minute, s: workflows.FallbackStatus{Step: 1, Status: "sent", ProviderID: "prov-0"}},
				{at: 6 * time.Minute, s: workflows.FallbackStatus{Step: 1, Status: "delivered", ProviderID: "prov-0"}},
			},
			wantStates:    []string{workflows.StepConfirmed},
			wantCallsAt:   []time.Duration{bounceAt},
			wantOutcome:   workflows.OutcomeSent,
			wantWaitUntil: []time.Duration{bounceAt + 30*time.Minute},
		},
		{
			name:  "undelivered during the wait: failed, the next step at once",
			steps: []fallback.Step{sms, fbWebhook(fbHook)},
			statuses: []struct {
				at time.Duration
				s  workflows.FallbackStatus
			}{
				{at: 6 * time.Minute, s: workflows.FallbackStatus{Step: 1, Status: "undelivered", ProviderID: "prov-0", Error: "30003 unreachable"}},
			},
			wantStates:    []string{workflows.StepFailed, workflows.StepConfirmed},
			wantCallsAt:   []time.Duration{bounceAt, 6 * time.Minute},
			wantOutcome:   workflows.OutcomeSent,
			wantErrors:    []string{"30003 unreachable", ""},
			wantWaitUntil: []time.Duration{bounceAt + 30*time.Minute, 0},
		},
		{
			name:  "a report for another step changes nothing",
			steps: []fallback.Step{sms, fbWebhook(fbHook)},
			statuses: []struct {
				at time.Duration
				s  workflows.FallbackStatus
			}{
				{at: 6 * time.Minute, s: workflows.FallbackStatus{Step: 2, Status: "delivered"}},
				{at: 7 * time.Minute, s: workflows.FallbackStatus{Step: 9, Status: "delivered"}},
				{at: 8 * time.Minute, s: workflows.FallbackStatus{Step: 0, Status: "delivered"}},
			},
			wantStates:  []string{workflows.StepUnconfirmed, workflows.StepConfirmed},
			wantCallsAt: []time.Duration{bounceAt, bounceAt + 30*time.Minute},
			wantOutcome: workflows.OutcomeSent,
		},
		{
			name:        "no wait: final once accepted",
			steps:       []fallback.Step{fbSMS(fbPhone, 0), fbWebhook(fbHook)},
			wantStates:  []string{workflows.StepSent},
			wantCallsAt: []time.Duration{bounceAt},
			wantOutcome: workflows.OutcomeSent,
		},
		{
			name:  "every step fails",
			steps: []fallback.Step{sms, fbWebhook(fbHook), fbSMS(fbPhone2, time.Minute)},
			fn: func(n int, m channel.Message) (channel.Result, error) {
				if m.Step == 2 {
					return fbDefaultResult(m), nil // accepted, never confirmed
				}
				return channel.Result{}, fbRefused
			},
			wantStates:  []string{workflows.StepFailed, workflows.StepFailed, workflows.StepUnconfirmed},
			wantCallsAt: []time.Duration{bounceAt, bounceAt, bounceAt},
			wantOutcome: workflows.OutcomeFailed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(5*time.Minute, 0, fbOn(message.StatusBounced), tc.steps...))
			h.fallbackFn = tc.fn
			h.signalAt(bounceAt, event(message.EventBounced, "b"))
			for _, s := range tc.statuses {
				h.statusAt(s.at, s.s)
			}
			st := h.run()
			fb := st.Fallback
			calls := h.fallbackCalls()

			require.Equal(t, tc.wantStates, fbStepStates(fb.Steps), "step states")
			require.Equal(t, tc.wantCallsAt, fbCallOffsets(calls), "Fallback call times")
			require.Equal(t, tc.wantOutcome, fb.Outcome)
			for i, c := range calls {
				require.Truef(t, c.Local, "call %d: got a regular activity, want the local first attempt", i)
				fbRequireMessage(t, c, i, tc.steps[i], fallback.ReasonBounced, message.StatusBounced)
			}
			for i, rec := range fb.Steps {
				require.Equalf(t, i+1, rec.Step, "step %d number (1-based)", i)
				require.Equalf(t, tc.steps[i].Channel, rec.Channel, "step %d channel", i+1)
				require.Equalf(t, tc.steps[i].Target(), rec.Target, "step %d target", i+1)
				sameTime(t, calls[i].At, rec.FiredAt, fmt.Sprintf("step %d fired at", i+1))
				if tc.wantErrors != nil {
					require.Equalf(t, tc.wantErrors[i], rec.Error, "step %d error", i+1)
				}
				if tc.wantWaitUntil != nil {
					if tc.wantWaitUntil[i] == 0 {
						require.Truef(t, rec.WaitUntil.IsZero(), "step %d wait until: got %s, want none", i+1, rec.WaitUntil)
					} else {
						sameTime(t, t0.Add(tc.wantWaitUntil[i]), rec.WaitUntil, fmt.Sprintf("step %d wait until", i+1))
					}
				}
				if rec.State == workflows.StepFailed && calls[i].Err != nil {
					require.Nilf(t, rec.Result, "step %d refused: result", i+1)
				} else {
					require.NotNilf(t, rec.Result, "step %d result", i+1)
				}
			}
			if len(tc.statuses) > 0 && tc.statuses[len(tc.statuses)-1].s.Step == 1 {
				require.Equal(t, tc.statuses[len(tc.statuses)-1].s.Status, fb.Steps[0].Result.Status, "step 1: the provider's last status")
			}
		})
	}
}

// Transient fallback failures are retried by the regular activity (the first call is
// local); when the retry window runs out, the step fails and the ladder moves on.
func TestFallbackTransientRetried(t *testing.T) {
	tests := []struct {
		name        string
		failures    int // the first calls of step 1 fail transiently
		retryWindow time.Duration
		wantCalls   int // of step 1
		wantState   string
		wantStates  []string
	}{
		{name: "retried until it succeeds", failures: 2, wantCalls: 3, wantStates: []string{workflows.StepConfirmed}},
		// retryPolicyWithin(10s, 1s, …): 4 regular attempts (at 1s, 3s, 7s).
		{name: "retry window runs out", failures: 100, retryWindow: 10 * time.Second, wantCalls: 5,
			wantStates: []string{workflows.StepFailed, workflows.StepConfirmed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := []fallback.Step{fbWebhook(fbHook), fbWebhook(fbHook2)}
			h := newFBHarness(t, fbPolicy(0, 0, fbOn(message.StatusBounced), steps...))
			h.in.Policy.FallbackRetryWindow = tc.retryWindow
			h.fallbackFn = func(n int, m channel.Message) (channel.Result, error) {
				if m.Step == 0 && n < tc.failures {
					return channel.Result{}, fbTransient
				}
				return fbDefaultResult(m), nil
			}
			h.signalAt(time.Minute, event(message.EventBounced, "b"))
			st := h.run()
			calls := h.fallbackCalls()

			var first []fbCall
			for _, c := range calls {
				if c.Msg.Step == 0 {
					first = append(first, c)
				}
			}
			require.Len(t, first, tc.wantCalls, "calls of step 1")
			require.True(t, first[0].Local, "step 1 call 1: got regular, want local")
			for i, c := range first[1:] {
				require.Falsef(t, c.Local, "step 1 call %d: got local, want the regular activity", i+2)
				require.Equalf(t, int32(i+1), c.Attempt, "step 1 call %d: regular attempt", i+2)
				fbRequireMessage(t, c, 0, steps[0], fallback.ReasonBounced, message.StatusBounced)
			}
			require.Equal(t, tc.wantStates, fbStepStates(st.Fallback.Steps))
			if tc.wantStates[0] == workflows.StepFailed {
				require.Equal(t, "twilio: 503 Service Unavailable", st.Fallback.Steps[0].Error)
				require.LessOrEqual(t, first[len(first)-1].At.Sub(t0.Add(time.Minute)), tc.retryWindow, "last retry within the window")
			}
			require.Equal(t, workflows.OutcomeSent, st.Fallback.Outcome)
		})
	}
}

// The email delivered after the escalation stops the ladder.
func TestFallbackStoppedByDelivery(t *testing.T) {
	const deliveredWithin = 10 * time.Minute
	esc := sentAt.Add(deliveredWithin).Sub(t0)
	steps := []fallback.Step{fbSMS(fbPhone, 30*time.Minute), fbWebhook(fbHook), fbSMS(fbPhone2, 0)}
	h := newFBHarness(t, fbPolicy(5*time.Minute, deliveredWithin, fbOn(message.StatusBounced), steps...))
	h.in.Routes = []workflows.Route{withFallbackOutcomes(urlRoute(testURL))}
	h.signalAt(esc+5*time.Minute, event(message.EventDelivered, "d"))
	h.queryAt(esc+time.Minute, "waiting")
	st := h.run()
	fb := st.Fallback

	waiting := h.query("waiting").Fallback
	require.Equal(t, []string{workflows.StepSent}, fbStepStates(waiting.Steps), "step 1 waits for its confirmation")

	calls := h.fallbackCalls()
	require.Equal(t, []time.Duration{esc}, fbCallOffsets(calls), "only step 1 was sent")
	require.Equal(t, workflows.FallbackEscalated, fb.State)
	require.Equal(t, workflows.OutcomeStopped, fb.Outcome)
	require.Equal(t, []string{workflows.StepSent, workflows.StepSkipped, workflows.StepSkipped}, fbStepStates(fb.Steps))
	for i, rec := range fb.Steps {
		require.Equalf(t, i+1, rec.Step, "step number")
		require.Equalf(t, steps[i].Target(), rec.Target, "step %d target", i+1)
	}
	require.Equal(t, "delivered after fallback", fb.Note)
	require.Equal(t, "delivered after fallback", fbEvent(t, st, message.EventDelivered).Note)
	require.Equal(t, message.StatusDelivered, st.Status)
	// Stopped: no fallback outcome is posted.
	order := []message.Status{message.StatusSent, message.StatusDelivered}
	require.Equal(t, order, pbStatuses(st.Postbacks))
	require.Equal(t, order, okCallStatuses(h.postCalls()))
}

// An email delivered while the last step waits for its confirmation ends the
// ladder as "stopped" (and posts no fallback_failed).
func TestFallbackStoppedDuringLastStep(t *testing.T) {
	const deliveredWithin = 10 * time.Minute
	esc := sentAt.Add(deliveredWithin).Sub(t0)
	h := newFBHarness(t, fbPolicy(5*time.Minute, deliveredWithin, fbOn(), fbSMS(fbPhone, 30*time.Minute)))
	h.in.Routes = []workflows.Route{withFallbackOutcomes(urlRoute(testURL))}
	h.signalAt(esc+5*time.Minute, event(message.EventDelivered, "d"))
	st := h.run()

	require.Len(t, h.fallbackCalls(), 1)
	require.Equal(t, "delivered after fallback", st.Fallback.Note)
	require.Equal(t, workflows.OutcomeStopped, st.Fallback.Outcome, "outcome: the email was delivered during the wait")
	require.Equal(t, []message.Status{message.StatusSent, message.StatusDelivered}, pbStatuses(st.Postbacks),
		"no fallback outcome postback for a stopped ladder")
}

// A channel's report that reaches the workflow while its step is still being sent
// (a retry in flight) is kept and applied once the step is recorded as sent.
func TestFallbackReportWhileSending(t *testing.T) {
	const bounceAt = time.Minute
	h := newFBHarness(t, fbPolicy(5*time.Minute, 0, fbOn(message.StatusBounced), fbSMS(fbPhone, 30*time.Minute), fbWebhook(fbHook)))
	h.fallbackFn = func(n int, m channel.Message) (channel.Result, error) {
		if n == 0 {
			return channel.Result{}, fbTransient // e.g. a timeout after the provider accepted the SMS
		}
		return fbDefaultResult(m), nil
	}
	h.fallbackDelay = func(n int) time.Duration {
		if n == 1 {
			return 5 * time.Second // the regular retry
		}
		return 0
	}
	h.signalAt(bounceAt, event(message.EventBounced, "b"))
	h.statusAt(bounceAt+2*time.Second, workflows.FallbackStatus{Step: 1, Status: "delivered"})
	st := h.run()

	require.Equal(t, []string{workflows.StepConfirmed}, fbStepStates(st.Fallback.Steps), "step 1 was reported delivered")
	require.Len(t, h.fallbackCalls(), 2, "Fallback calls: step 1's two attempts, no step 2")
}

// UpdateCancelFallback.
func TestFallbackCancel(t *testing.T) {
	bounce := event(message.EventBounced, "b")
	tests := []struct {
		name     string
		policy   *fallback.Policy
		cancelAt time.Duration
		signals  []fbSignal
		sendOK   time.Duration // Send fails retryably until t0+sendOK; 0: sent at once
		// wantErr: the rejection's error type; "": accepted.
		wantErr   string
		wantState string
		wantCalls int
	}{
		{
			name:     "pending: cancelled; the deadline and a bounce do not escalate",
			policy:   fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)),
			cancelAt: 2 * time.Minute,
			// delivered_within is due at +10m0.9s; the bounce comes after it.
			signals:   []fbSignal{{at: 20 * time.Minute, ev: bounce}},
			wantState: workflows.FallbackCancelled,
		},
		{
			name:     "while queued: sent_within does not escalate",
			policy:   fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)),
			cancelAt: time.Minute,
			// The ESP accepts only at +1023s, long after sent_within (+5m).
			sendOK:    10 * time.Minute,
			wantState: workflows.FallbackCancelled,
		},
		{
			name:      "after escalation: conflict",
			policy:    fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)),
			signals:   []fbSignal{{at: time.Minute, ev: bounce}},
			cancelAt:  2 * time.Minute,
			wantErr:   workflows.ErrFallbackConflict,
			wantState: workflows.FallbackEscalated,
			wantCalls: 1,
		},
		{
			name:      "no policy: conflict",
			cancelAt:  time.Minute,
			wantErr:   workflows.ErrFallbackConflict,
			wantState: workflows.FallbackNone,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, tc.policy)
			if tc.sendOK > 0 {
				h.sendOKAfter(tc.sendOK)
			}
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			h.updateAt(tc.cancelAt, "cancel", workflows.UpdateCancelFallback, workflows.CancelFallbackInput{Reason: "user confirmed in app"})
			h.queryAt(tc.cancelAt+time.Second, "after")
			st := h.run()

			require.Equal(t, tc.wantState, st.Fallback.State, "final fallback state")
			require.Equal(t, tc.wantState, h.query("after").Fallback.State, "fallback state after the update")
			require.Len(t, h.fallbackCalls(), tc.wantCalls, "Fallback calls")
			if tc.wantErr != "" {
				h.requireRejected("cancel", tc.wantErr)
				return
			}
			ans := h.requireAccepted("cancel")
			sameTime(t, t0.Add(tc.cancelAt), h.update("cancel").At, "update completion time")
			require.Equal(t, workflows.FallbackCancelled, ans.State, "answer state")
			require.Equal(t, "cancelled by the app: user confirmed in app", ans.Note)
			require.NotEmpty(t, ans.Deadlines)
			for _, d := range ans.Deadlines {
				require.Equalf(t, workflows.DeadlineCancelled, d.State, "answer: deadline %s", d.Name)
			}
			for _, d := range st.Fallback.Deadlines {
				require.Equalf(t, workflows.DeadlineCancelled, d.State, "final: deadline %s", d.Name)
			}
			require.Empty(t, st.Fallback.Steps)
			require.True(t, st.Fallback.EscalatedAt.IsZero())
		})
	}
}

// Cancelling twice is harmless: both are accepted.
func TestFallbackCancelTwice(t *testing.T) {
	h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)))
	h.updateAt(time.Minute, "c1", workflows.UpdateCancelFallback, workflows.CancelFallbackInput{})
	h.updateAt(2*time.Minute, "c2", workflows.UpdateCancelFallback, workflows.CancelFallbackInput{Reason: "again"})
	st := h.run()
	require.Equal(t, workflows.FallbackCancelled, h.requireAccepted("c1").State)
	second := h.requireAccepted("c2")
	require.Equal(t, workflows.FallbackCancelled, second.State)
	require.Equal(t, "cancelled by the app", second.Note, "the first cancellation's note is kept")
	require.Equal(t, workflows.FallbackCancelled, st.Fallback.State)
	require.Empty(t, h.fallbackCalls())
}

func fbDurPtr(d time.Duration) *fallback.Duration { v := fallback.Dur(d); return &v }

// UpdatePatchFallback.
func TestFallbackPatch(t *testing.T) {
	const sentWithin, deliveredWithin = 5 * time.Minute, 10 * time.Minute
	newSteps := []fallback.Step{fbWebhook(fbHook2)}
	emptySteps := []fallback.Step{}
	bouncedOnly := fbOn(message.StatusBounced)
	tests := []struct {
		name    string
		on      []message.Status
		patchAt time.Duration
		patch   fallback.Patch
		signals []fbSignal
		cancel  bool          // cancel before the patch
		sendOK  time.Duration // Send fails retryably until t0+sendOK (then sent at +1023s); 0: sent at once
		// wantErr: the rejection's error type; "": accepted.
		wantErr string
		// wantAnswer: the answer's state; wantEscAt: escalation (0: none); wantURL: the step used.
		wantAnswer string
		wantEscAt  time.Duration
		wantReason fallback.Reason
		wantURL    string
		wantDue    time.Time // delivered_within's due time in the answer (zero: not checked)
	}{
		{
			name: "shorten delivered_within to the past: escalates at once", on: bouncedOnly,
			patchAt: 5 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(time.Minute)},
			wantAnswer: workflows.FallbackEscalated, wantEscAt: 5 * time.Minute, wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
			wantDue: sentAt.Add(time.Minute),
		},
		{
			name: "shorten delivered_within, still ahead", on: bouncedOnly,
			patchAt: 2 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(3 * time.Minute)},
			wantAnswer: workflows.FallbackPending, wantEscAt: sentAt.Add(3 * time.Minute).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
			wantDue: sentAt.Add(3 * time.Minute),
		},
		{
			name: "lengthen delivered_within: the deadline moves", on: bouncedOnly,
			patchAt: 5 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(20 * time.Minute)},
			wantAnswer: workflows.FallbackPending, wantEscAt: sentAt.Add(20 * time.Minute).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
			wantDue: sentAt.Add(20 * time.Minute),
		},
		{
			name: "shorten sent_within to the past while queued: escalates at once", on: bouncedOnly, sendOK: 10 * time.Minute,
			patchAt: 3 * time.Minute, patch: fallback.Patch{SentWithin: fbDurPtr(2 * time.Minute)},
			wantAnswer: workflows.FallbackEscalated, wantEscAt: 3 * time.Minute, wantReason: fallback.ReasonNotSent, wantURL: fbHook,
		},
		{
			name: "lengthen sent_within while queued: the deadline moves", on: bouncedOnly, sendOK: 10 * time.Minute,
			patchAt: 3 * time.Minute, patch: fallback.Patch{SentWithin: fbDurPtr(8 * time.Minute)},
			wantAnswer: workflows.FallbackPending, wantEscAt: 8 * time.Minute, wantReason: fallback.ReasonNotSent, wantURL: fbHook,
		},
		{
			name: "after delivered: a shorter delivered_within changes nothing", on: bouncedOnly,
			signals: []fbSignal{{at: 3 * time.Minute, ev: event(message.EventDelivered, "d")}},
			patchAt: 5 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(time.Minute)},
			wantAnswer: workflows.FallbackPending,
		},
		{
			name: "turn delivered_within off", on: bouncedOnly,
			patchAt: 5 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(0)},
			wantAnswer: workflows.FallbackPending,
		},
		{
			name: "new steps are used by the ladder", on: bouncedOnly,
			patchAt: 2 * time.Minute, patch: fallback.Patch{Steps: &newSteps},
			wantAnswer: workflows.FallbackPending, wantEscAt: sentAt.Add(deliveredWithin).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook2,
		},
		{
			name: "on bounced after a bounce escalates at once", on: fbOn(),
			signals: []fbSignal{{at: time.Minute, ev: event(message.EventBounced, "b")}},
			patchAt: 2 * time.Minute, patch: fallback.Patch{On: &bouncedOnly},
			wantAnswer: workflows.FallbackEscalated, wantEscAt: 2 * time.Minute, wantReason: fallback.ReasonBounced, wantURL: fbHook,
		},
		{
			name: "invalid: empty steps", on: bouncedOnly,
			patchAt: 2 * time.Minute, patch: fallback.Patch{Steps: &emptySteps},
			wantErr:   workflows.ErrFallbackInvalid,
			wantEscAt: sentAt.Add(deliveredWithin).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
		},
		{
			name: "invalid: nothing to change", on: bouncedOnly,
			patchAt: 2 * time.Minute, patch: fallback.Patch{},
			wantErr:   workflows.ErrFallbackInvalid,
			wantEscAt: sentAt.Add(deliveredWithin).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
		},
		{
			name: "invalid: on delivered", on: bouncedOnly,
			patchAt: 2 * time.Minute, patch: fallback.Patch{On: &[]message.Status{message.StatusDelivered}},
			wantErr:   workflows.ErrFallbackInvalid,
			wantEscAt: sentAt.Add(deliveredWithin).Sub(t0), wantReason: fallback.ReasonNotDelivered, wantURL: fbHook,
		},
		{
			name: "after escalation: conflict", on: bouncedOnly,
			signals: []fbSignal{{at: time.Minute, ev: event(message.EventBounced, "b")}},
			patchAt: 2 * time.Minute, patch: fallback.Patch{Steps: &newSteps},
			wantErr:   workflows.ErrFallbackConflict,
			wantEscAt: time.Minute, wantReason: fallback.ReasonBounced, wantURL: fbHook,
		},
		{
			name: "after cancel: conflict", on: bouncedOnly, cancel: true,
			patchAt: 2 * time.Minute, patch: fallback.Patch{DeliveredWithin: fbDurPtr(time.Minute)},
			wantErr: workflows.ErrFallbackConflict,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(sentWithin, deliveredWithin, tc.on, fbWebhook(fbHook)))
			if tc.sendOK > 0 {
				h.sendOKAfter(tc.sendOK)
			}
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			if tc.cancel {
				h.updateAt(time.Minute, "cancel", workflows.UpdateCancelFallback, workflows.CancelFallbackInput{})
			}
			h.updateAt(tc.patchAt, "patch", workflows.UpdatePatchFallback, tc.patch)
			st := h.run()
			fb := st.Fallback
			calls := h.fallbackCalls()

			if tc.wantErr != "" {
				h.requireRejected("patch", tc.wantErr)
				require.Equal(t, fbWebhook(fbHook), fb.Policy.Steps[0], "a rejected patch changes nothing")
				require.Len(t, fb.Policy.Steps, 1)
			} else {
				ans := h.requireAccepted("patch")
				require.Equal(t, tc.wantAnswer, ans.State, "answer state")
				require.NotNil(t, ans.Policy)
				want := tc.patch.Apply(*fbPolicy(sentWithin, deliveredWithin, tc.on, fbWebhook(fbHook)))
				jsonEqual(t, want.Masked(), *ans.Policy, "answer policy")
				jsonEqual(t, want, *fb.Policy, "final policy")
				if !tc.wantDue.IsZero() {
					d := fbDeadline(ans, workflows.DeadlineDelivered)
					require.NotNil(t, d, "answer: delivered_within deadline")
					sameTime(t, tc.wantDue, d.DueAt, "answer: delivered_within due")
				}
			}
			if tc.wantEscAt == 0 {
				require.Empty(t, calls, "Fallback calls")
				require.NotEqual(t, workflows.FallbackEscalated, fb.State)
				return
			}
			require.Equal(t, workflows.FallbackEscalated, fb.State)
			require.Equal(t, tc.wantReason, fb.Reason)
			sameTime(t, t0.Add(tc.wantEscAt), fb.EscalatedAt, "EscalatedAt")
			require.Len(t, calls, 1, "Fallback calls")
			require.Equal(t, tc.wantURL, calls[0].Msg.URL, "the step used")
			sameTime(t, t0.Add(tc.wantEscAt), calls[0].At, "fallback call time")
			if name, ok := map[fallback.Reason]string{
				fallback.ReasonNotSent: workflows.DeadlineSent, fallback.ReasonNotDelivered: workflows.DeadlineDelivered,
			}[tc.wantReason]; ok {
				d := fbDeadline(fb, name)
				require.NotNilf(t, d, "deadline %s", name)
				require.Equalf(t, workflows.DeadlineFired, d.State, "deadline %s", name)
				if tc.wantEscAt == tc.patchAt {
					// Patched to a time already past: due then, fired at the patch.
					require.Truef(t, d.DueAt.Before(t0.Add(tc.patchAt)), "deadline %s due %s, want before the patch", name, d.DueAt)
				} else {
					sameTime(t, t0.Add(tc.wantEscAt), d.DueAt, "due time of the deadline that fired")
				}
			}
			if tc.wantAnswer == workflows.FallbackPending && tc.wantErr == "" {
				for _, d := range fb.Deadlines {
					require.NotEqualf(t, workflows.DeadlinePending, d.State, "deadline %s still pending at the end", d.Name)
				}
			}
		})
	}
}

// Phone numbers are masked in every answer (update results and the state query),
// while the workflow sends to the real number.
func TestFallbackMasksPhoneNumbers(t *testing.T) {
	require.Equal(t, fbPhoneMasked, fallback.MaskPhone(fbPhone), "fixture")
	h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbSMS(fbPhone, 0)))
	patched := []fallback.Step{fbSMS(fbPhone2, 0), fbWebhook(fbHook)}
	h.queryAt(30*time.Second, "before")
	h.updateAt(time.Minute, "patch", workflows.UpdatePatchFallback, fallback.Patch{Steps: &patched})
	h.signalAt(2*time.Minute, event(message.EventBounced, "b"))
	h.queryAt(3*time.Minute, "after")
	h.run()

	before := h.query("before").Fallback
	require.Equal(t, fbPhoneMasked, before.Policy.Steps[0].To, "query before escalation: policy step to")

	ans := h.requireAccepted("patch")
	require.Equal(t, "+44********23", ans.Policy.Steps[0].To, "patch answer: policy step to")
	require.Equal(t, fbHook, ans.Policy.Steps[1].URL, "webhook URLs are not masked")

	after := h.query("after").Fallback
	require.Equal(t, "+44********23", after.Policy.Steps[0].To, "query after escalation: policy step to")
	require.Len(t, after.Steps, 1)
	require.Equal(t, "+44********23", after.Steps[0].Target, "query: step target")
	for _, s := range []workflows.FallbackState{before, ans, after} {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		require.NotContains(t, string(b), fbPhone)
		require.NotContains(t, string(b), fbPhone2)
	}

	calls := h.fallbackCalls()
	require.Len(t, calls, 1)
	require.Equal(t, fbPhone2, calls[0].Msg.To, "the Fallback activity gets the real number")
}

// The ladder's outcome is posted, after the status postbacks and in order, to a
// route subscribed to fallback_sent and fallback_failed; to a route subscribed to
// the statuses only, nothing.
func TestFallbackOutcomePostbacks(t *testing.T) {
	bounce := event(message.EventBounced, "b")
	bounce.Reason = "550 5.1.1 user unknown"
	const deliveredWithin = 10 * time.Minute
	esc := sentAt.Add(deliveredWithin).Sub(t0)
	tests := []struct {
		name string
		post bool
		// outcomesOnly: the route subscribes to the fallback outcomes and nothing else.
		outcomesOnly bool
		steps        []fallback.Step
		fn           func(n int, m channel.Message) (channel.Result, error)
		signals      []fbSignal
		statuses     []struct {
			at time.Duration
			s  workflows.FallbackStatus
		}
		wantPostbacks []message.Status
		// want: the outcome postback (when posted).
		wantOutcome message.Status
		wantAt      time.Duration
		wantReason  fallback.Reason
		wantChannel string
		wantStep    int
	}{
		{
			name: "sent by step 2 after a bounce", post: true,
			steps: []fallback.Step{fbSMS(fbPhone, time.Minute), fbWebhook(fbHook)},
			fn: func(n int, m channel.Message) (channel.Result, error) {
				if m.Step == 0 {
					return channel.Result{}, fbRefused
				}
				return fbDefaultResult(m), nil
			},
			signals:       []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusBounced, message.StatusFallbackSent},
			wantOutcome:   message.StatusFallbackSent, wantAt: 2 * time.Minute, wantReason: fallback.ReasonBounced,
			wantChannel: fallback.ChannelWebhook, wantStep: 2,
		},
		{
			name: "sent: an sms confirmed by its report", post: true,
			steps: []fallback.Step{fbSMS(fbPhone, 30*time.Minute)},
			statuses: []struct {
				at time.Duration
				s  workflows.FallbackStatus
			}{{at: esc + 4*time.Minute, s: workflows.FallbackStatus{Step: 1, Status: "delivered"}}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusFallbackSent},
			wantOutcome:   message.StatusFallbackSent, wantAt: esc + 4*time.Minute, wantReason: fallback.ReasonNotDelivered,
			wantChannel: fallback.ChannelSMS, wantStep: 1,
		},
		{
			name: "sent, then the email is delivered", post: true,
			steps:         []fallback.Step{fbWebhook(fbHook)},
			signals:       []fbSignal{{at: esc + time.Minute, ev: event(message.EventDelivered, "d")}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusFallbackSent, message.StatusDelivered},
			wantOutcome:   message.StatusFallbackSent, wantAt: esc, wantReason: fallback.ReasonNotDelivered,
			wantChannel: fallback.ChannelWebhook, wantStep: 1,
		},
		{
			name: "every step fails", post: true,
			steps:         []fallback.Step{fbSMS(fbPhone, time.Minute), fbWebhook(fbHook)},
			fn:            func(int, channel.Message) (channel.Result, error) { return channel.Result{}, fbRefused },
			signals:       []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusBounced, message.StatusFallbackFailed},
			wantOutcome:   message.StatusFallbackFailed, wantAt: 2 * time.Minute, wantReason: fallback.ReasonBounced,
		},
		{
			name: "every step fails, the last unconfirmed", post: true,
			steps:         []fallback.Step{fbSMS(fbPhone, 5*time.Minute)},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusFallbackFailed},
			wantOutcome:   message.StatusFallbackFailed, wantAt: esc + 5*time.Minute, wantReason: fallback.ReasonNotDelivered,
		},
		{
			name: "a route subscribed to the outcomes only", post: true, outcomesOnly: true,
			steps:         []fallback.Step{fbWebhook(fbHook)},
			signals:       []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantPostbacks: []message.Status{message.StatusFallbackSent},
			wantOutcome:   message.StatusFallbackSent, wantAt: 2 * time.Minute, wantReason: fallback.ReasonBounced,
			wantChannel: fallback.ChannelWebhook, wantStep: 1,
		},
		{
			name:          "not asked for",
			steps:         []fallback.Step{fbWebhook(fbHook)},
			signals:       []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusBounced},
		},
		{
			name:          "not asked for, every step fails",
			steps:         []fallback.Step{fbWebhook(fbHook)},
			fn:            func(int, channel.Message) (channel.Result, error) { return channel.Result{}, fbRefused },
			signals:       []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantPostbacks: []message.Status{message.StatusSent, message.StatusBounced},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(5*time.Minute, deliveredWithin, fbOn(message.StatusBounced), tc.steps...))
			switch {
			case tc.outcomesOnly:
				h.in.Routes = []workflows.Route{urlRoute(testURL, string(message.StatusFallbackSent), string(message.StatusFallbackFailed))}
			case tc.post:
				h.in.Routes = []workflows.Route{withFallbackOutcomes(urlRoute(testURL))}
			}
			h.fallbackFn = tc.fn
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			for _, s := range tc.statuses {
				h.statusAt(s.at, s.s)
			}
			st := h.run()

			require.Equal(t, tc.wantPostbacks, pbStatuses(st.Postbacks), "postbacks queued")
			require.Equal(t, tc.wantPostbacks, okCallStatuses(h.postCalls()), "postbacks posted, in order")
			for i, p := range st.Postbacks {
				require.Equalf(t, i+1, p.Seq, "postback %s seq", p.Status)
				require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %s", p.Status)
			}
			if tc.wantOutcome == "" {
				return
			}
			var pb workflows.PostbackRecord
			for _, p := range st.Postbacks {
				if p.Status == tc.wantOutcome {
					pb = p
				}
			}
			want := message.NewFallbackPostback(identity(), tc.wantOutcome, t0.Add(tc.wantAt), string(tc.wantReason), tc.wantChannel, tc.wantStep)
			jsonEqual(t, want, pb.Body, "outcome postback body")
			keys := []string{"campaign_api_id", "external_send_id", "fallback_at", "fallback_reason"}
			if tc.wantOutcome == message.StatusFallbackSent {
				keys = append(keys, "fallback_channel", "fallback_step")
			}
			require.Equal(t, sorted(keys...), metadataKeys(t, pb.Body))
			// The outcome never changes the message's status.
			require.NotEqual(t, tc.wantOutcome, st.Status)
		})
	}
}

// The workflow stays open while the ladder runs, past its tracking window.
func TestFallbackLadderKeepsWorkflowOpen(t *testing.T) {
	const bounceAt = 10 * time.Minute
	h := newFBHarness(t, fbPolicy(5*time.Minute, 0, fbOn(message.StatusBounced), fbSMS(fbPhone, 2*time.Hour)))
	h.signalAt(bounceAt, event(message.EventBounced, "b"))
	h.queryAt(bounceAt+90*time.Minute, "waiting") // past the tracking window (bounce + 1h)
	st := h.run()

	waiting := h.query("waiting")
	require.Equal(t, []string{workflows.StepSent}, fbStepStates(waiting.Fallback.Steps))
	sameTime(t, t0.Add(bounceAt+time.Hour), waiting.TrackingUntil, "TrackingUntil")
	require.Equal(t, bounceAt+2*time.Hour, h.elapsed(), "completion: when the ladder ends")
	require.Equal(t, []string{workflows.StepUnconfirmed}, fbStepStates(st.Fallback.Steps))
	require.Equal(t, workflows.OutcomeFailed, st.Fallback.Outcome)
}

// Deadlines cancelled by the delivery never fire, however long the workflow runs on.
func TestFallbackCancelledDeadlinesDoNotFire(t *testing.T) {
	h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)))
	h.in.Policy.TrackingWindow = 3 * time.Hour
	h.signalAt(2*time.Minute, event(message.EventDelivered, "d"))
	h.signalAt(30*time.Minute, event(message.EventOpen, "o"))
	h.queryAt(time.Hour, "later")
	st := h.run()

	require.Equal(t, closeAfter(3*time.Hour, 2*time.Minute), h.elapsed(), "ran well past every deadline")
	require.Empty(t, h.fallbackCalls(), "Fallback calls")
	for _, fb := range []workflows.FallbackState{h.query("later").Fallback, st.Fallback} {
		require.Equal(t, workflows.FallbackPending, fb.State)
		require.Equal(t, map[string]string{workflows.DeadlineSent: workflows.DeadlineCancelled, workflows.DeadlineDelivered: workflows.DeadlineCancelled},
			fbDeadlineStates(fb))
		require.Empty(t, fb.Steps)
	}
}

// A deadline due after the tracking window keeps the workflow open until it fires.
func TestFallbackDeadlineBeyondTrackingWindow(t *testing.T) {
	h := newFBHarness(t, fbPolicy(5*time.Minute, 2*time.Hour, fbOn(message.StatusBounced), fbWebhook(fbHook)))
	// TrackingWindow is 1h: the workflow would close at t0+66m.
	st := h.run()
	require.Equal(t, workflows.FallbackEscalated, st.Fallback.State, "delivered_within (2h) must fire")
	require.Len(t, h.fallbackCalls(), 1)
	sameTime(t, sentAt.Add(2*time.Hour), st.Fallback.EscalatedAt, "EscalatedAt")
}

// Continue-as-new carries a pending deadline into the next run, which fires it on time;
// a ladder in progress finishes before the run continues as new.
func TestFallbackContinueAsNew(t *testing.T) {
	tests := []struct {
		name string
		// policy and the events of run 1; canAt: when continue-as-new is suggested.
		policy  *fallback.Policy
		signals []fbSignal
		canAt   time.Duration
		// wantCANAt: when run 1 ends; wantCarried: its fallback state.
		wantCANAt   time.Duration
		wantCarried string
		// wantEscAt: the escalation time; wantCalls1/2: Fallback calls per run.
		wantEscAt  time.Duration
		wantCalls1 int
		wantCalls2 int
	}{
		{
			name:        "pending deadline carried",
			policy:      fbPolicy(5*time.Minute, 30*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)),
			canAt:       3 * time.Minute,
			wantCANAt:   3 * time.Minute,
			wantCarried: workflows.FallbackPending,
			wantEscAt:   sentAt.Add(30 * time.Minute).Sub(t0),
			wantCalls2:  1,
		},
		{
			name:        "ladder in progress finishes first",
			policy:      fbPolicy(5*time.Minute, 0, fbOn(message.StatusBounced), fbSMS(fbPhone, 30*time.Minute)),
			signals:     []fbSignal{{at: time.Minute, ev: event(message.EventBounced, "b")}},
			canAt:       3 * time.Minute,
			wantCANAt:   31 * time.Minute,
			wantCarried: workflows.FallbackEscalated,
			wantEscAt:   time.Minute,
			wantCalls1:  1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, tc.policy)
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			h.env.RegisterDelayedCallback(func() { h.env.SetContinueAsNewSuggested(true) }, tc.canAt)
			h.install()
			h.env.ExecuteWorkflow(workflows.Message, h.in)
			require.True(t, h.env.IsWorkflowCompleted())
			err := h.env.GetWorkflowError()
			require.True(t, workflow.IsContinueAsNewError(err), "got %v, want a continue-as-new", err)
			canAt := h.env.Now()
			require.Equal(t, tc.wantCANAt, canAt.Sub(t0), "continue-as-new time")
			var canErr *workflow.ContinueAsNewError
			require.True(t, errors.As(err, &canErr))
			var next workflows.MessageInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(canErr.Input, &next))
			require.NotNil(t, next.Carried)
			require.Equal(t, tc.wantCarried, next.Carried.Fallback.State, "carried fallback state")
			require.Len(t, h.fallbackCalls(), tc.wantCalls1, "Fallback calls in run 1")
			if tc.wantCarried == workflows.FallbackEscalated {
				require.Equal(t, workflows.OutcomeFailed, next.Carried.Fallback.Outcome, "carried outcome: the ladder ended")
				require.Equal(t, fbPhone, next.Carried.Fallback.Policy.Steps[0].To, "the carried policy keeps the real number")
			}

			h2 := newFBHarness(t, nil)
			h2.env.SetStartTime(canAt)
			h2.in = next
			st := h2.run()
			require.Empty(t, h2.sendCalls(), "run 2 must not send again")
			calls2 := h2.fallbackCalls()
			require.Len(t, calls2, tc.wantCalls2, "Fallback calls in run 2")
			require.Equal(t, workflows.FallbackEscalated, st.Fallback.State)
			sameTime(t, t0.Add(tc.wantEscAt), st.Fallback.EscalatedAt, "EscalatedAt")
			if tc.wantCalls2 > 0 {
				sameTime(t, t0.Add(tc.wantEscAt), calls2[0].At, "run 2 fallback call time")
				fbRequireMessage(t, calls2[0], 0, tc.policy.Steps[0], fallback.ReasonNotDelivered, message.StatusSent)
			}
		})
	}
}
