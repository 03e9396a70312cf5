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
	"github.com/dispatchflow/dispatchflow/metrics"
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
	// WebhookID is the postback's webhook-id header: the same on every retry and
	// replay, always with the same body.
	WebhookID string `json:"webhook_id,omitempty"`
	State     string `json:"state"`
	// Attempts is the log of the last HTTP attempts (at most maxAttemptsKept,
	// oldest first; a finished engagement postback keeps its last one, and a
	// finished one none once the message continued as new). AttemptCount counts them all
	// since the postback was queued or last replayed.
	Attempts     []postback.Attempt `json:"attempts"`
	AttemptCount int                `json:"attempt_count,omitempty"`
	LastError    string             `json:"last_error,omitempty"`
	DeliveredAt  time.Time          `json:"delivered_at,omitzero"`
	// NextAttemptAt is when a failing postback is tried next.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// HeldAt is when the postback was held (its endpoint disabled): it fails
	// for good Policy.MaxHold later unless replayed.
	HeldAt time.Time `json:"held_at,omitzero"`
	// Replays counts the replays asked for.
	Replays int `json:"replays,omitempty"`
	// EventAt and ReceivedAt are when the event happened and reached dispatchflow.
	EventAt    time.Time        `json:"event_at,omitzero"`
	ReceivedAt time.Time        `json:"received_at,omitzero"`
	Body       message.Postback `json:"body"`
	Reason     string           `json:"reason,omitempty"`
}

// Bounds of a message's postbacks: with the timeline's, they keep the state
// small whatever the traffic (see maxStateBytes in the tests and docs/postbacks.md).
const (
	// maxEngagementPostbacks is how many engagement postbacks one message posts
	// to one endpoint; later engagement events are counted (State.FoldedPostbacks).
	maxEngagementPostbacks = 50
	// keepDeliveredEngagement is how many delivered engagement postbacks per
	// endpoint the state keeps; older ones are counted (State.CompactedPostbacks).
	keepDeliveredEngagement = 5
	// maxAttemptsKept bounds the attempts log of a postback being delivered.
	maxAttemptsKept = 5
)

// PostbackActivityID is the activity ID of attempt n (1-based) of postback seq
// made as a regular activity.
func PostbackActivityID(seq, n int) string { return fmt.Sprintf("postback-%d-%d", seq, n) }

// ReplayInput selects the postbacks a replay re-sends. Empty fields select all
// finished postbacks (delivered, failed, held).
type ReplayInput struct {
	// Status (or engagement event) to replay: "bounced", "open", …
	Status string `json:"status,omitempty"`
	// Endpoint: the label of one route (an endpoint's id).
	Endpoint string `json:"endpoint,omitempty"`
	// States: of delivered, failed and held, those to replay.
	States []string `json:"states,omitempty"`
	// Since and Until bound when the postback's event reached dispatchflow
	// (ReceivedAt): since inclusive, until exclusive.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// Validate names what is wrong with in: a state that is not delivered, failed
// or held, or until not after since.
func (in ReplayInput) Validate() error {
	for _, st := range in.States {
		if st != PostbackDelivered && st != PostbackFailed && st != PostbackHeld {
			return fmt.Errorf("states: %q is not one of delivered, failed, held", st)
		}
	}
	if !in.Since.IsZero() && !in.Until.IsZero() && !in.Since.Before(in.Until) {
		return errors.New("until: must be after since")
	}
	return nil
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
// sender coroutine. A status with no route at all is recorded as skipped. The
// body is fixed here, once: every attempt and replay of the postback's
// webhook-id sends the same bytes.
func (m *messageImpl) queuePostback(n notification) {
	queued := false
	for i, r := range m.in.Routes {
		if !slices.Contains(r.Events, n.name()) {
			continue
		}
		if n.event != "" {
			if m.carry.engagementQueued(i) >= maxEngagementPostbacks {
				m.state.FoldedPostbacks++
				continue
			}
			m.carry.EngagementQueued[i]++
		}
		seq := m.nextSeq()
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
			Seq: m.nextSeq(), Status: n.status, Route: -1, State: PostbackSkipped,
			LastError: "no postback endpoint: set postback_url, DISPATCHFLOW_POSTBACK_URL or DISPATCHFLOW_ENDPOINTS_FILE",
			Attempts:  []postback.Attempt{}, Body: n.body,
		})
	}
}

// nextSeq numbers the next postback: records leave the state (compaction), so
// the number is kept, not counted.
func (m *messageImpl) nextSeq() int {
	if m.state.PostbackSeq == 0 {
		for _, p := range m.state.Postbacks {
			m.state.PostbackSeq = max(m.state.PostbackSeq, p.Seq)
		}
	}
	m.state.PostbackSeq++
	return m.state.PostbackSeq
}

// postbackBySeq is postback seq's record, or nil once compacted.
func (m *messageImpl) postbackBySeq(seq int) *PostbackRecord {
	for i := range m.state.Postbacks {
		if m.state.Postbacks[i].Seq == seq {
			return &m.state.Postbacks[i]
		}
	}
	return nil
}

// compactPostbacks drops each route's oldest delivered engagement postbacks
// beyond keepDeliveredEngagement, and the attempts logs of finished engagement
// postbacks but for their last attempt; with all (a continue-as-new), the
// attempts logs of every finished postback.
func (m *messageImpl) compactPostbacks(all bool) {
	delivered := map[int]int{}
	for _, p := range m.state.Postbacks {
		if p.Event != "" && p.State == PostbackDelivered {
			delivered[p.Route]++
		}
	}
	kept := m.state.Postbacks[:0]
	for _, p := range m.state.Postbacks {
		if p.Event != "" && p.State == PostbackDelivered && delivered[p.Route] > keepDeliveredEngagement {
			delivered[p.Route]--
			m.state.CompactedPostbacks++
			continue
		}
		switch {
		case all && finished(p.State):
			p.Attempts = []postback.Attempt{}
		case p.Event != "" && finished(p.State) && len(p.Attempts) > 1:
			p.Attempts = slices.Clone(p.Attempts[len(p.Attempts)-1:])
		}
		kept = append(kept, p)
	}
	m.state.Postbacks = kept
}

func finished(state string) bool {
	return state != PostbackPending && state != PostbackDelivering
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

// nextPostback is the seq of route's first postback still to send, or 0.
func (m *messageImpl) nextPostback(route int) int {
	for _, p := range m.state.Postbacks {
		if p.Route == route && !finished(p.State) {
			return p.Seq
		}
	}
	return 0
}

// postbacksWaiting reports whether any route has a postback to send.
func (m *messageImpl) postbacksWaiting() bool {
	for _, p := range m.state.Postbacks {
		if !finished(p.State) {
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
		var seq int
		_ = workflow.Await(ctx, func() bool {
			seq = m.nextPostback(route)
			return seq > 0 && !m.draining
		})
		m.deliverPostback(ctx, seq)
		m.compactPostbacks(false)
		m.describe(ctx)
	}
}

// Timeouts of a postback attempt made as a regular activity: the endpoint's own
// timeout (at most postback.MaxTimeout) bounds the request; the heartbeat
// notices a dead worker in seconds; a dead worker's attempt is made again soon.
const (
	postbackHeartbeatTimeout = 10 * time.Second
	postbackAttemptTimeout   = postback.MaxTimeout + 30*time.Second
)

// maxPostbackAttempts bounds the attempts of a postback whose activity keeps
// failing without an answer (the endpoint's schedule, which the activity applies,
// is never reached): more than any schedule has (postback.MaxScheduleSteps + 1).
const maxPostbackAttempts = 50

// postbackCrashRetry retries an attempt whose worker died (no heartbeat): the
// endpoint's schedule is the workflow's, not this policy's.
var postbackCrashRetry = &temporal.RetryPolicy{
	InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
}

// deliverPostback makes postback seq's attempts until it is delivered, given up
// or held, waiting out the endpoint's schedule on durable timers. The first
// attempt runs as a local activity (one marker event, no round trip) when the
// endpoint answers fast; the others, and every attempt to a slow endpoint, as
// regular activities that heartbeat. It returns early, leaving the postback to
// the next run, when the message continues as new while it waits to retry.
func (m *messageImpl) deliverPostback(ctx workflow.Context, seq int) {
	var a *activities.Activities
	rec := m.postbackBySeq(seq)
	rec.State = PostbackDelivering
	route := m.in.Routes[rec.Route]
	in := activities.PostbackInput{
		EndpointID: route.EndpointID, URL: route.URL, Workspace: m.in.Request.Workspace,
		WebhookID: rec.WebhookID, Notification: m.notificationOf(*rec),
	}
	summary := fmt.Sprintf("postback %d to %s: %s", rec.Seq, route.Label, rec.notificationName())
	deferred := false
	for {
		if due := rec.NextAttemptAt; !due.IsZero() {
			if wait := due.Sub(workflow.Now(ctx)); wait > 0 {
				timer := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: summary + ": next attempt"})
				_ = workflow.Await(ctx, func() bool { return timer.IsReady() || m.draining })
			}
		}
		if m.draining {
			return // carried: the next run waits out what is left
		}
		rec = m.postbackBySeq(seq)
		in.Made = rec.AttemptCount
		var res activities.PostbackResult
		var err error
		m.inFlight++
		if rec.AttemptCount == 0 && !deferred {
			in.First = true
			lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
				// Never cut before the endpoint's own timeout: a slow receiver must
				// not get the postback twice.
				ScheduleToCloseTimeout: postback.MaxTimeout + 5*time.Second,
				RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
				Summary:                summary,
			})
			err = workflow.ExecuteLocalActivity(lctx, a.Postback, in).Get(lctx, &res)
		} else {
			in.First = false
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				ActivityID:          PostbackActivityID(seq, rec.AttemptCount+1),
				StartToCloseTimeout: postbackAttemptTimeout,
				HeartbeatTimeout:    postbackHeartbeatTimeout,
				RetryPolicy:         postbackCrashRetry,
				Summary:             fmt.Sprintf("%s (attempt %d)", summary, rec.AttemptCount+1),
			})
			err = workflow.ExecuteActivity(actx, a.Postback, in).Get(actx, &res)
		}
		m.inFlight--
		rec = m.postbackBySeq(seq)
		now := workflow.Now(ctx)
		if err != nil {
			if in.First {
				deferred = true // the local attempt broke: go on as a regular activity
				continue
			}
			// Its worker died, again and again: count it as a failed attempt, and
			// give up once that has gone on for as many attempts as any schedule has.
			res = activities.PostbackResult{Outcome: activities.OutcomeRetry, RetryIn: time.Minute, Error: lastErrorMessage(err),
				Attempt: postback.Attempt{At: now, Error: lastErrorMessage(err), Class: postback.ClassFailure}}
			if rec.AttemptCount+1 >= maxPostbackAttempts {
				res.Outcome = activities.OutcomeFailed
			}
		}
		if res.Outcome == activities.OutcomeDeferred {
			deferred = true
			continue
		}
		if res.Attempt.Class != "" {
			rec.AttemptCount++
			rec.Attempts = append(rec.Attempts, res.Attempt)
			if len(rec.Attempts) > maxAttemptsKept {
				rec.Attempts = slices.Clone(rec.Attempts[len(rec.Attempts)-maxAttemptsKept:])
			}
		}
		rec.LastError, rec.NextAttemptAt = res.Error, time.Time{}
		switch res.Outcome {
		case activities.OutcomeDelivered:
			rec.State, rec.DeliveredAt = PostbackDelivered, res.DeliveredAt
			return
		case activities.OutcomeRetry:
			rec.NextAttemptAt = now.Add(res.RetryIn)
			m.describe(ctx)
			continue
		case activities.OutcomeHeld:
			rec.State = PostbackHeld
			if route.EndpointID == "" {
				rec.State = PostbackFailed // a postback_url has no switch to enable
			}
			rec.HeldAt = now
		default:
			rec.State = PostbackFailed
		}
		workflow.GetLogger(ctx).Warn("postback not delivered", "dispatch_id", m.state.DispatchID, "seq", rec.Seq,
			"endpoint", route.Label, "state", rec.State, "error", rec.LastError)
		return
	}
}

// holdDue is when the oldest held postback fails for good (Policy.MaxHold after
// it was held); zero when none is held.
func (m *messageImpl) holdDue() time.Time {
	var due time.Time
	for _, p := range m.state.Postbacks {
		if p.State == PostbackHeld {
			if d := p.HeldAt.Add(m.in.Policy.MaxHold); due.IsZero() || d.Before(due) {
				due = d
			}
		}
	}
	return due
}

// expireHeld fails the postbacks held for Policy.MaxHold: their endpoint stayed
// disabled, and the message may not stay open for ever.
func (m *messageImpl) expireHeld(ctx workflow.Context) {
	now := workflow.Now(ctx)
	expired := false
	for i := range m.state.Postbacks {
		p := &m.state.Postbacks[i]
		if p.State != PostbackHeld || now.Before(p.HeldAt.Add(m.in.Policy.MaxHold)) {
			continue
		}
		p.State = PostbackFailed
		p.LastError = fmt.Sprintf("held %s while endpoint %s stayed disabled; given up (last error: %s)",
			m.in.Policy.MaxHold, p.Endpoint, p.LastError)
		metrics.PostbackHoldExpired(ctx, p.Endpoint)
		workflow.GetLogger(ctx).Warn("held postback given up", "dispatch_id", m.state.DispatchID, "seq", p.Seq, "endpoint", p.Endpoint)
		expired = true
	}
	if expired {
		m.describe(ctx)
	}
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
		p.AttemptCount, p.NextAttemptAt, p.HeldAt = 0, time.Time{}, time.Time{}
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
	case len(in.States) > 0 && !slices.Contains(in.States, p.State):
		return false
	case !in.Since.IsZero() && p.ReceivedAt.Before(in.Since):
		return false
	case !in.Until.IsZero() && !p.ReceivedAt.Before(in.Until):
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
