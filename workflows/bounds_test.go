package workflows_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// maxStateBytes is the documented bound of a message's state (the state query's
// answer, the continue-as-new input) with one endpoint, whatever the traffic
// (docs/postbacks.md, "What is bounded").
const maxStateBytes = 256 << 10

// maximal is an event with every string from outside at its bound (and over it:
// the workflow bounds what a signal brings, whoever sent it).
func maximal(typ message.EventType, n int) message.Event {
	ev := event(typ, fmt.Sprintf("%s-%d-%s", typ, n, strings.Repeat("i", 300)))
	ev.Reason = strings.Repeat("r", 5000)
	ev.RawType = strings.Repeat("t", 5000)
	return ev
}

func stateSize(t *testing.T, st workflows.State) int {
	t.Helper()
	b, err := json.Marshal(st)
	require.NoError(t, err)
	return len(b)
}

// A storm of engagement events and repeated statuses, every string maximal,
// leaves the state under its bound; the timeline keeps every status change and
// the first and last few of each type, and says how many it folded; a status
// change after the storm is applied and posted back.
func TestStateBoundedUnderStorm(t *testing.T) {
	t.Run("receiver up", func(t *testing.T) { t.Parallel(); stormBounded(t, false) })
	t.Run("receiver failing engagement postbacks", func(t *testing.T) { t.Parallel(); stormBounded(t, true) })
}

func stormBounded(t *testing.T, failing bool) {
	h := newHarness(t)
	if failing {
		// Every engagement postback fails, with a long answer, until the
		// (short) schedule gives up: the worst the postbacks can weigh.
		h.schedule = postback.Schedule{postback.Duration(time.Second), postback.Duration(time.Second), postback.Duration(time.Second), postback.Duration(time.Second)}
		h.postbackFn = func(in activities.PostbackInput, _ time.Time) pbAnswer {
			if in.Notification.Event != "" {
				return pbAnswer{Status: http.StatusInternalServerError}
			}
			return pbAnswer{}
		}
	}
	h.in.Routes = []workflows.Route{urlRoute(testURL, append(statusEventNames, "open", "click", "deferred", "complaint", "unsubscribe")...)}
	storm := []message.EventType{message.EventOpen, message.EventClick, message.EventDeferred, message.EventComplaint,
		message.EventUnsubscribe, message.EventProcessed, message.EventDelivered, message.EventUnknown}
	const perType = 400 // 3,200 events: under the run's continue-as-new bound
	h.signalAt(time.Second, event(message.EventDelivered, "d"))
	// 40 bursts of 80 events, a second apart (the test environment takes only
	// so many delayed callbacks).
	const rounds = 10
	for burst := range perType / rounds {
		h.env.RegisterDelayedCallback(func() {
			for i := burst * rounds; i < (burst+1)*rounds; i++ {
				for _, typ := range storm {
					ev := maximal(typ, i)
					ev.ReceivedAt = h.env.Now()
					ev.Timestamp = ev.ReceivedAt
					h.env.SignalWorkflow(workflows.SignalEvent, ev)
				}
			}
		}, 2*time.Second+time.Duration(burst)*time.Second)
	}
	stormEnd := 2*time.Second + perType/rounds*time.Second
	bounce := maximal(message.EventBounced, 0)
	h.signalAt(stormEnd+time.Minute, bounce)
	h.queryAt(stormEnd+time.Second, "after the storm")
	st := h.result()

	mid := h.query("after the storm")
	t.Logf("state after the storm: %d bytes; final: %d bytes", stateSize(t, mid), stateSize(t, st))
	require.Less(t, stateSize(t, mid), maxStateBytes, "state after the storm")
	require.Less(t, stateSize(t, st), maxStateBytes, "final state")

	require.Equal(t, message.StatusBounced, st.Status, "the status change after the storm applies")
	require.Len(t, st.Reason, message.MaxReasonLength, "reason bounded")
	bounced := pbRecord(t, st, testLabel, "bounced")
	require.Equal(t, workflows.PostbackDelivered, bounced.State, "the bounce is posted back")

	counts := map[message.EventType]workflows.EventCount{}
	for _, c := range st.EventCounts {
		counts[c.Type] = c
	}
	folded := 0
	for _, typ := range storm {
		c := counts[typ]
		want := perType
		if typ == message.EventDelivered {
			want++ // and the one that changed the status
		}
		require.Equalf(t, want, c.Received, "%s received", typ)
		kept := 0
		for _, e := range st.Events {
			if e.Type == typ && !e.ChangedStatus {
				kept++
				require.LessOrEqualf(t, len(e.ID), message.MaxIDLength, "%s id bounded", typ)
				require.LessOrEqualf(t, len(e.RawType), message.MaxRawTypeLength+len("…"), "%s raw type bounded", typ)
			}
		}
		require.Equalf(t, 4, kept, "%s: the first and the last three kept", typ)
		require.Equalf(t, perType-4, c.Folded, "%s folded", typ)
		folded += c.Folded
	}
	require.Equal(t, folded, st.FoldedEvents)
	// The first of each type is the first received; the last is the last one.
	for _, typ := range []message.EventType{message.EventOpen, message.EventUnknown} {
		var ids []string
		for _, e := range st.Events {
			if e.Type == typ {
				ids = append(ids, e.ID)
			}
		}
		require.Equal(t, message.BoundID(maximal(typ, 0).ID), ids[0], "%s: first kept", typ)
		require.Equal(t, message.BoundID(maximal(typ, perType-1).ID), ids[len(ids)-1], "%s: last kept", typ)
	}

	// Engagement postbacks: 50 per endpoint, the rest counted; the state lists
	// the last 5 delivered, and every failed one.
	engagement := 0
	for _, p := range st.Postbacks {
		if p.Event != "" {
			engagement++
			require.LessOrEqual(t, len(p.Attempts), 1, "a finished engagement postback keeps its last attempt")
		}
	}
	if failing {
		require.Equal(t, 50, engagement, "failed engagement postbacks listed")
		require.Zero(t, st.CompactedPostbacks)
	} else {
		require.Equal(t, 5, engagement, "delivered engagement postbacks listed")
		require.Equal(t, 50-5, st.CompactedPostbacks, "delivered engagement postbacks compacted")
	}
	require.Equal(t, 5*perType-50, st.FoldedPostbacks, "engagement postbacks not sent")
	calls := map[string]bool{}
	for _, c := range h.postCalls() {
		if c.Event != "" {
			calls[c.Input.WebhookID] = true
		}
	}
	require.Len(t, calls, 50, "engagement postbacks sent")
	seqs := map[int]bool{}
	for _, p := range st.Postbacks {
		require.Falsef(t, seqs[p.Seq], "seq %d listed twice", p.Seq)
		seqs[p.Seq] = true
	}
}

// A first postback attempt to an endpoint known to be slow is deferred by the
// activity, and made at once as a regular activity: no workflow task waits on a
// slow receiver, and the attempt is never cut before the endpoint's timeout.
func TestPostbackSlowEndpointDeferred(t *testing.T) {
	h := newHarness(t)
	h.postbackFn = func(activities.PostbackInput, time.Time) pbAnswer { return pbAnswer{Slow: true} }
	st := h.result()

	calls := h.postCalls()
	require.Len(t, calls, 2)
	require.True(t, calls[0].Local, "first: the local attempt")
	require.Equal(t, activities.OutcomeDeferred, calls[0].Outcome)
	require.False(t, calls[1].Local, "then: the regular activity")
	require.Equal(t, calls[0].At, calls[1].At, "at once")
	require.Zero(t, calls[1].Input.Made, "a deferred attempt is no attempt")
	pb := st.Postbacks[0]
	require.Equal(t, workflows.PostbackDelivered, pb.State)
	require.Equal(t, 1, pb.AttemptCount)
}

// A held postback keeps its message open past the tracking window; replayed
// once its endpoint is back, it is delivered and the message closes at once.
func TestHeldPostbackReplayedAfterWindow(t *testing.T) {
	h := newHarness(t)
	h.in.Routes = []workflows.Route{endpointRoute(pbEndpoint)}
	back := 5 * time.Hour
	h.postbackFn = func(_ activities.PostbackInput, now time.Time) pbAnswer {
		if now.Before(t0.Add(back)) {
			return pbAnswer{Disabled: true}
		}
		return pbAnswer{}
	}
	h.signalAt(time.Minute, event(message.EventDelivered, "d"))
	h.queryAt(3*time.Hour, "held")
	out := h.replayAt(back, workflows.ReplayInput{Endpoint: pbEndpoint, States: []string{workflows.PostbackHeld}})
	st := h.result()

	held := h.query("held")
	require.Equal(t, []string{workflows.PostbackHeld, workflows.PostbackHeld}, []string{held.Postbacks[0].State, held.Postbacks[1].State},
		"held past the tracking window (1h)")
	h.mu.Lock()
	require.True(t, out.completed)
	require.Equal(t, 2, out.result.Replayed)
	h.mu.Unlock()
	for _, p := range st.Postbacks {
		require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %d", p.Seq)
		require.Truef(t, p.HeldAt.IsZero(), "postback %d: no longer held", p.Seq)
	}
	order := []message.Status{message.StatusSent, message.StatusDelivered}
	require.Equal(t, order, okCallStatuses(h.postCalls()), "replayed in the message's order")
	require.Equal(t, back, h.elapsed(), "closed once nothing is held")
}

// A replay selects by state and by when the event reached dispatchflow.
func TestPostbackReplayFilters(t *testing.T) {
	tests := []struct {
		name string
		in   workflows.ReplayInput
		want int
	}{
		{"failed only", workflows.ReplayInput{States: []string{workflows.PostbackFailed}}, 1},
		{"delivered only", workflows.ReplayInput{States: []string{workflows.PostbackDelivered}}, 2},
		{"since the bounce", workflows.ReplayInput{Since: t0.Add(2 * time.Minute)}, 1},
		{"until the bounce", workflows.ReplayInput{Until: t0.Add(2 * time.Minute)}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
				if in.Notification.Postback.Status == message.StatusBounced && now.Before(t0.Add(10*time.Minute)) {
					return pbAnswer{Status: http.StatusBadRequest}
				}
				return pbAnswer{}
			}
			h.schedule = nil // no retry: one attempt and failed
			h.signalAt(time.Minute, event(message.EventDelivered, "d"))
			h.signalAt(3*time.Minute, event(message.EventBounced, "b"))
			out := h.replayAt(20*time.Minute, tc.in)
			h.result()
			h.mu.Lock()
			defer h.mu.Unlock()
			require.True(t, out.completed, "replay completed")
			require.Equal(t, tc.want, out.result.Replayed)
		})
	}
}
