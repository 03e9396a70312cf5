package intake

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// DispatchIDKey is the name under which dispatchflow's outbound senders attach the
// dispatch_id to a message (SendGrid custom_args, Mailgun v: variables, Postmark
// Metadata, SES message tags), and under which the webhooks bring it back.
const DispatchIDKey = "dispatch_id"

// newEvent builds an event with the fields every normalizer fills in the same way.
// ts defaults to receivedAt; id defaults to a synthetic key derived from the
// message (dispatch_id, else the provider's message id), the raw event name, the
// provider's timestamp (when it gave one) and extra, whatever else tells two
// events of the same kind apart (a bounce code, a click's URL); every string is
// bounded (message.Event.Bounded).
func newEvent(provider, dispatchID, messageID string, t message.EventType, rawType, id string, ts, receivedAt time.Time, reason, extra string) message.Event {
	if id == "" {
		key := dispatchID
		if key == "" {
			key = "message:" + messageID
		}
		id = message.SyntheticID(provider+"\x00"+key, t, ts, rawType+"\x00"+extra)
	}
	if ts.IsZero() {
		ts = receivedAt
	}
	return message.Event{
		DispatchID: dispatchID, Provider: provider, Type: t, ID: id,
		Timestamp: ts.UTC(), ReceivedAt: receivedAt.UTC(), Reason: reason, RawType: rawType,
		MessageID: messageID,
	}.Bounded()
}

// unixTime converts seconds since the epoch (with a fraction to the microsecond,
// as Mailgun sends them) to a time; zero, negative and absurd values are the zero time.
func unixTime(sec float64) time.Time {
	if !(sec > 0 && sec < 1e11) {
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(sec * 1e6))).UTC()
}

// eventTime reads a provider's Unix timestamp in seconds: absent is the zero time
// (newEvent then stamps the time of receipt); present, it must be plausible.
func eventTime(field string, sec *float64) (time.Time, error) {
	if sec == nil {
		return time.Time{}, nil
	}
	t := unixTime(*sec)
	if t.IsZero() {
		return t, fmt.Errorf("%s: not a Unix time", field)
	}
	return t, nil
}

// parseTime reads the RFC 3339 times of most providers; ok is false for anything else.
func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// equalSecret compares a presented credential with the configured one in
// constant time, whatever their lengths.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// jsonString returns v as a string when it is a JSON string, else "".
func jsonString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// jsonText returns a JSON string's value or a number's text ("25" for "25" and 25).
func jsonText(v json.RawMessage) string {
	if s := jsonString(v); s != "" {
		return s
	}
	if _, err := strconv.ParseFloat(string(v), 64); err == nil {
		return string(v)
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// rawType joins a provider's event name and the subtypes its payload has, in
// order, with "/": message.Event.RawType.
func rawType(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "/")
}

// diagnostic is the reason of a failed delivery as the receiving server gave it:
// text, preceded by the SMTP reply code and the enhanced status code where text
// does not already carry them ("550 5.1.1 user unknown"). Codes outside the SMTP
// reply range (Mailgun's 605 for a suppressed address, Sarbacane's -1) are left out.
func diagnostic(code, enhanced, text string) string {
	text = strings.TrimSpace(text)
	if enhanced = strings.TrimSpace(enhanced); enhanced != "" && !strings.Contains(text, enhanced) {
		if reply, rest, ok := strings.Cut(text, " "); ok && isReplyCode(reply) {
			text = reply + " " + enhanced + " " + rest
		} else {
			text = strings.TrimSpace(enhanced + " " + text)
		}
	}
	if isReplyCode(code) && !strings.Contains(text, code) {
		text = strings.TrimSpace(code + " " + text)
	}
	return text
}

func isReplyCode(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && len(s) == 3 && n >= 200 && n <= 599
}

// boilerplates start the human-readable part of bounce notices: text written for
// a person reading the notice, which says nothing of why the message failed.
// Mailgun, for one, reports a delayed bounce with Postfix's "I'm sorry to have to
// inform you…" as its description and the SMTP answer as its message.
var boilerplates = []string{
	"I'm sorry to have to inform you",
	"This is the mail system at host",
	"This is an automatically generated Delivery Status Notification",
}

// firstDiagnostic returns the first of texts that is neither empty nor a bounce
// notice's boilerplate.
func firstDiagnostic(texts ...string) string {
	for _, t := range texts {
		t = strings.TrimSpace(t)
		if t == "" || hasAnyPrefix(boilerplates, t) {
			continue
		}
		return t
	}
	return ""
}

func hasAnyPrefix(prefixes []string, s string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// checkObject refuses a body that is not one JSON object: for providers that post
// one event per request, what is not their format at all.
func checkObject(body []byte) error {
	var m map[string]json.RawMessage
	err := json.Unmarshal(body, &m)
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &syntaxErr):
		return malformed(err)
	case err != nil || m == nil:
		return badRequest("not a JSON object")
	}
	return nil
}

// readArray reads body, a JSON array of events, with read: the events read, and
// those that could not be, by index. Only a body that is not a JSON array is an
// error.
func readArray(body []byte, read func(json.RawMessage) (message.Event, error)) (Batch, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Batch{}, malformed(err)
	}
	var b Batch
	for i, r := range raw {
		e, err := read(r)
		if err != nil {
			b.Invalid = append(b.Invalid, Invalid{Index: i, Reason: err.Error()})
			continue
		}
		b.Events = append(b.Events, e)
	}
	return b, nil
}

// batchOf is the batch of a body of one event: e, or why it could not be read.
func batchOf(e message.Event, err error) Batch {
	if err != nil {
		return Batch{Invalid: []Invalid{{Index: 0, Reason: err.Error()}}}
	}
	return Batch{Events: []message.Event{e}}
}

// decodeEvent decodes one event, raw, into v, a pointer to a struct; at is the
// event's path in the body ("" at the top, "event-data", "Message"). Its error
// names the field that could not be decoded and quotes nothing of raw.
func decodeEvent(raw []byte, v any, at string) error {
	in := func(field string) string {
		switch {
		case at == "":
			return field
		case field == "":
			return at
		}
		return at + "." + field
	}
	fail := func(field, why string) error {
		if f := in(field); f != "" {
			return errors.New(f + ": " + why)
		}
		return errors.New(why)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return fail("", "not a JSON object")
	}
	err := json.Unmarshal(raw, v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		got, _, _ := strings.Cut(typeErr.Value, " ") // "number 1.5": the kind only
		if typeErr.Field == "" {
			return fail("", "a JSON "+got+", not an object")
		}
		return fail(typeErr.Field, "a JSON "+got+" where "+jsonKind(typeErr.Type)+" is expected")
	case errors.As(err, &syntaxErr):
		return fail("", "malformed JSON")
	}
	return fail("", "a field has a value of the wrong form")
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnauthorized}, args...)...)
}

// malformed describes a JSON decoding error without echoing the body.
func malformed(err error) error {
	return badRequest("malformed JSON: %v", err)
}

// trimAngles removes the angle brackets around a Message-ID.
func trimAngles(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
}
