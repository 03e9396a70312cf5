package intake

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// Postal's signature headers. Postal signs every webhook request with its server's
// signing key (RSA, PKCS #1 v1.5) over the raw body, base64: X-Postal-Signature
// with SHA-1 (its legacy signature, the only one before Postal 3.2.0 (March 2024) and the
// one django-anymail verifies), X-Postal-Signature-256 with SHA-256.
const (
	PostalSignatureHeader    = "X-Postal-Signature"
	PostalSignature256Header = "X-Postal-Signature-256"
)

// DefaultPostalMaxAge covers Postal's webhook retries (five, 2, 3, 6, 10 and 15
// minutes apart: the last 36 minutes after the first attempt; postalserver/postal
// app/services/webhook_delivery_service.rb), which resend the first request, its
// signed timestamp included, with a margin for a busy queue.
const DefaultPostalMaxAge = time.Hour

// postalMaxSkew is how far in the future a Postal timestamp may be (clock skew).
const postalMaxSkew = 5 * time.Minute

// Postal normalizes the webhooks of Postal, the self-hosted mail server: one JSON
// object per request, {"event": "MessageSent", "timestamp": …, "payload": {…},
// "uuid": …}. uuid, kept across Postal's retries, is the dedupe key; payload.message
// (original_message for a bounce) is the message. The dispatch_id comes back in
// message.tag, as "dispatch_id:<id>" (DispatchIDTagPrefix: Postal echoes one tag
// and no metadata), or in message.message_id, the message's Message-ID header,
// when it is dispatchflow's "<dispatch_id>@dispatchflow" (mail sent through
// Postal's SMTP relay with DISPATCHFLOW_ESP=smtp). message.id is the message id
// (what Postal's send API answers as data.messages.<recipient>.id).
//
// With a public key, requests must carry a valid signature:
// X-Postal-Signature-256 when present (it must verify then), else the SHA-1
// X-Postal-Signature of older Postal versions. Postal's signature has no expiry of
// its own, so the signed body's timestamp (when Postal queued the request) must be
// at most MaxAge old; a replay within that window brings the same uuid and is
// dropped as a duplicate.
type Postal struct {
	// PublicKey verifies signatures; nil accepts unsigned requests.
	PublicKey *rsa.PublicKey
	// MaxAge bounds the signed timestamp's age. Zero: DefaultPostalMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// NewPostal returns the Postal normalizer verifying with publicKey ("" for none):
// the public half of Postal's signing key, as `postal default-dkim-record` prints
// it — the whole record ("v=DKIM1; t=s; h=sha256; p=…;"), its p= value (base64
// DER), or PEM.
func NewPostal(publicKey string, maxAge time.Duration) (*Postal, error) {
	if maxAge < 0 {
		return nil, errors.New("must not be negative")
	}
	p := &Postal{MaxAge: maxAge}
	if strings.TrimSpace(publicKey) == "" {
		return p, nil
	}
	key, err := parsePostalKey(publicKey)
	if err != nil {
		return nil, err
	}
	if bits := key.N.BitLen(); bits < 1024 {
		// Go verifies no signature of a shorter key: every request would fail.
		return nil, fmt.Errorf("an RSA key of %d bits: at least 1024 are required", bits)
	}
	p.PublicKey = key
	return p, nil
}

// parsePostalKey reads an RSA public key in any of the forms NewPostal accepts.
// Its errors never quote the key.
func parsePostalKey(s string) (*rsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		if strings.Contains(s, "p=") { // the DKIM record: its p= tag
			for _, tag := range strings.Split(s, ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(tag), "p="); ok {
					s = v
				}
			}
		}
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), "")); err != nil {
			return nil, errors.New("not base64 DER, PEM, or a DKIM record with p=")
		}
	}
	if key, err := x509.ParsePKIXPublicKey(der); err == nil {
		rsaKey, ok := key.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("not an RSA public key")
		}
		return rsaKey, nil
	}
	if key, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return key, nil
	}
	return nil, errors.New("not a DER public key")
}

type postalMessage struct {
	ID        json.RawMessage `json:"id"`
	Direction string          `json:"direction"`
	MessageID string          `json:"message_id"`
	Tag       string          `json:"tag"`
}

type postalPayload struct {
	Message         *postalMessage `json:"message"`
	OriginalMessage *postalMessage `json:"original_message"`
	Status          string         `json:"status"`
	Details         string         `json:"details"`
	Output          string         `json:"output"`
	URL             string         `json:"url"`
}

type postalEvent struct {
	Event     string          `json:"event"`
	Timestamp *float64        `json:"timestamp"`
	UUID      string          `json:"uuid"`
	Payload   json.RawMessage `json:"payload"`
}

// postalTypes maps Postal's webhook events (app/models/webhook_event.rb) by what
// Postal does before it triggers them (lib/postal/message_db/delivery.rb, message.rb):
//
//   - MessageSent: a delivery of status Sent, the receiving server accepted the
//     message: delivered.
//   - MessageDelayed: SoftFail, a temporary failure Postal retries (up to its
//     default_maximum_delivery_attempts, then HardFail): deferred.
//   - MessageDeliveryFailed: HardFail, Postal gave up (a permanent refusal, the
//     attempts exhausted, or a message it would not send): bounced.
//   - MessageHeld: Held, not sent and kept until an operator releases it or the
//     hold expires (development mode, a suppressed recipient, the send limit, a
//     credential that holds): deferred — it may still go out.
//   - MessageBounced: a bounce message came back for a sent message: bounced.
//   - MessageLoaded, MessageLinkClicked: open, click.
//
// DomainDNSError, SendLimitApproaching, SendLimitExceeded and others say nothing
// about a message: unknown.
var postalTypes = map[string]message.EventType{
	"MessageSent":           message.EventDelivered,
	"MessageDelayed":        message.EventDeferred,
	"MessageDeliveryFailed": message.EventBounced,
	"MessageHeld":           message.EventDeferred,
	"MessageBounced":        message.EventBounced,
	"MessageLoaded":         message.EventOpen,
	"MessageLinkClicked":    message.EventClick,
}

// Normalize answers a body that is not a JSON object with 400 and a missing or bad
// signature, or a timestamp that is missing or older than MaxAge, with 401. An
// object that is no readable event is returned in Batch.Invalid.
func (p *Postal) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if p.PublicKey != nil {
		if err := p.verify(r, body); err != nil {
			return Batch{}, err
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	if p.PublicKey != nil {
		if err := p.checkFresh(body); err != nil {
			return Batch{}, err
		}
	}
	return batchOf(postalRead(body, receivedAt)), nil
}

func (p *Postal) verify(r *http.Request, body []byte) error {
	header, hash := PostalSignature256Header, crypto.SHA256
	sig := r.Header.Get(header)
	if sig == "" {
		header, hash = PostalSignatureHeader, crypto.SHA1
		if sig = r.Header.Get(header); sig == "" {
			return unauthorized("%s (or, from Postal before 3.2, %s) is required", PostalSignature256Header, PostalSignatureHeader)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return unauthorized("%s: not base64", header)
	}
	var digest []byte
	if hash == crypto.SHA256 {
		sum := sha256.Sum256(body)
		digest = sum[:]
	} else {
		sum := sha1.Sum(body)
		digest = sum[:]
	}
	if rsa.VerifyPKCS1v15(p.PublicKey, hash, digest, raw) != nil {
		return unauthorized("bad %s", header)
	}
	return nil
}

// checkFresh refuses a verified body whose timestamp is missing or too old: a
// signature without expiry would otherwise be good forever.
func (p *Postal) checkFresh(body []byte) error {
	var e struct {
		Timestamp *float64 `json:"timestamp"`
	}
	if json.Unmarshal(body, &e) != nil || e.Timestamp == nil || unixTime(*e.Timestamp).IsZero() {
		return unauthorized("timestamp: a Unix time is required, to prove the request fresh")
	}
	maxAge, now := p.MaxAge, time.Now
	if maxAge == 0 {
		maxAge = DefaultPostalMaxAge
	}
	if p.Now != nil {
		now = p.Now
	}
	if age := now().Sub(unixTime(*e.Timestamp)); age > maxAge || age < -postalMaxSkew {
		return unauthorized("timestamp: %s old, more than %s (or in the future)", age.Round(time.Second), maxAge)
	}
	return nil
}

func postalRead(body []byte, receivedAt time.Time) (message.Event, error) {
	var e postalEvent
	if err := decodeEvent(body, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.Event == "" {
		return message.Event{}, errors.New("event: is required")
	}
	ts, err := eventTime("timestamp", e.Timestamp)
	if err != nil {
		return message.Event{}, err
	}
	var pl postalPayload
	if t := bytes.TrimSpace(e.Payload); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		if err := decodeEvent(e.Payload, &pl, "payload"); err != nil {
			return message.Event{}, err
		}
	}
	m := pl.Message
	if m == nil {
		m = pl.OriginalMessage
	}
	if m == nil {
		m = &postalMessage{}
	}
	t, ok := postalTypes[e.Event]
	if !ok {
		t = message.EventUnknown
	}
	rt := e.Event
	dispatchID, messageID := "", jsonText(m.ID)
	if m.Direction == "incoming" {
		// An event about mail Postal received (a route that failed), not mail it
		// sent: nothing dispatchflow sent, whatever its name.
		t, rt, messageID = message.EventUnknown, rawType(e.Event, m.Direction), ""
	} else {
		dispatchID = firstNonEmpty(taggedDispatchID([]string{m.Tag}), relayDispatchID(m.MessageID))
	}
	reason := ""
	if t == message.EventBounced || t == message.EventDeferred {
		reason = firstDiagnostic(pl.Output, pl.Details)
	}
	return newEvent(ProviderPostal, dispatchID, messageID, t, rt, e.UUID, ts, receivedAt,
		reason, reason+"\x00"+pl.URL), nil
}

// relayDispatchID returns the dispatch_id of a Message-ID dispatchflow's smtp
// sender wrote, "<{dispatch_id}@dispatchflow>" (with or without the angle
// brackets), or "".
func relayDispatchID(messageID string) string {
	id, ok := strings.CutSuffix(trimAngles(messageID), "@dispatchflow")
	if !ok || !message.ValidDispatchID(id) {
		return ""
	}
	return id
}

// SignPostal returns the X-Postal-Signature-256 and X-Postal-Signature of body
// under key, as Postal signs its webhook requests.
func SignPostal(key *rsa.PrivateKey, body []byte) (sig256, sig1 string, err error) {
	s256 := sha256.Sum256(body)
	raw256, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, s256[:])
	if err != nil {
		return "", "", err
	}
	s1 := sha1.Sum(body)
	raw1, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, s1[:])
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(raw256), base64.StdEncoding.EncodeToString(raw1), nil
}
