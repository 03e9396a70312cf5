package workflows_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Routes of the postback tests: a configured endpoint and a message's own URL.
const (
	pbEndpoint = "crm"
	pbURL      = "https://hooks.example.test/braze"
)

// sent is one postback as a route received it: its status, or engagement event.
type sent struct {
	Status message.Status
	Event  message.EventType
}

// delivered lists, per route (endpoint id or URL), the postbacks delivered to it,
// in call order.
func delivered(calls []activityCall) map[string][]sent {
	out := map[string][]sent{}
	for _, c := range calls {
		if c.Outcome == activities.OutcomeDelivered {
			out[c.Route] = append(out[c.Route], sent{c.Status, c.Event})
		}
	}
	return out
}

// requireRouteOrder requires that no call of a route was made for a postback
// while an earlier postback of that route was still undelivered.
func requireRouteOrder(t *testing.T, st workflows.State, calls []activityCall) {
	t.Helper()
	seqOf := map[string]int{}
	for _, p := range st.Postbacks {
		seqOf[p.WebhookID] = p.Seq
	}
	last := map[string]int{} // route → seq of its postback being sent
	for i, c := range calls {
		seq := seqOf[c.Input.WebhookID]
		require.NotZerof(t, seq, "call %d: webhook id %q is no postback's", i, c.Input.WebhookID)
		require.GreaterOrEqualf(t, seq, last[c.Route], "call %d at +%s to %s: postback %d after postback %d", i, c.At.Sub(t0), c.Route, seq, last[c.Route])
		last[c.Route] = seq
	}
}

// Each route has its own sender: one endpoint that is down delays neither the
// other endpoint nor the order of its own postbacks.
func TestPostbackRoutesIndependent(t *testing.T) {
	h := newHarness(t)
	h.in.Routes = []workflows.Route{endpointRoute(pbEndpoint), urlRoute(pbURL)}
	upAt := t0.Add(20 * time.Minute)
	h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
		if in.EndpointID == pbEndpoint && now.Before(upAt) {
			return pbDown
		}
		return pbAnswer{}
	}
	h.signalAt(time.Minute, event(message.EventProcessed, "p"))
	h.signalAt(2*time.Minute, event(message.EventDelivered, "d"))
	h.queryAt(10*time.Minute, "down")
	st := h.result()

	order := []sent{{Status: message.StatusSent}, {Status: message.StatusProcessed}, {Status: message.StatusDelivered}}
	calls := h.postCalls()
	got := delivered(calls)
	require.Equal(t, order, got[pbURL], "postbacks delivered to the URL route")
	require.Equal(t, order, got[pbEndpoint], "postbacks delivered to the endpoint, once it recovered")
	requireRouteOrder(t, st, calls)

	var urlAts, endpointOKAts []time.Duration
	for _, c := range calls {
		switch {
		case c.Route == pbURL:
			urlAts = append(urlAts, c.At.Sub(t0))
		case c.Outcome == activities.OutcomeDelivered:
			endpointOKAts = append(endpointOKAts, c.At.Sub(t0))
		}
	}
	require.Equal(t, []time.Duration{0, time.Minute, 2 * time.Minute}, urlAts, "the URL route's postbacks go at once, each in one attempt")
	// The endpoint's attempts: at once, then 5s, 5m and 30m later; the last is the
	// first after upAt, and the postbacks queued behind it follow at once.
	after := 35*time.Minute + 5*time.Second
	require.Equal(t, []time.Duration{after, after, after}, endpointOKAts, "the endpoint's postbacks, delivered after it recovered")

	down := h.query("down")
	states := map[string][]string{}
	for _, p := range down.Postbacks {
		states[p.Endpoint] = append(states[p.Endpoint], p.State)
	}
	require.Equal(t, []string{workflows.PostbackDelivered, workflows.PostbackDelivered, workflows.PostbackDelivered}, states[testLabel],
		"the URL route's postbacks while the endpoint is down")
	require.Equal(t, []string{workflows.PostbackDelivering, workflows.PostbackPending, workflows.PostbackPending}, states[pbEndpoint],
		"the endpoint's postbacks while it is down")

	for _, p := range st.Postbacks {
		require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %d (%s to %s)", p.Seq, p.Status, p.Endpoint)
		wantRoute := map[string]int{pbEndpoint: 0, testLabel: 1}[p.Endpoint]
		require.Equalf(t, wantRoute, p.Route, "postback %d route index", p.Seq)
	}
}

// The wait between the local first attempt and the regular activity is the
// first attempt's RetryIn (the endpoint's schedule), on a durable timer.
func TestPostbackFirstRetryDelay(t *testing.T) {
	for _, first := range []time.Duration{time.Second, 7*time.Minute + 13*time.Second, 3 * time.Hour} {
		t.Run(first.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.in.Policy.TrackingWindow = 10 * time.Hour
			h.schedule = postback.Schedule{postback.Duration(first), postback.Duration(time.Hour)}
			calls := 0
			h.postbackFn = func(activities.PostbackInput, time.Time) pbAnswer {
				calls++
				if calls == 1 {
					return pbAnswer{Status: http.StatusTooManyRequests}
				}
				return pbAnswer{}
			}
			h.queryAt(first-time.Millisecond, "waiting")
			st := h.result()

			made := h.postCalls()
			require.Len(t, made, 2)
			require.True(t, made[0].Local, "first attempt: local")
			require.Equal(t, first, made[0].Delay, "the first attempt's RetryIn")
			require.False(t, made[1].Local, "second attempt: the regular activity")
			require.Equal(t, int32(1), made[1].Attempt)
			require.Equal(t, first, made[1].At.Sub(made[0].At), "time between the attempts")

			waiting := h.query("waiting").Postbacks[0]
			require.Equal(t, workflows.PostbackDelivering, waiting.State)
			require.Len(t, waiting.Attempts, 1)
			require.Equal(t, http.StatusTooManyRequests, waiting.Attempts[0].StatusCode)
			sameTime(t, t0.Add(first), waiting.Attempts[0].NextAttemptAt, "NextAttemptAt in the log")
			sameTime(t, t0.Add(first), waiting.NextAttemptAt, "NextAttemptAt of the postback")

			pb := st.Postbacks[0]
			require.Equal(t, workflows.PostbackDelivered, pb.State)
			require.Equal(t, 2, pb.AttemptCount, "attempts made")
			require.Len(t, pb.Attempts, 2, "attempts log")
			sameTime(t, t0.Add(first), pb.DeliveredAt, "DeliveredAt")
		})
	}
}

// Engagement events are posted, one postback per event, to the routes subscribed
// to them only, after the status postback they cause.
func TestPostbackEngagement(t *testing.T) {
	const (
		statuses = "statuses"
		engaged  = "https://engaged.example.test/hook"
		opens    = "opens"
	)
	h := newHarness(t)
	h.in.Routes = []workflows.Route{
		endpointRoute(statuses),
		urlRoute(engaged, append(statusEventNames, "open", "click")...),
		endpointRoute(opens, "deferred", "open"),
	}
	deferred := event(message.EventDeferred, "def")
	deferred.Reason = "451 4.7.1 greylisted"
	h.signalAt(time.Minute, deferred)
	h.signalAt(2*time.Minute, event(message.EventOpen, "o1")) // proves delivery
	h.signalAt(3*time.Minute, event(message.EventClick, "c1"))
	h.signalAt(4*time.Minute, event(message.EventOpen, "o2"))
	h.signalAt(5*time.Minute, event(message.EventComplaint, "x")) // nobody subscribes
	st := h.result()

	require.Equal(t, message.StatusDelivered, st.Status)
	sentPB, deliveredPB := sent{Status: message.StatusSent}, sent{Status: message.StatusDelivered}
	engagement := func(s message.Status, e message.EventType) sent { return sent{Status: s, Event: e} }
	want := map[string][]sent{
		statuses: {sentPB, deliveredPB},
		engaged: {sentPB, deliveredPB, engagement(message.StatusDelivered, message.EventOpen),
			engagement(message.StatusDelivered, message.EventClick), engagement(message.StatusDelivered, message.EventOpen)},
		opens: {engagement(message.StatusSent, message.EventDeferred), engagement(message.StatusDelivered, message.EventOpen),
			engagement(message.StatusDelivered, message.EventOpen)},
	}
	calls := h.postCalls()
	require.Equal(t, want, delivered(calls), "postbacks per route, in order")
	requireRouteOrder(t, st, calls)

	// In the state: the open's status postbacks come before its engagement ones.
	var atOpen []string
	for _, p := range st.Postbacks {
		require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %d", p.Seq)
		if p.ReceivedAt.Equal(t0.Add(2 * time.Minute)) {
			atOpen = append(atOpen, fmt.Sprintf("%s:%s", p.Endpoint, pbName(p)))
		}
	}
	require.Equal(t, []string{"statuses:delivered", testLabel + ":delivered", testLabel + ":open", "opens:open"}, atOpen,
		"postbacks of the first open, in seq order")

	for _, c := range calls {
		if c.Event == message.EventDeferred {
			require.Equal(t, deferred.Reason, c.Input.Notification.Reason, "the deferral's reason")
			sameTime(t, t0.Add(time.Minute-2*time.Second), c.Input.Notification.EventAt, "the deferral's time")
			require.Equal(t, testDispatchID, c.Input.Notification.Postback.DispatchID)
		}
	}
}

// replayOutcome is what the update callbacks of a replay saw.
type replayOutcome struct {
	accepted, rejected, completed bool
	rejectErr, err                error
	result                        workflows.ReplayResult
}

// replayAt sends the replay update in at t0+d; the outcome is filled in when the
// workflow answers.
func (h *harness) replayAt(d time.Duration, in workflows.ReplayInput) *replayOutcome {
	out := &replayOutcome{}
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(workflows.UpdateReplayPostbacks, fmt.Sprintf("replay-%s", d), &testsuite.TestUpdateCallback{
			OnAccept: func() { h.mu.Lock(); out.accepted = true; h.mu.Unlock() },
			OnReject: func(err error) { h.mu.Lock(); out.rejected, out.rejectErr = true, err; h.mu.Unlock() },
			OnComplete: func(v any, err error) {
				var res workflows.ReplayResult
				if err == nil {
					switch r := v.(type) {
					case workflows.ReplayResult:
						res = r
					case converter.EncodedValue:
						err = r.Get(&res)
					default:
						err = fmt.Errorf("update result of type %T", v)
					}
				}
				h.mu.Lock()
				out.completed, out.err, out.result = true, err, res
				h.mu.Unlock()
			},
		}, in)
	}, d)
	return out
}

// pbName is the event name postback p was sent for: its engagement event, or its status.
func pbName(p workflows.PostbackRecord) string {
	if p.Event != "" {
		return string(p.Event)
	}
	return string(p.Status)
}

// pbRecord finds the postback of route label for status or event name.
func pbRecord(t *testing.T, st workflows.State, label, name string) workflows.PostbackRecord {
	t.Helper()
	for _, p := range st.Postbacks {
		if p.Endpoint == label && pbName(p) == name {
			return p
		}
	}
	require.Failf(t, "postback missing", "no %s postback to %s", name, label)
	return workflows.PostbackRecord{}
}

// A disabled endpoint's postbacks are held, a 410 Gone holds them on a configured
// endpoint (which an operator can enable again) and fails them on a message's
// own URL (which has no switch).
func TestPostbackHeldOrFailed(t *testing.T) {
	tests := []struct {
		name      string
		route     workflows.Route
		answer    func(n int) pbAnswer // call n, 0-based
		wantState string
		wantLog   []int // status codes of the attempts log
		wantError string
	}{
		{
			name: "endpoint disabled", route: endpointRoute(pbEndpoint),
			answer:    func(int) pbAnswer { return pbAnswer{Disabled: true} },
			wantState: workflows.PostbackHeld, wantLog: []int{},
			wantError: "endpoint crm is disabled: by an operator",
		},
		{
			name: "endpoint gone", route: endpointRoute(pbEndpoint),
			answer:    func(int) pbAnswer { return pbAnswer{Status: http.StatusGone} },
			wantState: workflows.PostbackHeld, wantLog: []int{http.StatusGone},
			wantError: "endpoint answered 410 Gone; endpoint crm disabled",
		},
		{
			name: "endpoint gone on retry", route: endpointRoute(pbEndpoint),
			answer: func(n int) pbAnswer {
				if n == 0 {
					return pbDown
				}
				return pbAnswer{Status: http.StatusGone}
			},
			wantState: workflows.PostbackHeld, wantLog: []int{http.StatusServiceUnavailable, http.StatusGone},
			wantError: "endpoint answered 410 Gone; endpoint crm disabled",
		},
		{
			name: "URL gone", route: urlRoute(pbURL),
			answer:    func(int) pbAnswer { return pbAnswer{Status: http.StatusGone} },
			wantState: workflows.PostbackFailed, wantLog: []int{http.StatusGone},
			wantError: "endpoint answered 410 Gone",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.in.Routes = []workflows.Route{tc.route, endpointRoute("other")}
			n := 0
			h.postbackFn = func(in activities.PostbackInput, _ time.Time) pbAnswer {
				if in.EndpointID == "other" {
					return pbAnswer{}
				}
				n++
				if in.Notification.Postback.Status != message.StatusSent {
					return pbAnswer{}
				}
				return tc.answer(n - 1)
			}
			h.signalAt(time.Minute, event(message.EventDelivered, "d"))
			h.queryAt(61*time.Minute, "after the window")
			st := h.result()

			pb := pbRecord(t, h.query("after the window"), tc.route.Label, "sent")
			require.Equal(t, tc.wantState, pb.State)
			require.Equal(t, tc.wantError, pb.LastError)
			codes := []int{}
			for _, a := range pb.Attempts {
				codes = append(codes, a.StatusCode)
			}
			require.Equal(t, tc.wantLog, codes, "attempts log")
			require.True(t, pb.DeliveredAt.IsZero())
			// Neither the route's next postback nor the other route waits for it.
			require.Equal(t, workflows.PostbackDelivered, pbRecord(t, st, tc.route.Label, "delivered").State)
			require.Equal(t, workflows.PostbackDelivered, pbRecord(t, st, "other", "sent").State)
			if tc.wantState != workflows.PostbackHeld {
				require.Equal(t, closeAfter(time.Hour, time.Minute), h.elapsed())
				return
			}
			// Held: the message stays open past its tracking window, until the
			// hold runs out; the postback then fails for good, saying why.
			final := pbRecord(t, st, tc.route.Label, "sent")
			require.Equal(t, workflows.PostbackFailed, final.State)
			require.Equal(t, "held 720h0m0s while endpoint crm stayed disabled; given up (last error: "+tc.wantError+")", final.LastError)
			sameTime(t, pb.HeldAt.Add(workflows.DefaultMaxHold), h.env.Now(), "closed when the hold ran out")
		})
	}
}

// The replay update queues finished postbacks again, with a fresh attempts log
// and the same webhook id; a replay selecting nothing is rejected.
func TestPostbackReplay(t *testing.T) {
	const replayAt = 20 * time.Minute
	disabledUntil := func(d time.Duration) func(activities.PostbackInput, time.Time) pbAnswer {
		return func(in activities.PostbackInput, now time.Time) pbAnswer {
			if in.EndpointID == pbEndpoint && now.Before(t0.Add(d)) {
				return pbAnswer{Disabled: true}
			}
			return pbAnswer{}
		}
	}
	tests := []struct {
		name   string
		fn     func(activities.PostbackInput, time.Time) pbAnswer
		replay workflows.ReplayInput
		// wantBefore: the states before the replay, per route label and name.
		wantBefore map[string]string
		// wantReplayed: the postbacks sent again (label:name); nil: rejected.
		wantReplayed []string
	}{
		{
			name: "held, replayed once the endpoint is enabled", fn: disabledUntil(10 * time.Minute),
			replay: workflows.ReplayInput{Endpoint: pbEndpoint},
			wantBefore: map[string]string{
				"crm:sent": workflows.PostbackHeld, "crm:delivered": workflows.PostbackHeld,
				testLabel + ":sent": workflows.PostbackDelivered, testLabel + ":delivered": workflows.PostbackDelivered,
			},
			wantReplayed: []string{"crm:sent", "crm:delivered"},
		},
		{
			name: "delivered, replayed by status", fn: disabledUntil(0),
			replay:       workflows.ReplayInput{Status: "sent"},
			wantReplayed: []string{"crm:sent", testLabel + ":sent"},
		},
		{
			name: "failed and delivered, all replayed",
			fn: func(in activities.PostbackInput, now time.Time) pbAnswer {
				if in.URL != "" && now.Before(t0.Add(10*time.Minute)) {
					return pbAnswer{Status: http.StatusGone}
				}
				return pbAnswer{}
			},
			wantBefore: map[string]string{
				"crm:sent": workflows.PostbackDelivered, "crm:delivered": workflows.PostbackDelivered,
				testLabel + ":sent": workflows.PostbackFailed, testLabel + ":delivered": workflows.PostbackFailed,
			},
			wantReplayed: []string{"crm:sent", testLabel + ":sent", "crm:delivered", testLabel + ":delivered"},
		},
		{name: "no postback of that status", fn: disabledUntil(0), replay: workflows.ReplayInput{Status: "bounced"}},
		{name: "no such endpoint", fn: disabledUntil(0), replay: workflows.ReplayInput{Endpoint: "nope"}},
		{
			name: "both filters, nothing matches", fn: disabledUntil(0),
			replay: workflows.ReplayInput{Status: "delivered", Endpoint: "other"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.in.Routes = []workflows.Route{endpointRoute(pbEndpoint), urlRoute(pbURL)}
			h.postbackFn = tc.fn
			h.signalAt(time.Minute, event(message.EventDelivered, "d"))
			h.queryAt(replayAt-time.Second, "before")
			out := h.replayAt(replayAt, tc.replay)
			st := h.result()

			before := h.query("before")
			for _, p := range before.Postbacks {
				key := p.Endpoint + ":" + pbName(p)
				if want, ok := tc.wantBefore[key]; ok {
					require.Equalf(t, want, p.State, "postback %s before the replay", key)
				}
			}
			h.mu.Lock()
			o := *out
			h.mu.Unlock()
			if tc.wantReplayed == nil {
				require.Truef(t, o.rejected, "replay: got accepted=%v, want rejected", o.accepted)
				require.False(t, o.accepted)
				var appErr *temporal.ApplicationError
				require.True(t, errors.As(o.rejectErr, &appErr), "got %v, want an ApplicationError", o.rejectErr)
				require.Equal(t, workflows.ErrReplayNothing, appErr.Type())
				jsonEqual(t, before.Postbacks, st.Postbacks, "a rejected replay changes no postback")
				for _, c := range h.postCalls() {
					require.Less(t, c.At.Sub(t0), replayAt, "no postback call after a rejected replay")
				}
				return
			}
			require.True(t, o.accepted && o.completed, "replay accepted and completed")
			require.NoError(t, o.err)
			require.Equal(t, len(tc.wantReplayed), o.result.Replayed, "replayed count")

			var replayed []string
			callsOf := map[string][]activityCall{}
			for _, c := range h.postCalls() {
				callsOf[c.Input.WebhookID] = append(callsOf[c.Input.WebhookID], c)
			}
			for _, p := range st.Postbacks {
				key := p.Endpoint + ":" + pbName(p)
				calls := callsOf[p.WebhookID]
				require.Equalf(t, fmt.Sprintf("msg_%s_%d", testDispatchID, p.Seq), p.WebhookID, "postback %s webhook id", key)
				if p.Replays == 0 {
					for _, c := range calls {
						require.Lessf(t, c.At.Sub(t0), replayAt, "postback %s: called after the replay, but not replayed", key)
					}
					continue
				}
				replayed = append(replayed, key)
				require.Equalf(t, 1, p.Replays, "postback %s replays", key)
				require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %s after the replay", key)
				sameTime(t, t0.Add(replayAt), p.DeliveredAt, "replayed postback "+key+" delivered_at")
				require.Lenf(t, p.Attempts, 1, "postback %s: a fresh attempts log", key)
				sameTime(t, t0.Add(replayAt), p.Attempts[0].At, "replayed postback "+key+" attempt")
				require.Emptyf(t, p.LastError, "postback %s last error", key)
				last := calls[len(calls)-1]
				require.Equalf(t, replayAt, last.At.Sub(t0), "postback %s: last call at the replay", key)
				require.Truef(t, last.Local, "postback %s: the replay's first attempt is local", key)
				require.Zerof(t, last.Input.Made, "postback %s: the replay starts the schedule afresh", key)
			}
			require.Equal(t, tc.wantReplayed, replayed, "replayed postbacks, in seq order")
		})
	}
}

// A replay is rejected while the postbacks it selects are still being delivered.
func TestPostbackReplayWhileDelivering(t *testing.T) {
	h := newHarness(t)
	h.postbackFn = func(activities.PostbackInput, time.Time) pbAnswer { return pbDown }
	out := h.replayAt(time.Minute, workflows.ReplayInput{Status: "sent"})
	h.result()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.True(t, out.rejected, "a replay of a postback being retried is rejected")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(out.rejectErr, &appErr))
	require.Equal(t, workflows.ErrReplayNothing, appErr.Type())
	require.Contains(t, appErr.Message(), "still being delivered")
}

// Every postback has its own webhook id, msg_<dispatch_id>_<seq>, sent on each of
// its attempts.
func TestPostbackWebhookIDs(t *testing.T) {
	h := newHarness(t)
	h.in.Routes = []workflows.Route{endpointRoute(pbEndpoint, append(statusEventNames, "open")...), urlRoute(pbURL)}
	h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
		if now.Before(t0.Add(3 * time.Second)) {
			return pbDown // the first postbacks are retried once
		}
		return pbAnswer{}
	}
	h.signalAt(2*time.Minute, event(message.EventProcessed, "p"))
	h.signalAt(3*time.Minute, event(message.EventOpen, "o"))
	st := h.result()

	require.Len(t, st.Postbacks, 7, "sent, processed, delivered to 2 routes, and open to one")
	ids := map[string]int{}
	for _, p := range st.Postbacks {
		require.Equalf(t, fmt.Sprintf("msg_%s_%d", testDispatchID, p.Seq), p.WebhookID, "postback %d", p.Seq)
		ids[p.WebhookID] = p.Seq
	}
	require.Len(t, ids, len(st.Postbacks), "webhook ids are unique")
	retried := 0
	for _, c := range h.postCalls() {
		seq, ok := ids[c.Input.WebhookID]
		require.Truef(t, ok, "call with unknown webhook id %q", c.Input.WebhookID)
		p := st.Postbacks[seq-1]
		require.Equalf(t, p.Status, c.Status, "call with webhook id %s: status", c.Input.WebhookID)
		require.Equalf(t, p.Event, c.Event, "call with webhook id %s: event", c.Input.WebhookID)
		if !c.Local {
			retried++
		}
	}
	require.Equal(t, 2, retried, "the sent postback of each route retried once, under the same webhook id")
}
