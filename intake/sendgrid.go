package intake

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// SendGrid's Signed Event Webhook headers.
const (
	SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// SendGrid normalizes Twilio SendGrid's Event Webhook: a JSON array of events of
// any type. The dispatch_id comes back as a top-level key of each event (our
// custom_args are merged into it); sg_event_id is the dedupe key; sg_message_id,
// cut at its first '.', is the X-Message-Id the mail send API returned.
//
// With a public key, requests must carry a valid Signed Event Webhook signature:
// ECDSA P-256 over SHA-256 of the timestamp header followed by the raw body, as
// sendgrid-go's helpers/eventwebhook verifies it.
type SendGrid struct {
	// PublicKey verifies signatures; nil accepts unsigned requests.
	PublicKey *ecdsa.PublicKey
	// Now is the clock the signature's timestamp is checked against; nil: time.Now.
	Now func() time.Time
}

// SendGridTolerance is how far the signed timestamp may be from now: an older
// request is a replay (SendGrid signs every delivery attempt afresh).
const SendGridTolerance = 5 * time.Minute

// NewSendGrid returns the SendGrid normalizer verifying with publicKey, base64 DER
// as SendGrid shows it ("" for none).
func NewSendGrid(publicKey string) (*SendGrid, error) {
	if publicKey == "" {
		return &SendGrid{}, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(publicKey))
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a DER public key: %v", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an ECDSA public key")
	}
	return &SendGrid{PublicKey: ec}, nil
}

type sendGridEvent struct {
	Event       string          `json:"event"`
	Timestamp   *float64        `json:"timestamp"`
	SGEventID   string          `json:"sg_event_id"`
	SGMessageID string          `json:"sg_message_id"`
	DispatchID  json.RawMessage `json:"dispatch_id"`
	Type        string          `json:"type"` // bounce: "bounce" or "blocked"
	Reason      string          `json:"reason"`
	Response    string          `json:"response"`
	Status      string          `json:"status"`
	URL         string          `json:"url"`
}

// Normalize reads the array event by event: an event that cannot be read is
// returned in Batch.Invalid, never fails the others (SendGrid retries a refused
// batch for 24 hours, then drops every event in it).
func (s *SendGrid) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if s.PublicKey != nil {
		if err := s.verify(r, body); err != nil {
			return Batch{}, err
		}
	}
	return readArray(body, func(raw json.RawMessage) (message.Event, error) {
		return sendGridRead(raw, receivedAt)
	})
}

func sendGridRead(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var e sendGridEvent
	if err := decodeEvent(raw, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.Event == "" {
		return message.Event{}, errors.New("event: is required")
	}
	ts, err := eventTime("timestamp", e.Timestamp)
	if err != nil {
		return message.Event{}, err
	}
	t, reason := sendGridType(e)
	messageID, _, _ := strings.Cut(e.SGMessageID, ".")
	return newEvent(ProviderSendGrid, jsonString(e.DispatchID), messageID, t, rawType(e.Event, e.Type),
		e.SGEventID, ts, receivedAt, reason, e.Status+"\x00"+e.URL), nil
}

// sendGridType maps an event by the Event Webhook Reference's meaning of it. A
// bounce, of type "bounce" or "blocked" (refused for this message, not the
// address), is final: SendGrid retries deferrals for up to 72 hours and then
// reports a bounce, never a bounce and then a delivery. A drop is a message
// SendGrid never attempted (bounced, unsubscribed, invalid address…).
func sendGridType(e sendGridEvent) (message.EventType, string) {
	switch e.Event {
	case "processed":
		return message.EventProcessed, ""
	case "deferred":
		return message.EventDeferred, e.Response
	case "delivered":
		return message.EventDelivered, ""
	case "bounce":
		return message.EventBounced, diagnostic("", e.Status, e.Reason)
	case "dropped":
		return message.EventAborted, e.Reason
	case "open":
		return message.EventOpen, ""
	case "click":
		return message.EventClick, ""
	case "spamreport":
		return message.EventComplaint, ""
	case "unsubscribe", "group_unsubscribe":
		return message.EventUnsubscribe, ""
	}
	return message.EventUnknown, ""
}

func (s *SendGrid) verify(r *http.Request, body []byte) error {
	sig, ts := r.Header.Get(SendGridSignatureHeader), r.Header.Get(SendGridTimestampHeader)
	if sig == "" || ts == "" {
		return unauthorized("missing %s or %s", SendGridSignatureHeader, SendGridTimestampHeader)
	}
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return unauthorized("%s: not base64", SendGridSignatureHeader)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("%s: not a Unix time", SendGridTimestampHeader)
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if d := now.Sub(time.Unix(secs, 0)); d > SendGridTolerance || d < -SendGridTolerance {
		return unauthorized("%s: %s away from now, more than %s", SendGridTimestampHeader, d.Round(time.Second), SendGridTolerance)
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	if !ecdsa.VerifyASN1(s.PublicKey, h.Sum(nil), der) {
		return unauthorized("bad %s", SendGridSignatureHeader)
	}
	return nil
}
