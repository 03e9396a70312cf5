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
	// the request's authenticity where the provider is configured to. Errors wrap
	// ErrBadRequest (naming the offending field) or ErrUnauthorized.
	//
	// Every event has a Type (EventUnknown for event names the normalizer does not
	// know, with RawType set), an ID and a Timestamp. An event whose provider
	// payload carries no dispatch_id has DispatchID "" and, when the payload names
	// the provider's message, MessageID set: the caller resolves it or counts the
	// event unmatched.
	Normalize(r *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error)
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

func (g Generic) Normalize(_ *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	body = bytes.TrimSpace(body)
	var raw []genericEvent
	isArray := len(body) > 0 && body[0] == '['
	if isArray {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("%w: malformed JSON: %v", ErrBadRequest, err)
		}
	} else {
		var one genericEvent
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, fmt.Errorf("%w: malformed JSON: %v", ErrBadRequest, err)
		}
		raw = []genericEvent{one}
	}
	events := make([]message.Event, 0, len(raw))
	for i, r := range raw {
		field := func(name string) string {
			if isArray {
				return fmt.Sprintf("[%d].%s", i, name)
			}
			return name
		}
		if strings.TrimSpace(r.DispatchID) == "" {
			return nil, fmt.Errorf("%w: %s: is required", ErrBadRequest, field("dispatch_id"))
		}
		t, err := parseGenericEvent(r.Event)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, field("event"), err)
		}
		ts := receivedAt
		if r.Timestamp != "" {
			if ts, err = time.Parse(time.RFC3339Nano, r.Timestamp); err != nil {
				return nil, fmt.Errorf("%w: %s: %q is not an RFC 3339 time", ErrBadRequest, field("timestamp"), r.Timestamp)
			}
		}
		id := r.EventID
		if id == "" {
			id = message.SyntheticID(r.DispatchID, t, ts, r.Reason)
		}
		events = append(events, message.Event{
			DispatchID: r.DispatchID, Provider: g.Provider, Type: t, ID: id,
			Timestamp: ts.UTC(), ReceivedAt: receivedAt.UTC(), Reason: r.Reason, RawType: r.Event,
		})
	}
	return events, nil
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
	return "", fmt.Errorf("unknown event %q (want one of %s)", s, strings.Join(names, ", "))
}
