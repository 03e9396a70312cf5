package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// upsert is one UpsertTypedSearchAttributes call: when, and the keyword values
// set; Others counts any other attribute (none is expected).
type upsert struct {
	At     time.Duration
	Values map[string]string
	Others int
}

// recordUpserts mocks UpsertTypedSearchAttributes (the test environment then
// reports every call) and returns the calls seen, in order.
func recordUpserts(h *harness) *[]upsert {
	var out []upsert
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		u := upsert{At: h.elapsed(), Values: keywords(sa)}
		u.Others = sa.Size() - len(u.Values)
		h.mu.Lock()
		out = append(out, u)
		h.mu.Unlock()
	}).Return(nil)
	return &out
}

// keywords are the keyword values of sa; a keyword list's values are joined
// with commas.
func keywords(sa temporal.SearchAttributes) map[string]string {
	out := map[string]string{}
	for _, key := range workflows.SearchAttributes {
		switch key := key.(type) {
		case temporal.SearchAttributeKeyKeyword:
			if v, ok := sa.GetKeyword(key); ok {
				out[key.GetName()] = v
			}
		case temporal.SearchAttributeKeyKeywordList:
			if v, ok := sa.GetKeywordList(key); ok {
				out[key.GetName()] = strings.Join(v, ",")
			}
		}
	}
	return out
}

// The search attributes follow the message: the start sets them, each change of
// status, fallback state or ESP receipt is upserted, and the status changes of one
// workflow task cost one upsert.
func TestSearchAttributesFollowTheMessage(t *testing.T) {
	bounce := event(message.EventBounced, "b")
	bounce.Reason = "550 5.1.1 user unknown"
	policy := fbPolicy(5*time.Minute, 0, fbOn(message.StatusBounced), fbWebhook(fbHook))
	tests := []struct {
		name     string
		fallback *fallback.Policy
		// searchVersion is MessageInput.SearchVersion (0: a message started
		// before processed was folded into sent).
		searchVersion int
		signals       []fbSignal
		// buffered are delivered just before t0+2m without a workflow task of their
		// own: the workflow applies them together in its task of t0+2m.
		buffered []message.Event
		// wantStatuses: the status changes (their postbacks); wantUpserts: the upserts.
		wantStatuses []message.Status
		wantUpserts  []upsert
	}{
		{
			name: "delayed bounce",
			signals: []fbSignal{
				{at: time.Minute, ev: event(message.EventDelivered, "d")},
				{at: 2 * time.Minute, ev: bounce},
			},
			wantStatuses: []message.Status{message.StatusSent, message.StatusDelivered, message.StatusBounced},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: time.Minute, Values: map[string]string{"DispatchStatus": "delivered"}},
				{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "bounced"}},
			},
		},
		{
			name:         "bounce escalates the fallback",
			fallback:     policy,
			signals:      []fbSignal{{at: 2 * time.Minute, ev: bounce}},
			wantStatuses: []message.Status{message.StatusSent, message.StatusBounced},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "bounced", "FallbackState": workflows.FallbackEscalated}},
			},
		},
		{
			name:         "several status changes in one workflow task",
			buffered:     []message.Event{event(message.EventProcessed, "p"), event(message.EventDelivered, "d"), bounce},
			wantStatuses: []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered, message.StatusBounced},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "bounced"}},
			},
		},
		{
			name:          "processed stays sent in visibility",
			searchVersion: workflows.SearchVersionCurrent,
			signals: []fbSignal{
				{at: time.Minute, ev: event(message.EventProcessed, "p")},
				{at: 2 * time.Minute, ev: event(message.EventDelivered, "d")},
			},
			wantStatuses: []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "delivered"}},
			},
		},
		{
			name: "processed upserted by a message started before",
			signals: []fbSignal{
				{at: time.Minute, ev: event(message.EventProcessed, "p")},
				{at: 2 * time.Minute, ev: event(message.EventDelivered, "d")},
			},
			wantStatuses: []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: time.Minute, Values: map[string]string{"DispatchStatus": "processed"}},
				{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "delivered"}},
			},
		},
		{
			name:         "no change, no upsert",
			signals:      []fbSignal{{at: time.Minute, ev: event(message.EventOpen, "o")}, {at: 2 * time.Minute, ev: event(message.EventClick, "c")}},
			fallback:     fbPolicy(0, 30*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)),
			wantStatuses: []message.Status{message.StatusSent, message.StatusDelivered},
			wantUpserts: []upsert{
				{At: 0, Values: map[string]string{"DispatchStatus": "sent", "EspProvider": testProvider, "EspMessageId": "esp-42"}},
				{At: time.Minute, Values: map[string]string{"DispatchStatus": "delivered"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, tc.fallback)
			h.in.SearchVersion = tc.searchVersion
			start := workflows.StartSearchAttributes(h.in, testProvider)
			require.NoError(t, h.env.SetTypedSearchAttributesOnStart(start))
			upserts := recordUpserts(h.harness)
			for _, s := range tc.signals {
				h.signalAt(s.at, s.ev)
			}
			if len(tc.buffered) > 0 {
				h.bufferAt(2*time.Minute-time.Millisecond, tc.buffered...)
				// A delayed callback fires as a timer of the test environment: a
				// workflow task, which takes in the buffered events.
				h.env.RegisterDelayedCallback(func() {}, 2*time.Minute)
			}
			st := h.run()

			h.mu.Lock()
			got := *upserts
			h.mu.Unlock()
			require.Equal(t, tc.wantStatuses, pbStatuses(st.Postbacks), "status changes")
			require.Equal(t, tc.wantUpserts, got, "upserts")

			// What the workflow's search attributes hold at the end: the start's,
			// overwritten by each upsert.
			final := keywords(start)
			for _, u := range got {
				for k, v := range u.Values {
					final[k] = v
				}
			}
			require.Equal(t, string(st.Status), final["DispatchStatus"])
			require.Equal(t, st.Fallback.State, final["FallbackState"])
			require.Equal(t, okReceipt.Provider, final["EspProvider"])
			require.Equal(t, okReceipt.MessageID, final["EspMessageId"])
			require.Equal(t, testInput().Request.ExternalSendID, final["ExternalSendId"])
			require.Equal(t, testInput().Request.CampaignAPIID, final["CampaignApiId"])
		})
	}
}

// The fallback state's transitions are upserted: pending at the start, then
// escalated when a deadline fires, or cancelled by the app.
func TestSearchAttributesFallbackState(t *testing.T) {
	tests := []struct {
		name      string
		cancelAt  time.Duration // 0: no cancel
		wantState string
		wantAt    time.Duration
	}{
		{name: "escalated by its deadline", wantState: workflows.FallbackEscalated, wantAt: sentAt.Add(10 * time.Minute).Sub(t0)},
		{name: "cancelled", cancelAt: 3 * time.Minute, wantState: workflows.FallbackCancelled, wantAt: 3 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFBHarness(t, fbPolicy(5*time.Minute, 10*time.Minute, fbOn(message.StatusBounced), fbWebhook(fbHook)))
			h.fallbackFn = func(_ int, m channel.Message) (channel.Result, error) { return fbDefaultResult(m), nil }
			start := workflows.StartSearchAttributes(h.in, testProvider)
			require.Equal(t, workflows.FallbackPending, keywords(start)["FallbackState"], "start: a message with a policy")
			upserts := recordUpserts(h.harness)
			if tc.cancelAt > 0 {
				h.updateAt(tc.cancelAt, "cancel", workflows.UpdateCancelFallback, workflows.CancelFallbackInput{Reason: "read in app"})
			}
			st := h.run()

			require.Equal(t, tc.wantState, st.Fallback.State)
			h.mu.Lock()
			got := *upserts
			h.mu.Unlock()
			var states []upsert
			for _, u := range got {
				if v, ok := u.Values["FallbackState"]; ok {
					states = append(states, upsert{At: u.At, Values: map[string]string{"FallbackState": v}})
				}
			}
			require.Equal(t, []upsert{{At: tc.wantAt, Values: map[string]string{"FallbackState": tc.wantState}}}, states,
				"FallbackState upserts")
		})
	}
}

// StartSearchAttributes are a new message's attributes: no personal data, the
// optional ones only when known.
func TestStartSearchAttributes(t *testing.T) {
	full := testInput()
	full.Request.Workspace = "acme"
	full.Fallback = fbPolicy(time.Minute, 0, nil, fbWebhook(fbHook))
	bare := testInput()
	bare.Request.ExternalSendID, bare.Request.CampaignAPIID = "", ""
	tests := []struct {
		name string
		in   workflows.MessageInput
		esp  string
		want map[string]string
	}{
		{
			name: "everything known", in: full, esp: "smtp",
			want: map[string]string{
				"DispatchStatus": "queued", "Workspace": "acme", "FallbackState": workflows.FallbackPending, "EspProvider": "smtp",
				"ExternalSendId": full.Request.ExternalSendID, "CampaignApiId": full.Request.CampaignAPIID,
			},
		},
		{
			name: "no ids, no ESP name, no fallback", in: bare,
			want: map[string]string{"DispatchStatus": "queued", "Workspace": "", "FallbackState": workflows.FallbackNone},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sa := workflows.StartSearchAttributes(tc.in, tc.esp)
			require.Equal(t, tc.want, keywords(sa))
			require.Equal(t, len(tc.want), sa.Size(), "no other attribute")
		})
	}
}

// Every attribute is a Keyword but the endpoint lists (KeywordList), and the
// missing ones are named with the command that creates them.
func TestSearchAttributeTypes(t *testing.T) {
	types := workflows.SearchAttributeTypes()
	require.Len(t, types, 9)
	for _, name := range []string{"DispatchStatus", "ExternalSendId", "CampaignApiId", "Workspace", "EspProvider", "FallbackState", "EspMessageId"} {
		require.Equalf(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, types[name], "type of %s", name)
	}
	for _, name := range []string{"HeldEndpoints", "FailedEndpoints"} {
		require.Equalf(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST, types[name], "type of %s", name)
	}
	list := &workflows.MissingSearchAttributesError{Namespace: "default", Missing: []string{"HeldEndpoints"}}
	require.Equal(t, "temporal operator search-attribute create --namespace default --name HeldEndpoints --type KeywordList", list.Command())
	err := &workflows.MissingSearchAttributesError{Namespace: "default", Missing: []string{"EspMessageId", "Workspace"}}
	require.Equal(t, "temporal operator search-attribute create --namespace default --name EspMessageId --type Keyword --name Workspace --type Keyword",
		err.Command())
	require.Contains(t, err.Error(), `namespace "default" lacks the search attributes EspMessageId, Workspace`)
}

// A run after a continue-as-new starts from what the previous run wrote: it
// upserts only what changes in it.
func TestSearchAttributesAfterContinueAsNew(t *testing.T) {
	h := newFBHarness(t, nil)
	rcpt := okReceipt
	h.in.Carried = &workflows.State{
		DispatchID: testDispatchID, Status: message.StatusDelivered, Recipient: h.in.Recipient, ESP: &rcpt,
		UpdatedAt: t0, TrackingUntil: t0.Add(time.Hour), Events: []workflows.EventRecord{}, Postbacks: []workflows.PostbackRecord{},
		Fallback: workflows.FallbackState{State: workflows.FallbackNone},
	}
	upserts := recordUpserts(h.harness)
	h.signalAt(2*time.Minute, event(message.EventBounced, "b"))
	st := h.run()

	require.Empty(t, h.sendCalls(), "no second send")
	require.Equal(t, message.StatusBounced, st.Status)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Equal(t, []upsert{{At: 2 * time.Minute, Values: map[string]string{"DispatchStatus": "bounced"}}}, *upserts)
}
