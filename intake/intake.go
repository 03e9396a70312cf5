// Package intake turns ESP webhook requests into dispatchflow events: one
// Normalizer per provider format (New builds them all from a Config), each
// checking the request's authenticity where its provider is configured to.
// Normalizers parse and verify only; they never talk to Temporal, so the API can
// answer an ESP fast and the same code is testable without a server. The one that
// does I/O is SES's: it fetches SNS signing certificates and confirms subscriptions.
// docs/esp-inbound.md says how to point each provider at dispatchflow.
package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// ErrBadRequest marks problems with the request itself; the API answers 400.
var ErrBadRequest = errors.New("bad request")

// ErrUnauthorized marks requests whose authenticity could not be proved: a bad or
// missing signature, credential or token where one is configured. The API answers
// 401 and signals nothing.
var ErrUnauthorized = errors.New("unauthorized")

// RefusedError is a request that can never succeed, answered with the status code
// that makes its provider stop retrying (Mailgun 406, Postmark 403) rather than
// with 400, which they retry for hours. Err wraps ErrBadRequest or ErrUnauthorized.
type RefusedError struct {
	Status int
	Err    error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Normalizer parses one provider's webhook request.
type Normalizer interface {
	// Normalize returns the events of body, received at receivedAt, after checking
	// the request's authenticity where the provider is configured to. It fails
	// only for a request that is not the provider's at all: an authenticity that
	// cannot be proved (ErrUnauthorized), or a body that is not the provider's
	// format (ErrBadRequest: not JSON, not the JSON array or object the provider
	// posts, not its envelope). An event of the body that cannot be read — its
	// type missing, a field of the wrong type, a bad timestamp — is returned in
	// Batch.Invalid and the others are read all the same: providers retry a
	// refused request whole, for hours, and then drop every event in it.
	//
	// Every event has a Type (EventUnknown for event names the normalizer does not
	// know, with RawType set), an ID and a Timestamp. An event whose provider
	// payload carries no dispatch_id has DispatchID "" and, when the payload names
	// the provider's message, MessageID set: the caller resolves it or counts the
	// event unmatched.
	Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error)
}

// Batch is what one request carried: the events read, and those that could not be.
type Batch struct {
	Events  []message.Event
	Invalid []Invalid
}

// Invalid is an event of the batch that could not be read: its index in the body
// (0 for providers that post one event per request) and why, naming the field.
// Reason never quotes the payload, so that it can be logged.
type Invalid struct {
	Index  int
	Reason string
}

// Generic is dispatchflow's own event format, for ESPs without a normalizer yet,
// scripts and load tools, and the sandbox ESP. The body is one object or an array:
//
//	{"dispatch_id": "…", "event": "delivered", "timestamp": "2026-11-22T10:00:00Z",
//	 "reason": "…", "event_id": "…"}
//
// event is one of GenericEvents; timestamp (RFC 3339) defaults to the time of
// receipt; event_id is the dedupe key and, when absent, is derived from the
// dispatch_id, event, timestamp and reason.
type Generic struct {
	// Provider is recorded on the events ("generic", "sandbox").
	Provider string
}

// GenericEvents are the event names Generic accepts.
var GenericEvents = []message.EventType{
	message.EventProcessed, message.EventDelivered, message.EventBounced, message.EventAborted,
	message.EventDeferred, message.EventOpen, message.EventClick,
}

type genericEvent struct {
	DispatchID string `json:"dispatch_id"`
	Event      string `json:"event"`
	Timestamp  string `json:"timestamp"`
	Reason     string `json:"reason"`
	EventID    string `json:"event_id"`
}

func (g Generic) Normalize(_ *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	read := func(raw json.RawMessage) (message.Event, error) { return g.event(raw, receivedAt) }
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return readArray(body, read)
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	return batchOf(read(body)), nil
}

// event reads one generic event.
func (g Generic) event(raw json.RawMessage, receivedAt time.Time) (message.Event, error) {
	var r genericEvent
	if err := decodeEvent(raw, &r, ""); err != nil {
		return message.Event{}, err
	}
	if strings.TrimSpace(r.DispatchID) == "" {
		return message.Event{}, errors.New("dispatch_id: is required")
	}
	t, err := parseGenericEvent(r.Event)
	if err != nil {
		return message.Event{}, fmt.Errorf("event: %w", err)
	}
	ts := receivedAt
	if r.Timestamp != "" {
		if ts, err = time.Parse(time.RFC3339Nano, r.Timestamp); err != nil {
			return message.Event{}, errors.New("timestamp: not an RFC 3339 time")
		}
	}
	id := r.EventID
	if id == "" {
		id = message.SyntheticID(r.DispatchID, t, ts, r.Reason)
	}
	return message.Event{
		DispatchID: r.DispatchID, Provider: g.Provider, Type: t, ID: id,
		Timestamp: ts.UTC(), ReceivedAt: receivedAt.UTC(), Reason: r.Reason, RawType: r.Event,
	}.Bounded(), nil
}

func parseGenericEvent(s string) (message.EventType, error) {
	if s == "" {
		return "", errors.New("is required")
	}
	for _, t := range GenericEvents {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, len(GenericEvents))
	for i, t := range GenericEvents {
		names[i] = string(t)
	}
	// The name is not quoted back: reasons are logged, payloads never are.
	return "", fmt.Errorf("unknown event (want one of %s)", strings.Join(names, ", "))
}
