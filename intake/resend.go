package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dispatchflow/dispatchflow/message"
)

// Resend's webhook headers: Resend delivers its webhooks through Svix, whose
// signature scheme is the one Standard Webhooks standardised under other names.
const (
	ResendIDHeader        = "svix-id"
	ResendTimestampHeader = "svix-timestamp"
	ResendSignatureHeader = "svix-signature"
)

// ResendTolerance is how far svix-timestamp may be from now (Svix's own
// tolerance, that of StandardTolerance): an older request is a replay. Svix signs
// every delivery attempt afresh, so its retries are not older than that.
const ResendTolerance = StandardTolerance

// Resend normalizes Resend's webhooks: one JSON object per request,
// {"type": "email.delivered", "created_at": …, "data": {…}}. The dispatch_id comes
// back in data.tags (the tag dispatch_id the send attached; Resend documents tags
// as an object of name → value, and earlier as an array of {name, value}: both are
// read); data.email_id is the message id (the id Resend's send API answers).
// svix-id is the dedupe key: Svix keeps it across the retries of an event.
//
// With a signing secret, requests must carry a valid Svix signature: svix-signature
// holds "v1,<base64 HMAC-SHA256 of svix-id.svix-timestamp.body>" (several, space
// separated, during a secret's rotation), with svix-timestamp within ResendTolerance.
type Resend struct {
	// Now is the clock the signature's timestamp is checked against; nil: time.Now.
	Now func() time.Time

	wh *standardwebhooks.Webhook // nil: unsigned requests are accepted
}

// NewResend returns the Resend normalizer verifying with secret, the endpoint's
// signing secret as Resend shows it ("whsec_" and base64); "" for none.
func NewResend(secret string) (*Resend, error) {
	if secret == "" {
		return &Resend{}, nil
	}
	wh, err := newSvixWebhook(secret)
	if err != nil {
		return nil, err
	}
	return &Resend{wh: wh}, nil
}

// newSvixWebhook checks a Svix signing secret's form. Its error never quotes the
// secret.
func newSvixWebhook(secret string) (*standardwebhooks.Webhook, error) {
	const form = `not a Svix signing secret ("whsec_" followed by base64)`
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, errors.New(form)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil || strings.TrimPrefix(secret, "whsec_") == "" {
		return nil, errors.New(form)
	}
	return wh, nil
}

type resendEvent struct {
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	Data      struct {
		EmailID string          `json:"email_id"`
		Tags    json.RawMessage `json:"tags"`
		Bounce  struct {
			Type           string          `json:"type"`
			SubType        string          `json:"subType"`
			Message        string          `json:"message"`
			DiagnosticCode json.RawMessage `json:"diagnosticCode"`
		} `json:"bounce"`
		Failed struct {
			Reason string `json:"reason"`
		} `json:"failed"`
		Suppressed struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"suppressed"`
		Click struct {
			Link string `json:"link"`
		} `json:"click"`
	} `json:"data"`
}

// resendSuppressed are the bounce subtypes of a message Resend never attempted:
// the address is on a suppression list (Resend's bounce types are Amazon SES's).
var resendSuppressed = map[string]bool{"Suppressed": true, "OnAccountSuppressionList": true}

// Normalize answers a body that is not a JSON object with 400 and a missing or bad
// signature, or a stale svix-timestamp, with 401. An object that is no readable
// event is returned in Batch.Invalid.
func (s *Resend) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if s.wh != nil {
		if err := s.verify(r, body); err != nil {
			return Batch{}, err
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	return batchOf(resendRead(body, r.Header.Get(ResendIDHeader), receivedAt)), nil
}

func (s *Resend) verify(r *http.Request, body []byte) error {
	id, ts, sig := r.Header.Get(ResendIDHeader), r.Header.Get(ResendTimestampHeader), r.Header.Get(ResendSignatureHeader)
	if id == "" || ts == "" || sig == "" {
		return unauthorized("the Svix headers %s, %s and %s are required", ResendIDHeader, ResendTimestampHeader, ResendSignatureHeader)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("%s: not a Unix time", ResendTimestampHeader)
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if d := now.Sub(time.Unix(secs, 0)); d > ResendTolerance || d < -ResendTolerance {
		return unauthorized("%s: %s away from now, more than %s", ResendTimestampHeader, d.Round(time.Second), ResendTolerance)
	}
	// The library verifies the Standard Webhooks headers, Svix's under other names;
	// its own clock check is replaced by the one above, which tests can drive.
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, ts)
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	if s.wh.VerifyIgnoringTimestamp(body, h) != nil {
		return unauthorized("bad %s", ResendSignatureHeader)
	}
	return nil
}

func resendRead(body []byte, svixID string, receivedAt time.Time) (message.Event, error) {
	var e resendEvent
	if err := decodeEvent(body, &e, ""); err != nil {
		return message.Event{}, err
	}
	if e.Type == "" {
		return message.Event{}, errors.New("type: is required")
	}
	var ts time.Time
	if e.CreatedAt != "" {
		var ok bool
		if ts, ok = parseTime(e.CreatedAt); !ok {
			return message.Event{}, errors.New("created_at: not an RFC 3339 time")
		}
	}
	t, rt, reason := resendType(&e)
	return newEvent(ProviderResend, resendTag(e.Data.Tags, DispatchIDKey), e.Data.EmailID, t, rt, svixID, ts, receivedAt,
		reason, reason+"\x00"+e.Data.Click.Link), nil
}

// resendType maps an event by the meaning Resend's event types page gives it
// (https://resend.com/docs/dashboard/webhooks/event-types), and returns its raw
// type and reason. email.bounced is a permanent rejection ("the recipient's mail
// server permanently rejected the email"): Resend reports a bounce once it gave
// up, whatever its bounce type, as Amazon SES does — except for a suppressed
// address, which Resend never attempted.
func resendType(e *resendEvent) (message.EventType, string, string) {
	d := &e.Data
	switch e.Type {
	case "email.sent":
		return message.EventProcessed, e.Type, ""
	case "email.delivered":
		return message.EventDelivered, e.Type, ""
	case "email.delivery_delayed":
		return message.EventDeferred, e.Type, ""
	case "email.bounced":
		rt := rawType(e.Type, d.Bounce.Type, d.Bounce.SubType)
		reason := firstDiagnostic(append(jsonStringList(d.Bounce.DiagnosticCode), d.Bounce.Message)...)
		if resendSuppressed[d.Bounce.SubType] {
			return message.EventAborted, rt, reason
		}
		return message.EventBounced, rt, reason
	case "email.failed":
		return message.EventAborted, e.Type, d.Failed.Reason
	case "email.suppressed":
		return message.EventAborted, rawType(e.Type, d.Suppressed.Type), firstNonEmpty(d.Suppressed.Message, d.Suppressed.Type)
	case "email.opened":
		return message.EventOpen, e.Type, ""
	case "email.clicked":
		return message.EventClick, e.Type, ""
	case "email.complained":
		return message.EventComplaint, e.Type, ""
	}
	// email.scheduled (dispatchflow schedules nothing), email.received (inbound
	// mail), contact.*, domain.*, and names Resend adds later.
	return message.EventUnknown, e.Type, ""
}

// resendTag returns the value of the tag name in tags: an object of name → value,
// or an array of {"name", "value"}; "" when absent or of another form.
func resendTag(tags json.RawMessage, name string) string {
	var byName map[string]json.RawMessage
	if json.Unmarshal(tags, &byName) == nil {
		return jsonString(byName[name])
	}
	var list []struct {
		Name  string          `json:"name"`
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(tags, &list) == nil {
		for _, t := range list {
			if t.Name == name {
				return jsonString(t.Value)
			}
		}
	}
	return ""
}

// jsonStringList returns v's strings: v itself when it is a JSON string, the strings
// of v when it is an array; nothing for anything else.
func jsonStringList(v json.RawMessage) []string {
	if s := jsonString(v); s != "" {
		return []string{s}
	}
	var raw []json.RawMessage
	if json.Unmarshal(v, &raw) != nil {
		return nil
	}
	var out []string
	for _, r := range raw {
		if s := jsonString(r); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// SignResend sets Resend's (Svix's) headers of a request posting body with id at
// ts, signed with secret ("whsec_…"), as Resend signs its webhooks: what the
// resend intake verifies.
func SignResend(h http.Header, secret, id string, ts time.Time, body []byte) error {
	wh, err := newSvixWebhook(secret)
	if err != nil {
		return err
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		return err
	}
	h.Set(ResendIDHeader, id)
	h.Set(ResendTimestampHeader, fmt.Sprint(ts.Unix()))
	h.Set(ResendSignatureHeader, sig)
	return nil
}
