package message

import "fmt"

// Status is where a message stands. Only the five Braze statuses are ever posted back;
// StatusQueued is the answer of the send API before the ESP has taken the message.
type Status string

const (
	// StatusQueued: dispatchflow accepted the request; the ESP has not answered yet.
	StatusQueued Status = "queued"
	// StatusSent: the ESP accepted the message (its API answered 2xx, or the SMTP relay said 250).
	StatusSent Status = "sent"
	// StatusProcessed: the ESP received and prepared the message for the inbox provider.
	StatusProcessed Status = "processed"
	// StatusDelivered: the recipient's inbox provider accepted the message.
	StatusDelivered Status = "delivered"
	// StatusBounced: the inbox provider rejected the message; Reason holds its error.
	StatusBounced Status = "bounced"
	// StatusAborted: the message was never attempted (no emailable address, suppressed,
	// refused by the ESP, content that cannot be rendered); Reason says why. Final.
	StatusAborted Status = "aborted"
)

// rank orders statuses so that a status never goes backwards. Bounced and aborted
// share the top rank: both are final, and neither can replace the other.
var rank = map[Status]int{
	StatusQueued:    0,
	StatusSent:      1,
	StatusProcessed: 2,
	StatusDelivered: 3,
	StatusBounced:   4,
	StatusAborted:   4,
}

// Statuses lists every status, lowest rank first.
var Statuses = []Status{StatusQueued, StatusSent, StatusProcessed, StatusDelivered, StatusBounced, StatusAborted}

// Rank reports the position of s in the life of a message; unknown statuses rank -1.
func (s Status) Rank() int {
	if r, ok := rank[s]; ok {
		return r
	}
	return -1
}

// EventType is what happened to a message, as normalised from the ESP's own event
// names (see RawType on Event for the original).
type EventType string

const (
	// EventSent is dispatchflow's own event: the Send activity's ESP accepted the message.
	EventSent EventType = "sent"
	// EventProcessed: the ESP queued the message for delivery.
	EventProcessed EventType = "processed"
	// EventDeferred: a temporary failure (soft bounce, greylisting); the ESP keeps trying.
	EventDeferred EventType = "deferred"
	// EventDelivered: the inbox provider accepted the message.
	EventDelivered EventType = "delivered"
	// EventBounced: a permanent (hard) bounce.
	EventBounced EventType = "bounced"
	// EventAborted: the ESP dropped the message without attempting it, or the send was refused.
	EventAborted EventType = "aborted"
	// EventOpen and EventClick are engagement: they prove delivery.
	EventOpen  EventType = "open"
	EventClick EventType = "click"
	// EventComplaint and EventUnsubscribe are recorded only.
	EventComplaint   EventType = "complaint"
	EventUnsubscribe EventType = "unsubscribe"
	// EventUnknown is a provider event dispatchflow has no meaning for: kept in the
	// timeline (RawType names it), never changes the status, never fails a batch.
	EventUnknown EventType = "unknown"
)

// EventTypes lists every event type dispatchflow understands.
var EventTypes = []EventType{
	EventSent, EventProcessed, EventDeferred, EventDelivered, EventBounced, EventAborted,
	EventOpen, EventClick, EventComplaint, EventUnsubscribe, EventUnknown,
}

// ParseEventType returns the EventType named s, or an error naming s.
func ParseEventType(s string) (EventType, error) {
	for _, t := range EventTypes {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown event %q", s)
}

// transition is one row of the rules: in status From, an event On moves the message to To.
type transition struct {
	From Status
	On   EventType
	To   Status
}

// transitions is THE table of status rules. A (status, event) pair that is not listed
// changes nothing: the event is recorded in the message's timeline and no postback is
// sent. Three facts about real ESPs shape it (../shared/reference/esp-events.md):
//
//   - events arrive out of order: delivered before processed, open before delivered;
//     a late event never moves a status backwards;
//   - delivered is not final: a delayed bounce turns delivered into bounced;
//   - aborted and bounced are final.
//
// ESP events that arrive while the message is still queued (the webhook beat our own
// Send activity's answer) are held by the workflow and applied once the send outcome
// is known, so that "sent" is always the first postback.
//
//	from        event                 to
//	queued      sent                  sent
//	queued      aborted               aborted     (the ESP refused the send)
//	sent        processed             processed
//	sent        delivered             delivered   (processed late or never reported)
//	sent        open, click           delivered   (engagement proves delivery)
//	sent        bounced               bounced
//	sent        aborted               aborted     (the ESP dropped it)
//	processed   delivered             delivered
//	processed   open, click           delivered
//	processed   bounced               bounced
//	processed   aborted               aborted
//	delivered   bounced               bounced     (delayed bounce)
var transitions = []transition{
	{StatusQueued, EventSent, StatusSent},
	{StatusQueued, EventAborted, StatusAborted},
	{StatusSent, EventProcessed, StatusProcessed},
	{StatusSent, EventDelivered, StatusDelivered},
	{StatusSent, EventOpen, StatusDelivered},
	{StatusSent, EventClick, StatusDelivered},
	{StatusSent, EventBounced, StatusBounced},
	{StatusSent, EventAborted, StatusAborted},
	{StatusProcessed, EventDelivered, StatusDelivered},
	{StatusProcessed, EventOpen, StatusDelivered},
	{StatusProcessed, EventClick, StatusDelivered},
	{StatusProcessed, EventBounced, StatusBounced},
	{StatusProcessed, EventAborted, StatusAborted},
	{StatusDelivered, EventBounced, StatusBounced},
}

type transitionKey struct {
	from Status
	on   EventType
}

var transitionIndex = func() map[transitionKey]Status {
	idx := make(map[transitionKey]Status, len(transitions))
	for _, t := range transitions {
		idx[transitionKey{t.From, t.On}] = t.To
	}
	return idx
}()

// Next applies the rules: it returns the status after event on in status from, and
// whether the status changed (every change produces exactly one postback).
func Next(from Status, on EventType) (Status, bool) {
	if to, ok := transitionIndex[transitionKey{from, on}]; ok {
		return to, true
	}
	return from, false
}

// Final reports whether no event can change s any more.
func (s Status) Final() bool { return s == StatusBounced || s == StatusAborted }
