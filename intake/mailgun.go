package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// mailgunReplayCacheSize bounds the tokens Mailgun remembers (≈ 100 bytes each).
const mailgunReplayCacheSize = 100_000

// Mailgun normalizes Mailgun's webhooks: one event per request,
// {"signature": {timestamp, token, signature}, "event-data": {…}}. The dispatch_id
// comes back in event-data.user-variables; event-data.id is the dedupe key;
// event-data.message.headers.message-id (without angle brackets) is the message id.
//
// With a signing key, the signature must be the hex HMAC-SHA256 of timestamp+token,
// the timestamp at most MaxAge old, and a token seen before must come with the same
// body: Mailgun's signature does not cover the body, so a captured signature could
// otherwise carry any event. A retry of the same request (same token, same body)
// is accepted; events are deduplicated downstream.
type Mailgun struct {
	// SigningKey is the HTTP webhook signing key; "" accepts unsigned requests.
	SigningKey string
	// MaxAge bounds the signature's age. Zero: DefaultMailgunMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time

	mu     sync.Mutex
	tokens map[string][32]byte // token → SHA-256 of the body it came with
	order  []string            // ring of the tokens, oldest first once full
	next   int
}

// NewMailgun returns the Mailgun normalizer.
func NewMailgun(signingKey string, maxAge time.Duration) *Mailgun {
	return &Mailgun{SigningKey: signingKey, MaxAge: maxAge}
}

// mailgunPayload is Mailgun's envelope: the signature and the event.
type mailgunPayload struct {
	Signature *struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData json.RawMessage `json:"event-data"`
}

type mailgunEvent struct {
	Event         string                     `json:"event"`
	ID            string                     `json:"id"`
	Timestamp     *float64                   `json:"timestamp"`
	Severity      string                     `json:"severity"`
	Reason        string                     `json:"reason"`
	UserVariables map[string]json.RawMessage `json:"user-variables"`
	Message       struct {
		Headers struct {
			MessageID string `json:"message-id"`
		} `json:"headers"`
	} `json:"message"`
	DeliveryStatus struct {
		Code         json.RawMessage `json:"code"`
		EnhancedCode string          `json:"enhanced-code"`
		Message      string          `json:"message"`
		Description  string          `json:"description"`
	} `json:"delivery-status"`
	Reject struct {
		Reason      string `json:"reason"`
		Description string `json:"description"`
	} `json:"reject"`
	URL string `json:"url"`
}

// Normalize answers a body that is not Mailgun's envelope with 406, which stops
// Mailgun's retries (they cannot succeed), and bad signatures with 401, which
// Mailgun retries for about 8 hours (time to fix a rotated key). An event-data
// that cannot be read is returned in Batch.Invalid (and answered 200).
func (m *Mailgun) Normalize(_ *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	var p mailgunPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Batch{}, refused(http.StatusNotAcceptable, malformed(err))
	}
	if m.SigningKey != "" {
		if err := m.verify(&p, body); err != nil {
			return Batch{}, err
		}
	}
	if len(p.EventData) == 0 || string(p.EventData) == "null" {
		return Batch{}, refused(http.StatusNotAcceptable, badRequest("event-data: is required"))
	}
	return batchOf(mailgunRead(p.EventData, receivedAt)), nil
}

func mailgunRead(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var e mailgunEvent
	if err := decodeEvent(raw, &e, "event-data"); err != nil {
		return message.Event{}, err
	}
	if e.Event == "" {
		return message.Event{}, errors.New("event-data.event: is required")
	}
	ts, err := eventTime("event-data.timestamp", e.Timestamp)
	if err != nil {
		return message.Event{}, err
	}
	t, reason := mailgunType(&e)
	rt := e.Event
	if e.Event == "failed" {
		rt = rawType(e.Event, e.Severity, e.Reason)
	}
	code := jsonText(e.DeliveryStatus.Code)
	return newEvent(ProviderMailgun, jsonString(e.UserVariables[DispatchIDKey]),
		trimAngles(e.Message.Headers.MessageID), t, rt, e.ID, ts, receivedAt,
		reason, code+"\x00"+e.URL), nil
}

// mailgunSuppressed are the reasons of a failure Mailgun never attempted: the
// address is on the domain's bounce, complaint or unsubscribe list (delivery
// code 605 for a bounced one).
var mailgunSuppressed = map[string]bool{
	"suppress-bounce": true, "suppress-complaint": true, "suppress-unsubscribe": true,
}

// mailgunType maps an event by Mailgun's meaning of it. A failure is permanent
// once Mailgun stopped trying (a hard bounce, its retry limit reached, the ESP
// refused) and temporary while it retries; a failure for a suppressed address was
// never attempted.
func mailgunType(e *mailgunEvent) (message.EventType, string) {
	switch e.Event {
	case "accepted":
		return message.EventProcessed, ""
	case "delivered":
		return message.EventDelivered, ""
	case "failed":
		ds := e.DeliveryStatus
		reason := firstNonEmpty(diagnostic(jsonText(ds.Code), ds.EnhancedCode, firstDiagnostic(ds.Message, ds.Description)), e.Reason)
		switch {
		case mailgunSuppressed[e.Reason]:
			return message.EventAborted, reason
		case e.Severity == "permanent":
			return message.EventBounced, reason
		case e.Severity == "temporary":
			return message.EventDeferred, reason
		}
		return message.EventUnknown, reason
	case "rejected":
		return message.EventAborted, firstNonEmpty(e.Reject.Description, e.Reject.Reason)
	case "opened":
		return message.EventOpen, ""
	case "clicked":
		return message.EventClick, ""
	case "complained":
		return message.EventComplaint, ""
	case "unsubscribed":
		return message.EventUnsubscribe, ""
	}
	return message.EventUnknown, ""
}

func (m *Mailgun) verify(p *mailgunPayload, body []byte) error {
	s := p.Signature
	if s == nil || s.Timestamp == "" || s.Token == "" || s.Signature == "" {
		return unauthorized("signature: timestamp, token and signature are required")
	}
	mac := hmac.New(sha256.New, []byte(m.SigningKey))
	mac.Write([]byte(s.Timestamp + s.Token))
	got, err := hex.DecodeString(s.Signature)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return unauthorized("bad signature")
	}
	sec, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil {
		return refused(http.StatusNotAcceptable, unauthorized("signature.timestamp: %q is not a Unix time", s.Timestamp))
	}
	maxAge, now := m.MaxAge, time.Now
	if maxAge == 0 {
		maxAge = DefaultMailgunMaxAge
	}
	if m.Now != nil {
		now = m.Now
	}
	if age := now().Sub(time.Unix(sec, 0)); age > maxAge || age < -5*time.Minute {
		// Signed, but too old: a retry would be older still.
		return refused(http.StatusNotAcceptable, unauthorized("signature.timestamp: %s old, more than %s", age.Round(time.Second), maxAge))
	}
	if !m.remember(s.Token, sha256.Sum256(body)) {
		return unauthorized("signature.token: replayed with another body")
	}
	return nil
}

// remember records token with the hash of its body, and reports whether the token
// is new or came with the same body before.
func (m *Mailgun) remember(token string, sum [32]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.tokens[token]; ok {
		return prev == sum
	}
	if m.tokens == nil {
		m.tokens = make(map[string][32]byte)
	}
	if len(m.order) < mailgunReplayCacheSize {
		m.order = append(m.order, token)
	} else {
		delete(m.tokens, m.order[m.next])
		m.order[m.next] = token
		m.next = (m.next + 1) % mailgunReplayCacheSize
	}
	m.tokens[token] = sum
	return true
}

func refused(status int, err error) error { return &RefusedError{Status: status, Err: err} }
