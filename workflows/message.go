package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/metrics"
)

// Temporal names owned by this package.
const (
	// MessageWorkflow is the workflow type name of Message.
	MessageWorkflow = "Message"
	// SignalEvent carries one message.Event from the ESP webhook intake.
	SignalEvent = "esp-event"
	// QueryState answers the message's State.
	QueryState = "state"
)

// WorkflowID is the workflow ID of the message dispatchID: the dispatch_id itself.
func WorkflowID(dispatchID string) string { return dispatchID }

// Policy holds the durations that bound a message's life. Zero values take the defaults.
type Policy struct {
	// TrackingWindow: how long the workflow stays open after its last status change,
	// for late events (delayed bounces, opens). Defaults to 72h.
	TrackingWindow time.Duration `json:"tracking_window"`
	// SendRetryWindow: how long transient ESP failures are retried before the message
	// is aborted. Defaults to 1h.
	SendRetryWindow time.Duration `json:"send_retry_window"`
	// FallbackRetryWindow: how long a fallback step's transient failures are retried
	// before the ladder moves on. Defaults to 1h.
	FallbackRetryWindow time.Duration `json:"fallback_retry_window"`
}

func (p Policy) withDefaults() Policy {
	if p.TrackingWindow <= 0 {
		p.TrackingWindow = 72 * time.Hour
	}
	if p.SendRetryWindow <= 0 {
		p.SendRetryWindow = time.Hour
	}
	if p.FallbackRetryWindow <= 0 {
		p.FallbackRetryWindow = time.Hour
	}
	return p
}

// MessageInput starts a Message workflow.
type MessageInput struct {
	DispatchID string              `json:"dispatch_id"`
	Request    message.SendRequest `json:"request"`
	// Recipient is the bare address of Request.To (parsed by the API: address
	// parsing is not deterministic enough for workflow code, per workflowcheck).
	Recipient string `json:"recipient"`
	// ReceivedAt is when the API received the request (the sent postback's received_at).
	ReceivedAt time.Time `json:"received_at"`
	// Routes are the endpoints postbacks go to, resolved by the API; none: postbacks
	// are recorded as skipped.
	Routes []Route `json:"routes,omitempty"`
	Policy Policy  `json:"policy"`
	// Fallback is the message's fallback policy, defaults applied; nil: none.
	Fallback *fallback.Policy `json:"fallback,omitempty"`
	// Carried is the state of the previous run after a continue-as-new.
	Carried *State `json:"carried,omitempty"`
}

// State is a message as the state query answers it.
type State struct {
	DispatchID     string         `json:"dispatch_id"`
	Status         message.Status `json:"status"`
	Reason         string         `json:"reason,omitempty"`
	ExternalSendID string         `json:"external_send_id,omitempty"`
	CampaignAPIID  string         `json:"campaign_api_id,omitempty"`
	// Workspace owns the message: only its API keys may see or change it.
	Workspace string `json:"workspace,omitempty"`
	Recipient string `json:"recipient"`
	// ESP is the provider's receipt once it accepted the message.
	ESP *esp.Receipt `json:"esp,omitempty"`
	// Times of the hand-over, as in the sent postback.
	SendTimes message.SendTimes `json:"send_times"`
	// UpdatedAt is the time of the last status change. The workflow stays open
	// until TrackingUntil: TrackingWindow after the last status change, but not
	// before 1.1 × TrackingWindow after the start (see trackingGraceDivisor).
	UpdatedAt     time.Time `json:"updated_at"`
	TrackingUntil time.Time `json:"tracking_until"`
	// Events is every distinct event received, in arrival order.
	Events []EventRecord `json:"events"`
	// DuplicateEvents counts events dropped because their dedupe id was already seen.
	DuplicateEvents int `json:"duplicate_events"`
	// Postbacks is one entry per status change, in status order.
	Postbacks []PostbackRecord `json:"postbacks"`
	// Fallback is the escalation policy and what it did.
	Fallback FallbackState `json:"fallback"`
}

// EventRecord is one event in a message's timeline.
type EventRecord struct {
	Provider   string            `json:"provider"`
	Type       message.EventType `json:"type"`
	RawType    string            `json:"raw_type,omitempty"`
	ID         string            `json:"id"`
	Timestamp  time.Time         `json:"timestamp"`
	ReceivedAt time.Time         `json:"received_at"`
	Reason     string            `json:"reason,omitempty"`
	// ChangedStatus tells whether the event moved the status (and caused a postback).
	ChangedStatus bool `json:"changed_status"`
	// Note explains an event that changed nothing ("status already delivered").
	Note string `json:"note,omitempty"`
}

// Message is the workflow of one transactional email. It hands the email to the ESP,
// applies ESP events (signal SignalEvent) through message.Next, posts a postback per
// status change in status order, answers QueryState, and completes TrackingWindow
// after the last status change once every postback is delivered or given up.
func Message(ctx workflow.Context, in MessageInput) (State, error) {
	m := newMessageImpl(ctx, in)
	if err := m.setup(ctx); err != nil {
		return State{}, err
	}
	return m.run(ctx)
}

type messageImpl struct {
	in       MessageInput
	state    State
	seen     map[string]bool // dedupe keys of State.Events
	held     []int           // indexes of events received before the send outcome
	sendDone bool
	// inFlight counts the postback senders waiting on an activity.
	inFlight int
	// draining stops the postback sender before a continue-as-new.
	draining bool
	events   workflow.ReceiveChannel
	fb       fallbackImpl
	// searchWritten is what the search attributes hold now.
	searchWritten searchValues
}

func newMessageImpl(ctx workflow.Context, in MessageInput) *messageImpl {
	in.Policy = in.Policy.withDefaults()
	m := &messageImpl{in: in, seen: map[string]bool{}}
	if in.Carried != nil {
		m.state = *in.Carried
		m.sendDone = true
		for _, e := range m.state.Events {
			m.seen[dedupeKey(e.Provider, e.ID)] = true
		}
		m.searchWritten = m.startSearchValues()
		return m
	}
	now := workflow.Now(ctx)
	m.state = State{
		DispatchID:     in.DispatchID,
		Status:         message.StatusQueued,
		ExternalSendID: in.Request.ExternalSendID,
		CampaignAPIID:  in.Request.CampaignAPIID,
		Workspace:      in.Request.Workspace,
		Recipient:      in.Recipient,
		SendTimes:      message.SendTimes{ReceivedAt: in.ReceivedAt, EnqueuedAt: workflow.GetInfo(ctx).WorkflowStartTime},
		UpdatedAt:      now,
		TrackingUntil:  now.Add(in.Policy.TrackingWindow + in.Policy.TrackingWindow/trackingGraceDivisor),
		Events:         []EventRecord{},
		Postbacks:      []PostbackRecord{},
		Fallback:       FallbackState{State: FallbackNone},
	}
	if in.Fallback != nil {
		p := *in.Fallback
		m.state.Fallback = FallbackState{State: FallbackPending, Policy: &p}
	}
	m.searchWritten = m.startSearchValues()
	return m
}

func dedupeKey(provider, id string) string {
	return message.Event{Provider: provider, ID: id}.DedupeKey()
}

func (m *messageImpl) setup(ctx workflow.Context) error {
	m.events = workflow.GetSignalChannel(ctx, SignalEvent)
	if err := m.setupFallback(ctx); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReplayPostbacks,
		func(_ workflow.Context, in ReplayInput) (ReplayResult, error) { return m.replayPostbacks(in), nil },
		workflow.UpdateHandlerOptions{Validator: m.validateReplay},
	); err != nil {
		return err
	}
	return workflow.SetQueryHandler(ctx, QueryState, func() (State, error) {
		st := m.state
		st.Fallback = m.fallbackView()
		return st, nil
	})
}

// trackingGraceDivisor sets the grace added to the first tracking deadline:
// TrackingWindow/10. Nearly every message settles within that grace of its start,
// so its one tracking timer fires after the last status change's window has run
// out and the workflow closes without re-arming it (5 history events saved).
const trackingGraceDivisor = 10

func (m *messageImpl) run(ctx workflow.Context) (State, error) {
	// The intake waits for buffered events rather than blocking in Receive: a
	// blocked Receive is handed a signal directly, outside the channel's buffer,
	// where the final drainEvents of a completing run could not see it.
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, func() bool { return m.events.Len() > 0 })
			m.drainEvents(ctx)
		}
	})
	if !m.sendDone {
		workflow.Go(ctx, m.send)
	}
	for i := range m.in.Routes {
		workflow.Go(ctx, func(ctx workflow.Context) { m.deliverPostbacks(ctx, i) })
	}
	m.startFallback(ctx)
	workflow.Go(ctx, m.keepSearchAttributesCurrent)

	for {
		// One timer at a time, never cancelled: when it fires, it is re-armed if the
		// deadline moved meanwhile. Status changes therefore cost no timer events.
		timer := workflow.NewTimerWithOptions(ctx, m.state.TrackingUntil.Sub(workflow.Now(ctx)),
			workflow.TimerOptions{Summary: "tracking window"})
		if err := workflow.Await(ctx, func() bool { return timer.IsReady() || m.continueAsNewSuggested(ctx) }); err != nil {
			return m.state, err
		}
		if !timer.IsReady() {
			return m.state, m.continueAsNew(ctx)
		}
		if err := workflow.Await(ctx, m.idle); err != nil {
			return m.state, err
		}
		m.drainEvents(ctx)
		if m.idle() && !workflow.Now(ctx).Before(m.state.TrackingUntil) {
			break
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return m.state, err
	}
	m.flushSearchAttributes(ctx)
	return m.state, nil
}

// idle: the send has an outcome, no postback is waiting or in flight, and no
// fallback deadline or ladder is running.
func (m *messageImpl) idle() bool {
	return m.sendDone && m.inFlight == 0 && !m.postbacksWaiting() && !m.fb.running && !m.deadlinePending()
}

func (m *messageImpl) continueAsNewSuggested(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// continueAsNew carries the state into a fresh run once nothing is in flight: the
// in-flight postback (if any) finishes first, pending ones are carried.
func (m *messageImpl) continueAsNew(ctx workflow.Context) error {
	m.draining = true
	if err := workflow.Await(ctx, func() bool { return m.sendDone && m.inFlight == 0 && !m.fb.running }); err != nil {
		return err
	}
	m.drainEvents(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	m.flushSearchAttributes(ctx)
	next := m.in
	carried := m.state
	next.Carried = &carried
	return workflow.NewContinueAsNewError(ctx, MessageWorkflow, next)
}

// drainEvents applies the events already delivered to this workflow task, so that
// none is lost when the workflow completes or continues as new.
func (m *messageImpl) drainEvents(ctx workflow.Context) {
	m.drainFallbackStatuses(ctx)
	var ev message.Event
	for m.events.ReceiveAsync(&ev) {
		m.onEvent(ctx, ev)
		ev = message.Event{}
	}
}

// onEvent records an ESP event and applies it, unless it is a duplicate. Events that
// arrive before the send outcome is known are held and applied after it.
func (m *messageImpl) onEvent(ctx workflow.Context, ev message.Event) {
	key := ev.DedupeKey()
	if m.seen[key] {
		m.state.DuplicateEvents++
		return
	}
	m.seen[key] = true
	m.state.Events = append(m.state.Events, EventRecord{
		Provider: ev.Provider, Type: ev.Type, RawType: ev.RawType, ID: ev.ID,
		Timestamp: ev.Timestamp, ReceivedAt: ev.ReceivedAt, Reason: ev.Reason,
	})
	idx := len(m.state.Events) - 1
	if ev.Provider == intakeGeneric && ev.Workspace != m.in.Request.Workspace && ev.Workspace != message.AnyWorkspace {
		// Authenticated with another workspace's intake secret: it may report on
		// that workspace's messages only.
		if workflow.GetVersion(ctx, versionProviderBound, workflow.DefaultVersion, 1) == 1 {
			m.state.Events[idx].Note = "ignored: posted to the generic intake with another workspace's secret"
			return
		}
	}
	if !m.sendDone {
		m.state.Events[idx].Note = "held until the ESP answers the send"
		m.held = append(m.held, idx)
		return
	}
	m.apply(ctx, idx)
}

// versionProviderBound guards the rule that only the provider that carried a
// message may move it (histories recorded before it applied any provider's event).
const versionProviderBound = "provider-bound-events"

// intakeGeneric is the provider name of the generic intake's events (intake.ProviderGeneric).
const intakeGeneric = "generic"

// carrier says why event rec may not move the message: it was reported by a
// provider that did not carry it. "" when it may: our own send outcome, the ESP
// the message was handed to, or the generic intake of the message's own workspace
// (checked in onEvent).
func (m *messageImpl) carrier(rec *EventRecord) string {
	switch {
	case rec.ID == sendEventID || rec.Provider == intakeGeneric:
		return ""
	case m.state.ESP == nil:
		// The send was refused (aborted, final): no event can move it anyway.
		return ""
	case rec.Provider != m.state.ESP.Provider:
		return "ignored: reported by " + rec.Provider + ", but the message was handed to " + m.state.ESP.Provider
	}
	return ""
}

// apply runs event idx of the timeline through the status rules.
func (m *messageImpl) apply(ctx workflow.Context, idx int) {
	rec := &m.state.Events[idx]
	rec.Note = ""
	if note := m.carrier(rec); note != "" && workflow.GetVersion(ctx, versionProviderBound, workflow.DefaultVersion, 1) == 1 {
		rec.Note = note // recorded, and changes nothing: no status, no postback
		return
	}
	defer m.postEngagement(idx)
	to, changed := message.Next(m.state.Status, rec.Type)
	if !changed {
		if isStatusEvent(rec.Type) {
			rec.Note = "status already " + string(m.state.Status)
		}
		return
	}
	rec.ChangedStatus = true
	at := rec.Timestamp
	if at.IsZero() {
		at = rec.ReceivedAt
	}
	m.changeStatus(ctx, to, at, rec.ReceivedAt, rec.Reason)
	m.onStatusForFallback(ctx, to, &m.state.Events[idx])
}

func isStatusEvent(t message.EventType) bool {
	switch t {
	case message.EventSent, message.EventProcessed, message.EventDelivered, message.EventBounced, message.EventAborted:
		return true
	}
	return false
}

// postEngagement posts engagement event idx back to the endpoints subscribed to
// it, after the status change it may have caused (an open proves delivery).
func (m *messageImpl) postEngagement(idx int) {
	e := m.state.Events[idx]
	if !isEngagement(e.Type) {
		return
	}
	body := message.Postback{DispatchID: m.state.DispatchID, Status: m.state.Status, Metadata: message.Metadata{
		ExternalSendID: m.state.ExternalSendID, CampaignAPIID: m.state.CampaignAPIID,
	}}
	m.queuePostback(notification{status: m.state.Status, event: e.Type, body: body,
		eventAt: e.Timestamp, receivedAt: e.ReceivedAt, reason: e.Reason})
}

func (m *messageImpl) changeStatus(ctx workflow.Context, to message.Status, at, receivedAt time.Time, reason string) {
	now := workflow.Now(ctx)
	metrics.StatusTransition(ctx, string(m.state.Status), string(to))
	m.state.Status = to
	m.state.UpdatedAt = now
	if until := now.Add(m.in.Policy.TrackingWindow); until.After(m.state.TrackingUntil) {
		m.state.TrackingUntil = until
	}
	if to == message.StatusBounced || to == message.StatusAborted {
		m.state.Reason = reason
	}
	m.queuePostback(notification{status: to, body: message.NewPostback(m.identity(), to, at, reason, m.state.SendTimes),
		eventAt: at, receivedAt: receivedAt, reason: reason})
	workflow.GetLogger(ctx).Info("status changed", "dispatch_id", m.state.DispatchID, "status", to)
	m.describe(ctx)
}

// describe keeps the workflow's current details (the Temporal UI's "Current
// Details" panel) in words. They live in the workflow's memory and are read by a
// query: they cost no history event. No personal data: no address, no number.
func (m *messageImpl) describe(ctx workflow.Context) {
	st := &m.state
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**Status:** %s since %s", st.Status, st.UpdatedAt.UTC().Format("2006-01-02 15:04:05 MST")))
	if st.Reason != "" {
		b.WriteString(fmt.Sprintf(" — %s", st.Reason))
	}
	if n := len(st.Events); n > 0 {
		e := st.Events[n-1]
		b.WriteString(fmt.Sprintf("\n\n**Last event:** %s from %s", e.Type, e.Provider))
	}
	counts := map[string]int{}
	for _, p := range st.Postbacks {
		counts[p.State]++
	}
	b.WriteString(fmt.Sprintf("\n\n**Postbacks:** %d delivered, %d waiting, %d failed, %d held, %d skipped",
		counts[PostbackDelivered], counts[PostbackPending]+counts[PostbackDelivering], counts[PostbackFailed],
		counts[PostbackHeld], counts[PostbackSkipped]))
	if fb := st.Fallback; fb.State != FallbackNone {
		b.WriteString(fmt.Sprintf("\n\n**Fallback:** %s", fb.State))
		if fb.Reason != "" {
			b.WriteString(fmt.Sprintf(" (%s)", fb.Reason))
		}
		if fb.Outcome != "" {
			b.WriteString(fmt.Sprintf(", outcome %s", fb.Outcome))
		}
		for _, d := range fb.Deadlines {
			if d.State == DeadlinePending {
				b.WriteString(fmt.Sprintf("; %s due %s", d.Name, d.DueAt.UTC().Format("15:04:05 MST")))
			}
		}
	}
	b.WriteString(fmt.Sprintf("\n\n**Tracking until:** %s", st.TrackingUntil.UTC().Format("2006-01-02 15:04 MST")))
	workflow.SetCurrentDetails(ctx, b.String())
}

func (m *messageImpl) identity() message.Identity {
	return message.Identity{DispatchID: m.state.DispatchID, ExternalSendID: m.state.ExternalSendID, CampaignAPIID: m.state.CampaignAPIID}
}

// send hands the email to the ESP and applies the outcome as our own event, then
// the ESP events held meanwhile.
func (m *messageImpl) send(ctx workflow.Context) {
	var a *activities.Activities
	req := m.in.Request
	in := activities.SendInput{Email: esp.Email{
		DispatchID: m.state.DispatchID, From: req.From, To: req.To, Subject: req.Subject, Text: req.Text, HTML: req.HTML,
	}}
	var res activities.SendResult
	_, err := execute(ctx, a.Send, in, &res, callOptions{
		Summary:      "hand the email to the ESP",
		FirstTimeout: 10 * time.Second,
		Timeout:      30 * time.Second,
		Retry:        retryPolicyWithin(m.in.Policy.SendRetryWindow, time.Second, 5*time.Minute),
	})
	now := workflow.Now(ctx)
	rec := EventRecord{Provider: "dispatchflow", ID: sendEventID, ReceivedAt: now, Timestamp: now}
	if err == nil {
		m.state.ESP = &res.Receipt
		m.state.SendTimes.ExecutedAt, m.state.SendTimes.SentAt = res.ExecutedAt, res.SentAt
		rec.Provider, rec.Type, rec.RawType = res.Receipt.Provider, message.EventSent, res.Receipt.Response
		rec.Timestamp, rec.ReceivedAt = res.SentAt, res.SentAt
	} else {
		rec.Type, rec.Reason = message.EventAborted, sendFailureReason(err)
	}
	m.state.Events = append(m.state.Events, rec)
	m.sendDone = true
	m.apply(ctx, len(m.state.Events)-1)
	for _, idx := range m.held {
		m.apply(ctx, idx)
	}
	m.held = nil
}

// sendEventID is the id of the timeline's record of our own hand-over to the ESP.
const sendEventID = "send"

func sendFailureReason(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrRefused {
		return appErr.Message()
	}
	return "ESP unavailable: " + lastErrorMessage(err)
}

// lastErrorMessage digs the activity's own message out of Temporal's wrapping.
func lastErrorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}
