package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// SparkPost normalizes SparkPost's event webhooks: a JSON array of
// {"msys": {<class>: {…}}}, one event each, <class> being message_event,
// track_event, gen_event, unsubscribe_event or relay_event (SparkPost/support-docs
// content/docs/tech-resources/webhook-event-reference.md). An element with an
// empty "msys" is SparkPost's "ping" — the test batch [{"msys":{}}] it posts
// when a webhook is created or validated (SparkPost/developers.sparkpost.com
// content/api/webhooks.apib) — and carries no event. The dispatch_id comes back
// in rcpt_meta (the transmission's metadata, merged with the recipient's);
// event_id is the dedupe key; transmission_id is the message id (what the
// transmissions API answers as results.id; one transmission per message).
//
// SparkPost signs nothing; a webhook authenticates with basic auth or OAuth 2
// (auth_type): with credentials configured, requests must carry them as HTTP
// basic auth (auth_type "basic", auth_credentials).
type SparkPost struct {
	// Username and Password are the expected basic-auth credentials; "" accepts
	// requests without any.
	Username, Password string
}

type sparkPostEvent struct {
	Type           string          `json:"type"`
	EventID        json.RawMessage `json:"event_id"`
	TransmissionID json.RawMessage `json:"transmission_id"`
	Timestamp      json.RawMessage `json:"timestamp"`
	BounceClass    json.RawMessage `json:"bounce_class"`
	ErrorCode      json.RawMessage `json:"error_code"`
	RawReason      string          `json:"raw_reason"`
	Reason         string          `json:"reason"`
	RcptMeta       json.RawMessage `json:"rcpt_meta"`
	TargetLinkURL  string          `json:"target_link_url"`
}

// sparkPostTypes maps the event types by SparkPost's descriptions of them
// (webhook-event-reference.md, quoted in docs/esp-inbound.md). bounce and
// out_of_band are refined by their bounce class (sparkPostBounce).
//
// initial_open and amp_initial_open ("rendering a tracking pixel at the top of
// the message") stay unknown: SparkPost reports the same rendering as an open
// too, and counting both would post every open twice (anymail's reading).
var sparkPostTypes = map[string]message.EventType{
	"injection":            message.EventProcessed,
	"delivery":             message.EventDelivered,
	"bounce":               message.EventBounced,
	"out_of_band":          message.EventBounced,
	"delay":                message.EventDeferred,
	"policy_rejection":     message.EventAborted,
	"generation_failure":   message.EventAborted,
	"generation_rejection": message.EventAborted,
	"spam_complaint":       message.EventComplaint,
	"open":                 message.EventOpen,
	"amp_open":             message.EventOpen,
	"click":                message.EventClick,
	"amp_click":            message.EventClick,
	"list_unsubscribe":     message.EventUnsubscribe,
	"link_unsubscribe":     message.EventUnsubscribe,
}

// sparkPostBounceClasses refine a bounce or out-of-band bounce by its bounce
// classification code (SparkPost/support-docs
// content/docs/deliverability/bounce-classification-codes.md):
//
//   - 25 Admin Failure, "The message was failed by SparkPost's configured
//     policies" (a suppression list): SparkPost never attempted it — aborted.
//   - 60 Auto-Reply, 80 Subscribe, 100 Challenge-Response: a reply to the
//     message, not its failure — unknown.
//   - 90 Unsubscribe, "an unsubscribe request" — unsubscribe.
//
// Every other class is the message's end, bounced: SparkPost retries temporary
// failures itself and reports them as delay; "soft" classes say the address may
// work again later, not that this message will.
var sparkPostBounceClasses = map[string]message.EventType{
	"25":  message.EventAborted,
	"60":  message.EventUnknown,
	"80":  message.EventUnknown,
	"100": message.EventUnknown,
	"90":  message.EventUnsubscribe,
}

// Normalize answers missing or wrong credentials with 401 and a body that is not
// a JSON array with 400 (SparkPost retries every answer but a 200 for 8 hours).
// An element that is no readable event is returned in Batch.Invalid; a ping
// yields nothing.
func (s *SparkPost) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if err := checkBasicAuth(r, s.Username, s.Password); err != nil {
		return Batch{}, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Batch{}, malformed(err)
	}
	if raw == nil {
		return Batch{}, badRequest("not a JSON array")
	}
	var b Batch
	for i, el := range raw {
		e, ok, err := sparkPostRead(el, receivedAt)
		switch {
		case err != nil:
			b.Invalid = append(b.Invalid, Invalid{Index: i, Reason: err.Error()})
		case ok:
			b.Events = append(b.Events, e)
		}
	}
	return b, nil
}

// sparkPostRead reads one element of the array: its event, or ok false for a ping.
func sparkPostRead(raw json.RawMessage, receivedAt time.Time) (message.Event, bool, error) {
	var env struct {
		Msys map[string]json.RawMessage `json:"msys"`
	}
	if err := decodeEvent(raw, &env, ""); err != nil {
		return message.Event{}, false, err
	}
	switch {
	case env.Msys == nil:
		return message.Event{}, false, errors.New("msys: is required")
	case len(env.Msys) == 0:
		return message.Event{}, false, nil // a ping
	case len(env.Msys) > 1:
		return message.Event{}, false, fmt.Errorf("msys: %d event classes, want one", len(env.Msys))
	}
	var class string
	for k := range env.Msys {
		class = k
	}
	at := "msys." + sparkPostClassName(class)
	var e sparkPostEvent
	if err := decodeEvent(env.Msys[class], &e, at); err != nil {
		return message.Event{}, false, err
	}
	if e.Type == "" {
		return message.Event{}, false, errors.New(at + ".type: is required")
	}
	ts, err := sparkPostTime(e.Timestamp)
	if err != nil {
		return message.Event{}, false, errors.New(at + ".timestamp: " + err.Error())
	}
	t, ok := sparkPostTypes[e.Type]
	if !ok {
		t = message.EventUnknown
	}
	bounceClass := jsonText(e.BounceClass)
	if t == message.EventBounced {
		if refined, ok := sparkPostBounceClasses[bounceClass]; ok {
			t = refined
		}
	}
	var reason string
	switch t {
	case message.EventBounced, message.EventDeferred, message.EventAborted:
		// raw_reason is the receiving server's answer, exactly; reason its
		// canonical form (addresses masked).
		reason = diagnostic(jsonText(e.ErrorCode), "", firstDiagnostic(e.RawReason, e.Reason))
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(e.RcptMeta, &meta) // an absent or non-object rcpt_meta carries no dispatch_id
	return newEvent(ProviderSparkPost, jsonString(meta[DispatchIDKey]), jsonText(e.TransmissionID), t, rawType(e.Type, bounceClass),
		jsonText(e.EventID), ts, receivedAt, reason, e.TargetLinkURL), true, nil
}

// sparkPostClasses are the event classes SparkPost documents, named in the
// reasons of invalid events; another class is named "<class>" (the key comes from
// the payload, which is never quoted).
var sparkPostClasses = map[string]bool{"message_event": true, "track_event": true, "gen_event": true,
	"unsubscribe_event": true, "relay_event": true, "ab_test_event": true, "ingest_event": true}

func sparkPostClassName(class string) string {
	if sparkPostClasses[class] {
		return class
	}
	return "<class>"
}

// sparkPostTime reads an event's timestamp: Unix seconds, as a string (the
// documented "1454442600") or a number, or RFC 3339 (as the Events API, and some
// webhook events, write it: "2018-10-11T23:24:45.000+00:00"). Absent: the zero
// time.
func sparkPostTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	s := jsonText(raw)
	if sec, err := strconv.ParseFloat(s, 64); err == nil {
		if t := unixTime(sec); !t.IsZero() {
			return t, nil
		}
		return time.Time{}, errors.New("not a Unix time")
	}
	if t, ok := parseTime(strings.TrimSpace(s)); ok {
		return t, nil
	}
	return time.Time{}, errors.New("not a Unix time nor an RFC 3339 time")
}
