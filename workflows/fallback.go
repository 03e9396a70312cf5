package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/metrics"
)

// Temporal names of the fallback policy.
const (
	// UpdateCancelFallback cancels a message's fallback (the app reached the user another way).
	UpdateCancelFallback = "fallback-cancel"
	// UpdatePatchFallback changes a pending fallback policy (fallback.Patch).
	UpdatePatchFallback = "fallback-patch"
	// SignalFallbackStatus carries a fallback channel's delivery report (FallbackStatus).
	SignalFallbackStatus = "fallback-status"
)

// Error types of rejected fallback updates; the API answers 409 and 400.
const (
	ErrFallbackConflict = "FallbackConflict"
	ErrFallbackInvalid  = "FallbackInvalid"
)

// Fallback states, as shown in State.Fallback.State.
const (
	FallbackNone      = "none"      // the message has no policy
	FallbackPending   = "pending"   // armed: deadlines running or statuses watched
	FallbackEscalated = "escalated" // the ladder ran (or runs)
	FallbackCancelled = "cancelled" // cancelled by the app
)

// Deadline names.
const (
	DeadlineSent      = "sent_within"
	DeadlineDelivered = "delivered_within"
)

// Deadline and step states.
const (
	DeadlinePending   = "pending"
	DeadlineFired     = "fired"
	DeadlineCancelled = "cancelled"

	StepSending     = "sending"     // the channel is being called (and retried)
	StepSent        = "sent"        // accepted; waiting for confirmation until WaitUntil
	StepConfirmed   = "confirmed"   // delivery confirmed: the ladder stops here
	StepFailed      = "failed"      // failed for good, or reported undelivered
	StepUnconfirmed = "unconfirmed" // the wait ran out: the next step goes
	StepSkipped     = "skipped"     // not tried: the email was delivered after all
)

// Ladder outcomes.
const (
	OutcomeSent    = "sent"    // a step reached the user
	OutcomeFailed  = "failed"  // every step failed or went unconfirmed
	OutcomeStopped = "stopped" // the email was delivered after escalation
)

// FallbackState is a message's fallback, as the state query shows it (phone
// numbers masked).
type FallbackState struct {
	State  string           `json:"state"`
	Policy *fallback.Policy `json:"policy,omitempty"`
	// Reason and EscalatedAt say why and when the message escalated.
	Reason      fallback.Reason  `json:"reason,omitempty"`
	EscalatedAt time.Time        `json:"escalated_at,omitzero"`
	Deadlines   []DeadlineRecord `json:"deadlines,omitempty"`
	Steps       []StepRecord     `json:"steps,omitempty"`
	Outcome     string           `json:"outcome,omitempty"`
	// Note records what happened to the email after escalation ("delivered after
	// fallback"): an email handed to the ESP cannot be recalled.
	Note string `json:"note,omitempty"`
}

// DeadlineRecord is one fallback deadline.
type DeadlineRecord struct {
	Name  string    `json:"name"`
	DueAt time.Time `json:"due_at"`
	State string    `json:"state"`
}

// StepRecord is one step of the ladder that was tried.
type StepRecord struct {
	Step      int             `json:"step"` // 1-based
	Channel   string          `json:"channel"`
	Target    string          `json:"target"`
	State     string          `json:"state"`
	FiredAt   time.Time       `json:"fired_at,omitzero"`
	WaitUntil time.Time       `json:"wait_until,omitzero"`
	Result    *channel.Result `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// FallbackStatus is a channel's report on a fallback step (an SMS provider's
// status callback): the input of SignalFallbackStatus.
type FallbackStatus struct {
	Step       int    `json:"step"`   // 1-based
	Status     string `json:"status"` // the provider's: delivered, undelivered, failed, sent, …
	ProviderID string `json:"provider_id,omitempty"`
	Error      string `json:"error,omitempty"`
}

// CancelFallbackInput is the input of UpdateCancelFallback.
type CancelFallbackInput struct {
	// Reason is the app's, for the record.
	Reason string `json:"reason,omitempty"`
}

// fallbackImpl is the fallback part of a running message.
type fallbackImpl struct {
	cancels  map[string]workflow.CancelFunc // timers of pending deadlines
	gens     map[string]int
	running  bool // the ladder coroutine
	stop     bool // the email was delivered after escalation
	statuses workflow.ReceiveChannel
	// early holds channel reports that arrived before their step was recorded
	// as sent (the provider can answer the callback before the activity returns).
	early map[int]FallbackStatus
}

func (m *messageImpl) setupFallback(ctx workflow.Context) error {
	m.fb = fallbackImpl{cancels: map[string]workflow.CancelFunc{}, gens: map[string]int{}, early: map[int]FallbackStatus{}}
	m.fb.statuses = workflow.GetSignalChannel(ctx, SignalFallbackStatus)
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancelFallback, m.cancelFallback,
		workflow.UpdateHandlerOptions{Validator: m.validateCancelFallback}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdatePatchFallback, m.patchFallback,
		workflow.UpdateHandlerOptions{Validator: m.validatePatchFallback})
}

// startFallback arms the deadlines of a pending policy: at the start of the
// message, or of a run after continue-as-new.
func (m *messageImpl) startFallback(ctx workflow.Context) {
	if m.state.Fallback.State == FallbackNone {
		return // no coroutine: an open message costs worker memory while cached
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, func() bool { return m.fb.statuses.Len() > 0 })
			m.drainFallbackStatuses(ctx)
		}
	})
	fb := &m.state.Fallback
	if fb.State != FallbackPending {
		return
	}
	for _, d := range slices.Clone(fb.Deadlines) {
		if d.State == DeadlinePending {
			m.armDeadline(ctx, d.Name, d.DueAt)
		}
	}
	if fb.Deadlines == nil && m.state.Status == message.StatusQueued {
		m.armFromPolicy(ctx)
	}
}

// armFromPolicy (re)arms the deadline that applies to the current status.
func (m *messageImpl) armFromPolicy(ctx workflow.Context) {
	p := m.state.Fallback.Policy
	switch m.state.Status {
	case message.StatusQueued:
		if p.SentWithin.D > 0 {
			m.armDeadline(ctx, DeadlineSent, m.state.SendTimes.EnqueuedAt.Add(p.SentWithin.D))
		} else {
			m.disarm(DeadlineSent)
		}
	case message.StatusSent, message.StatusProcessed:
		if p.DeliveredWithin.D > 0 {
			m.armDeadline(ctx, DeadlineDelivered, m.sentAt().Add(p.DeliveredWithin.D))
		} else {
			m.disarm(DeadlineDelivered)
		}
	}
}

// sentAt is when the ESP accepted the message (by the Send activity's clock).
func (m *messageImpl) sentAt() time.Time {
	for _, e := range m.state.Events {
		if e.Type == message.EventSent {
			return e.ReceivedAt
		}
	}
	return m.state.UpdatedAt
}

func (m *messageImpl) deadline(name string) *DeadlineRecord {
	for i := range m.state.Fallback.Deadlines {
		if m.state.Fallback.Deadlines[i].Name == name {
			return &m.state.Fallback.Deadlines[i]
		}
	}
	return nil
}

// armDeadline starts (or moves) deadline name to due. A due time already past
// fires at once.
func (m *messageImpl) armDeadline(ctx workflow.Context, name string, due time.Time) {
	if cancel, ok := m.fb.cancels[name]; ok {
		cancel()
		delete(m.fb.cancels, name)
	}
	d := m.deadline(name)
	if d == nil {
		m.state.Fallback.Deadlines = append(m.state.Fallback.Deadlines, DeadlineRecord{Name: name})
		d = &m.state.Fallback.Deadlines[len(m.state.Fallback.Deadlines)-1]
	}
	d.DueAt, d.State = due, DeadlinePending
	m.fb.gens[name]++
	gen := m.fb.gens[name]
	wait := due.Sub(workflow.Now(ctx))
	if wait <= 0 {
		m.onDeadline(ctx, name)
		return
	}
	tctx, cancel := workflow.WithCancel(ctx)
	m.fb.cancels[name] = cancel
	timer := workflow.NewTimerWithOptions(tctx, wait, workflow.TimerOptions{
		Summary: fmt.Sprintf("fallback deadline %s: escalate unless %s", name, map[string]string{
			DeadlineSent: "the ESP accepts the email", DeadlineDelivered: "the email is delivered"}[name]),
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := timer.Get(ctx, nil); err != nil || m.fb.gens[name] != gen {
			return // cancelled or moved
		}
		delete(m.fb.cancels, name)
		m.onDeadline(ctx, name)
	})
}

// disarm cancels deadline name if it is pending.
func (m *messageImpl) disarm(name string) {
	if cancel, ok := m.fb.cancels[name]; ok {
		cancel()
		delete(m.fb.cancels, name)
	}
	m.fb.gens[name]++
	if d := m.deadline(name); d != nil && d.State == DeadlinePending {
		d.State = DeadlineCancelled
	}
}

func (m *messageImpl) onDeadline(ctx workflow.Context, name string) {
	d := m.deadline(name)
	if d == nil || d.State != DeadlinePending || m.state.Fallback.State != FallbackPending {
		return
	}
	d.State = DeadlineFired
	reason := fallback.ReasonNotSent
	if name == DeadlineDelivered {
		reason = fallback.ReasonNotDelivered
	}
	m.escalate(ctx, reason)
}

// onStatusForFallback applies a status change to the fallback: it moves the
// deadlines, escalates on the policy's statuses, and records what the email did
// after an escalation.
func (m *messageImpl) onStatusForFallback(ctx workflow.Context, to message.Status, ev *EventRecord) {
	fb := &m.state.Fallback
	switch fb.State {
	case FallbackEscalated:
		fb.Note = string(to) + " after fallback"
		if ev != nil {
			ev.Note = fb.Note
		}
		if to == message.StatusDelivered {
			m.fb.stop = true
		}
		return
	case FallbackPending:
	default:
		return
	}
	switch to {
	case message.StatusSent:
		m.disarm(DeadlineSent)
		m.armFromPolicy(ctx)
	case message.StatusDelivered:
		m.disarm(DeadlineSent)
		m.disarm(DeadlineDelivered)
	case message.StatusBounced, message.StatusAborted:
		m.disarm(DeadlineSent)
		m.disarm(DeadlineDelivered)
		if fb.Policy.Escalates(to) {
			m.escalate(ctx, fallback.Reason(to))
		}
	}
}

// escalate starts the ladder, once.
func (m *messageImpl) escalate(ctx workflow.Context, reason fallback.Reason) {
	fb := &m.state.Fallback
	if fb.State != FallbackPending {
		return
	}
	fb.State, fb.Reason, fb.EscalatedAt = FallbackEscalated, reason, workflow.Now(ctx)
	m.disarm(DeadlineSent)
	m.disarm(DeadlineDelivered)
	workflow.GetLogger(ctx).Info("escalating", "dispatch_id", m.state.DispatchID, "reason", reason)
	metrics.WorkflowEscalation(ctx, string(reason))
	m.describe(ctx)
	m.fb.running = true
	workflow.Go(ctx, m.runLadder)
}

// runLadder tries the steps in order until one is confirmed. A step fails over to
// the next when its send fails for good, when its channel reports it undelivered,
// or when its wait runs out unconfirmed.
func (m *messageImpl) runLadder(ctx workflow.Context) {
	defer func() { m.fb.running = false }()
	var a *activities.Activities
	fb := &m.state.Fallback
	steps := fb.Policy.Steps
	retry := retryPolicyWithin(m.in.Policy.FallbackRetryWindow, time.Second, 5*time.Minute)
	fb.Outcome = OutcomeFailed
	var reached *StepRecord
ladder:
	for i, st := range steps {
		if m.fb.stop {
			m.skipSteps(steps[i:])
			break
		}
		fb.Steps = append(fb.Steps, StepRecord{Step: i + 1, Channel: st.Channel, Target: st.Target(), State: StepSending, FiredAt: workflow.Now(ctx)})
		idx := len(fb.Steps) - 1
		msg := channel.Message{
			DispatchID: m.state.DispatchID, Step: i, IdempotencyKey: fmt.Sprintf("%s-fallback-%d", m.state.DispatchID, i),
			Channel: st.Channel, To: st.To, URL: st.URL, Text: st.Text, Reason: string(fb.Reason),
			ExternalSendID: m.state.ExternalSendID, CampaignAPIID: m.state.CampaignAPIID,
			EmailStatus: string(m.state.Status), Recipient: m.state.Recipient, Subject: m.in.Request.Subject,
		}
		var res channel.Result
		_, err := execute(ctx, a.Fallback, activities.FallbackInput{Message: msg}, &res, callOptions{
			ActivityID:   fmt.Sprintf("fallback-%d", i+1),
			Summary:      fmt.Sprintf("fallback step %d: %s to %s", i+1, st.Channel, st.Target()),
			FirstTimeout: 10 * time.Second,
			Timeout:      30 * time.Second,
			Retry:        retry,
		})
		rec := &fb.Steps[idx]
		if err != nil {
			rec.State, rec.Error = StepFailed, lastErrorMessage(err)
			continue
		}
		rec.Result = &res
		if res.Confirmed || st.Wait.D <= 0 {
			rec.State = StepConfirmed
			if !res.Confirmed {
				rec.State = StepSent // final once accepted: no wait asked for
			}
			reached = rec
			break
		}
		rec.State, rec.WaitUntil = StepSent, workflow.Now(ctx).Add(st.Wait.D)
		if early, ok := m.fb.early[i+1]; ok {
			delete(m.fb.early, i+1)
			m.applyReport(early)
		}
		_, _ = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      st.Wait.D,
			TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("fallback step %d: wait for confirmation", i+1)},
		}, func() bool { return fb.Steps[idx].State != StepSent || m.fb.stop })
		rec = &fb.Steps[idx]
		switch {
		case rec.State == StepConfirmed:
			reached = rec
			break ladder
		case m.fb.stop && rec.State == StepSent:
			m.skipSteps(steps[i+1:]) // the email arrived while this step waited
			break ladder
		case rec.State == StepSent:
			rec.State = StepUnconfirmed
		}
	}
	if reached != nil {
		fb.Outcome = OutcomeSent
	}
	m.describe(ctx)
	if fb.Outcome == OutcomeStopped {
		return
	}
	outcome, ch, step := message.StatusFallbackFailed, "", 0
	if reached != nil {
		outcome, ch, step = message.StatusFallbackSent, reached.Channel, reached.Step
	}
	now := workflow.Now(ctx)
	m.queuePostback(notification{status: outcome, eventAt: now, receivedAt: now,
		body: message.NewFallbackPostback(m.identity(), outcome, now, string(fb.Reason), ch, step)})
}

// skipSteps records steps as skipped: the email was delivered after all.
func (m *messageImpl) skipSteps(steps []fallback.Step) {
	fb := &m.state.Fallback
	for _, st := range steps {
		fb.Steps = append(fb.Steps, StepRecord{Step: len(fb.Steps) + 1, Channel: st.Channel, Target: st.Target(), State: StepSkipped})
	}
	fb.Outcome = OutcomeStopped
}

// drainFallbackStatuses applies the channel reports buffered in this workflow task.
func (m *messageImpl) drainFallbackStatuses(ctx workflow.Context) {
	var s FallbackStatus
	for m.fb.statuses.ReceiveAsync(&s) {
		m.signals++
		fb := &m.state.Fallback
		if fb.State == FallbackEscalated && s.Step >= 1 && s.Step <= len(fb.Policy.Steps) &&
			(s.Step > len(fb.Steps) || fb.Steps[s.Step-1].State == StepSending) {
			m.fb.early[s.Step] = s // its step is not recorded as sent yet
		} else {
			m.applyReport(s)
		}
		s = FallbackStatus{}
	}
}

// applyReport applies a channel's report to a step that waits for it: delivered
// confirms it, undelivered fails it. Reports about other steps are only recorded.
func (m *messageImpl) applyReport(s FallbackStatus) {
	fb := &m.state.Fallback
	if s.Step < 1 || s.Step > len(fb.Steps) {
		return
	}
	rec := &fb.Steps[s.Step-1]
	if rec.Result != nil && s.ProviderID != "" && s.ProviderID != rec.Result.ProviderID {
		return // a report about another message
	}
	if rec.Result != nil {
		rec.Result.Status = s.Status
	}
	if rec.State != StepSent {
		return
	}
	switch s.Status {
	case "delivered", "read":
		rec.State = StepConfirmed
	case "undelivered", "failed", "canceled":
		rec.State, rec.Error = StepFailed, s.Error
	}
}

// deadlinePending reports whether a fallback deadline is still running: the
// workflow stays open for it, even past its tracking window.
func (m *messageImpl) deadlinePending() bool {
	for _, d := range m.state.Fallback.Deadlines {
		if d.State == DeadlinePending {
			return true
		}
	}
	return false
}

// fallbackView is the fallback state with phone numbers masked.
func (m *messageImpl) fallbackView() FallbackState {
	v := m.state.Fallback
	if v.Policy != nil {
		p := v.Policy.Masked()
		v.Policy = &p
	}
	v.Deadlines = slices.Clone(v.Deadlines)
	v.Steps = slices.Clone(v.Steps)
	return v
}

func conflict(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), ErrFallbackConflict)
}

func (m *messageImpl) validateCancelFallback(_ workflow.Context, _ CancelFallbackInput) error {
	switch fb := m.state.Fallback; fb.State {
	case FallbackNone:
		return conflict("message %s has no fallback policy", m.state.DispatchID)
	case FallbackEscalated:
		return conflict("fallback already escalated (%s at %s)", fb.Reason, fb.EscalatedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// cancelFallback disarms the policy for good; cancelling twice is harmless.
func (m *messageImpl) cancelFallback(ctx workflow.Context, in CancelFallbackInput) (FallbackState, error) {
	m.disarm(DeadlineSent)
	m.disarm(DeadlineDelivered)
	if m.state.Fallback.State == FallbackPending {
		m.state.Fallback.State = FallbackCancelled
		m.state.Fallback.Note = "cancelled by the app"
		if in.Reason != "" {
			m.state.Fallback.Note += ": " + in.Reason
		}
		workflow.GetLogger(ctx).Info("fallback cancelled", "dispatch_id", m.state.DispatchID)
	}
	return m.fallbackView(), nil
}

func (m *messageImpl) validatePatchFallback(_ workflow.Context, pt fallback.Patch) error {
	switch fb := m.state.Fallback; fb.State {
	case FallbackNone:
		return conflict("message %s has no fallback policy to change", m.state.DispatchID)
	case FallbackEscalated:
		return conflict("fallback already escalated (%s at %s)", fb.Reason, fb.EscalatedAt.UTC().Format(time.RFC3339))
	case FallbackCancelled:
		return conflict("fallback was cancelled")
	}
	if err := pt.Validate("fallback", []string{fallback.ChannelSandbox, fallback.ChannelSMS, fallback.ChannelWebhook}, fallback.Limits{AnyDestination: true}); err != nil {
		return temporal.NewApplicationError(err.Error(), ErrFallbackInvalid)
	}
	return nil
}

// patchFallback applies new deadlines, statuses or steps to a pending policy. A
// deadline is counted from the same origin as before (the workflow's start for
// sent_within, sent for delivered_within); one already past fires at once.
func (m *messageImpl) patchFallback(ctx workflow.Context, pt fallback.Patch) (FallbackState, error) {
	p := pt.Apply(*m.state.Fallback.Policy)
	m.state.Fallback.Policy = &p
	if pt.SentWithin != nil || pt.DeliveredWithin != nil {
		m.armFromPolicy(ctx)
	}
	if pt.On != nil && p.Escalates(m.state.Status) {
		m.escalate(ctx, fallback.Reason(m.state.Status))
	}
	return m.fallbackView(), nil
}
