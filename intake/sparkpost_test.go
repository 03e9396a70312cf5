package intake

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// The events of testdata/sparkpost_events.json, in order (its last element, a
// ping, carries none). Sources (testdata/README.md): anymail/django-anymail
// tests/test_sparkpost_webhooks.py — "Full event from SparkPost sample events API"
// and real events — and the sample event of SparkPost's Events API
// (SparkPost/developers.sparkpost.com content/api/events.apib).
var sparkPostWant = []want{
	// 0: injection, SparkPost's sample: accepted.
	{Type: message.EventProcessed, RawType: "injection", DispatchID: seedDispatchID, MessageID: "65832150921904138",
		ID: "92356927693813856", Timestamp: time.Unix(1454442600, 0).UTC()},
	// 1: delivery: "Remote MTA acknowledged receipt of a message."
	{Type: message.EventDelivered, RawType: "delivery", DispatchID: seedDispatchID, MessageID: "65832150921904138",
		ID: "92356927693813857"},
	// 2: bounce, class 10 Invalid Recipient; the reason is raw_reason.
	{Type: message.EventBounced, RawType: "bounce/10", DispatchID: seedDispatchID, MessageID: "84345317650824116",
		ID: "84345317653491230", Reason: "550 5.1.1 <bounce@example.com>: Recipient address rejected: User unknown",
		Timestamp: time.Unix(1464824548, 0).UTC()},
	// 3: delay, class 21 DNS Failure: SparkPost retries.
	{Type: message.EventDeferred, RawType: "delay/21", DispatchID: seedDispatchID, MessageID: "84345317650824116",
		ID: "84345317653675522", Reason: "454 4.4.4 [internal] no MX or A for domain"},
	// 4: generation_rejection, a suppressed recipient: never attempted.
	{Type: message.EventAborted, RawType: "generation_rejection", DispatchID: seedDispatchID, MessageID: "102360394387646691",
		ID: "102360394390563734", Reason: "554 5.7.1 recipient address suppressed due to customer policy"},
	// 5: generation_failure, a template that did not render (its timestamp RFC 3339).
	{Type: message.EventAborted, RawType: "generation_failure", DispatchID: seedDispatchID, MessageID: "139013368081177607",
		ID: "139013368081587254", Reason: "554 5.3.3 [internal] Error while rendering part html: ...",
		Timestamp: time.Date(2018, 10, 11, 23, 24, 45, 0, time.UTC)},
	// 6: list_unsubscribe.
	{Type: message.EventUnsubscribe, RawType: "list_unsubscribe", DispatchID: seedDispatchID, MessageID: "84345993965073285",
		ID: "66331590532986193"},
	// 7: click, the Events API's sample in a track_event.
	{Type: message.EventClick, RawType: "click", DispatchID: seedDispatchID, MessageID: "65832150921904138",
		ID: "92356927693813858", Timestamp: time.Date(2016, 4, 18, 14, 25, 7, 0, time.UTC)},
	// 8: anymail's open: no rcpt_meta, no transmission_id, no event_id — an event
	// of no message, with a synthetic key, stamped with its receipt.
	{Type: message.EventOpen, RawType: "open", Timestamp: receivedAt},
}

func TestSparkPost(t *testing.T) {
	t.Parallel()
	body := fixture(t, "sparkpost_events.json")
	b, err := (&SparkPost{}).Normalize(post(body), body, receivedAt)
	if err != nil || len(b.Invalid) != 0 || len(b.Events) != len(sparkPostWant) {
		t.Fatalf("got %d events, invalid %+v, %v; want %d events (the ping carries none)", len(b.Events), b.Invalid, err, len(sparkPostWant))
	}
	for i, e := range b.Events {
		checkEvent(t, i, e, ProviderSparkPost, sparkPostWant[i])
	}
	checkInvariants(t, ProviderSparkPost, b.Events)
}

// SparkPost's test batch, posted when a webhook is created or validated, is
// answered with nothing to do.
func TestSparkPostPing(t *testing.T) {
	t.Parallel()
	body := []byte(`[{"msys":{}}]`) // SparkPost/developers.sparkpost.com content/api/webhooks.apib, "Sample Batch"
	r := post(body)
	r.SetBasicAuth("u", "p")
	b, err := (&SparkPost{Username: "u", Password: "p"}).Normalize(r, body, receivedAt)
	if err != nil || len(b.Events)+len(b.Invalid) != 0 {
		t.Fatalf("ping: got %+v, %v; want nothing and no error", b, err)
	}
}

// Every event type SparkPost documents, by its meaning; bounces and out-of-band
// bounces refined by their bounce class.
func TestSparkPostTypes(t *testing.T) {
	t.Parallel()
	bounce := sparkPostEventOf(t, 2)
	for _, tt := range []struct {
		typ, class string
		want       message.EventType
	}{
		{"out_of_band", "10", message.EventBounced}, // a delayed bounce, after delivery
		{"bounce", "1", message.EventBounced},       // Undetermined
		{"bounce", "22", message.EventBounced},      // Mailbox Full, once SparkPost gave up
		{"bounce", "50", message.EventBounced},      // Mail Block
		{"bounce", "25", message.EventAborted},      // Admin Failure: SparkPost's own policy
		{"out_of_band", "25", message.EventAborted},
		{"bounce", "60", message.EventUnknown},  // Auto-Reply
		{"bounce", "80", message.EventUnknown},  // Subscribe
		{"bounce", "100", message.EventUnknown}, // Challenge-Response
		{"bounce", "90", message.EventUnsubscribe},
		{"policy_rejection", "", message.EventAborted},
		{"spam_complaint", "", message.EventComplaint},
		{"open", "", message.EventOpen},
		{"amp_open", "", message.EventOpen},
		{"initial_open", "", message.EventUnknown}, // reported beside the open of the same rendering
		{"amp_initial_open", "", message.EventUnknown},
		{"amp_click", "", message.EventClick},
		{"link_unsubscribe", "", message.EventUnsubscribe},
		{"relay_delivery", "", message.EventUnknown},
		{"sms_status", "", message.EventUnknown},
	} {
		fields := map[string]any{"type": tt.typ, "bounce_class": nil}
		if tt.class != "" {
			fields["bounce_class"] = tt.class
		}
		body := sparkPostBatch(t, "message_event", edit(t, bounce, fields))
		b, err := (&SparkPost{}).Normalize(post(body), body, receivedAt)
		if err != nil || len(b.Events) != 1 {
			t.Fatalf("%s/%s: %+v, %v", tt.typ, tt.class, b, err)
		}
		if got := b.Events[0]; got.Type != tt.want || got.RawType != rawType(tt.typ, tt.class) || got.DispatchID != seedDispatchID {
			t.Errorf("%s/%s: got %s %q dispatch_id %q, want %s", tt.typ, tt.class, got.Type, got.RawType, got.DispatchID, tt.want)
		}
	}
}

// The bounce class may come as a number, and the timestamp as one too.
func TestSparkPostNumbers(t *testing.T) {
	t.Parallel()
	body := sparkPostBatch(t, "message_event", edit(t, sparkPostEventOf(t, 2), map[string]any{"bounce_class": 25, "timestamp": 1464824548}))
	b, err := (&SparkPost{}).Normalize(post(body), body, receivedAt)
	if err != nil || len(b.Events) != 1 || b.Events[0].Type != message.EventAborted || !b.Events[0].Timestamp.Equal(time.Unix(1464824548, 0)) {
		t.Fatalf("got %+v, %v; want one aborted event at 1464824548", b, err)
	}
}

// sparkPostEventOf returns the event object of element i of the fixture.
func sparkPostEventOf(t *testing.T, i int) []byte {
	t.Helper()
	var env struct {
		Msys map[string]json.RawMessage `json:"msys"`
	}
	if err := json.Unmarshal(elements(t, fixture(t, "sparkpost_events.json"))[i], &env); err != nil {
		t.Fatal(err)
	}
	for _, e := range env.Msys {
		return e
	}
	t.Fatalf("element %d has no event", i)
	return nil
}

// sparkPostBatch wraps event objects of class in SparkPost's batch.
func sparkPostBatch(t *testing.T, class string, events ...[]byte) []byte {
	t.Helper()
	var all []map[string]map[string]json.RawMessage
	for _, e := range events {
		all = append(all, map[string]map[string]json.RawMessage{"msys": {class: e}})
	}
	b, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SparkPost retries every answer but a 200, for 8 hours: a body that is not a
// JSON array is a plain 400.
func TestSparkPostRefusesNotJSON(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"msys":{}}`, `[{"msys":`, `null`, `"x"`, ``} {
		got, err := (&SparkPost{}).Normalize(post([]byte(body)), []byte(body), receivedAt)
		var refused *RefusedError
		if !errors.Is(err, ErrBadRequest) || errors.As(err, &refused) || len(got.Events)+len(got.Invalid) > 0 {
			t.Errorf("%q: got %+v, %v; want a bad request", body, got, err)
		}
	}
}

// An element that cannot be read is set aside, named by its field and index,
// never quoted; the others of the batch are read.
func TestSparkPostInvalidEvent(t *testing.T) {
	t.Parallel()
	good := sparkPostEventOf(t, 1)
	for _, tt := range []struct {
		name    string
		element string
		want    string
	}{
		{"no msys", `{"cust":{"id":"00000"}}`, "msys: is required"},
		{"msys not an object", `{"msys":"SECRET"}`, "msys: a JSON string where an object is expected"},
		{"two classes", `{"msys":{"message_event":{"type":"delivery"},"track_event":{"type":"open"}}}`, "msys: 2 event classes, want one"},
		{"no type", string(sparkPostBatchElement(t, "message_event", edit(t, good, map[string]any{"type": nil}))), "msys.message_event.type: is required"},
		{"bad timestamp", string(sparkPostBatchElement(t, "message_event", edit(t, good, map[string]any{"timestamp": "SECRET"}))),
			"msys.message_event.timestamp: not a Unix time nor an RFC 3339 time"},
		{"timestamp zero", string(sparkPostBatchElement(t, "track_event", edit(t, good, map[string]any{"timestamp": "0"}))),
			"msys.track_event.timestamp: not a Unix time"},
		{"type a number, unknown class", `{"msys":{"SECRET_event":{"type":5}}}`, "msys.<class>.type: a JSON number where a string is expected"},
		{"rcpt_meta a string is no dispatch_id, not an error", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.element == "" {
				body := sparkPostBatch(t, "message_event", edit(t, good, map[string]any{"rcpt_meta": "x"}))
				b, err := (&SparkPost{}).Normalize(post(body), body, receivedAt)
				if err != nil || len(b.Events) != 1 || b.Events[0].DispatchID != "" || b.Events[0].MessageID != "65832150921904138" {
					t.Fatalf("got %+v, %v; want the event, found by its transmission_id", b, err)
				}
				return
			}
			body := []byte(`[` + string(sparkPostBatchElement(t, "message_event", good)) + `,` + tt.element + `,{"msys":{}}]`)
			b, err := (&SparkPost{}).Normalize(post(body), body, receivedAt)
			if err != nil || len(b.Events) != 1 || len(b.Invalid) != 1 || b.Invalid[0].Index != 1 || b.Invalid[0].Reason != tt.want {
				t.Fatalf("got %+v, %v; want 1 event and element 1 invalid: %q", b, err, tt.want)
			}
			if strings.Contains(b.Invalid[0].Reason, "SECRET") {
				t.Errorf("the reason %q quotes the payload", b.Invalid[0].Reason)
			}
		})
	}
}

func sparkPostBatchElement(t *testing.T, class string, event []byte) []byte {
	t.Helper()
	return elements(t, sparkPostBatch(t, class, event))[0]
}
