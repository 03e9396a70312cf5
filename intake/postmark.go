package intake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// Postmark normalizes Postmark's webhooks: one JSON object per request, told apart
// by RecordType (Delivery, Bounce, Open, Click, SpamComplaint, SubscriptionChange).
// The dispatch_id comes back in Metadata; MessageID is Postmark's message id.
// Only bounces and spam complaints have an ID; other events get a synthetic key
// from the message, record type and Postmark's timestamp.
//
// Postmark signs nothing: with credentials configured, requests must carry them as
// HTTP basic auth (put them in the webhook URL at Postmark).
type Postmark struct {
	// Username and Password are the expected basic-auth credentials; "" accepts
	// requests without any.
	Username, Password string
}

type postmarkEvent struct {
	RecordType        string         `json:"RecordType"`
	ID                json.Number    `json:"ID"`
	Type              string         `json:"Type"`
	MessageID         string         `json:"MessageID"`
	Metadata          map[string]any `json:"Metadata"`
	Description       string         `json:"Description"`
	Details           string         `json:"Details"`
	DeliveredAt       string         `json:"DeliveredAt"`
	BouncedAt         string         `json:"BouncedAt"`
	ReceivedAt        string         `json:"ReceivedAt"`
	ChangedAt         string         `json:"ChangedAt"`
	SuppressSending   bool           `json:"SuppressSending"`
	SuppressionReason string         `json:"SuppressionReason"`
	OriginalLink      string         `json:"OriginalLink"`
}

// postmarkBounceTypes classifies Bounce (and SpamComplaint) Types, from
// Postmark's bounce types list (the BounceType enum of the official postmark.js
// client): permanent failures, failures Postmark retries or that may still
// resolve, messages never attempted, and complaints. Other Types (Subscribe,
// AutoResponder, AddressChange, ChallengeVerification, InboundError, Unknown)
// say nothing about delivery and stay unknown.
var postmarkBounceTypes = map[string]message.EventType{
	"HardBounce":          message.EventBounced,
	"BadEmailAddress":     message.EventBounced,
	"ManuallyDeactivated": message.EventBounced,
	"Blocked":             message.EventBounced,
	"DMARCPolicy":         message.EventBounced,
	"VirusNotification":   message.EventBounced,

	"Transient":     message.EventDeferred,
	"SoftBounce":    message.EventDeferred, // "might also receive HardBounce later"
	"DnsError":      message.EventDeferred,
	"OpenRelayTest": message.EventDeferred,

	"SMTPApiError":            message.EventAborted,
	"TemplateRenderingFailed": message.EventAborted,
	"Unconfirmed":             message.EventAborted,

	"SpamComplaint":    message.EventComplaint,
	"SpamNotification": message.EventComplaint,

	"Unsubscribe":       message.EventUnsubscribe,
	"ManualSuppression": message.EventUnsubscribe,
}

// Normalize answers malformed requests with 403, which (per Postmark's webhook
// docs) stops its retries, and missing or wrong credentials with 401.
func (p *Postmark) Normalize(r *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	if p.Username != "" || p.Password != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, unauthorized("basic auth credentials are required")
		}
		// Both compared, always, so that the time taken tells nothing.
		userOK, passOK := equalSecret(user, p.Username), equalSecret(pass, p.Password)
		if !userOK || !passOK {
			return nil, unauthorized("bad basic auth credentials")
		}
	}
	var e postmarkEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, refused(http.StatusForbidden, malformed(err))
	}
	if e.RecordType == "" {
		return nil, refused(http.StatusForbidden, badRequest("RecordType: is required"))
	}
	t, rawType, reason, at := message.EventUnknown, e.RecordType, "", ""
	switch e.RecordType {
	case "Delivery":
		t, at = message.EventDelivered, e.DeliveredAt
	case "Bounce", "SpamComplaint":
		if known, ok := postmarkBounceTypes[e.Type]; ok {
			t = known
		}
		if e.Type != "" {
			rawType += " (" + e.Type + ")"
		}
		if t == message.EventBounced || t == message.EventDeferred || t == message.EventAborted {
			reason = firstNonEmpty(e.Details, e.Description)
		}
		at = e.BouncedAt
	case "Open":
		t, at = message.EventOpen, e.ReceivedAt
	case "Click":
		t, at = message.EventClick, e.ReceivedAt
	case "SubscriptionChange":
		if e.SuppressSending {
			t = message.EventUnsubscribe
		}
		if e.SuppressionReason != "" {
			rawType += " (" + e.SuppressionReason + ")"
		}
		at = e.ChangedAt
	default:
		at = firstNonEmpty(e.DeliveredAt, e.BouncedAt, e.ReceivedAt, e.ChangedAt)
	}
	ts, _ := parseTime(at)
	id := ""
	if e.ID != "" {
		id = e.RecordType + "-" + e.ID.String()
	}
	dispatchID, _ := e.Metadata[DispatchIDKey].(string)
	return []message.Event{newEvent(ProviderPostmark, dispatchID, e.MessageID, t, rawType, id, ts, receivedAt,
		reason, at+"\x00"+strconv.FormatBool(e.SuppressSending)+"\x00"+e.OriginalLink)}, nil
}
