package intake

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// MandrillSignatureHeader carries Mandrill's signature of a webhook request.
const MandrillSignatureHeader = "X-Mandrill-Signature"

// MandrillTestKey is the key Mandrill signs its URL check with: when a webhook is
// added, Mandrill checks its URL with a HEAD request and, when that does not
// answer 200, POSTs mandrill_events=[] "signed with a generic key (with the value
// 'test-webhook')" (Mandrill, Introduction to Webhooks,
// https://mandrill.zendesk.com/hc/en-us/articles/205583217). dispatchflow's
// intake routes answer POST only, so Mandrill makes that POST; it carries no
// event, and is accepted.
const MandrillTestKey = "test-webhook"

// Mandrill normalizes the webhooks of Mailchimp Transactional (Mandrill): a
// form-encoded POST whose one parameter, mandrill_events, is a JSON array of up
// to 1,000 events (https://mandrill.zendesk.com/hc/en-us/articles/360038740594).
// Message events are told apart by "event" (send, deferral, hard_bounce,
// soft_bounce, open, click, spam, unsub, reject); sync events, by "type"
// (whitelist, blacklist). The dispatch_id comes back in msg.metadata (the send's
// "metadata", or the SMTP header X-MC-Metadata); MessageID is Mandrill's message
// id, "_id". Mandrill has no event id: events get a synthetic key from the
// message, the event, its time and its URL or diagnostic.
//
// With a Key, requests must carry X-Mandrill-Signature: base64 of HMAC-SHA1(key,
// URL + each POST parameter's name and value, sorted by name), URL being the
// webhook URL exactly as configured at Mandrill (How to Authenticate Webhook
// Requests, https://mandrill.zendesk.com/hc/en-us/articles/205583257). The
// signature covers no time: a captured request can be posted again, but it
// carries only the events it carried, which their messages drop as duplicates.
type Mandrill struct {
	// Key is the webhook's authentication key; "" accepts unsigned requests.
	Key string
	// URL is the webhook URL as configured at Mandrill, which it signs.
	URL string
}

type mandrillEvent struct {
	Event  string   `json:"event"`
	Type   string   `json:"type"`   // sync events
	Action string   `json:"action"` // sync events
	ID     string   `json:"_id"`
	TS     *float64 `json:"ts"`
	URL    string   `json:"url"`
	Msg    struct {
		ID                string          `json:"_id"`
		State             string          `json:"state"`
		Metadata          json.RawMessage `json:"metadata"`
		Diag              string          `json:"diag"`
		BounceDescription string          `json:"bounce_description"`
		SMTPEvents        []struct {
			Type string `json:"type"`
			Diag string `json:"diag"`
		} `json:"smtp_events"`
	} `json:"msg"`
}

// mandrillTypes maps Mandrill's message events by its meaning of them
// (Introduction to Webhooks; About Bounces,
// https://mandrill.zendesk.com/hc/en-us/articles/205582937):
//
//   - send, "message has been sent successfully", is delivered: Mandrill has no
//     other delivery event, and a message it sent is one the receiving server
//     accepted — a refusal is a deferral or a bounce (inference).
//   - deferral: the receiving server asked Mandrill to slow down or retry —
//     deferred.
//   - hard_bounce and soft_bounce are bounced: "After a bounce occurs for a
//     recipient email address, Mandrill stops attempting delivery of the email."
//   - reject: "Mandrill will not attempt to deliver" (a rejection-list address, a
//     rule) — aborted.
//   - open, click, spam, unsub: open, click, complaint, unsubscribe.
//
// Sync events (whitelist, blacklist) and inbound messages are about no message
// sent: unknown.
var mandrillTypes = map[string]message.EventType{
	"send":        message.EventDelivered,
	"deferral":    message.EventDeferred,
	"hard_bounce": message.EventBounced,
	"soft_bounce": message.EventBounced,
	"reject":      message.EventAborted,
	"open":        message.EventOpen,
	"click":       message.EventClick,
	"spam":        message.EventComplaint,
	"unsub":       message.EventUnsubscribe,
}

// Normalize checks the signature, then reads mandrill_events. A body that is not
// a form with mandrill_events holding a JSON array is answered 400 (Mandrill
// retries failed batches; none of its answers stops that); a bad or missing
// signature, 401. An event of the array that cannot be read is returned in
// Batch.Invalid.
func (m *Mandrill) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// ParseQuery's error quotes the body: not repeated.
		return Batch{}, badRequest("not a form-encoded body (mandrill_events=<JSON array>)")
	}
	for k, vs := range form {
		if len(vs) > 1 {
			if k == "mandrill_events" {
				return Batch{}, badRequest("mandrill_events: given more than once")
			}
			return Batch{}, badRequest("a form parameter is given more than once")
		}
	}
	events, ok := form["mandrill_events"]
	if m.Key != "" {
		if err := m.verify(r, form); err != nil {
			// Mandrill's URL check: no event, signed with the generic key.
			if ok && strings.TrimSpace(events[0]) == "[]" && m.signedWith(r, form, MandrillTestKey) {
				return Batch{}, nil
			}
			return Batch{}, err
		}
	}
	if !ok {
		return Batch{}, badRequest("mandrill_events: is required")
	}
	list := strings.TrimSpace(events[0])
	if !strings.HasPrefix(list, "[") {
		return Batch{}, badRequest("mandrill_events: not a JSON array")
	}
	b, err := readArray([]byte(list), func(raw json.RawMessage) (message.Event, error) {
		return mandrillRead(raw, receivedAt)
	})
	if err != nil {
		return Batch{}, badRequest("mandrill_events: not a JSON array")
	}
	return b, nil
}

func (m *Mandrill) verify(r *http.Request, form url.Values) error {
	if r.Header.Get(MandrillSignatureHeader) == "" {
		return unauthorized("%s is required", MandrillSignatureHeader)
	}
	if !m.signedWith(r, form, m.Key) {
		return unauthorized("bad %s (it must be made for the webhook URL configured at Mandrill)", MandrillSignatureHeader)
	}
	return nil
}

// signedWith reports whether the request's signature is Mandrill's with key.
func (m *Mandrill) signedWith(r *http.Request, form url.Values, key string) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Header.Get(MandrillSignatureHeader)))
	if err != nil {
		return false
	}
	return hmac.Equal(got, mandrillMAC(key, m.URL, form))
}

// mandrillMAC is HMAC-SHA1(key, url + each parameter's name and value, sorted by
// name).
func mandrillMAC(key, webhookURL string, form url.Values) []byte {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write([]byte(webhookURL))
	for _, k := range names {
		mac.Write([]byte(k))
		for _, v := range form[k] {
			mac.Write([]byte(v))
		}
	}
	return mac.Sum(nil)
}

func mandrillRead(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var e mandrillEvent
	if err := decodeEvent(raw, &e, ""); err != nil {
		return message.Event{}, err
	}
	name, rt := e.Event, e.Event
	if name == "" && e.Type != "" { // a sync event
		name, rt = e.Type, rawType(e.Type, e.Action)
	}
	if name == "" {
		return message.Event{}, errors.New("event: is required")
	}
	ts, err := eventTime("ts", e.TS)
	if err != nil {
		return message.Event{}, err
	}
	t, ok := mandrillTypes[e.Event]
	if !ok {
		t = message.EventUnknown
	}
	var reason string
	switch t {
	case message.EventBounced:
		// diag is the receiving server's answer; bounce_description, Mandrill's
		// class of it ("bad_mailbox").
		reason = firstNonEmpty(firstDiagnostic(e.Msg.Diag), e.Msg.BounceDescription)
		rt = rawType(e.Event, e.Msg.BounceDescription)
	case message.EventDeferred:
		for i := len(e.Msg.SMTPEvents) - 1; i >= 0 && reason == ""; i-- {
			reason = firstDiagnostic(e.Msg.SMTPEvents[i].Diag)
		}
		reason = firstNonEmpty(reason, firstDiagnostic(e.Msg.Diag))
	case message.EventAborted:
		reason = firstNonEmpty(firstDiagnostic(e.Msg.Diag), e.Msg.BounceDescription, e.Msg.State)
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(e.Msg.Metadata, &meta) // absent, or [] as Mandrill may write an empty one: no dispatch_id
	return newEvent(ProviderMandrill, jsonString(meta[DispatchIDKey]), firstNonEmpty(e.ID, e.Msg.ID), t, rt, "",
		ts, receivedAt, reason, e.URL+"\x00"+e.Msg.Diag), nil
}

// SignMandrill returns the X-Mandrill-Signature of a request posting form to
// webhookURL, signed with key: what Mandrill verifies.
func SignMandrill(key, webhookURL string, form url.Values) string {
	return base64.StdEncoding.EncodeToString(mandrillMAC(key, webhookURL, form))
}

// checkMandrillURL refuses a webhook key without the URL Mandrill signs, and a
// URL that is not an absolute http(s) one. The URL is never quoted: it may hold
// basic-auth credentials.
func checkMandrillURL(key, webhookURL string) error {
	if webhookURL == "" {
		if key != "" {
			return fieldError("MandrillWebhookURL", "required with the webhook key: Mandrill signs the URL it posts to")
		}
		return nil
	}
	u, err := url.Parse(webhookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldError("MandrillWebhookURL", "not an absolute http(s) URL")
	}
	return nil
}
