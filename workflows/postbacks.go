package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
)

// UpdateReplayPostbacks re-sends a message's finished postbacks (delivered,
// failed or held) with fresh attempts and the same webhook-id.
const UpdateReplayPostbacks = "postbacks-replay"

// Route is one endpoint a message's postbacks go to. The API resolves a message's
// routes when it is sent (its workspace's endpoints, or its own postback_url), so
// the workflow never reads configuration; the endpoint's URL, secrets and format
// are read by the Postback activity at delivery time.
type Route struct {
	// EndpointID names an endpoint of DISPATCHFLOW_ENDPOINTS_FILE; empty for the
	// message's own postback_url.
	EndpointID string `json:"endpoint_id,omitempty"`
	// URL is the message's own postback_url (EndpointID empty).
	URL string `json:"url,omitempty"`
	// Label names the endpoint in the state, the UI and logs: its id, or the URL's host.
	Label string `json:"label"`
	// Events are the event names the endpoint subscribes to (see postback.Endpoint.Events).
	Events []string `json:"events"`
}

// Postback delivery states.
const (
	PostbackPending    = "pending"    // waiting for the postbacks before it (same endpoint)
	PostbackDelivering = "delivering" // being sent or retried
	PostbackDelivered  = "delivered"  // the endpoint answered 2xx
	PostbackFailed     = "failed"     // given up after the endpoint's schedule
	PostbackHeld       = "held"       // the endpoint is disabled: kept for a replay
	PostbackSkipped    = "skipped"    // no endpoint configured
)

// PostbackRecord is one postback to one endpoint and how its delivery went.
type PostbackRecord struct {
	Seq int `json:"seq"`
	// Status is the status (or fallback outcome) posted back; on an engagement
	// postback, the message's status when the event came.
	Status message.Status `json:"status"`
	// Event is set on engagement postbacks (open, click, deferred, …).
	Event message.EventType `json:"event,omitempty"`
	// Endpoint is the route's label; Route its index in the message's routes.
	Endpoint string `json:"endpoint,omitempty"`
	Route    int    `json:"route"`
	// WebhookID is the postback's webhook-id header: the same on every retry and replay.
	WebhookID string `json:"webhook_id,omitempty"`
	State     string `json:"state"`
	// Attempts is the log of HTTP attempts, oldest first (the last
	// activities.MaxAttemptsLog). While a postback is retried, the API adds the
	// live log from Temporal.
	Attempts    []postback.Attempt `json:"attempts"`
	LastError   string             `json:"last_error,omitempty"`
	DeliveredAt time.Time          `json:"delivered_at,omitzero"`
	// NextAttemptAt is when a failing postback is tried next (filled in by the API).
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Replays counts the replays asked for.
	Replays int `json:"replays,omitempty"`
	// EventAt and ReceivedAt are when the event happened and reached dispatchflow.
	EventAt    time.Time        `json:"event_at,omitzero"`
	ReceivedAt time.Time        `json:"received_at,omitzero"`
	Body       message.Postback `json:"body"`
	Reason     string           `json:"reason,omitempty"`
}

// PostbackActivityID is the activity ID of postback seq, so the API can find a
// retrying postback among the workflow's pending activities.
func PostbackActivityID(seq int) string { return fmt.Sprintf("postback-%d", seq) }

// ReplayInput selects the postbacks a replay re-sends. Empty fields select all.
type ReplayInput struct {
	// Status (or engagement event) to replay: "bounced", "open", …
	Status string `json:"status,omitempty"`
	// Endpoint: the label of one route.
	Endpoint string `json:"endpoint,omitempty"`
}

// ReplayResult tells how many postbacks were queued again.
type ReplayResult struct {
	Replayed int `json:"replayed"`
}

// notification is one thing to post back: a status change, a fallback outcome or
// an engagement event.
type notification struct {
	status     message.Status
	event      message.EventType
	body       message.Postback
	eventAt    time.Time
	receivedAt time.Time
	reason     string
}

func (n notification) name() string {
	if n.event != "" {
		return string(n.event)
	}
	return string(n.status)
}

// queuePostback appends one postback per route subscribed to n, for the route's
// sender coroutine. A status with no route at all is recorded as skipped.
func (m *messageImpl) queuePostback(n notification) {
	queued := false
	for i, r := range m.in.Routes {
		if !slices.Contains(r.Events, n.name()) {
			continue
		}
		seq := len(m.state.Postbacks) + 1
		m.state.Postbacks = append(m.state.Postbacks, PostbackRecord{
			Seq: seq, Status: n.status, Event: n.event, Endpoint: r.Label, Route: i,
			WebhookID: fmt.Sprintf("msg_%s_%d", m.state.DispatchID, seq),
			State:     PostbackPending, Attempts: []postback.Attempt{},
			EventAt: n.eventAt, ReceivedAt: n.receivedAt, Body: n.body, Reason: n.reason,
		})
		queued = true
	}
	if !queued && n.event == "" && len(m.in.Routes) == 0 {
		m.state.Postbacks = append(m.state.Postbacks, PostbackRecord{
			Seq: len(m.state.Postbacks) + 1, Status: n.status, Route: -1, State: PostbackSkipped,
			LastError: "no postback endpoint: set postback_url, DISPATCHFLOW_POSTBACK_URL or DISPATCHFLOW_ENDPOINTS_FILE",
			Attempts:  []postback.Attempt{}, Body: n.body,
		})
	}
}

// engagementEvents are posted back (to endpoints subscribed to them) without
// changing the status, one postback per event, as Sarbacane does.
func isEngagement(t message.EventType) bool {
	switch t {
	case message.EventOpen, message.EventClick, message.EventDeferred, message.EventComplaint, message.EventUnsubscribe:
		return true
	}
	return false
}

// nextPostback is the index of route's first postback still to send, or -1.
func (m *messageImpl) nextPostback(route int) int {
	for i, p := range m.state.Postbacks {
		if p.Route == route && (p.State == PostbackPending || p.State == PostbackDelivering) {
			return i
		}
	}
	return -1
}

// postbacksWaiting reports whether any route has a postback to send.
func (m *messageImpl) postbacksWaiting() bool {
	for _, p := range m.state.Postbacks {
		if p.State == PostbackPending || p.State == PostbackDelivering {
			return true
		}
	}
	return false
}

// deliverPostbacks sends route's postbacks one at a time, in order: postback N+1
// waits until N is delivered, given up or held. Each route has its own coroutine,
// so one endpoint that is down delays no other endpoint, and none of them stops
// events from being applied.
func (m *messageImpl) deliverPostbacks(ctx workflow.Context, route int) {
	for {
		var i int
		_ = workflow.Await(ctx, func() bool {
			i = m.nextPostback(route)
			return i >= 0 && !m.draining
		})
		m.inFlight++
		m.state.Postbacks[i].State = PostbackDelivering
		m.deliverPostback(ctx, i)
		m.inFlight--
		m.describe(ctx)
	}
}

// firstPostbackTimeout bounds the first, local attempt (the workflow task waits
// for it); later attempts have the endpoint's own timeout (15 s by default).
const firstPostbackTimeout = 5 * time.Second

// deliverPostback makes postback i's attempts: the first at once as a local
// activity, then — after the schedule's first delay, a durable timer — the rest
// as one regular activity that Temporal retries when the activity says
// (NextRetryDelay: the endpoint's schedule with jitter, Retry-After honoured).
func (m *messageImpl) deliverPostback(ctx workflow.Context, i int) {
	var a *activities.Activities
	p := m.state.Postbacks[i]
	route := m.in.Routes[p.Route]
	in := activities.PostbackInput{
		EndpointID: route.EndpointID, URL: route.URL, Workspace: m.in.Request.Workspace,
		WebhookID: p.WebhookID, Notification: m.notificationOf(p),
	}
	summary := fmt.Sprintf("postback %d to %s: %s", p.Seq, route.Label, p.notificationName())
	var res activities.PostbackResult
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: firstPostbackTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:                summary,
	})
	err := workflow.ExecuteLocalActivity(lctx, a.Postback, in).Get(lctx, &res)
	if err != nil && retryable(err) {
		in.Attempts = attemptsOf(err, workflow.Now(ctx))
		rec := &m.state.Postbacks[i]
		rec.Attempts, rec.LastError = in.Attempts, lastErrorMessage(err)
		m.describe(ctx)
		delay := nextDelay(err)
		_ = workflow.NewTimerWithOptions(ctx, delay, workflow.TimerOptions{Summary: summary + ": next attempt"}).Get(ctx, nil)
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID:          PostbackActivityID(p.Seq),
			StartToCloseTimeout: postback.MaxTimeout + 30*time.Second,
			// The activity decides: NextRetryDelay follows the endpoint's schedule,
			// and its last step fails for good. The cap only guards against a bug.
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumAttempts: 50},
			Summary:     summary + " (retrying)",
		})
		err = workflow.ExecuteActivity(actx, a.Postback, in).Get(actx, &res)
	}
	rec := &m.state.Postbacks[i]
	if err == nil {
		rec.State, rec.DeliveredAt, rec.LastError, rec.Attempts = PostbackDelivered, res.DeliveredAt, "", res.Attempts
		return
	}
	if log := attemptsOf(err, workflow.Now(ctx)); len(log) > 0 {
		rec.Attempts = log
	}
	rec.LastError = lastErrorMessage(err)
	rec.State = PostbackFailed
	// Held for a replay once the endpoint is enabled again; a message's own
	// postback_url has no switch to enable, so a 410 there fails it.
	if route.EndpointID != "" && isApplicationError(err, activities.ErrEndpointDisabled, activities.ErrEndpointGone) {
		rec.State = PostbackHeld
	}
	workflow.GetLogger(ctx).Warn("postback not delivered", "dispatch_id", m.state.DispatchID, "seq", rec.Seq,
		"endpoint", route.Label, "state", rec.State, "error", rec.LastError)
}

func (p PostbackRecord) notificationName() string {
	if p.Event != "" {
		return string(p.Event)
	}
	return string(p.Status)
}

// notificationOf is what the Postback activity renders in the endpoint's format.
func (m *messageImpl) notificationOf(p PostbackRecord) postback.Notification {
	n := postback.Notification{
		Postback: p.Body, Event: p.Event, Recipient: m.state.Recipient,
		EventAt: p.EventAt, ReceivedAt: p.ReceivedAt, Reason: p.Reason,
		Subject: m.in.Request.Subject, From: m.in.Request.From,
	}
	if m.state.ESP != nil {
		n.Provider = m.state.ESP.Provider
	}
	return n
}

// attemptsOf reads the attempts log a failed Postback activity carries in its
// error's details; a first attempt cut by its timeout carries none and is
// recorded as such.
func attemptsOf(err error, now time.Time) []postback.Attempt {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		var log []postback.Attempt
		if appErr.Details(&log) == nil {
			return log
		}
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return []postback.Attempt{{At: now, Error: "no answer within " + firstPostbackTimeout.String(), Class: postback.ClassFailure}}
	}
	return nil
}

// nextDelay is the wait before the second attempt: the activity's NextRetryDelay
// (the endpoint's schedule with jitter and Retry-After), or the default schedule's
// first step after a timeout.
func nextDelay(err error) time.Duration {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NextRetryDelay() > 0 {
		return appErr.NextRetryDelay()
	}
	return 5 * time.Second
}

func isApplicationError(err error, types ...string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && slices.Contains(types, appErr.Type())
}

// replayPostbacks queues the selected finished postbacks again, with a fresh
// attempts log and the same webhook-id (receivers deduplicate on it).
func (m *messageImpl) replayPostbacks(in ReplayInput) ReplayResult {
	n := 0
	for i := range m.state.Postbacks {
		p := &m.state.Postbacks[i]
		if !replayable(*p, in) {
			continue
		}
		p.State, p.Attempts, p.LastError, p.DeliveredAt = PostbackPending, []postback.Attempt{}, "", time.Time{}
		p.Replays++
		n++
	}
	return ReplayResult{Replayed: n}
}

func replayable(p PostbackRecord, in ReplayInput) bool {
	switch {
	case p.Route < 0:
		return false
	case p.State != PostbackDelivered && p.State != PostbackFailed && p.State != PostbackHeld:
		return false
	case in.Status != "" && p.notificationName() != in.Status:
		return false
	case in.Endpoint != "" && p.Endpoint != in.Endpoint:
		return false
	}
	return true
}

// validateReplay refuses a replay that would select nothing, saying why.
func (m *messageImpl) validateReplay(in ReplayInput) error {
	for _, p := range m.state.Postbacks {
		if replayable(p, in) {
			return nil
		}
	}
	return temporal.NewApplicationError("no finished postback matches the replay (status "+orAll(in.Status)+
		", endpoint "+orAll(in.Endpoint)+"); postbacks still being delivered are not replayed", ErrReplayNothing)
}

// ErrReplayNothing is the type of a rejected replay update: nothing to replay.
const ErrReplayNothing = "ReplayNothing"

func orAll(s string) string {
	if s == "" {
		return "any"
	}
	return s
}
