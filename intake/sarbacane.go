package intake

import (
	"encoding/json"
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
// as the query parameter "token" or the header X-Webhook-Token.
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
	"soft_bounce": message.EventDeferred,
	"hard_bounce": message.EventBounced,
	"complaint":   message.EventComplaint,
	"unsubscribe": message.EventUnsubscribe,
}

func (s *Sarbacane) Normalize(r *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	if s.Token != "" {
		got := r.URL.Query().Get("token")
		if got == "" {
			got = r.Header.Get(SarbacaneTokenHeader)
		}
		if got == "" {
			return nil, unauthorized("the token query parameter or %s header is required", SarbacaneTokenHeader)
		}
		if !equalSecret(got, s.Token) {
			return nil, unauthorized("bad token")
		}
	}
	var e sarbacaneEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, malformed(err)
	}
	rawType := firstNonEmpty(e.Type, e.Kind)
	if rawType == "" {
		return nil, badRequest("type: is required")
	}
	t, ok := sarbacaneTypes[strings.ToLower(rawType)]
	if !ok {
		t = message.EventUnknown
	}
	var reason string
	if t == message.EventBounced || t == message.EventDeferred {
		reason = firstNonEmpty(e.SMTPDescription, e.Category)
	}
	ts, _ := parseSarbacaneDate(e.Date)
	return []message.Event{newEvent(ProviderSarbacane, jsonString(e.WhID), "", t, rawType, "", ts, receivedAt,
		reason, e.Date+"\x00"+e.URL+"\x00"+e.Category+"\x00"+string(e.ReturnCode))}, nil
}

// parseSarbacaneDate reads the manual's "2016-08-11 T 12:25:18.889Z" as well as RFC 3339.
func parseSarbacaneDate(s string) (time.Time, bool) {
	return parseTime(strings.Replace(strings.TrimSpace(s), " T ", "T", 1))
}
