package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

type mailgunPayload struct {
	Signature *struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData *struct {
		Event         string                     `json:"event"`
		ID            string                     `json:"id"`
		Timestamp     float64                    `json:"timestamp"`
		Severity      string                     `json:"severity"`
		Reason        string                     `json:"reason"`
		UserVariables map[string]json.RawMessage `json:"user-variables"`
		Message       struct {
			Headers struct {
				MessageID string `json:"message-id"`
			} `json:"headers"`
		} `json:"message"`
		DeliveryStatus struct {
			Code        int    `json:"code"`
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"delivery-status"`
		Reject struct {
			Reason      string `json:"reason"`
			Description string `json:"description"`
		} `json:"reject"`
		URL string `json:"url"`
	} `json:"event-data"`
}

// Normalize answers malformed requests with 406, which stops Mailgun's retries
// (they cannot succeed), and bad signatures with 401, which Mailgun retries for
// about 8 hours (time to fix a rotated key).
func (m *Mailgun) Normalize(_ *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	var p mailgunPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, refused(http.StatusNotAcceptable, malformed(err))
	}
	if m.SigningKey != "" {
		if err := m.verify(&p, body); err != nil {
			return nil, err
		}
	}
	e := p.EventData
	if e == nil {
		return nil, refused(http.StatusNotAcceptable, badRequest("event-data: is required"))
	}
	if e.Event == "" {
		return nil, refused(http.StatusNotAcceptable, badRequest("event-data.event: is required"))
	}
	t, reason := message.EventUnknown, ""
	switch e.Event {
	case "accepted":
		t = message.EventProcessed
	case "delivered":
		t = message.EventDelivered
	case "failed":
		reason = firstNonEmpty(e.DeliveryStatus.Description, e.DeliveryStatus.Message, e.Reason)
		switch e.Severity {
		case "permanent":
			t = message.EventBounced
		case "temporary":
			t = message.EventDeferred
		}
	case "rejected":
		t, reason = message.EventAborted, firstNonEmpty(e.Reject.Description, e.Reject.Reason)
	case "opened":
		t = message.EventOpen
	case "clicked":
		t = message.EventClick
	case "complained":
		t = message.EventComplaint
	case "unsubscribed":
		t = message.EventUnsubscribe
	}
	rawType := e.Event
	if e.Event == "failed" && e.Severity != "" {
		rawType = e.Event + " (" + e.Severity + ")"
	}
	return []message.Event{newEvent(ProviderMailgun, jsonString(e.UserVariables[DispatchIDKey]),
		trimAngles(e.Message.Headers.MessageID), t, rawType, e.ID, unixTime(e.Timestamp), receivedAt,
		reason, strconv.Itoa(e.DeliveryStatus.Code)+"\x00"+e.URL)}, nil
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
