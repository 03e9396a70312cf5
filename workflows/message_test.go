package workflows_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// t0 is the workflow start time of every test: the mock clock starts there.
var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

const (
	testDispatchID = "acf471119f7449d579e8089032003ded"
	testURL        = "https://postbacks.example.test/hook"
	testLabel      = "postbacks.example.test"
	testProvider   = "sandbox"
)

// Send's default answer: fixed times so the sent postback can be compared exactly.
var (
	okReceipt  = esp.Receipt{Provider: testProvider, MessageID: "esp-42", Response: "250 2.0.0 Ok: queued as 4BC"}
	executedAt = t0.Add(100 * time.Millisecond)
	sentAt     = t0.Add(900 * time.Millisecond)
)

// statusEventNames are Braze's five statuses: an endpoint's default subscription
// (postback.Endpoint.Events).
var statusEventNames = []string{"sent", "processed", "delivered", "bounced", "aborted"}

// urlRoute is a message's own postback_url, subscribed to events (the five
// statuses when none are given), as the API resolves it (starter.routes).
func urlRoute(url string, events ...string) workflows.Route {
	if len(events) == 0 {
		events = statusEventNames
	}
	return workflows.Route{URL: url, Label: testLabel, Events: slices.Clone(events)}
}

// endpointRoute is a configured endpoint id, subscribed to events (the five
// statuses when none are given).
func endpointRoute(id string, events ...string) workflows.Route {
	if len(events) == 0 {
		events = statusEventNames
	}
	return workflows.Route{EndpointID: id, Label: id, Events: slices.Clone(events)}
}

// withFallbackOutcomes adds the fallback outcomes to r's events, as the API does
// for an endpoint with fallback_outcomes set.
func withFallbackOutcomes(r workflows.Route) workflows.Route {
	r.Events = append(slices.Clone(r.Events), string(message.StatusFallbackSent), string(message.StatusFallbackFailed))
	return r
}

func testInput() workflows.MessageInput {
	return workflows.MessageInput{
		DispatchID: testDispatchID,
		Request: message.SendRequest{
			To: "Ann <ann@example.com>", From: "noreply@example.com", Subject: "Hello", Text: "Hi Ann",
			ExternalSendID: "34a2ceb3cf6184132f3d816e9984269a", CampaignAPIID: "417220e4-5a2a-b634-7f7d-9ec891532368",
		},
		Recipient:  "ann@example.com",
		ReceivedAt: t0.Add(-2 * time.Second),
		Routes:     []workflows.Route{urlRoute(testURL)},
		Policy: workflows.Policy{
			TrackingWindow:  time.Hour,
			SendRetryWindow: 30 * time.Minute,
		},
	}
}

// activityCall is one call of a mocked activity, as the mock saw it.
type activityCall struct {
	At      time.Time // mock clock when the call returned
	Local   bool      // run as a local activity
	Attempt int32
	// Postback only: the body's status, the engagement event, the route (endpoint
	// id or URL), the outcome and the next attempt's delay.
	Status  message.Status
	Event   message.EventType
	Route   string
	Outcome string
	Delay   time.Duration
	Input   activities.PostbackInput // Postback only
	SendIn  activities.SendInput     // Send only
	Err     error
}

// pbAnswer is how the mocked endpoint answers one postback attempt.
type pbAnswer struct {
	// Status is the HTTP status answered; 0 is 200 OK.
	Status int
	// Disabled: the endpoint is switched off, nothing is sent (OutcomeHeld).
	Disabled bool
	// Slow: the endpoint answered slowly lately; a first attempt is deferred.
	Slow bool
}

// pbDown is the answer of an endpoint that is down.
var pbDown = pbAnswer{Status: http.StatusServiceUnavailable}

// halfRand draws 0.5 from rand.Float64: the schedule's delays without jitter.
type halfRand struct{}

func (halfRand) Uint64() uint64 { return 1 << 52 }

// harness runs one Message workflow in a test environment with Send and Postback
// mocked. The mocks record every call; sendFn and postbackFn decide the outcomes
// (nil: success).
//
// The workflow calls the activities through a nil *activities.Activities; the test
// environment names them "Send" and "Postback" either way, and OnActivity mocks
// match by that name for local activities (the first attempt) and regular ones (the
// retries) alike. activity.GetInfo(ctx).IsLocalActivity tells which path ran.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	in  workflows.MessageInput

	// sendFn answers Send call n (0-based, local and regular attempts counted together).
	sendFn func(n int) (activities.SendResult, error)
	// sendDelay is how long (on the workflow clock) Send call n takes.
	sendDelay func(n int) time.Duration
	// postbackFn answers one Postback attempt at mock time now; nil: 200 OK.
	postbackFn func(in activities.PostbackInput, now time.Time) pbAnswer
	// schedule is the endpoints' retry schedule; postback.DefaultSchedule (without
	// jitter) unless set.
	schedule postback.Schedule

	mu      sync.Mutex
	sends   []activityCall
	posts   []activityCall
	queries map[string]workflows.State
	qerrs   []error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	// The SDK's debug lines drown failures; warnings and errors still show.
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	return &harness{t: t, env: env, in: testInput(), schedule: postback.DefaultSchedule,
		queries: map[string]workflows.State{}}
}

func (h *harness) installMocks() {
	acts := &activities.Activities{}
	h.env.RegisterActivity(acts)
	sendCalls := 0
	h.env.OnActivity(acts.Send, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := sendCalls
		sendCalls++
		if h.sendDelay == nil {
			return 0
		}
		return h.sendDelay(n)
	}).Return(func(ctx context.Context, in activities.SendInput) (activities.SendResult, error) {
		info := activity.GetInfo(ctx)
		h.mu.Lock()
		n := len(h.sends)
		fn := h.sendFn
		h.mu.Unlock()
		res, err := activities.SendResult{Receipt: okReceipt, ExecutedAt: executedAt, SentAt: sentAt}, error(nil)
		if fn != nil {
			res, err = fn(n)
		}
		h.mu.Lock()
		h.sends = append(h.sends, activityCall{At: h.env.Now(), Local: info.IsLocalActivity, Attempt: info.Attempt, SendIn: in, Err: err})
		h.mu.Unlock()
		return res, err
	})
	h.env.OnActivity(acts.Postback, mock.Anything, mock.Anything).Return(h.postback)
}

// postback is the mocked Postback activity. It keeps the real one's contract
// (activities.Postback): one attempt per call, whose outcome says what the
// workflow does next — delivered; retry after the schedule's step (without
// jitter), until the schedule runs out (failed); held on a disabled endpoint
// (nothing sent) or a 410 (a postback_url then fails); deferred, nothing sent,
// for a first attempt to a slow endpoint.
func (h *harness) postback(ctx context.Context, in activities.PostbackInput) (activities.PostbackResult, error) {
	info := activity.GetInfo(ctx)
	now := h.env.Now()
	ans := pbAnswer{}
	if h.postbackFn != nil {
		ans = h.postbackFn(in, now)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	call := activityCall{At: now, Local: info.IsLocalActivity, Attempt: info.Attempt,
		Status: in.Notification.Postback.Status, Event: in.Notification.Event, Route: in.EndpointID + in.URL, Input: in}
	answer := func(res activities.PostbackResult) (activities.PostbackResult, error) {
		call.Outcome, call.Delay = res.Outcome, res.RetryIn
		h.posts = append(h.posts, call)
		return res, nil
	}
	if ans.Disabled {
		return answer(activities.PostbackResult{Outcome: activities.OutcomeHeld, Error: "endpoint " + in.EndpointID + " is disabled: by an operator"})
	}
	if ans.Slow && in.First {
		return answer(activities.PostbackResult{Outcome: activities.OutcomeDeferred})
	}
	code := cmp.Or(ans.Status, http.StatusOK)
	at := postback.Attempt{At: now, StatusCode: code, Class: postback.Classify(code)}
	made := in.Made + int(info.Attempt)
	switch at.Class {
	case postback.ClassSuccess:
		return answer(activities.PostbackResult{Outcome: activities.OutcomeDelivered, Attempt: at, DeliveredAt: now})
	case postback.ClassGone:
		at.Error = "endpoint answered 410 Gone"
		if in.EndpointID == "" {
			return answer(activities.PostbackResult{Outcome: activities.OutcomeFailed, Attempt: at, Error: at.Error})
		}
		return answer(activities.PostbackResult{Outcome: activities.OutcomeHeld, Attempt: at, Error: at.Error + "; endpoint " + in.EndpointID + " disabled"})
	}
	at.Error = fmt.Sprintf("endpoint answered %d %s", code, http.StatusText(code))
	at.ResponseBody = strings.Repeat("x", postback.MaxResponseBody) // as long as an answer is kept
	delay, ok := h.schedule.Delay(made, rand.New(halfRand{}))
	if !ok {
		return answer(activities.PostbackResult{Outcome: activities.OutcomeFailed, Attempt: at, Error: fmt.Sprintf("%s; given up after %d attempts", at.Error, made)})
	}
	at.NextAttemptAt = now.Add(delay)
	return answer(activities.PostbackResult{Outcome: activities.OutcomeRetry, Attempt: at, Error: at.Error, RetryIn: delay})
}

// event is an ESP event of the test provider.
func event(typ message.EventType, id string) message.Event {
	return message.Event{DispatchID: testDispatchID, Provider: testProvider, Type: typ, ID: id}
}

// signalAt signals ev at t0+d. Unset times are filled: ReceivedAt is the signal time,
// Timestamp two seconds earlier.
func (h *harness) signalAt(d time.Duration, ev message.Event) {
	h.env.RegisterDelayedCallback(func() {
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = h.env.Now()
		}
		if ev.Timestamp.IsZero() {
			ev.Timestamp = ev.ReceivedAt.Add(-2 * time.Second)
		}
		h.env.SignalWorkflow(workflows.SignalEvent, ev)
	}, d)
}

// queryAt queries the state at t0+d under name; see query.
func (h *harness) queryAt(d time.Duration, name string) {
	h.env.RegisterDelayedCallback(func() {
		var st workflows.State
		v, err := h.env.QueryWorkflow(workflows.QueryState)
		if err == nil {
			err = v.Get(&st)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.qerrs = append(h.qerrs, fmt.Errorf("query %s: %w", name, err))
			return
		}
		h.queries[name] = st
	}, d)
}

func (h *harness) query(name string) workflows.State {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(h.t, h.qerrs)
	st, ok := h.queries[name]
	require.Truef(h.t, ok, "query %q did not run", name)
	return st
}

// execute runs the workflow to its end.
func (h *harness) execute() {
	h.t.Helper()
	h.installMocks()
	h.env.ExecuteWorkflow(workflows.Message, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
}

// result runs the workflow and returns its final State; the workflow must succeed.
func (h *harness) result() workflows.State {
	h.t.Helper()
	h.execute()
	require.NoError(h.t, h.env.GetWorkflowError())
	var st workflows.State
	require.NoError(h.t, h.env.GetWorkflowResult(&st))
	return st
}

func (h *harness) elapsed() time.Duration { return h.env.Now().Sub(t0) }

// closeAfter is when a message whose last status change was at lastChange closes,
// counted from its start: TrackingWindow after that change, but not before
// 1.1 × TrackingWindow after the start.
func closeAfter(window, lastChange time.Duration) time.Duration {
	return max(window+window/10, lastChange+window)
}

func (h *harness) postCalls() []activityCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.posts)
}

func (h *harness) sendCalls() []activityCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sends)
}

// statuses of postbacks, of postback calls that succeeded, of events.
func pbStatuses(ps []workflows.PostbackRecord) []message.Status {
	out := []message.Status{}
	for _, p := range ps {
		out = append(out, p.Status)
	}
	return out
}

func okCallStatuses(calls []activityCall) []message.Status {
	out := []message.Status{}
	for _, c := range calls {
		if c.Outcome == activities.OutcomeDelivered {
			out = append(out, c.Status)
		}
	}
	return out
}

func eventTypes(evs []workflows.EventRecord) []message.EventType {
	out := []message.EventType{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func identity() message.Identity {
	in := testInput()
	return message.Identity{DispatchID: in.DispatchID, ExternalSendID: in.Request.ExternalSendID, CampaignAPIID: in.Request.CampaignAPIID}
}

// metadataKeys is the set of keys of the postback body's metadata object, as posted.
func metadataKeys(t *testing.T, p message.Postback) []string {
	t.Helper()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var m struct {
		Metadata map[string]any `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(b, &m))
	keys := []string{}
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// jsonEqual requires want and got to marshal to the same JSON: bodies are compared as
// they are posted (times decoded from history may differ in *time.Location only).
func jsonEqual(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g), msgAndArgs...)
}

// sameTime requires want and got to be the same instant.
func sameTime(t *testing.T, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	if !want.Equal(got) {
		require.Failf(t, "times differ", "got %s, want %s: %s", got.UTC(), want.UTC(), fmt.Sprint(msgAndArgs...))
	}
}

var statusEvents = map[message.EventType]bool{
	message.EventSent: true, message.EventProcessed: true, message.EventDelivered: true,
	message.EventBounced: true, message.EventAborted: true,
}

// 1. Happy path.
func TestMessageHappyPath(t *testing.T) {
	h := newHarness(t)
	h.signalAt(time.Minute, event(message.EventProcessed, "ev-processed"))
	h.signalAt(3*time.Minute, event(message.EventDelivered, "ev-delivered"))
	st := h.result()

	require.Equal(t, message.StatusDelivered, st.Status, "final status")
	require.Equal(t, testDispatchID, st.DispatchID)
	require.Equal(t, "ann@example.com", st.Recipient)
	require.Equal(t, &okReceipt, st.ESP)
	wantTimes := message.SendTimes{ReceivedAt: testInput().ReceivedAt, EnqueuedAt: t0, ExecutedAt: executedAt, SentAt: sentAt}
	jsonEqual(t, wantTimes, st.SendTimes, "send times")

	require.Equal(t, []message.EventType{message.EventSent, message.EventProcessed, message.EventDelivered}, eventTypes(st.Events))
	for i, e := range st.Events {
		require.Truef(t, e.ChangedStatus, "event %d (%s): got ChangedStatus false, want true", i, e.Type)
		require.Emptyf(t, e.Note, "event %d (%s) note", i, e.Type)
	}
	require.Equal(t, "ev-processed", st.Events[1].ID)
	sameTime(t, t0.Add(time.Minute), st.Events[1].ReceivedAt, "processed received_at")
	require.Equal(t, 0, st.DuplicateEvents)

	// The postbacks, in order, with the bodies of message.NewPostback.
	wantAt := map[message.Status]time.Time{
		message.StatusSent:      sentAt,
		message.StatusProcessed: t0.Add(time.Minute - 2*time.Second),
		message.StatusDelivered: t0.Add(3*time.Minute - 2*time.Second),
	}
	base := []string{"campaign_api_id", "external_send_id"}
	wantKeys := map[message.Status][]string{
		message.StatusSent:      sorted(append(slices.Clone(base), "received_at", "enqueued_at", "executed_at", "sent_at")...),
		message.StatusProcessed: sorted(append(slices.Clone(base), "processed_at")...),
		message.StatusDelivered: sorted(append(slices.Clone(base), "delivered_at")...),
	}
	order := []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}
	require.Equal(t, order, pbStatuses(st.Postbacks))
	calls := h.postCalls()
	require.Equal(t, order, okCallStatuses(calls), "postback calls")
	require.Len(t, calls, 3, "postback calls (no retries expected)")
	for i, s := range order {
		want := message.NewPostback(identity(), s, wantAt[s], "", wantTimes)
		rec := st.Postbacks[i]
		require.Equalf(t, i+1, rec.Seq, "postback %s seq", s)
		jsonEqual(t, want, rec.Body, "postback "+string(s)+" recorded body")
		in := calls[i].Input
		jsonEqual(t, want, in.Notification.Postback, "postback "+string(s)+" posted body")
		require.Equalf(t, testURL, in.URL, "postback %s url", s)
		require.Emptyf(t, in.EndpointID, "postback %s endpoint id", s)
		require.Zerof(t, in.Made, "postback %s: attempts before the first", s)
		require.Equalf(t, "ann@example.com", in.Notification.Recipient, "postback %s recipient", s)
		require.Equalf(t, testProvider, in.Notification.Provider, "postback %s provider", s)
		require.Equalf(t, "Hello", in.Notification.Subject, "postback %s subject", s)
		require.Truef(t, calls[i].Local, "postback %s: got a regular activity, want the local first attempt", s)
		require.Equalf(t, wantKeys[s], metadataKeys(t, rec.Body), "postback %s metadata keys", s)
		require.Equalf(t, workflows.PostbackDelivered, rec.State, "postback %s state", s)
		require.Lenf(t, rec.Attempts, 1, "postback %s attempts log", s)
		require.Equalf(t, http.StatusOK, rec.Attempts[0].StatusCode, "postback %s attempt status", s)
		sameTime(t, calls[i].At, rec.Attempts[0].At, "postback attempt time")
		require.Emptyf(t, rec.LastError, "postback %s last error", s)
		sameTime(t, calls[i].At, rec.DeliveredAt, "postback delivered_at")
		require.Equalf(t, testLabel, rec.Endpoint, "postback %s endpoint", s)
		require.Equalf(t, 0, rec.Route, "postback %s route", s)
		require.Equalf(t, fmt.Sprintf("msg_%s_%d", testDispatchID, i+1), rec.WebhookID, "postback %s webhook id", s)
		require.Equalf(t, rec.WebhookID, in.WebhookID, "postback %s: webhook id posted", s)
	}
	// The sent body's metadata holds the seed's timestamps format.
	b, err := json.Marshal(st.Postbacks[0].Body)
	require.NoError(t, err)
	require.Contains(t, string(b), `"sent_at":"2024-05-01T10:00:00.900+00:00"`)

	// Settled within the grace: completes 1.1 × TrackingWindow after the start.
	sameTime(t, t0.Add(3*time.Minute), st.UpdatedAt, "UpdatedAt")
	sameTime(t, t0.Add(closeAfter(time.Hour, 3*time.Minute)), st.TrackingUntil, "TrackingUntil")
	require.Equal(t, closeAfter(time.Hour, 3*time.Minute), h.elapsed(), "completion time after start")

	sends := h.sendCalls()
	require.Len(t, sends, 1)
	require.False(t, sends[0].Local, "Send: got a local activity, want the regular one (its result recorded before any postback)")
	req := testInput().Request
	require.Equal(t, esp.Email{DispatchID: testDispatchID, From: req.From, To: req.To, Subject: req.Subject, Text: req.Text, HTML: req.HTML},
		sends[0].SendIn.Email, "email handed to the ESP")
}

// 2. Every rule of the transition table, through the workflow.
func TestMessageTransitions(t *testing.T) {
	// The documented table of message/status.go, written out again.
	rules := map[message.Status]map[message.EventType]message.Status{
		message.StatusSent: {
			message.EventProcessed: message.StatusProcessed, message.EventDelivered: message.StatusDelivered,
			message.EventOpen: message.StatusDelivered, message.EventClick: message.StatusDelivered,
			message.EventBounced: message.StatusBounced, message.EventAborted: message.StatusAborted,
		},
		message.StatusProcessed: {
			message.EventDelivered: message.StatusDelivered, message.EventOpen: message.StatusDelivered,
			message.EventClick: message.StatusDelivered, message.EventBounced: message.StatusBounced,
			message.EventAborted: message.StatusAborted,
		},
		message.StatusDelivered: {message.EventBounced: message.StatusBounced},
		message.StatusBounced:   {},
		message.StatusAborted:   {},
	}
	// How each starting status is reached after the send.
	prefixes := map[message.Status][]message.EventType{
		message.StatusSent:      nil,
		message.StatusProcessed: {message.EventProcessed},
		message.StatusDelivered: {message.EventDelivered},
		message.StatusBounced:   {message.EventBounced},
		message.StatusAborted:   {message.EventAborted},
	}
	for _, from := range []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered, message.StatusBounced, message.StatusAborted} {
		for _, on := range message.EventTypes {
			want, changes := rules[from][on]
			if !changes {
				want = from
			}
			t.Run(fmt.Sprintf("%s+%s", from, on), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				prefix := prefixes[from]
				for i, typ := range prefix {
					ev := event(typ, fmt.Sprintf("prefix-%d", i))
					ev.Reason = "prefix reason"
					h.signalAt(time.Duration(i+1)*time.Minute, ev)
				}
				last := event(on, "last")
				last.Reason = "last reason"
				h.signalAt(10*time.Minute, last)
				st := h.result()

				require.Equalf(t, want, st.Status, "status after %s then %s", from, on)
				wantPostbacks := 1 + len(prefix)
				if changes {
					wantPostbacks++
				}
				require.Lenf(t, st.Postbacks, wantPostbacks, "postbacks: got %v", pbStatuses(st.Postbacks))
				require.Equal(t, want, st.Postbacks[len(st.Postbacks)-1].Status, "last postback")
				require.Len(t, st.Events, 2+len(prefix))
				rec := st.Events[len(st.Events)-1]
				require.Equal(t, on, rec.Type)
				require.Equal(t, changes, rec.ChangedStatus, "ChangedStatus")
				switch {
				case changes:
					require.Empty(t, rec.Note)
				case statusEvents[on]:
					require.Equal(t, "status already "+string(from), rec.Note)
				default:
					require.Empty(t, rec.Note, "engagement/recorded-only events carry no note")
				}
				if changes && (want == message.StatusBounced || want == message.StatusAborted) {
					require.Equal(t, "last reason", st.Reason)
					require.Equal(t, "last reason", st.Postbacks[len(st.Postbacks)-1].Body.Metadata.Reason)
				}
				wantUpdated := t0.Add(time.Duration(len(prefix)) * time.Minute)
				if changes {
					wantUpdated = t0.Add(10 * time.Minute)
				}
				sameTime(t, wantUpdated, st.UpdatedAt, "UpdatedAt")
				require.Equal(t, closeAfter(time.Hour, wantUpdated.Sub(t0)), h.elapsed(), "completion after start")
				for _, p := range st.Postbacks {
					require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %s", p.Status)
				}
				require.Equal(t, pbStatuses(st.Postbacks), okCallStatuses(h.postCalls()))
			})
		}
	}

	// From queued: the send outcome is the event.
	queued := []struct {
		name    string
		sendErr error
		want    message.Status
	}{
		{"queued+sent", nil, message.StatusSent},
		{"queued+aborted", temporal.NewNonRetryableApplicationError("User not emailable", activities.ErrRefused, nil), message.StatusAborted},
	}
	for _, tc := range queued {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tc.sendErr != nil {
				h.sendFn = func(int) (activities.SendResult, error) { return activities.SendResult{}, tc.sendErr }
			}
			st := h.result()
			require.Equal(t, tc.want, st.Status)
			require.Equal(t, []message.Status{tc.want}, pbStatuses(st.Postbacks))
			require.Len(t, st.Events, 1)
			require.True(t, st.Events[0].ChangedStatus)
		})
	}
}

// 3. Out of order: delivered before processed.
func TestMessageOutOfOrder(t *testing.T) {
	h := newHarness(t)
	h.signalAt(time.Minute, event(message.EventDelivered, "d"))
	h.signalAt(2*time.Minute, event(message.EventProcessed, "p"))
	st := h.result()

	require.Equal(t, message.StatusDelivered, st.Status)
	require.Equal(t, []message.Status{message.StatusSent, message.StatusDelivered}, pbStatuses(st.Postbacks))
	require.Equal(t, []message.Status{message.StatusSent, message.StatusDelivered}, okCallStatuses(h.postCalls()))
	require.Equal(t, []message.EventType{message.EventSent, message.EventDelivered, message.EventProcessed}, eventTypes(st.Events))
	late := st.Events[2]
	require.False(t, late.ChangedStatus, "late processed: got ChangedStatus true, want false")
	require.Equal(t, "status already delivered", late.Note)
	// The late event does not restart the tracking window.
	sameTime(t, t0.Add(time.Minute), st.UpdatedAt, "UpdatedAt")
	require.Equal(t, closeAfter(time.Hour, time.Minute), h.elapsed())
}

// 4. Duplicates are recognised by Provider+ID.
func TestMessageDuplicates(t *testing.T) {
	tests := []struct {
		name       string
		second     time.Duration // when the second copy arrives
		secondProv string
		wantDup    int
		wantEvents int
	}{
		{name: "same workflow task", second: time.Minute, secondProv: testProvider, wantDup: 1, wantEvents: 2},
		{name: "later", second: 5 * time.Minute, secondProv: testProvider, wantDup: 1, wantEvents: 2},
		{name: "other provider, same id is not a duplicate", second: 5 * time.Minute, secondProv: "generic", wantDup: 0, wantEvents: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.signalAt(time.Minute, event(message.EventProcessed, "same-id"))
			second := event(message.EventProcessed, "same-id")
			second.Provider = tc.secondProv
			h.signalAt(tc.second, second)
			st := h.result()

			require.Equal(t, tc.wantDup, st.DuplicateEvents, "DuplicateEvents")
			require.Len(t, st.Events, tc.wantEvents)
			require.Equal(t, message.StatusProcessed, st.Status)
			require.Equal(t, []message.Status{message.StatusSent, message.StatusProcessed}, pbStatuses(st.Postbacks))
			require.Equal(t, []message.Status{message.StatusSent, message.StatusProcessed}, okCallStatuses(h.postCalls()))
		})
	}
}

// 5. ESP events that arrive before the send outcome are held, then applied after it.
func TestMessageEventsBeforeSendCompletes(t *testing.T) {
	retryable := errors.New("sandbox: connection reset")
	tests := []struct {
		name      string
		sendFn    func(n int) (activities.SendResult, error)
		sendDelay func(n int) time.Duration
		signals   []time.Duration // processed, delivered
		queryAt   time.Duration   // while the send is pending
		wantSends int
	}{
		{
			// The local attempt is slow: the events reach the workflow while it runs.
			name:      "slow local attempt",
			sendDelay: func(n int) time.Duration { return 5 * time.Second },
			signals:   []time.Duration{time.Second, 2 * time.Second},
			queryAt:   3 * time.Second,
			wantSends: 1,
		},
		{
			// The local attempt and the first regular attempt fail; the events arrive
			// during the retry backoff (1s).
			name: "during send retry backoff",
			sendFn: func(n int) (activities.SendResult, error) {
				if n < 2 {
					return activities.SendResult{}, retryable
				}
				return activities.SendResult{Receipt: okReceipt, ExecutedAt: executedAt, SentAt: sentAt}, nil
			},
			signals:   []time.Duration{200 * time.Millisecond, 400 * time.Millisecond},
			queryAt:   600 * time.Millisecond,
			wantSends: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.sendFn, h.sendDelay = tc.sendFn, tc.sendDelay
			h.signalAt(tc.signals[0], event(message.EventProcessed, "p"))
			h.signalAt(tc.signals[1], event(message.EventDelivered, "d"))
			h.queryAt(tc.queryAt, "held")
			st := h.result()

			held := h.query("held")
			require.Equal(t, message.StatusQueued, held.Status, "status while the send is pending")
			require.Empty(t, held.Postbacks, "postbacks while the send is pending")
			require.Equal(t, []message.EventType{message.EventProcessed, message.EventDelivered}, eventTypes(held.Events))
			for _, e := range held.Events {
				require.Equal(t, "held until the ESP answers the send", e.Note)
				require.False(t, e.ChangedStatus)
			}

			require.Len(t, h.sendCalls(), tc.wantSends, "Send calls")
			require.Equal(t, message.StatusDelivered, st.Status)
			order := []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}
			require.Equal(t, order, pbStatuses(st.Postbacks), "sent must be the first postback")
			require.Equal(t, order, okCallStatuses(h.postCalls()))
			// Timeline in the order applied: the send outcome, then the held events
			// in arrival order.
			require.Equal(t, []message.EventType{message.EventSent, message.EventProcessed, message.EventDelivered}, eventTypes(st.Events))
			for _, e := range st.Events {
				require.Truef(t, e.ChangedStatus, "event %s: got ChangedStatus false, want true", e.Type)
				require.Emptyf(t, e.Note, "event %s note", e.Type)
			}
			// The processed postback carries the ESP's own timestamp, not the apply time.
			sameTime(t, st.Events[1].Timestamp, st.Postbacks[1].Body.Metadata.ProcessedAt.Time, "processed_at")
		})
	}
}

// 6. Permanent refusal aborts the message; later events change nothing.
func TestMessageSendRefused(t *testing.T) {
	refused := temporal.NewNonRetryableApplicationError("User not emailable", activities.ErrRefused, nil)
	tests := []struct {
		name      string
		sendFn    func(n int) (activities.SendResult, error)
		sendDelay func(n int) time.Duration
		signals   []time.Duration // delivered, bounced
		wantSends int
		abortAt   time.Duration
		// wantEvents is the timeline: events held during the send come first.
		wantEvents []message.EventType
	}{
		{
			name:       "refused at once, events later",
			sendFn:     func(int) (activities.SendResult, error) { return activities.SendResult{}, refused },
			signals:    []time.Duration{5 * time.Minute, 6 * time.Minute},
			wantSends:  1,
			wantEvents: []message.EventType{message.EventAborted, message.EventDelivered, message.EventBounced},
		},
		{
			// The first attempt fails transiently; the retry (1s later) is refused.
			name: "refused on retry",
			sendFn: func(n int) (activities.SendResult, error) {
				if n == 0 {
					return activities.SendResult{}, errors.New("sandbox: timeout")
				}
				return activities.SendResult{}, refused
			},
			signals:    []time.Duration{5 * time.Minute, 6 * time.Minute},
			wantSends:  2,
			wantEvents: []message.EventType{message.EventAborted, message.EventDelivered, message.EventBounced},
		},
		{
			name:       "events held, then refused",
			sendFn:     func(int) (activities.SendResult, error) { return activities.SendResult{}, refused },
			sendDelay:  func(int) time.Duration { return 5 * time.Second },
			signals:    []time.Duration{time.Second, 2 * time.Second},
			wantSends:  1,
			abortAt:    5 * time.Second,
			wantEvents: []message.EventType{message.EventAborted, message.EventDelivered, message.EventBounced}, // in the order applied
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.sendFn, h.sendDelay = tc.sendFn, tc.sendDelay
			h.signalAt(tc.signals[0], event(message.EventDelivered, "d"))
			h.signalAt(tc.signals[1], event(message.EventBounced, "b"))
			st := h.result()

			require.Equal(t, message.StatusAborted, st.Status)
			require.Equal(t, "User not emailable", st.Reason)
			require.Nil(t, st.ESP)
			require.Len(t, h.sendCalls(), tc.wantSends, "Send calls: a refusal must not be retried")

			require.Len(t, st.Postbacks, 1)
			pb := st.Postbacks[0]
			require.Equal(t, message.StatusAborted, pb.Status)
			require.Equal(t, "User not emailable", pb.Body.Metadata.Reason)
			require.Equal(t, sorted("campaign_api_id", "external_send_id", "aborted_at", "reason"), metadataKeys(t, pb.Body))
			require.Equal(t, workflows.PostbackDelivered, pb.State)
			require.Equal(t, []message.Status{message.StatusAborted}, okCallStatuses(h.postCalls()))

			require.Equal(t, tc.wantEvents, eventTypes(st.Events))
			for _, e := range st.Events {
				if e.Type == message.EventAborted {
					require.Equal(t, "dispatchflow", e.Provider)
					require.Equal(t, "User not emailable", e.Reason)
					require.True(t, e.ChangedStatus)
					sameTime(t, e.Timestamp, pb.Body.Metadata.AbortedAt.Time, "aborted_at is the time of the refusal")
					continue
				}
				require.Falsef(t, e.ChangedStatus, "event %s after abort changed the status", e.Type)
				require.Equal(t, "status already aborted", e.Note)
			}
			require.Equal(t, closeAfter(time.Hour, st.UpdatedAt.Sub(t0)), h.elapsed(), "completion: tracking window after the abort")
			if tc.abortAt > 0 {
				sameTime(t, t0.Add(tc.abortAt), st.UpdatedAt, "abort time")
			}
		})
	}
}

// 7. Transient send failures are retried by the regular activity.
func TestMessageSendRetried(t *testing.T) {
	h := newHarness(t)
	h.sendFn = func(n int) (activities.SendResult, error) {
		if n < 2 {
			return activities.SendResult{}, errors.New("sandbox: 503 try later")
		}
		return activities.SendResult{Receipt: okReceipt, ExecutedAt: executedAt, SentAt: sentAt}, nil
	}
	st := h.result()

	require.Equal(t, message.StatusSent, st.Status)
	sends := h.sendCalls()
	require.Len(t, sends, 3, "Send calls")
	for i, c := range sends {
		require.Falsef(t, c.Local, "Send call %d: got local, want the regular activity", i+1)
		require.Equal(t, int32(i+1), c.Attempt, "regular attempt")
	}
	require.Equal(t, []message.Status{message.StatusSent}, pbStatuses(st.Postbacks))
	sameTime(t, sentAt, st.SendTimes.SentAt, "sent_at")
	require.Equal(t, &okReceipt, st.ESP)
}

// 7b. Transient failures for the whole send retry window abort the message.
func TestMessageSendUnavailable(t *testing.T) {
	h := newHarness(t)
	h.sendFn = func(int) (activities.SendResult, error) {
		return activities.SendResult{}, errors.New("sandbox: connection refused")
	}
	st := h.result()

	require.Equal(t, message.StatusAborted, st.Status)
	require.Equal(t, "ESP unavailable: sandbox: connection refused", st.Reason)
	sends := h.sendCalls()
	require.Greater(t, len(sends), 2)
	last := sends[len(sends)-1].At
	require.LessOrEqual(t, last.Sub(t0), testInput().Policy.SendRetryWindow, "last send attempt within the send retry window")
	require.Greater(t, last.Sub(t0), testInput().Policy.SendRetryWindow/2, "send retried across the window")
	require.Equal(t, []message.Status{message.StatusAborted}, pbStatuses(st.Postbacks))
	require.Equal(t, st.Reason, st.Postbacks[0].Body.Metadata.Reason)
}

// 8. A delayed bounce turns delivered into bounced and restarts the tracking window.
func TestMessageDelayedBounce(t *testing.T) {
	h := newHarness(t)
	h.in.Policy.TrackingWindow = 3 * time.Hour
	bounceAt := 2*time.Hour + 10*time.Minute
	h.signalAt(10*time.Minute, event(message.EventDelivered, "d"))
	b := event(message.EventBounced, "b")
	b.Reason = "550 5.1.1 user unknown"
	h.signalAt(bounceAt, b)
	st := h.result()

	require.Equal(t, message.StatusBounced, st.Status)
	require.Equal(t, "550 5.1.1 user unknown", st.Reason)
	order := []message.Status{message.StatusSent, message.StatusDelivered, message.StatusBounced}
	require.Equal(t, order, pbStatuses(st.Postbacks))
	require.Equal(t, order, okCallStatuses(h.postCalls()))
	bounced := st.Postbacks[2]
	want := message.NewPostback(identity(), message.StatusBounced, t0.Add(bounceAt-2*time.Second), "550 5.1.1 user unknown", st.SendTimes)
	jsonEqual(t, want, bounced.Body, "bounced body")
	require.Equal(t, sorted("campaign_api_id", "external_send_id", "bounced_at", "reason"), metadataKeys(t, bounced.Body))
	sameTime(t, t0.Add(bounceAt), st.UpdatedAt, "UpdatedAt")
	require.Equal(t, closeAfter(3*time.Hour, bounceAt), h.elapsed(), "completion: tracking window after the bounce")
}

// 9. An endpoint that is down does not block the intake, and postbacks stay in
// order: the first attempt is local, the next ones are regular activities, each
// after the endpoint's schedule step (5s, 5m, 30m, …) on a durable timer.
func TestMessagePostbackEndpointDown(t *testing.T) {
	h := newHarness(t)
	upAt := t0.Add(30 * time.Minute)
	h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
		if now.Before(upAt) {
			return pbDown
		}
		return pbAnswer{}
	}
	h.signalAt(time.Minute, event(message.EventProcessed, "p"))
	h.signalAt(2*time.Minute, event(message.EventDelivered, "d"))
	h.queryAt(10*time.Minute, "down")
	st := h.result()

	down := h.query("down")
	require.Equal(t, message.StatusDelivered, down.Status, "status while the endpoint is down")
	require.Equal(t, []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}, pbStatuses(down.Postbacks))
	require.Equal(t, workflows.PostbackDelivering, down.Postbacks[0].State)
	require.Equal(t, workflows.PostbackPending, down.Postbacks[1].State)
	require.Equal(t, workflows.PostbackPending, down.Postbacks[2].State)
	require.Len(t, down.Postbacks[0].Attempts, 3, "while retrying: the attempts so far (at once, 5s, 5m later)")
	require.Equal(t, 3, down.Postbacks[0].AttemptCount)
	sameTime(t, t0.Add(35*time.Minute+5*time.Second), down.Postbacks[0].NextAttemptAt, "next attempt while retrying")
	require.Equal(t, "endpoint answered 503 Service Unavailable", down.Postbacks[0].LastError)

	calls := h.postCalls()
	order := []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}
	require.Equal(t, order, okCallStatuses(calls))
	// No call for postback N+1 before postback N succeeded.
	done := 0 // postbacks delivered so far
	for i, c := range calls {
		require.Equalf(t, order[done], c.Status, "call %d at +%s: got a call for %s while %s is not delivered", i, c.At.Sub(t0), c.Status, order[done])
		if c.Outcome == activities.OutcomeDelivered {
			done++
		}
	}
	// The sent postback: local at once, then after 5s, 5m and 30m.
	var sentAts []time.Duration
	for _, c := range calls {
		if c.Status == message.StatusSent {
			sentAts = append(sentAts, c.At.Sub(t0))
		}
	}
	require.Equal(t, []time.Duration{0, 5 * time.Second, 5*time.Minute + 5*time.Second, 35*time.Minute + 5*time.Second}, sentAts,
		"sent postback attempts")
	require.True(t, calls[0].Local && !calls[1].Local, "first attempt local, retries regular")
	for i, c := range calls[1:4] {
		require.Equalf(t, int32(1), c.Attempt, "regular activity %d: its first attempt", i+1)
		require.Equalf(t, i+1, c.Input.Made, "regular activity %d: attempts made before it", i+1)
	}

	for _, p := range st.Postbacks {
		require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %s", p.Status)
		require.Emptyf(t, p.LastError, "postback %s last error", p.Status)
	}
	require.Equal(t, len(sentAts), st.Postbacks[0].AttemptCount, "sent postback: attempts counted")
	log := st.Postbacks[0].Attempts
	require.Len(t, log, len(sentAts), "sent postback attempts log: got recorded, want calls made")
	for i, a := range log {
		sameTime(t, t0.Add(sentAts[i]), a.At, fmt.Sprintf("attempt %d time", i+1))
		if i < len(log)-1 {
			require.Equalf(t, http.StatusServiceUnavailable, a.StatusCode, "attempt %d", i+1)
			sameTime(t, t0.Add(sentAts[i+1]), a.NextAttemptAt, fmt.Sprintf("attempt %d next attempt", i+1))
		}
	}
	require.Equal(t, http.StatusOK, log[len(log)-1].StatusCode, "last attempt")
	require.Len(t, st.Postbacks[1].Attempts, 1)
	require.False(t, st.Postbacks[0].DeliveredAt.Before(upAt), "sent postback delivered after the endpoint came back")
	require.Equal(t, closeAfter(time.Hour, 2*time.Minute), h.elapsed())
}

// 10. A postback is given up when the activity says so (ErrPostbackGivenUp: the
// endpoint's schedule ran out); the next one is then sent. (The workflow's own
// PostbackRetryWindow is gone: the schedule belongs to the endpoint.)
func TestMessagePostbackGivenUp(t *testing.T) {
	h := newHarness(t)
	h.schedule = postback.Schedule{postback.Duration(5 * time.Second), postback.Duration(time.Minute), postback.Duration(10 * time.Minute)}
	h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
		if in.Notification.Postback.Status == message.StatusSent {
			return pbDown
		}
		return pbAnswer{}
	}
	h.signalAt(time.Minute, event(message.EventProcessed, "p"))
	h.queryAt(5*time.Minute, "retrying")
	st := h.result()

	retrying := h.query("retrying")
	require.Equal(t, message.StatusProcessed, retrying.Status)
	require.Equal(t, workflows.PostbackDelivering, retrying.Postbacks[0].State)
	require.Equal(t, workflows.PostbackPending, retrying.Postbacks[1].State)

	calls := h.postCalls()
	var sentAts []time.Duration
	var lastSent, firstProcessed time.Time
	for _, c := range calls {
		switch c.Status {
		case message.StatusSent:
			sentAts = append(sentAts, c.At.Sub(t0))
			lastSent = c.At
		case message.StatusProcessed:
			if firstProcessed.IsZero() {
				firstProcessed = c.At
			}
		}
	}
	require.Equal(t, []time.Duration{0, 5 * time.Second, time.Minute + 5*time.Second, 11*time.Minute + 5*time.Second}, sentAts,
		"sent postback attempts: the schedule's 4")
	require.Equal(t, activities.OutcomeFailed, calls[len(sentAts)-1].Outcome, "the last attempt gives up")
	require.False(t, firstProcessed.Before(lastSent), "processed postback attempted before sent was given up")

	sent := st.Postbacks[0]
	require.Equal(t, workflows.PostbackFailed, sent.State)
	require.Equal(t, "endpoint answered 503 Service Unavailable; given up after 4 attempts", sent.LastError)
	require.Len(t, sent.Attempts, len(sentAts), "attempts log: got recorded, want calls made")
	require.True(t, sent.DeliveredAt.IsZero())
	require.Equal(t, workflows.PostbackDelivered, st.Postbacks[1].State)
	require.Equal(t, message.StatusProcessed, st.Status)
	require.Equal(t, closeAfter(time.Hour, time.Minute), h.elapsed(), "completion: the tracking window")
}

// 11. The workflow stays open TrackingWindow after the last status change, and at
// least 1.1 × TrackingWindow after its start.
func TestMessageTrackingWindow(t *testing.T) {
	tests := []struct {
		name      string
		window    time.Duration
		delivered time.Duration // 0: no event after the send
		late      time.Duration // a later event that changes nothing; 0: none
		want      time.Duration
	}{
		{name: "after send only: the grace", window: time.Hour, want: 66 * time.Minute},
		{name: "delivered within the grace", window: time.Hour, delivered: 5 * time.Minute, want: 66 * time.Minute},
		{name: "delivered after the grace", window: time.Hour, delivered: 10 * time.Minute, want: time.Hour + 10*time.Minute},
		{name: "late event does not extend", window: time.Hour, delivered: 10 * time.Minute, late: 50 * time.Minute, want: time.Hour + 10*time.Minute},
		{name: "short window", window: 30 * time.Minute, delivered: 10 * time.Minute, want: 40 * time.Minute},
		{name: "default window", window: 0, delivered: 10 * time.Minute, want: 72*time.Hour + 432*time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.in.Policy.TrackingWindow = tc.window
			wantStatus := message.StatusSent
			if tc.delivered > 0 {
				h.signalAt(tc.delivered, event(message.EventDelivered, "d"))
				wantStatus = message.StatusDelivered
			}
			if tc.late > 0 {
				h.signalAt(tc.late, event(message.EventOpen, "o"))
			}
			h.queryAt(tc.want-time.Minute, "open")
			st := h.result()

			open := h.query("open")
			require.Equal(t, wantStatus, open.Status, "status a minute before the end")
			sameTime(t, t0.Add(tc.want), open.TrackingUntil, "TrackingUntil")
			require.Equal(t, tc.want, h.elapsed(), "completion after start")
			require.Equal(t, wantStatus, st.Status)
		})
	}
}

// bufferAt signals evs at t0+d without running workflow code: the workflow sees them
// in its next workflow task, together with whatever else that task brings (the
// tracking timer firing, a continue-as-new suggestion) — as when several history
// events reach a worker in one workflow task.
func (h *harness) bufferAt(d time.Duration, evs ...message.Event) {
	h.env.RegisterDelayedCallback(func() {
		for _, ev := range evs {
			ev.ReceivedAt = h.env.Now()
			ev.Timestamp = ev.ReceivedAt
			h.env.SignalWorkflowSkippingWorkflowTask(workflows.SignalEvent, ev)
		}
	}, d)
}

// Events that reach the workflow together with the end of the tracking window are
// applied, not lost, and restart the window.
func TestMessageEventAtWindowEnd(t *testing.T) {
	bounce := event(message.EventBounced, "b")
	bounce.Reason = "550 mailbox full"
	end := closeAfter(time.Hour, 0)
	tests := []struct {
		name string
		at   time.Duration
		// buffered: the events are delivered without a workflow task of their own, so
		// the workflow sees them in the task where the tracking timer fires (t0+end).
		buffered bool
		events   []message.Event
		want     []message.Status // postbacks
		wantEnd  time.Duration
	}{
		{
			name: "just before the end", at: end - time.Millisecond, events: []message.Event{bounce},
			want: []message.Status{message.StatusSent, message.StatusBounced}, wantEnd: end + time.Hour - time.Millisecond,
		},
		{
			name: "in the task of the end", at: end - time.Millisecond, buffered: true, events: []message.Event{bounce},
			want: []message.Status{message.StatusSent, message.StatusBounced}, wantEnd: end + time.Hour,
		},
		{
			name: "two in the task of the end", at: end - time.Millisecond, buffered: true,
			events: []message.Event{event(message.EventDelivered, "d"), bounce},
			want:   []message.Status{message.StatusSent, message.StatusDelivered, message.StatusBounced}, wantEnd: end + time.Hour,
		},
		{
			name: "after the end", at: end + time.Millisecond, events: []message.Event{bounce},
			want: []message.Status{message.StatusSent}, wantEnd: end,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tc.buffered {
				h.bufferAt(tc.at, tc.events...)
			} else {
				for _, ev := range tc.events {
					h.signalAt(tc.at, ev)
				}
			}
			st := h.result()
			wantEvents := []message.EventType{message.EventSent}
			if tc.at < end {
				for _, ev := range tc.events {
					wantEvents = append(wantEvents, ev.Type)
				}
			}
			require.Equal(t, wantEvents, eventTypes(st.Events), "the events are in the timeline, in order")
			require.Equal(t, tc.want, pbStatuses(st.Postbacks))
			require.Equal(t, tc.want, okCallStatuses(h.postCalls()))
			require.Equal(t, tc.want[len(tc.want)-1], st.Status)
			require.Equal(t, tc.wantEnd, h.elapsed(), "completion after start")
			if st.Status == message.StatusBounced {
				require.Equal(t, "550 mailbox full", st.Reason)
			}
		})
	}
}

// 12. Continue-as-new carries the state into a new run, which finishes the job.
func TestMessageContinueAsNew(t *testing.T) {
	tests := []struct {
		name string
		// downUntil: the endpoint fails every postback before t0+downUntil.
		downUntil time.Duration
		// wantCANAt: when the run continues as new (after the in-flight postback).
		wantCANAt time.Duration
		// wantPending: postbacks carried as pending; wantRetrying: as waiting to
		// retry, due at t0+wantDue.
		wantPending  []message.Status
		wantRetrying []message.Status
		wantDue      time.Duration
		// buffered: events delivered with the suggestion, in the same workflow task.
		buffered []message.Event
	}{
		{name: "postbacks done", wantCANAt: 3 * time.Minute},
		{
			// The sent postback waits to retry when continue-as-new is suggested
			// (attempts at once and 5s later; the next is due 5m later): the run
			// does not wait for it, but carries it with its due time, and the
			// others as pending. The next run makes the attempt when it is due.
			name: "postback waiting to retry", downUntil: 30 * time.Minute, wantCANAt: 3 * time.Minute,
			wantRetrying: []message.Status{message.StatusSent}, wantDue: 5*time.Minute + 5*time.Second,
			wantPending: []message.Status{message.StatusProcessed, message.StatusDelivered},
		},
		{
			// Events that reach the run in the task that continues as new are carried.
			name: "events with the suggestion", wantCANAt: 3 * time.Minute,
			buffered:    []message.Event{event(message.EventBounced, "b"), event(message.EventOpen, "o")},
			wantPending: []message.Status{message.StatusBounced},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			down := func(in activities.PostbackInput, now time.Time) pbAnswer {
				if now.Before(t0.Add(tc.downUntil)) {
					return pbDown
				}
				return pbAnswer{}
			}
			h := newHarness(t)
			h.postbackFn = down
			h.signalAt(time.Minute, event(message.EventProcessed, "p"))
			h.signalAt(2*time.Minute, event(message.EventDelivered, "d"))
			if len(tc.buffered) > 0 {
				h.bufferAt(3*time.Minute-time.Millisecond, tc.buffered...)
			}
			h.env.RegisterDelayedCallback(func() { h.env.SetContinueAsNewSuggested(true) }, 3*time.Minute)
			h.execute()
			canAt := h.env.Now()
			require.Equal(t, tc.wantCANAt, canAt.Sub(t0), "continue-as-new time after start")

			err := h.env.GetWorkflowError()
			require.Error(t, err)
			require.True(t, workflow.IsContinueAsNewError(err), "got %v, want a continue-as-new", err)
			var canErr *workflow.ContinueAsNewError
			require.True(t, errors.As(err, &canErr))
			require.Equal(t, workflows.MessageWorkflow, canErr.WorkflowType.Name)
			var next workflows.MessageInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(canErr.Input, &next))
			require.NotNil(t, next.Carried, "carried state")
			require.Equal(t, testDispatchID, next.DispatchID)
			require.Equal(t, testInput().Routes, next.Routes, "routes carried")
			carried := *next.Carried
			wantStatus := message.StatusDelivered
			wantEvents := []message.EventType{message.EventSent, message.EventProcessed, message.EventDelivered}
			wantPostbacks := []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}
			if len(tc.buffered) > 0 {
				wantStatus = message.StatusBounced
				wantEvents = append(wantEvents, message.EventBounced, message.EventOpen)
				wantPostbacks = append(wantPostbacks, message.StatusBounced)
			}
			require.Equal(t, wantStatus, carried.Status)
			require.Equal(t, wantEvents, eventTypes(carried.Events))
			require.Equal(t, wantPostbacks, pbStatuses(carried.Postbacks))
			posted := map[message.Status]bool{}
			for _, c := range h.postCalls() {
				if c.Outcome == activities.OutcomeDelivered {
					posted[c.Status] = true
				}
			}
			pending, retrying := []message.Status{}, []message.Status{}
			for _, p := range carried.Postbacks {
				switch p.State {
				case workflows.PostbackDelivering:
					sameTime(t, t0.Add(tc.wantDue), p.NextAttemptAt, "carried postback's next attempt")
					require.Equal(t, 2, p.AttemptCount, "carried postback's attempts made")
					require.Len(t, p.Attempts, 2, "its attempts log carried (a finished postback's is not)")
					retrying = append(retrying, p.Status)
				case workflows.PostbackDelivered:
					require.Truef(t, posted[p.Status], "postback %s carried as delivered but never posted", p.Status)
				case workflows.PostbackPending:
					require.Falsef(t, posted[p.Status], "postback %s posted but carried as pending", p.Status)
					pending = append(pending, p.Status)
				default:
					t.Fatalf("postback %s carried in state %q, want delivered or pending", p.Status, p.State)
				}
			}
			if tc.wantPending == nil {
				tc.wantPending = []message.Status{}
			}
			require.Equal(t, tc.wantPending, pending, "postbacks carried as pending")
			if tc.wantRetrying == nil {
				tc.wantRetrying = []message.Status{}
			}
			require.Equal(t, tc.wantRetrying, retrying, "postbacks carried waiting to retry")

			// The next run: no second send, pending postbacks delivered, dedupe kept.
			h2 := newHarness(t)
			h2.env.SetStartTime(canAt)
			h2.in = next
			h2.signalAt(time.Minute, event(message.EventProcessed, "p")) // duplicate of run 1's
			st := h2.result()
			require.Empty(t, h2.sendCalls(), "the next run must not send again")
			require.Equal(t, wantStatus, st.Status)
			require.Equal(t, wantEvents, eventTypes(st.Events))
			require.Equal(t, 1, st.DuplicateEvents)
			for _, p := range st.Postbacks {
				require.Equalf(t, workflows.PostbackDelivered, p.State, "postback %s", p.Status)
			}
			var all []message.Status
			all = append(all, okCallStatuses(h.postCalls())...)
			all = append(all, okCallStatuses(h2.postCalls())...)
			require.Equal(t, wantPostbacks, all, "each postback posted once across runs")
			if len(tc.wantRetrying) > 0 {
				// The carried retry is made at its due time, as a regular activity
				// that continues the endpoint's schedule.
				first := h2.postCalls()[0]
				require.Equal(t, tc.wantRetrying[0], first.Status)
				sameTime(t, t0.Add(tc.wantDue), first.At, "carried retry made when due")
				require.False(t, first.Local, "carried retry: a regular activity")
				require.Equal(t, 2, first.Input.Made, "carried retry: attempts made before it")
			}
			sameTime(t, t0.Add(closeAfter(time.Hour, carried.UpdatedAt.Sub(t0))), h2.env.Now(), "completion: the tracking deadline carried from run 1")
			lastChange := 2 * time.Minute
			if len(tc.buffered) > 0 {
				lastChange = 3 * time.Minute // applied in the task that sees them
			}
			sameTime(t, t0.Add(lastChange), carried.UpdatedAt, "carried UpdatedAt")
		})
	}
}

// 13. Without an endpoint, postbacks are recorded as skipped and never posted.
func TestMessageNoPostbackEndpoint(t *testing.T) {
	h := newHarness(t)
	h.in.Routes = nil
	h.signalAt(time.Minute, event(message.EventProcessed, "p"))
	h.signalAt(2*time.Minute, event(message.EventDelivered, "d"))
	st := h.result()

	require.Equal(t, message.StatusDelivered, st.Status)
	require.Equal(t, []message.Status{message.StatusSent, message.StatusProcessed, message.StatusDelivered}, pbStatuses(st.Postbacks))
	for _, p := range st.Postbacks {
		require.Equalf(t, workflows.PostbackSkipped, p.State, "postback %s", p.Status)
		require.Emptyf(t, p.Endpoint, "postback %s endpoint", p.Status)
		require.Equalf(t, -1, p.Route, "postback %s route", p.Status)
		require.Emptyf(t, p.WebhookID, "postback %s webhook id", p.Status)
		require.NotEmptyf(t, p.LastError, "postback %s should say why it was skipped", p.Status)
		require.Emptyf(t, p.Attempts, "postback %s attempts", p.Status)
	}
	require.Empty(t, h.postCalls(), "Postback activity calls")
	require.Equal(t, closeAfter(time.Hour, 2*time.Minute), h.elapsed())
}

// A postback whose retry fails for good (a non-retryable error: 410 Gone on a
// message's own postback_url) before the schedule runs out records the attempts
// actually made, and the route goes on with its next postback.
func TestMessagePostbackNonRetryableOnRetry(t *testing.T) {
	h := newHarness(t)
	calls := 0
	h.postbackFn = func(in activities.PostbackInput, now time.Time) pbAnswer {
		calls++
		if calls == 1 { // the local first attempt
			return pbDown
		}
		if in.Notification.Postback.Status == message.StatusSent {
			return pbAnswer{Status: http.StatusGone}
		}
		return pbAnswer{}
	}
	h.signalAt(time.Minute, event(message.EventDelivered, "d"))
	st := h.result()

	made := h.postCalls()
	require.Len(t, made, 3, "Postback calls: the local attempt, one regular attempt, then the delivered postback")
	require.True(t, made[0].Local && !made[1].Local)
	pb := st.Postbacks[0]
	require.Equal(t, workflows.PostbackFailed, pb.State, "a URL route has no switch to enable: failed, not held")
	require.Equal(t, "endpoint answered 410 Gone", pb.LastError)
	require.Len(t, pb.Attempts, 2, "attempts log: got recorded, want calls made")
	require.Equal(t, []int{http.StatusServiceUnavailable, http.StatusGone}, []int{pb.Attempts[0].StatusCode, pb.Attempts[1].StatusCode})
	require.Equal(t, workflows.PostbackDelivered, st.Postbacks[1].State, "the next postback of the route")
}

// Only the provider that carried a message may move it: an event reported by
// another provider's intake (a forgery through an open intake, or a mix-up) is
// recorded as ignored and changes nothing; the generic intake speaks for its own
// workspace's messages only.
func TestMessageEventsBoundToTheirProvider(t *testing.T) {
	t.Parallel()
	foreign := event(message.EventBounced, "forged")
	foreign.Provider = "postmark"
	otherWorkspace := event(message.EventBounced, "generic-other")
	otherWorkspace.Provider, otherWorkspace.Workspace = "generic", "globex"
	ownWorkspace := event(message.EventDelivered, "generic-own")
	ownWorkspace.Provider, ownWorkspace.Workspace = "generic", "shop"

	h := newHarness(t)
	h.in.Request.Workspace = "shop"
	h.signalAt(time.Second, foreign)
	h.signalAt(2*time.Second, otherWorkspace)
	h.signalAt(3*time.Second, ownWorkspace)
	st := h.result()

	require.Equal(t, message.StatusDelivered, st.Status, "only the generic event of the message's own workspace moved it")
	require.Equal(t, []message.Status{message.StatusSent, message.StatusDelivered}, okCallStatuses(h.postCalls()))
	notes := map[string]string{}
	changed := map[string]bool{}
	for _, e := range st.Events {
		notes[e.ID], changed[e.ID] = e.Note, e.ChangedStatus
	}
	require.Equal(t, "ignored: reported by postmark, but the message was handed to "+testProvider, notes["forged"])
	require.Equal(t, "ignored: posted to the generic intake with another workspace's secret", notes["generic-other"])
	require.False(t, changed["forged"])
	require.False(t, changed["generic-other"])
	require.True(t, changed["generic-own"])
}
