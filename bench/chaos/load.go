package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Event and status names, as the generic intake and braze postbacks spell them.
const (
	statusSent      = "sent"
	statusProcessed = "processed"
	statusDelivered = "delivered"
	statusBounced   = "bounced"
	eventOpen       = "open"
)

// errNotHandedOver: the SMTP sink never received the message.
var errNotHandedOver = errors.New("not handed to the SMTP sink")

// bounceReason is the reason of every bounce.
const bounceReason = "550 5.1.1 user unknown (chaos)"

// plannedEvent is one event the ESP reports about a message.
type plannedEvent struct {
	typ   string // processed, delivered, bounced, open
	id    string // event_id: "evt-1", "evt-2", … in every message
	twice bool   // posted a second time (same event_id), as ESPs sometimes do
}

// plan is what happens to one message, drawn from the run's seed.
type plan struct {
	index      int
	externalID string
	outcome    string // delivered or bounced
	outOfOrder bool   // the outcome is reported before processed
	events     []plannedEvent
}

// newPlan draws message i's life: ~10% bounced, ~10% out of order, 0–3 opens for
// some delivered messages, ~10% of events posted twice.
func newPlan(seed uint64, run string, i int) plan {
	rnd := rand.New(rand.NewPCG(seed, uint64(i)))
	p := plan{index: i, externalID: fmt.Sprintf("chaos-%s-%d", run, i), outcome: statusDelivered}
	if rnd.IntN(10) == 0 {
		p.outcome = statusBounced
	}
	p.outOfOrder = rnd.IntN(10) == 0
	types := []string{statusProcessed, p.outcome}
	if p.outOfOrder {
		types = []string{p.outcome, statusProcessed}
	}
	if p.outcome == statusDelivered && rnd.IntN(2) == 0 {
		for range rnd.IntN(3) + 1 {
			types = append(types, eventOpen)
		}
	}
	for k, t := range types {
		p.events = append(p.events, plannedEvent{typ: t, id: fmt.Sprintf("evt-%d", k+1), twice: rnd.IntN(10) == 0})
	}
	return p
}

// expected lists the status postbacks the message must produce, in order: an
// outcome reported before processed makes processed change nothing.
func (p plan) expected() []string {
	if p.outOfOrder {
		return []string{statusSent, p.outcome}
	}
	return []string{statusSent, statusProcessed, p.outcome}
}

// life is one message as the load played it out.
type life struct {
	plan
	dispatchID string
	handedOver time.Time            // first hand-over at the SMTP sink
	eventAt    map[string]time.Time // status → when its event was first posted (sent: the hand-over)
	err        error                // why its life could not be played out
}

// load sends the messages and plays the ESP's part for each.
type load struct {
	o        Options
	api      *apiClient
	sink     *sink
	run      string // distinguishes this run's external_send_ids
	accepted atomic.Int64
	done     atomic.Int64
}

// progress is the share of messages the API has accepted.
func (l *load) progress() float64 {
	return float64(l.accepted.Load()) / float64(l.o.Messages)
}

// play runs every message's life, o.Concurrency at a time.
func (l *load) play(ctx context.Context) []*life {
	lives := make([]*life, l.o.Messages)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range l.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < l.o.Messages; i = int(next.Add(1)) - 1 {
				lv := &life{plan: newPlan(l.o.Seed, l.run, i), eventAt: map[string]time.Time{}}
				lv.err = l.live(ctx, lv)
				lives[i] = lv
				l.done.Add(1)
			}
		}()
	}
	wg.Wait()
	return lives
}

// live sends one message, waits for the SMTP sink to have it, then posts its
// events as the ESP would.
func (l *load) live(ctx context.Context, lv *life) error {
	send := map[string]string{
		"to": fmt.Sprintf("user%d@example.com", lv.index), "subject": fmt.Sprintf("Chaos %d", lv.index),
		"text": "A message of the chaos run.", "external_send_id": lv.externalID,
	}
	body, _ := json.Marshal(send)
	var out struct {
		DispatchID string `json:"dispatch_id"`
	}
	if err := l.api.call(ctx, "POST", "/v1/messages", body, "", &out); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	lv.dispatchID = out.DispatchID
	l.accepted.Add(1)

	wctx, cancel := context.WithTimeout(ctx, l.o.HandOverTimeout)
	defer cancel()
	at, ok := l.sink.wait(wctx, lv.dispatchID)
	if !ok {
		return fmt.Errorf("%w within %s", errNotHandedOver, l.o.HandOverTimeout)
	}
	lv.handedOver = at
	lv.eventAt[statusSent] = at

	posts := 0
	for _, ev := range lv.events {
		for range 1 + btoi(ev.twice) {
			posts++
			if err := l.postEvent(ctx, lv, ev, posts); err != nil {
				return err
			}
		}
	}
	return nil
}

// postEvent posts one event to the generic intake, signed, until it is accepted.
// Each post has its own webhook-id (a retry of it keeps it).
func (l *load) postEvent(ctx context.Context, lv *life, ev plannedEvent, post int) error {
	now := time.Now()
	ts := now
	if ev.typ == statusProcessed && lv.outOfOrder {
		// It happened first, but is reported late.
		ts = lv.handedOver.Add(time.Millisecond)
	}
	event := map[string]string{
		"dispatch_id": lv.dispatchID, "event": ev.typ, "event_id": ev.id,
		"timestamp": ts.UTC().Format(time.RFC3339Nano),
	}
	if ev.typ == statusBounced {
		event["reason"] = bounceReason
	}
	body, _ := json.Marshal(event)
	if _, ok := lv.eventAt[ev.typ]; !ok && ev.typ != eventOpen {
		lv.eventAt[ev.typ] = now
	}
	webhookID := fmt.Sprintf("esp_%s_%d", lv.dispatchID, post)
	if err := l.api.call(ctx, "POST", "/v1/events/generic", body, webhookID, nil); err != nil {
		return fmt.Errorf("event %s (%s): %w", ev.id, ev.typ, err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
