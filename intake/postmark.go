package intake

import (
	"encoding/json"
	"errors"
	"fmt"
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
	RecordType        string          `json:"RecordType"`
	ID                json.RawMessage `json:"ID"`
	Type              string          `json:"Type"`
	MessageID         string          `json:"MessageID"`
	Metadata          map[string]any  `json:"Metadata"`
	Description       string          `json:"Description"`
	Details           string          `json:"Details"`
	DeliveredAt       string          `json:"DeliveredAt"`
	BouncedAt         string          `json:"BouncedAt"`
	ReceivedAt        string          `json:"ReceivedAt"`
	ChangedAt         string          `json:"ChangedAt"`
	SuppressSending   bool            `json:"SuppressSending"`
	SuppressionReason string          `json:"SuppressionReason"`
	OriginalLink      string          `json:"OriginalLink"`
}

// postmarkBounceTypes classifies Bounce (and SpamComplaint) Types by Postmark's
// bounce types list (https://postmarkapp.com/developer/api/bounce-api#bounce-types):
//
//   - bounced: Postmark gave up. A hard bounce, an invalid address, an ISP block,
//     a DMARC or virus rejection, and a soft bounce: Postmark retries soft
//     failures and reports SoftBounce once it "ceased attempting to send".
//   - deferred: Transient ("message delayed") and DnsError ("a temporary DNS
//     error"), which say the delivery may still happen.
//   - aborted: never attempted. ManuallyDeactivated (the address was
//     deactivated), Unconfirmed, SMTPApiError (sent over SMTP to a suppressed
//     recipient) and TemplateRenderingFailed.
//   - complaint, unsubscribe: as named.
//
// Other Types (Subscribe, AutoResponder, AddressChange, ChallengeVerification,
// OpenRelayTest, InboundError, Unknown) say nothing about this delivery and stay
// unknown.
var postmarkBounceTypes = map[string]message.EventType{
	"HardBounce":        message.EventBounced,
	"BadEmailAddress":   message.EventBounced,
	"Blocked":           message.EventBounced,
	"DMARCPolicy":       message.EventBounced,
	"VirusNotification": message.EventBounced,
	"SoftBounce":        message.EventBounced,

	"Transient": message.EventDeferred,
	"DnsError":  message.EventDeferred,

	"ManuallyDeactivated":     message.EventAborted,
	"Unconfirmed":             message.EventAborted,
	"SMTPApiError":            message.EventAborted,
	"TemplateRenderingFailed": message.EventAborted,

	"SpamComplaint":    message.EventComplaint,
	"SpamNotification": message.EventComplaint,

	"Unsubscribe": message.EventUnsubscribe,
}

// Normalize answers a body that is not a JSON object with 403, which (per
// Postmark's webhook docs) stops its retries, and missing or wrong credentials
// with 401. An object that is no readable event is returned in Batch.Invalid.
func (p *Postmark) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if p.Username != "" || p.Password != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return Batch{}, unauthorized("basic auth credentials are required")
		}
		// Both compared, always, so that the time taken tells nothing.
		userOK, passOK := equalSecret(user, p.Username), equalSecret(pass, p.Password)
		if !userOK || !passOK {
			return Batch{}, unauthorized("bad basic auth credentials")
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, refused(http.StatusForbidden, err)
	}
	return batchOf(postmarkRead(body, receivedAt)), nil
}

func postmarkRead(body []byte, receivedAt time.Time) (message.Event, error) {
	var e postmarkEvent
	if err := decodeEvent(body, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.RecordType == "" {
		return message.Event{}, errors.New("RecordType: is required")
	}
	t, sub, reason := message.EventUnknown, "", ""
	var at, atField string // the event's own time, and its field
	switch e.RecordType {
	case "Delivery":
		t, at, atField = message.EventDelivered, e.DeliveredAt, "DeliveredAt"
	case "Bounce", "SpamComplaint":
		if known, ok := postmarkBounceTypes[e.Type]; ok {
			t = known
		}
		if t == message.EventBounced || t == message.EventDeferred || t == message.EventAborted {
			// Details is the receiving server's answer; Description, the bounce
			// type's. Content, the whole bounce notice, is never a reason.
			reason = firstDiagnostic(e.Details, e.Description)
		}
		sub, at, atField = e.Type, e.BouncedAt, "BouncedAt"
	case "Open":
		t, at, atField = message.EventOpen, e.ReceivedAt, "ReceivedAt"
	case "Click":
		t, at, atField = message.EventClick, e.ReceivedAt, "ReceivedAt"
	case "SubscriptionChange":
		if e.SuppressSending {
			t = message.EventUnsubscribe
		}
		sub, at, atField = e.SuppressionReason, e.ChangedAt, "ChangedAt"
	default:
		for _, f := range [][2]string{{"DeliveredAt", e.DeliveredAt}, {"BouncedAt", e.BouncedAt},
			{"ReceivedAt", e.ReceivedAt}, {"ChangedAt", e.ChangedAt}} {
			if f[1] != "" {
				atField, at = f[0], f[1]
				break
			}
		}
	}
	var ts time.Time
	if at != "" {
		var ok bool
		if ts, ok = parseTime(at); !ok {
			return message.Event{}, fmt.Errorf("%s: not an RFC 3339 time", atField)
		}
	}
	id := ""
	if v := jsonText(e.ID); v != "" {
		id = e.RecordType + "-" + v
	}
	dispatchID, _ := e.Metadata[DispatchIDKey].(string)
	return newEvent(ProviderPostmark, dispatchID, e.MessageID, t, rawType(e.RecordType, sub), id, ts, receivedAt,
		reason, at+"\x00"+strconv.FormatBool(e.SuppressSending)+"\x00"+e.OriginalLink), nil
}
