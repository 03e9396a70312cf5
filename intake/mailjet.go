package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// Mailjet normalizes Mailjet's Event API (mailjet/api-documentation
// guides/_event-api.md, https://dev.mailjet.com/email/guides/webhooks/): one JSON
// object per event, or a JSON array of them for an event callback URL of
// Version 2 ("grouping events"). Events are told apart by "event". The
// dispatch_id comes back in CustomID (our sender's Messages[].CustomID), else in
// Payload (its EventPayload), "dispatch_id:<id>" or a JSON object with a
// dispatch_id; MessageID is Mailjet's MessageID, a 64-bit number written as its
// decimal string, digit for digit (it does not fit a float64). Mailjet has no
// event id: events get a synthetic key from the message, the event, its time and
// its URL or error.
//
// Mailjet signs nothing; it recommends "a basic authentification" in the URL: with
// credentials configured, requests must carry them as HTTP basic auth.
type Mailjet struct {
	// Username and Password are the expected basic-auth credentials; "" accepts
	// requests without any.
	Username, Password string
}

type mailjetEvent struct {
	Event          string          `json:"event"`
	Time           *float64        `json:"time"`
	MessageID      json.RawMessage `json:"MessageID"`
	MJMessageID    json.RawMessage `json:"mj_message_id"`
	CustomID       json.RawMessage `json:"CustomID"`
	Payload        json.RawMessage `json:"Payload"`
	HardBounce     bool            `json:"hard_bounce"`
	ErrorRelatedTo string          `json:"error_related_to"`
	Error          string          `json:"error"`
	URL            string          `json:"url"`
}

// Normalize answers missing or wrong credentials with 401 and a body that is
// neither a JSON object nor an array with 400 (Mailjet retries every answer but a
// 200). An object that is no readable event is returned in Batch.Invalid.
func (m *Mailjet) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if err := checkBasicAuth(r, m.Username, m.Password); err != nil {
		return Batch{}, err
	}
	return readObjectOrArray(body, func(raw json.RawMessage) (message.Event, error) {
		return mailjetRead(raw, receivedAt)
	})
}

func mailjetRead(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var e mailjetEvent
	if err := decodeEvent(raw, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.Event == "" {
		return message.Event{}, errors.New("event: is required")
	}
	ts, err := eventTime("time", e.Time)
	if err != nil {
		return message.Event{}, err
	}
	t, reason := mailjetType(&e)
	rt := e.Event
	switch e.Event {
	case "bounce":
		// hard_bounce, Mailjet's own verdict on the address, as a subtype: hard
		// ("true if error was permanent") or soft.
		hardness := "soft"
		if e.HardBounce {
			hardness = "hard"
		}
		rt = rawType(e.Event, hardness, e.ErrorRelatedTo, e.Error)
	case "blocked":
		rt = rawType(e.Event, e.ErrorRelatedTo, e.Error)
	}
	dispatchID := jsonString(e.CustomID)
	if dispatchID == "" {
		dispatchID = dispatchIDIn(jsonString(e.Payload))
	}
	return newEvent(ProviderMailjet, dispatchID, firstNonEmpty(jsonText(e.MessageID), jsonText(e.MJMessageID)), t, rt, "",
		ts, receivedAt, reason, e.URL+"\x00"+e.Error), nil
}

// mailjetType maps an event by the Event API's meaning of it:
//
//   - sent: "Dispatched when the destination SMTP server … has accepted the
//     message": delivered.
//   - bounce: bounced, except a greylisting that was not a hard bounce, which
//     Mailjet's error table describes as "a temporary error … Delivery will be
//     re-attempted": deferred (as anymail reads it).
//   - blocked: Mailjet did not send it (a preblocked address, a duplicate in the
//     campaign, content or sender blocked): aborted.
//   - open, click, spam, unsub: open, click, complaint, unsubscribe.
func mailjetType(e *mailjetEvent) (message.EventType, string) {
	why := func() string {
		if e.ErrorRelatedTo != "" && e.Error != "" {
			return e.ErrorRelatedTo + ": " + e.Error
		}
		return firstNonEmpty(e.Error, e.ErrorRelatedTo)
	}
	switch e.Event {
	case "sent":
		return message.EventDelivered, ""
	case "bounce":
		if strings.EqualFold(e.Error, "greylisted") && !e.HardBounce {
			return message.EventDeferred, why()
		}
		return message.EventBounced, why()
	case "blocked":
		return message.EventAborted, why()
	case "open":
		return message.EventOpen, ""
	case "click":
		return message.EventClick, ""
	case "spam":
		return message.EventComplaint, ""
	case "unsub":
		return message.EventUnsubscribe, ""
	}
	return message.EventUnknown, ""
}
