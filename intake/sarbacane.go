package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// SarbacaneTokenHeader carries the shared token when it is not in the URL.
const SarbacaneTokenHeader = "X-Webhook-Token"

// Sarbacane normalizes Sarbacane's webhooks: one JSON object per email event. The
// "Extension Webhooks" manual (seed 003) names events by "type" (delivered, open,
// click, soft_bounce, hard_bounce); the API's webhook subscriptions name them by
// kind (SUCCESSFUL, HARD_BOUNCE, SOFT_BOUNCE, OPEN, HIT, COMPLAINT, UNSUBSCRIBE),
// accepted here in "type" or "kind". The dispatch_id comes back in whId, the
// recipient-list column Sarbacane echoes back. Sarbacane has no event id, and no
// per-message id (sendId names a whole send), so events get a synthetic key.
//
// Sarbacane documents no signature: with a Token configured, requests must carry it
// as the last segment of the webhook URL's path (/v1/events/sarbacane/{token}) or
// the header X-Webhook-Token. Not as a query parameter: query strings end up in
// proxies' and load balancers' access logs.
type Sarbacane struct {
	// Token is the shared secret; "" accepts requests without one.
	Token string
}

type sarbacaneEvent struct {
	Type            string          `json:"type"`
	Kind            string          `json:"kind"`
	WhID            json.RawMessage `json:"whId"`
	Date            string          `json:"date"`
	SMTPDescription string          `json:"smtpDescription"`
	Category        string          `json:"category"`
	ReturnCode      json.RawMessage `json:"returnCode"`
	URL             string          `json:"url"`
}

var sarbacaneTypes = map[string]message.EventType{
	"delivered":   message.EventDelivered,
	"successful":  message.EventDelivered,
	"open":        message.EventOpen,
	"click":       message.EventClick,
	"hit":         message.EventClick,
	"soft_bounce": message.EventDeferred, // a temporary refusal; Sarbacane documents no retry schedule
	"hard_bounce": message.EventBounced,
	"complaint":   message.EventComplaint,
	"unsubscribe": message.EventUnsubscribe,
}

// Normalize answers a body that is not a JSON object with 400; an object that is
// no readable event is returned in Batch.Invalid.
func (s *Sarbacane) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if s.Token != "" {
		got := r.PathValue("token")
		if got == "" {
			got = r.Header.Get(SarbacaneTokenHeader)
		}
		if got == "" {
			return Batch{}, unauthorized("the token is required: in the URL, /v1/events/sarbacane/<token>, or the %s header", SarbacaneTokenHeader)
		}
		if !equalSecret(got, s.Token) {
			return Batch{}, unauthorized("bad token")
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	return batchOf(sarbacaneRead(body, receivedAt)), nil
}

func sarbacaneRead(body []byte, receivedAt time.Time) (message.Event, error) {
	var e sarbacaneEvent
	if err := decodeEvent(body, &e, ""); err != nil {
		return message.Event{}, err
	}
	name := firstNonEmpty(e.Type, e.Kind)
	if name == "" {
		return message.Event{}, errors.New("type: is required")
	}
	t, ok := sarbacaneTypes[strings.ToLower(name)]
	if !ok {
		t = message.EventUnknown
	}
	var reason string
	if t == message.EventBounced || t == message.EventDeferred {
		// smtpDescription is the receiving server's answer, returnCode its code,
		// category Sarbacane's class of bounce (BAD_MAILBOX, DEFAULT_SOFTBOUNCE…).
		reason = firstNonEmpty(diagnostic(jsonText(e.ReturnCode), "", firstDiagnostic(e.SMTPDescription)), e.Category)
	}
	var ts time.Time
	if e.Date != "" {
		if ts, ok = parseSarbacaneDate(e.Date); !ok {
			return message.Event{}, errors.New("date: not a date")
		}
	}
	return newEvent(ProviderSarbacane, jsonString(e.WhID), "", t, rawType(name, e.Category), "", ts, receivedAt,
		reason, e.Date+"\x00"+e.URL+"\x00"+e.Category+"\x00"+string(e.ReturnCode)), nil
}

// parseSarbacaneDate reads the manual's "2016-08-11 T 12:25:18.889Z" as well as RFC 3339.
func parseSarbacaneDate(s string) (time.Time, bool) {
	return parseTime(strings.Replace(strings.TrimSpace(s), " T ", "T", 1))
}
