// Package naive is the benchmark's yardstick: the Message workflow written the
// obvious way, with nothing batched or tuned. Same contract as workflows.Message
// (type name, input, signal, query, postback bodies), so the same API and load drive it.
//
// Each choice below is what a first-time Temporal user writes (see docs/benchmarks.md):
//   - Send and every postback are REGULAR activities (no local first attempt).
//   - One signal per selector iteration; its postback runs inline, so intake waits for postbacks.
//   - Every status change cancels the tracking timer and starts a new one (no grace period).
//   - No fallback ladder, no continue-as-new.
package naive

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Register registers the naive workflow (as workflows.MessageWorkflow) and the real activities on w.
func Register(w worker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(Message, workflow.RegisterOptions{Name: workflows.MessageWorkflow})
	w.RegisterActivity(acts)
}

// Retry policies: plain exponential backoff, attempts counted (not a time window).
var (
	sendRetry     = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 10}
	postbackRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 20}
)

type naive struct {
	in          workflows.MessageInput
	state       workflows.State
	seen        map[string]bool     // dedupe: a plain map of provider:id
	cancelTimer workflow.CancelFunc // cancels the current tracking timer
	timer       workflow.Future
}

// Message is the naive workflow. Register it under workflows.MessageWorkflow on its own task queue.
func Message(ctx workflow.Context, in workflows.MessageInput) (workflows.State, error) {
	if in.Policy.TrackingWindow <= 0 {
		in.Policy.TrackingWindow = 72 * time.Hour // same default as the real one
	}
	n := &naive{in: in, seen: map[string]bool{}, state: workflows.State{
		DispatchID: in.DispatchID, Status: message.StatusQueued, Recipient: in.Recipient,
		ExternalSendID: in.Request.ExternalSendID, CampaignAPIID: in.Request.CampaignAPIID,
		SendTimes: message.SendTimes{ReceivedAt: in.ReceivedAt, EnqueuedAt: workflow.GetInfo(ctx).WorkflowStartTime},
		UpdatedAt: workflow.Now(ctx), Events: []workflows.EventRecord{}, Postbacks: []workflows.PostbackRecord{},
		Fallback: workflows.FallbackState{State: workflows.FallbackNone},
	}}
	if err := workflow.SetQueryHandler(ctx, workflows.QueryState, func() (workflows.State, error) { return n.state, nil }); err != nil {
		return n.state, err
	}
	// Naive: events wait in the signal channel until Send is done, because the loop starts after it.
	n.send(ctx)
	signals := workflow.GetSignalChannel(ctx, workflows.SignalEvent)
	for {
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var ev message.Event
			c.Receive(ctx, &ev)
			n.onEvent(ctx, ev) // runs the postback inline: the loop blocks on it
		})
		sel.AddFuture(n.timer, func(f workflow.Future) { fired = f.Get(ctx, nil) == nil })
		sel.Select(ctx)
		if !fired {
			continue
		}
		// The window ran out: apply what is still buffered so no signal is lost.
		changed := false
		for ev := (message.Event{}); signals.ReceiveAsync(&ev); ev = (message.Event{}) {
			changed = n.onEvent(ctx, ev) || changed
		}
		if !changed {
			return n.state, nil
		}
	}
}

// send hands the email to the ESP as one regular activity, then posts sent (or aborted).
func (n *naive) send(ctx workflow.Context) {
	var a *activities.Activities
	req := n.in.Request
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 15 * time.Second, RetryPolicy: sendRetry})
	var res activities.SendResult
	err := workflow.ExecuteActivity(actx, a.Send, activities.SendInput{Email: esp.Email{
		DispatchID: n.in.DispatchID, From: req.From, To: req.To, Subject: req.Subject, Text: req.Text, HTML: req.HTML,
	}}).Get(actx, &res)
	now := workflow.Now(ctx)
	rec := workflows.EventRecord{Provider: "dispatchflow", ID: "send", Type: message.EventAborted, Timestamp: now, ReceivedAt: now}
	if err == nil {
		n.state.ESP = &res.Receipt
		n.state.SendTimes.ExecutedAt, n.state.SendTimes.SentAt = res.ExecutedAt, res.SentAt
		rec = workflows.EventRecord{Provider: res.Receipt.Provider, Type: message.EventSent, RawType: res.Receipt.Response, ID: "send", Timestamp: res.SentAt, ReceivedAt: res.SentAt}
	} else if msg := errMessage(err); isRefusal(err) {
		rec.Reason = msg
	} else {
		rec.Reason = "ESP unavailable: " + msg
	}
	n.apply(ctx, rec)
}

// onEvent dedupes ev and applies it; it reports whether the status changed.
func (n *naive) onEvent(ctx workflow.Context, ev message.Event) bool {
	if n.seen[ev.DedupeKey()] {
		n.state.DuplicateEvents++
		return false
	}
	n.seen[ev.DedupeKey()] = true
	return n.apply(ctx, workflows.EventRecord{Provider: ev.Provider, Type: ev.Type, RawType: ev.RawType, ID: ev.ID,
		Timestamp: ev.Timestamp, ReceivedAt: ev.ReceivedAt, Reason: ev.Reason})
}

// apply records rec, moves the status through message.Next and, on a change,
// restarts the tracking timer and runs the postback right here.
func (n *naive) apply(ctx workflow.Context, rec workflows.EventRecord) bool {
	to, changed := message.Next(n.state.Status, rec.Type)
	rec.ChangedStatus = changed
	n.state.Events = append(n.state.Events, rec)
	if !changed {
		return false
	}
	now := workflow.Now(ctx)
	n.state.Status, n.state.UpdatedAt = to, now
	if to == message.StatusBounced || to == message.StatusAborted {
		n.state.Reason = rec.Reason
	}
	// Naive: cancel the timer and start a fresh one on every change (two history events each).
	if n.cancelTimer != nil {
		n.cancelTimer()
	}
	tctx, cancel := workflow.WithCancel(ctx)
	n.timer, n.cancelTimer = workflow.NewTimer(tctx, n.in.Policy.TrackingWindow), cancel
	n.state.TrackingUntil = now.Add(n.in.Policy.TrackingWindow)
	at := rec.Timestamp
	if at.IsZero() {
		at = rec.ReceivedAt
	}
	id := message.Identity{DispatchID: n.state.DispatchID, ExternalSendID: n.state.ExternalSendID, CampaignAPIID: n.state.CampaignAPIID}
	n.postback(ctx, to, message.NewPostback(id, to, at, rec.Reason, n.state.SendTimes))
	return true
}

// postback delivers one body as a regular activity and waits for it (status order is trivial).
func (n *naive) postback(ctx workflow.Context, status message.Status, body message.Postback) {
	seq := len(n.state.Postbacks) + 1
	n.state.Postbacks = append(n.state.Postbacks, workflows.PostbackRecord{Seq: seq, Status: status, State: workflows.PostbackDelivering, Body: body})
	rec := &n.state.Postbacks[seq-1]
	if len(n.in.Routes) == 0 {
		rec.State, rec.LastError = workflows.PostbackSkipped, "no postback endpoint"
		return
	}
	route := n.in.Routes[0]
	rec.Endpoint = route.Label
	var a *activities.Activities
	in := activities.PostbackInput{
		EndpointID: route.EndpointID, URL: route.URL, Workspace: n.in.Request.Workspace,
		WebhookID: fmt.Sprintf("msg_%s_%d", n.state.DispatchID, seq), Notification: postback.Notification{Postback: body},
	}
	for {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID: workflows.PostbackActivityID(seq, in.Made+1), StartToCloseTimeout: 15 * time.Second, RetryPolicy: postbackRetry,
		})
		var res activities.PostbackResult
		err := workflow.ExecuteActivity(actx, a.Postback, in).Get(actx, &res)
		rec = &n.state.Postbacks[seq-1]
		switch {
		case err != nil:
			rec.State, rec.LastError = workflows.PostbackFailed, errMessage(err)
		case res.Outcome == activities.OutcomeDelivered:
			rec.State, rec.Attempts, rec.DeliveredAt = workflows.PostbackDelivered, []postback.Attempt{res.Attempt}, res.DeliveredAt
		case res.Outcome == activities.OutcomeRetry:
			in.Made++
			_ = workflow.Sleep(ctx, res.RetryIn)
			continue
		default:
			rec.State, rec.LastError = workflows.PostbackFailed, res.Error
		}
		return
	}
}

func isRefusal(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrRefused
}

// errMessage is the activity's own message, without Temporal's wrapping.
func errMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
