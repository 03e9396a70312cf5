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
}

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
	Timestamp   float64         `json:"timestamp"`
	SGEventID   string          `json:"sg_event_id"`
	SGMessageID string          `json:"sg_message_id"`
	DispatchID  json.RawMessage `json:"dispatch_id"`
	Type        string          `json:"type"` // bounce: "bounce" or "blocked"
	Reason      string          `json:"reason"`
	Response    string          `json:"response"`
	Status      string          `json:"status"`
	URL         string          `json:"url"`
}

func (s *SendGrid) Normalize(r *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	if s.PublicKey != nil {
		if err := s.verify(r, body); err != nil {
			return nil, err
		}
	}
	var raw []sendGridEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, malformed(err)
	}
	events := make([]message.Event, 0, len(raw))
	for i, e := range raw {
		if e.Event == "" {
			return nil, badRequest("[%d].event: is required", i)
		}
		t, rawType, reason := sendGridType(e)
		messageID, _, _ := strings.Cut(e.SGMessageID, ".")
		events = append(events, newEvent(ProviderSendGrid, jsonString(e.DispatchID), messageID, t, rawType,
			e.SGEventID, unixTime(e.Timestamp), receivedAt, reason, e.Status+"\x00"+e.URL))
	}
	return events, nil
}

// sendGridType maps an event; a "bounce" of type "blocked" (the receiving server
// refused this message, not the address) is a bounce all the same, told apart by
// its raw type.
func sendGridType(e sendGridEvent) (message.EventType, string, string) {
	switch e.Event {
	case "processed":
		return message.EventProcessed, e.Event, ""
	case "deferred":
		return message.EventDeferred, e.Event, e.Response
	case "delivered":
		return message.EventDelivered, e.Event, ""
	case "bounce":
		if e.Type == "blocked" {
			return message.EventBounced, "bounce (blocked)", e.Reason
		}
		return message.EventBounced, e.Event, e.Reason
	case "dropped":
		return message.EventAborted, e.Event, e.Reason
	case "open":
		return message.EventOpen, e.Event, ""
	case "click":
		return message.EventClick, e.Event, ""
	case "spamreport":
		return message.EventComplaint, e.Event, ""
	case "unsubscribe", "group_unsubscribe":
		return message.EventUnsubscribe, e.Event, ""
	}
	return message.EventUnknown, e.Event, ""
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
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	if !ecdsa.VerifyASN1(s.PublicKey, h.Sum(nil), der) {
		return unauthorized("bad %s", SendGridSignatureHeader)
	}
	return nil
}
