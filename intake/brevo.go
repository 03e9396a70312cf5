package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// Brevo normalizes Brevo's transactional webhooks
// (https://developers.brevo.com/docs/transactional-webhooks): one JSON object per
// event, or a JSON array of up to 500 of them when the webhook is created with
// "batched": true (https://developers.brevo.com/docs/batch-webhooks). Events are
// told apart by "event". The dispatch_id comes back in "X-Mailin-custom", the
// header our sender sets ("dispatch_id:<id>", or a JSON object with a dispatch_id),
// or in a tag of that form; MessageID is Brevo's "message-id", as the send API
// returned it. Brevo has no event id ("id" is the webhook's): events get a
// synthetic key from the message, the event, its time and its link or reason.
//
// Brevo documents no signature for transactional webhooks, only credentials in
// the webhook URL (https://developers.brevo.com/docs/username-and-password-authentication):
// with credentials configured, requests must carry them as HTTP basic auth.
type Brevo struct {
	// Username and Password are the expected basic-auth credentials; "" accepts
	// requests without any.
	Username, Password string
}

type brevoEvent struct {
	Event     string          `json:"event"`
	MessageID string          `json:"message-id"`
	TSEpoch   *float64        `json:"ts_epoch"`
	TSEvent   *float64        `json:"ts_event"`
	Reason    string          `json:"reason"`
	Link      string          `json:"link"`
	Custom    json.RawMessage `json:"X-Mailin-custom"`
	Tags      json.RawMessage `json:"tags"`
}

// brevoTypes maps Brevo's event names by the meaning Brevo gives them:
//
//   - request ("Sent": accepted by Brevo, "pushed for delivery") is processed;
//     anymail notes it comes even for a message Brevo then blocks.
//   - soft_bounce is bounced: "Before an email soft bounces, it is deferred. At
//     Brevo, we continue to attempt to resend the deferred email over the next 36
//     hours … If it still remains undelivered … we mark it as a soft bounce"
//     (https://help.brevo.com/hc/en-us/articles/209435165). deferred is that
//     retry.
//   - invalid_email (and the API's "invalid") is bounced: a final failure because
//     of the address, by its ISP's verdict or Brevo's (inference: Brevo's page
//     says only "When the senders email is invalid").
//   - blocked ("prevented to reach the recipients inbox due to blacklisted sender
//     etc.") is aborted: never attempted. error ("An error occurred during the
//     mail transfer") is aborted too (inference: Brevo documents no retry of it).
//   - opened, unique_opened, proxy_open and unique_proxy_open (an open through a
//     mail privacy proxy, Apple Mail's) are opens; they all prove delivery.
var brevoTypes = map[string]message.EventType{
	"request":           message.EventProcessed,
	"delivered":         message.EventDelivered,
	"hard_bounce":       message.EventBounced,
	"soft_bounce":       message.EventBounced,
	"invalid_email":     message.EventBounced,
	"invalid":           message.EventBounced,
	"deferred":          message.EventDeferred,
	"blocked":           message.EventAborted,
	"error":             message.EventAborted,
	"opened":            message.EventOpen,
	"unique_opened":     message.EventOpen,
	"proxy_open":        message.EventOpen,
	"unique_proxy_open": message.EventOpen,
	"click":             message.EventClick,
	"spam":              message.EventComplaint,
	"complaint":         message.EventComplaint,
	"unsubscribe":       message.EventUnsubscribe,
	"unsubscribed":      message.EventUnsubscribe,
}

// Normalize answers missing or wrong credentials with 401 and a body that is
// neither a JSON object nor an array with 400; Brevo stops retrying on both (it
// retries only a 429 and requests it could not deliver,
// https://developers.brevo.com/docs/retry-mechanism). An object that is no
// readable event is returned in Batch.Invalid.
func (b *Brevo) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if err := checkBasicAuth(r, b.Username, b.Password); err != nil {
		return Batch{}, err
	}
	return readObjectOrArray(body, func(raw json.RawMessage) (message.Event, error) {
		return brevoRead(raw, receivedAt)
	})
}

func brevoRead(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var e brevoEvent
	if err := decodeEvent(raw, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.Event == "" {
		return message.Event{}, errors.New("event: is required")
	}
	ts, err := brevoTime(&e)
	if err != nil {
		return message.Event{}, err
	}
	t, ok := brevoTypes[e.Event]
	if !ok {
		t = message.EventUnknown
	}
	var reason string
	switch t {
	case message.EventBounced, message.EventDeferred, message.EventAborted:
		// The receiving server's answer, as Brevo relays it (anymail's captures
		// show a leading space).
		reason = strings.TrimSpace(e.Reason)
	}
	return newEvent(ProviderBrevo, brevoDispatchID(&e), strings.TrimSpace(e.MessageID), t, e.Event, "", ts, receivedAt,
		reason, e.Link+"\x00"+e.Reason), nil
}

// brevoTime is the event's time: ts_epoch (UTC, in milliseconds; Brevo's own
// example gives it in seconds, so a value below 10^11 is read as seconds), else
// ts_event (UTC seconds). Brevo's "date" and "ts" are in the account's time zone
// and are not read. Neither: the time of receipt.
func brevoTime(e *brevoEvent) (time.Time, error) {
	if e.TSEpoch != nil {
		sec := *e.TSEpoch
		if sec >= 1e11 {
			sec /= 1000
		}
		return eventTime("ts_epoch", &sec)
	}
	return eventTime("ts_event", e.TSEvent)
}

// brevoDispatchID reads the dispatch_id from X-Mailin-custom (a string as Brevo
// documents it, or an object), else from the tags.
func brevoDispatchID(e *brevoEvent) string {
	if s := jsonString(e.Custom); s != "" {
		if id := dispatchIDIn(s); id != "" {
			return id
		}
	} else if id := dispatchIDIn(string(e.Custom)); id != "" {
		return id
	}
	var tags []json.RawMessage
	if json.Unmarshal(e.Tags, &tags) == nil {
		for _, tag := range tags {
			if id := dispatchIDIn(jsonString(tag)); id != "" {
				return id
			}
		}
	}
	return ""
}
