package intake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// MailerSendSignatureHeader carries MailerSend's signature: the hex HMAC-SHA256 of
// the raw body under the webhook's signing secret.
const MailerSendSignatureHeader = "Signature"

// MailerSendTestSecret is the fixed secret MailerSend signs its "webhook.test"
// ping with, the request it sends when a webhook is saved (and that must be
// answered 2xx for the webhook to be saved), published in MailerSend's webhooks
// documentation. Being public, it proves nothing: a request signed with it is
// accepted only as that ping, which carries no event.
const MailerSendTestSecret = "test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G"

// DispatchIDTagPrefix prefixes the tag that carries the dispatch_id to the providers
// whose webhooks bring back only tags (MailerSend, Postal): "dispatch_id:<id>".
const DispatchIDTagPrefix = DispatchIDKey + ":"

// mailerSendPing is the type of MailerSend's ping.
const mailerSendPing = "webhook.test"

// MailerSend normalizes MailerSend's activity webhooks: one JSON object per request,
// {"type": "activity.delivered", "created_at": …, "data": {…}}. Both payload
// versions are read: version 2 (data.message_id, data.tags, data.meta) and the
// legacy version 1 (data.email.message.id, data.email.tags, data.morph), which
// MailerSend retires in December 2026. The dispatch_id comes back in the tags, as
// the tag "dispatch_id:<id>" (DispatchIDTagPrefix): MailerSend echoes no metadata.
// data.message_id is the message id (the X-Message-Id of the send API's answer);
// data.id, the activity's id, is the dedupe key. The ping (type "webhook.test")
// is answered with no event.
//
// With a signing secret, requests must carry Signature, the hex HMAC-SHA256 of
// the raw body. The scheme has no timestamp, so no freshness window: a replayed
// request brings the same activity id, and is dropped as a duplicate.
type MailerSend struct {
	// SigningSecret is the webhook's signing secret; "" accepts unsigned requests.
	SigningSecret string
}

// mailerSendEnvelope is what every MailerSend webhook has, whatever its type.
type mailerSendEnvelope struct {
	Type      string          `json:"type"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// mailerSendActivity is the data of an activity.* event, in either version.
type mailerSendActivity struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	MessageID string          `json:"message_id"`
	Tags      json.RawMessage `json:"tags"`
	Meta      json.RawMessage `json:"meta"`
	Email     *struct {
		Tags    json.RawMessage `json:"tags"`
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	} `json:"email"`
	Morph *struct {
		Reason         string `json:"reason"`
		ReadableReason string `json:"readable_reason"`
	} `json:"morph"`
}

// mailerSendMeta is version 2's data.meta; MailerSend sends [] when it is empty.
type mailerSendMeta struct {
	BounceReason      string          `json:"bounce_reason"`
	BounceCode        json.RawMessage `json:"bounce_code"`
	RejectReason      string          `json:"reject_reason"`
	SuppressionReason string          `json:"suppression_reason"`
	URL               string          `json:"url"`
}

// mailerSendTypes maps the activity events by MailerSend's description of them
// (https://developers.mailersend.com/api/v1/webhooks.html, the events list):
//
//   - sent: "sent from our sending servers. We are now waiting for a response from
//     the receiving servers": processed.
//   - soft_bounced: "not delivered because it soft bounced". MailerSend reports a
//     delay separately (deferred: "temporarily delayed"), and a soft-bounced
//     email's status is "rejected": given up (inference), bounced.
//   - suppressed: not sent, the recipient is on a suppression list: aborted.
var mailerSendTypes = map[string]message.EventType{
	"sent":            message.EventProcessed,
	"delivered":       message.EventDelivered,
	"soft_bounced":    message.EventBounced,
	"hard_bounced":    message.EventBounced,
	"deferred":        message.EventDeferred,
	"suppressed":      message.EventAborted,
	"opened":          message.EventOpen,
	"opened_unique":   message.EventOpen,
	"clicked":         message.EventClick,
	"clicked_unique":  message.EventClick,
	"spam_complaint":  message.EventComplaint,
	"spam_complaints": message.EventComplaint,
	"unsubscribed":    message.EventUnsubscribe,
}

// Normalize answers a body that is not a JSON object with 400 and a missing or bad
// signature with 401. An object that is no readable event is returned in
// Batch.Invalid; the ping yields no event.
func (m *MailerSend) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if m.SigningSecret != "" {
		if err := m.verify(r, body); err != nil {
			return Batch{}, err
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	if isMailerSendPing(body) {
		return Batch{}, nil
	}
	return batchOf(mailerSendRead(body, receivedAt)), nil
}

func (m *MailerSend) verify(r *http.Request, body []byte) error {
	sig := strings.TrimSpace(r.Header.Get(MailerSendSignatureHeader))
	if sig == "" {
		return unauthorized("the %s header is required", MailerSendSignatureHeader)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return unauthorized("%s: not hex", MailerSendSignatureHeader)
	}
	if hmac.Equal(got, mailerSendMAC(m.SigningSecret, body)) {
		return nil
	}
	// The ping is signed with the public test secret: accepted as the ping only.
	if hmac.Equal(got, mailerSendMAC(MailerSendTestSecret, body)) && isMailerSendPing(body) {
		return nil
	}
	return unauthorized("bad %s", MailerSendSignatureHeader)
}

func mailerSendMAC(secret string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return mac.Sum(nil)
}

// isMailerSendPing reports whether body is MailerSend's ping: an object of type
// "webhook.test". A ping is read as no event, whatever else it holds, so that a
// request signed with the public test secret can carry none.
func isMailerSendPing(body []byte) bool {
	var ping struct {
		Type json.RawMessage `json:"type"`
	}
	return json.Unmarshal(body, &ping) == nil && jsonString(ping.Type) == mailerSendPing
}

func mailerSendRead(body []byte, receivedAt time.Time) (message.Event, error) {
	var env mailerSendEnvelope
	if err := decodeEvent(body, &env, ""); err != nil {
		return message.Event{}, err
	}
	if env.Type == "" {
		return message.Event{}, errors.New("type: is required")
	}
	name, activity := strings.CutPrefix(env.Type, "activity.")
	if !activity {
		// sender_identity.verified, maintenance.start, bulk_email.completed…:
		// nothing about a message.
		ts, err := mailerSendTime("created_at", env.CreatedAt)
		if err != nil {
			return message.Event{}, err
		}
		return newEvent(ProviderMailerSend, "", "", message.EventUnknown, env.Type, "", ts, receivedAt, "", ""), nil
	}
	var a mailerSendActivity
	if t := bytes.TrimSpace(env.Data); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		if err := decodeEvent(env.Data, &a, "data"); err != nil {
			return message.Event{}, err
		}
	}
	at, atField := env.CreatedAt, "created_at"
	if a.CreatedAt != "" { // version 1: the activity's own time
		at, atField = a.CreatedAt, "data.created_at"
	}
	ts, err := mailerSendTime(atField, at)
	if err != nil {
		return message.Event{}, err
	}
	t, ok := mailerSendTypes[name]
	if !ok {
		t = message.EventUnknown // survey_opened, survey_submitted, and names to come
	}
	tags, messageID := a.Tags, a.MessageID
	if a.Email != nil { // version 1
		tags, messageID = a.Email.Tags, firstNonEmpty(messageID, a.Email.Message.ID)
	}
	var meta mailerSendMeta
	if bytes.HasPrefix(bytes.TrimSpace(a.Meta), []byte("{")) {
		if err := decodeEvent(a.Meta, &meta, "data.meta"); err != nil {
			return message.Event{}, err
		}
	}
	reason := ""
	if t == message.EventBounced || t == message.EventDeferred || t == message.EventAborted {
		reason = firstNonEmpty(diagnostic(jsonText(meta.BounceCode), "", meta.BounceReason), meta.RejectReason, meta.SuppressionReason)
		if a.Morph != nil {
			reason = firstNonEmpty(reason, a.Morph.ReadableReason, a.Morph.Reason)
		}
	}
	return newEvent(ProviderMailerSend, taggedDispatchID(jsonStringList(tags)), messageID, t, env.Type, a.ID, ts, receivedAt,
		reason, reason+"\x00"+meta.URL), nil
}

// mailerSendTime reads one of MailerSend's RFC 3339 times ("2025-08-05T21:24:02.000000Z");
// absent, the zero time (the time of receipt).
func mailerSendTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := parseTime(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: not an RFC 3339 time", field)
	}
	return t, nil
}

// taggedDispatchID returns the dispatch_id of the first tag "dispatch_id:<id>"
// (DispatchIDTagPrefix) of tags, or "".
func taggedDispatchID(tags []string) string {
	for _, t := range tags {
		if id, ok := strings.CutPrefix(strings.TrimSpace(t), DispatchIDTagPrefix); ok && id != "" {
			return id
		}
	}
	return ""
}

// SignMailerSend returns the Signature header of body under secret, as MailerSend
// signs its webhooks.
func SignMailerSend(secret string, body []byte) string {
	return hex.EncodeToString(mailerSendMAC(secret, body))
}
