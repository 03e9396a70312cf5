package workflows

import (
	"errors"
	"fmt"
	"slices"
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
	// MaxHold: how long a postback held for a disabled endpoint keeps the
	// message open, waiting for the endpoint to be enabled and the postback
	// replayed, before it fails for good. Defaults to 30 days.
	MaxHold time.Duration `json:"max_hold,omitempty"`
	// MaxRunSignals: how many signals one run takes in before it continues as
	// new. Defaults to 4,000 (Temporal refuses signals past 10,000 a run).
	MaxRunSignals int `json:"max_run_signals,omitempty"`
	// FailoverAfter: with several providers (MessageInput.Providers), how
	// long transient failures of one are retried before the message moves on
	// to the next. Defaults to DefaultFailoverAfter (2m).
	FailoverAfter time.Duration `json:"failover_after,omitempty"`
}

// DefaultMaxHold is Policy.MaxHold's default.
const DefaultMaxHold = 30 * 24 * time.Hour

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
	if p.MaxHold <= 0 {
		p.MaxHold = DefaultMaxHold
	}
	if p.MaxRunSignals <= 0 || p.MaxRunSignals > maxSignalsPerRun {
		p.MaxRunSignals = maxSignalsPerRun
	}
	if p.FailoverAfter <= 0 {
		p.FailoverAfter = DefaultFailoverAfter
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
	// Carried is the state of the previous run after a continue-as-new, and
	// Carry what else it hands over.
	Carried *State `json:"carried,omitempty"`
	Carry   *Carry `json:"carry,omitempty"`
	// Providers is the failover list, when DISPATCHFLOW_ESP names several
	// providers: the email goes to the first, and moves down the list (see
	// handOver). Empty: the worker's one provider, as before failover existed.
	Providers []ESPRoute `json:"providers,omitempty"`
	// SearchVersion is how the run writes DispatchStatus: SearchVersionCurrent
	// for messages the API starts now (VisibleStatus: processed stays sent); 0
	// for those started before, which wrote every status and must go on doing
	// so to replay. An input field, not a GetVersion marker: a marker would cost
	// every message the event and the upsert that the change saves.
	SearchVersion int `json:"search_version,omitempty"`
}

// Carry is what a run hands the next besides its State: not part of the
// state query's answer.
type Carry struct {
	// Seen is the dedupe memory: the last event keys' hashes (see dedupe).
	Seen []byte `json:"seen,omitempty"`
	// EngagementQueued counts the engagement postbacks queued per route.
	EngagementQueued []int `json:"engagement_queued,omitempty"`
	// Runs counts the runs before this one.
	Runs int `json:"runs,omitempty"`
}

func (c *Carry) engagementQueued(route int) int {
	for len(c.EngagementQueued) <= route {
		c.EngagementQueued = append(c.EngagementQueued, 0)
	}
	return c.EngagementQueued[route]
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
	// Events is the timeline, in the order events applied (those that arrived
	// before the send's outcome apply after it, in arrival order): every event that changed the
	// status, and of the others the first keepFirstOfType and the last
	// keepLastOfType of each type; EventCounts counts them all.
	Events []EventRecord `json:"events"`
	// EventCounts counts the distinct events received per type, and how many of
	// them the timeline folded (did not keep one by one).
	EventCounts []EventCount `json:"event_counts,omitempty"`
	// FoldedEvents is the sum of EventCounts' Folded.
	FoldedEvents int `json:"folded_events,omitempty"`
	// DuplicateEvents counts events dropped because their dedupe id was already seen.
	DuplicateEvents int `json:"duplicate_events"`
	// Postbacks is one entry per status change and endpoint, in status order,
	// and one per engagement event posted (the last few once delivered).
	Postbacks []PostbackRecord `json:"postbacks"`
	// PostbackSeq is the seq of the last postback queued.
	PostbackSeq int `json:"postback_seq,omitempty"`
	// FoldedPostbacks counts the engagement postbacks not sent: over the
	// maxEngagementPostbacks per endpoint a message posts.
	FoldedPostbacks int `json:"folded_postbacks,omitempty"`
	// CompactedPostbacks counts the delivered engagement postbacks no longer
	// listed in Postbacks (beyond keepDeliveredEngagement per endpoint).
	CompactedPostbacks int `json:"compacted_postbacks,omitempty"`
	// Fallback is the escalation policy and what it did.
	Fallback FallbackState `json:"fallback"`
	// Handovers lists the providers of the failover list the email went
	// through, in order, and how each went (empty with one provider).
	Handovers []Handover `json:"handovers,omitempty"`
}

// EventCount counts one type of event.
type EventCount struct {
	Type     message.EventType `json:"type"`
	Received int               `json:"received"`
	Folded   int               `json:"folded,omitempty"`
}

// Bounds of the timeline: whatever the traffic, it keeps per event type the
// first keepFirstOfType and the last keepLastOfType events that changed
// nothing, besides every event that changed the status; maxHeldPerType events
// of each type wait for the send's outcome.
const (
	keepFirstOfType = 1
	keepLastOfType  = 3
	maxHeldPerType  = keepFirstOfType + keepLastOfType
)

// Continue-as-new bounds of a run, well within Temporal's limits (10,000
// signals, 51,200 events per run): past either, the run hands over.
const (
	maxSignalsPerRun = 4000
	maxEventsPerRun  = 20000
)

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
	in    MessageInput
	state State
	carry Carry
	seen  *dedupe
	// held are the events received before the send's outcome, applied after it.
	held     []EventRecord
	sendDone bool
	// signals counts the signals this run took in (see maxSignalsPerRun).
	signals int
	// inFlight counts the postback senders waiting on an activity.
	inFlight int
	// suppressing counts the Suppress activities under way (suppressIfFinal).
	suppressing int
	// draining stops the postback sender before a continue-as-new.
	draining bool
	events   workflow.ReceiveChannel
	fb       fallbackImpl
	// searchWritten is what the search attributes hold now.
	searchWritten searchValues
}

func newMessageImpl(ctx workflow.Context, in MessageInput) *messageImpl {
	in.Policy = in.Policy.withDefaults()
	m := &messageImpl{in: in}
	if in.Carried != nil {
		m.state = *in.Carried
		m.sendDone = true
		if in.Carry != nil {
			m.carry = *in.Carry
		}
		m.carry.Runs++
		m.seen = unpackDedupe(m.carry.Seen)
		m.carry.Seen = nil
		for _, e := range m.state.Events {
			m.seen.add(dedupeKey(e.Provider, e.ID))
		}
		m.searchWritten = m.startSearchValues()
		return m
	}
	m.seen = unpackDedupe(nil)
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
		if len(m.held) > 0 {
			st.Events = append(slices.Clone(st.Events), m.held...)
		}
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
		// Past the tracking window, held postbacks keep the message open until
		// they are replayed or their hold runs out.
		due := m.closeDue()
		if wait := due.Sub(workflow.Now(ctx)); wait > 0 {
			timer := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: m.closeTimerSummary()})
			if err := workflow.Await(ctx, func() bool {
				return timer.IsReady() || m.mustContinue(ctx) || m.closeDue().Before(due)
			}); err != nil {
				return m.state, err
			}
			if m.mustContinue(ctx) {
				return m.state, m.continueAsNew(ctx)
			}
			if !timer.IsReady() {
				continue // a held postback was replayed: the message may close sooner
			}
		}
		m.expireHeld(ctx)
		if err := workflow.Await(ctx, func() bool { return m.idle() || m.mustContinue(ctx) }); err != nil {
			return m.state, err
		}
		if m.mustContinue(ctx) {
			return m.state, m.continueAsNew(ctx)
		}
		m.drainEvents(ctx)
		if m.idle() && !workflow.Now(ctx).Before(m.closeDue()) {
			break
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return m.state, err
	}
	m.flushSearchAttributes(ctx)
	return m.state, nil
}

// closeDue is when the message may close: the end of its tracking window, or,
// while a postback is held, when the first hold runs out.
func (m *messageImpl) closeDue() time.Time {
	if due := m.holdDue(); due.After(m.state.TrackingUntil) {
		return due
	}
	return m.state.TrackingUntil
}

func (m *messageImpl) closeTimerSummary() string {
	if m.holdDue().After(m.state.TrackingUntil) {
		return "held postbacks: maximum hold"
	}
	return "tracking window"
}

// idle: the send has an outcome, no postback is waiting or in flight, no
// address is being suppressed, and no fallback deadline or ladder is running.
func (m *messageImpl) idle() bool {
	return m.sendDone && m.inFlight == 0 && m.suppressing == 0 && !m.postbacksWaiting() && !m.fb.running && !m.deadlinePending()
}

// mustContinue reports whether the run should hand over to a fresh one: Temporal
// suggests it, or the run took in Policy.MaxRunSignals signals or has
// maxEventsPerRun history events.
func (m *messageImpl) mustContinue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || m.signals >= m.in.Policy.MaxRunSignals || info.GetCurrentHistoryLength() >= maxEventsPerRun
}

// continueAsNew carries a compact state into a fresh run once no activity is in
// flight: a postback attempt under way finishes first; a postback waiting to
// retry is carried with its due time, and the next run resumes it then.
func (m *messageImpl) continueAsNew(ctx workflow.Context) error {
	m.draining = true
	if err := workflow.Await(ctx, func() bool { return m.sendDone && m.inFlight == 0 && m.suppressing == 0 && !m.fb.running }); err != nil {
		return err
	}
	m.drainEvents(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	m.flushSearchAttributes(ctx)
	m.compactPostbacks(true)
	next := m.in
	carried := m.state
	carry := m.carry
	carry.Seen = m.seen.pack()
	next.Carried, next.Carry = &carried, &carry
	workflow.GetLogger(ctx).Info("continuing as new", "dispatch_id", m.state.DispatchID, "runs", carry.Runs+1,
		"signals", m.signals, "history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.NewContinueAsNewError(ctx, MessageWorkflow, next)
}

// drainEvents applies the events already delivered to this workflow task, so that
// none is lost when the workflow completes or continues as new.
func (m *messageImpl) drainEvents(ctx workflow.Context) {
	m.drainFallbackStatuses(ctx)
	var ev message.Event
	for m.events.ReceiveAsync(&ev) {
		m.signals++
		m.onEvent(ctx, ev)
		ev = message.Event{}
	}
}

// onEvent records an ESP event and applies it, unless it is a duplicate. Events that
// arrive before the send outcome is known are held and applied after it.
func (m *messageImpl) onEvent(ctx workflow.Context, ev message.Event) {
	ev = ev.Bounded() // intake bounds them too; a signal may come from elsewhere
	key := ev.DedupeKey()
	if m.seen.has(key) {
		m.state.DuplicateEvents++
		return
	}
	m.seen.add(key)
	rec := EventRecord{
		Provider: ev.Provider, Type: ev.Type, RawType: ev.RawType, ID: ev.ID,
		Timestamp: ev.Timestamp, ReceivedAt: ev.ReceivedAt, Reason: ev.Reason,
	}
	count := m.count(rec.Type)
	if ev.Provider == intakeGeneric && ev.Workspace != m.in.Request.Workspace && ev.Workspace != message.AnyWorkspace {
		// Authenticated with another workspace's intake secret: it may report on
		// that workspace's messages only.
		if workflow.GetVersion(ctx, versionProviderBound, workflow.DefaultVersion, 1) == 1 {
			rec.Note = "ignored: posted to the generic intake with another workspace's secret"
			m.state.Events = append(m.state.Events, rec)
			m.fold(ctx, rec.Type)
			return
		}
	}
	if !m.sendDone {
		held := 0
		for _, h := range m.held {
			if h.Type == rec.Type {
				held++
			}
		}
		if held >= maxHeldPerType {
			// The same kind of event again before the send's outcome: it can
			// change nothing the held ones do not.
			count.Folded++
			m.state.FoldedEvents++
			metrics.EventFolded(ctx)
			return
		}
		rec.Note = "held until the ESP answers the send"
		m.held = append(m.held, rec)
		return
	}
	m.state.Events = append(m.state.Events, rec)
	m.apply(ctx, len(m.state.Events)-1)
	m.fold(ctx, rec.Type)
}

// count is the counter of events of type t, added when missing.
func (m *messageImpl) count(t message.EventType) *EventCount {
	for i := range m.state.EventCounts {
		if m.state.EventCounts[i].Type == t {
			m.state.EventCounts[i].Received++
			return &m.state.EventCounts[i]
		}
	}
	m.state.EventCounts = append(m.state.EventCounts, EventCount{Type: t, Received: 1})
	return &m.state.EventCounts[len(m.state.EventCounts)-1]
}

// fold keeps the timeline bounded: of the events of type t that changed
// nothing, it keeps the first keepFirstOfType and the last keepLastOfType, and
// counts the others out. Events that changed the status, and the send's own
// record, always stay.
func (m *messageImpl) fold(ctx workflow.Context, t message.EventType) {
	for {
		var idx []int
		for i, e := range m.state.Events {
			if e.Type == t && !e.ChangedStatus && e.ID != sendEventID {
				idx = append(idx, i)
			}
		}
		if len(idx) <= keepFirstOfType+keepLastOfType {
			return
		}
		i := idx[keepFirstOfType]
		m.state.Events = slices.Delete(m.state.Events, i, i+1)
		for j := range m.state.EventCounts {
			if m.state.EventCounts[j].Type == t {
				m.state.EventCounts[j].Folded++
			}
		}
		m.state.FoldedEvents++
		metrics.EventFolded(ctx)
	}
}

// versionProviderBound guards the rule that only the provider that carried a
// message may move it (histories recorded before it applied any provider's event).
const versionProviderBound = "provider-bound-events"

// intakeGeneric is the provider name of the generic intake's events (intake.ProviderGeneric).
const intakeGeneric = "generic"

// carrier says why event rec may not move the message: it was reported by a
// provider that did not carry it. "" when it may: our own send outcome, the ESP
// the message was handed to (with a failover list, any provider it was handed
// to: State.Handovers), or the generic intake of the message's own workspace
// (checked in onEvent).
func (m *messageImpl) carrier(rec *EventRecord) string {
	switch {
	case rec.ID == sendEventID || rec.Provider == intakeGeneric:
		return ""
	case m.state.ESP == nil:
		// The send was refused (aborted, final): no event can move it anyway.
		return ""
	case rec.Provider == m.state.ESP.Provider || m.handedTo(rec.Provider):
		// The ESP that took it, or (failover) one it was handed to before.
		return ""
	case len(m.state.Handovers) > 0:
		return "ignored: reported by " + rec.Provider + ", but the message was handed to " + m.handedToNames()
	}
	return "ignored: reported by " + rec.Provider + ", but the message was handed to " + m.state.ESP.Provider
}

// apply runs event idx of the timeline through the status rules.
func (m *messageImpl) apply(ctx workflow.Context, idx int) {
	rec := &m.state.Events[idx]
	rec.Note = ""
	if note := m.carrier(rec); note != "" && workflow.GetVersion(ctx, versionProviderBound, workflow.DefaultVersion, 1) == 1 {
		rec.Note = note // recorded, and changes nothing: no status, no postback
		return
	}
	m.suppressIfFinal(ctx, *rec)
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
		counts[PostbackDelivered]+st.CompactedPostbacks, counts[PostbackPending]+counts[PostbackDelivering], counts[PostbackFailed],
		counts[PostbackHeld], counts[PostbackSkipped]))
	if st.FoldedEvents > 0 || st.FoldedPostbacks > 0 {
		b.WriteString(fmt.Sprintf("\n\n**Folded:** %d events kept as counts only, %d engagement postbacks not sent (over %d per endpoint)",
			st.FoldedEvents, st.FoldedPostbacks, maxEngagementPostbacks))
	}
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
	b.WriteString(st.describeHandovers())
	b.WriteString(fmt.Sprintf("\n\n**Tracking until:** %s", st.TrackingUntil.UTC().Format("2006-01-02 15:04 MST")))
	workflow.SetCurrentDetails(ctx, b.String())
}

func (m *messageImpl) identity() message.Identity {
	return message.Identity{DispatchID: m.state.DispatchID, ExternalSendID: m.state.ExternalSendID, CampaignAPIID: m.state.CampaignAPIID}
}

// send hands the email to the ESP and applies the outcome as our own event, then
// the ESP events held meanwhile.
//
// The hand-over is a regular activity: Temporal records its result when the
// activity completes, whatever happens to the worker afterwards, so a crash
// after the ESP accepted can replay nothing but the postbacks. (A local
// activity's result is recorded only with its workflow task, after the sent
// postback's first attempt.) The workflow task ends as soon as the activity is
// scheduled, so queries answer while the ESP takes its time.
func (m *messageImpl) send(ctx workflow.Context) {
	var a *activities.Activities
	req := m.in.Request
	in := activities.SendInput{Email: esp.Email{
		DispatchID: m.state.DispatchID, From: req.From, To: req.To, Subject: req.Subject, Text: req.Text, HTML: req.HTML,
	}, Workspace: m.workspace()}
	var res activities.SendResult
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID:          sendEventID,
		StartToCloseTimeout: sendAttemptTimeout,
		RetryPolicy:         retryPolicyWithin(m.in.Policy.SendRetryWindow, time.Second, 5*time.Minute),
		Summary:             "hand the email to the ESP",
	})
	var err error
	if len(m.in.Providers) > 1 {
		res, err = m.handOver(ctx, in)
	} else {
		err = workflow.ExecuteActivity(actx, a.Send, in).Get(actx, &res)
	}
	now := workflow.Now(ctx)
	rec := EventRecord{Provider: "dispatchflow", ID: sendEventID, ReceivedAt: now, Timestamp: now}
	if err == nil {
		m.state.ESP = &res.Receipt
		m.state.SendTimes.ExecutedAt, m.state.SendTimes.SentAt = res.ExecutedAt, res.SentAt
		rec.Provider, rec.Type, rec.RawType = res.Receipt.Provider, message.EventSent, message.Cut(res.Receipt.Response, message.MaxRawTypeLength)
		rec.Timestamp, rec.ReceivedAt = res.SentAt, res.SentAt
	} else {
		rec.Type, rec.Reason = message.EventAborted, message.CutReason(sendFailureReason(err))
	}
	// The timeline is in the order events apply: the outcome, then the events
	// held meanwhile, in arrival order.
	m.state.Events = append(m.state.Events, rec)
	m.sendDone = true
	m.apply(ctx, len(m.state.Events)-1)
	first := len(m.state.Events)
	m.state.Events = append(m.state.Events, m.held...)
	for i := range m.held {
		m.apply(ctx, first+i)
	}
	for _, h := range m.held {
		m.fold(ctx, h.Type)
	}
	m.held = nil
}

// sendAttemptTimeout bounds one hand-over attempt: the ESP clients' own
// timeouts are shorter.
const sendAttemptTimeout = 30 * time.Second

// sendEventID is the id of the timeline's record of our own hand-over to the ESP.
const sendEventID = "send"

func sendFailureReason(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.Type() == activities.ErrRefused || appErr.Type() == activities.ErrSuppressed) {
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
