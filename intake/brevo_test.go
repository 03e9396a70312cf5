package intake

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// brevoSent is the time of anymail's live captures: ts_epoch 1520363423000.
var brevoSent = time.Date(2018, 3, 6, 19, 10, 23, 0, time.UTC)

// The events of testdata/brevo_events.json, in order. Their sources
// (testdata/README.md): anymail/django-anymail tests/test_brevo_webhooks.py, whose
// payloads were "obtained through live testing" except where it says it guessed,
// and the examples of https://developers.brevo.com/docs/transactional-webhooks.
var brevoWant = []want{
	// 0: test_sent_event, a live capture: "request".
	{Type: message.EventProcessed, RawType: "request", DispatchID: seedDispatchID,
		MessageID: "<201803062010.27287306012@smtp-relay.mailin.fr>", Timestamp: brevoSent},
	// 1: test_delivered_event.
	{Type: message.EventDelivered, RawType: "delivered", DispatchID: seedDispatchID,
		MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>", Timestamp: brevoSent},
	// 2: test_hard_bounce (the reason's leading space as captured).
	{Type: message.EventBounced, RawType: "hard_bounce", DispatchID: seedDispatchID,
		MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>",
		Reason:    "RecipientError: 550 5.5.0 Requested action not taken: mailbox unavailable."},
	// 3: test_soft_bounce_event: Brevo gave up after 36 hours of deferrals.
	{Type: message.EventBounced, RawType: "soft_bounce", DispatchID: seedDispatchID,
		MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>", Reason: "undefined Unable to find MX of domain no-mx.example.com"},
	// 4: test_blocked: never attempted.
	{Type: message.EventAborted, RawType: "blocked", DispatchID: seedDispatchID,
		MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>", Reason: "blocked : due to blacklist user"},
	// 5: test_spam (a guess of anymail's).
	{Type: message.EventComplaint, RawType: "spam", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>"},
	// 6: test_complaint, Brevo's documented example: X-Mailin-custom holds no
	// dispatch_id, so the message is found by its message-id; ts_event is the time.
	{Type: message.EventComplaint, RawType: "complaint", MessageID: "201798300811.5787683@relay.domain.com",
		Timestamp: time.Unix(1604933654, 0).UTC()},
	// 7: test_invalid_email (a guess of anymail's).
	{Type: message.EventBounced, RawType: "invalid_email", DispatchID: seedDispatchID,
		MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>", Reason: "(guessing invalid_email includes a reason)"},
	// 8: test_error_email, Brevo's example: X-Mailin-custom a JSON object, and a
	// ts_epoch in seconds.
	{Type: message.EventAborted, RawType: "error", DispatchID: seedDispatchID, MessageID: "201798300811.5787683@relay.domain.com",
		Timestamp: time.Unix(1604933623, 0).UTC()},
	// 9: test_deferred_event, a live capture.
	{Type: message.EventDeferred, RawType: "deferred", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>",
		Reason: "550 RecipientError: 550 5.1.1 <notauser@example.com>: Recipient address rejected: User unknown in virtual alias table"},
	// 10: test_opened_event; the dispatch_id in a tag.
	{Type: message.EventOpen, RawType: "opened", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>"},
	// 11: test_unique_opened_event.
	{Type: message.EventOpen, RawType: "unique_opened", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>"},
	// 12: test_proxy_open_event (an open through Apple's privacy proxy; no
	// ts_epoch: stamped with its receipt).
	{Type: message.EventOpen, RawType: "proxy_open", DispatchID: seedDispatchID, MessageID: "201798300811.5787683@relay.domain.com",
		Timestamp: receivedAt},
	// 13: test_clicked_event.
	{Type: message.EventClick, RawType: "click", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>"},
	// 14: test_unsubscribe (a guess of anymail's).
	{Type: message.EventUnsubscribe, RawType: "unsubscribe", DispatchID: seedDispatchID, MessageID: "<201803011158.9876543210@smtp-relay.mailin.fr>"},
}

// Each documented event posted alone (Brevo's default), then all of them in one
// batched post: the same events, in order, with the same dedupe keys.
func TestBrevo(t *testing.T) {
	t.Parallel()
	body := fixture(t, "brevo_events.json")
	els := elements(t, body)
	if len(els) != len(brevoWant) {
		t.Fatalf("%d events in the fixture, %d expected", len(els), len(brevoWant))
	}
	var alone []message.Event
	for i, el := range els {
		got := one(t, &Brevo{}, post(el), el)
		checkEvent(t, i, got, ProviderBrevo, brevoWant[i])
		alone = append(alone, got)
	}
	checkInvariants(t, ProviderBrevo, alone)

	batch, err := (&Brevo{}).Normalize(post(body), body, receivedAt)
	if err != nil || len(batch.Invalid) != 0 {
		t.Fatalf("batched: %v, invalid %+v", err, batch.Invalid)
	}
	if !slices.Equal(batch.Events, alone) {
		t.Errorf("batched events differ from the same events posted alone:\n got %+v\nwant %+v", batch.Events, alone)
	}
	ids := map[string]int{}
	for i, e := range alone {
		if j, dup := ids[e.ID]; dup {
			t.Errorf("events %d and %d share the dedupe key %q", j, i, e.ID)
		}
		ids[e.ID] = i
	}
}

// The event names Brevo's pages list beside those of the captures.
func TestBrevoEventNames(t *testing.T) {
	t.Parallel()
	delivered := elements(t, fixture(t, "brevo_events.json"))[1]
	for name, wantType := range map[string]message.EventType{
		"unique_proxy_open": message.EventOpen,        // "Unique Proxy Open"
		"unsubscribed":      message.EventUnsubscribe, // the API's event name
		"invalid":           message.EventBounced,     // the API's event name
		"list_addition":     message.EventUnknown,     // a marketing event
		"sms_delivered":     message.EventUnknown,
	} {
		body := edit(t, delivered, map[string]any{"event": name})
		got := one(t, &Brevo{}, post(body), body)
		if got.Type != wantType || got.RawType != name || got.DispatchID != seedDispatchID {
			t.Errorf("%s: got %s %q dispatch_id %q, want %s", name, got.Type, got.RawType, got.DispatchID, wantType)
		}
	}
}

// Where our sender puts the dispatch_id, and what is not it.
func TestBrevoDispatchID(t *testing.T) {
	t.Parallel()
	delivered := elements(t, fixture(t, "brevo_events.json"))[1]
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"X-Mailin-custom dispatch_id:<id>", map[string]any{"X-Mailin-custom": "dispatch_id:" + seedDispatchID}, seedDispatchID},
		{"X-Mailin-custom a JSON object in a string", map[string]any{"X-Mailin-custom": `{"dispatch_id":"` + seedDispatchID + `"}`}, seedDispatchID},
		{"X-Mailin-custom an object", map[string]any{"X-Mailin-custom": map[string]any{"dispatch_id": seedDispatchID}}, seedDispatchID},
		{"a tag", map[string]any{"X-Mailin-custom": nil, "tags": []string{"welcome", "dispatch_id:" + seedDispatchID}}, seedDispatchID},
		{"another header value", map[string]any{"X-Mailin-custom": "order:1234"}, ""},
		{"tags of another kind", map[string]any{"X-Mailin-custom": nil, "tags": "dispatch_id:" + seedDispatchID}, ""},
		{"none", map[string]any{"X-Mailin-custom": nil}, ""},
	} {
		body := edit(t, delivered, tt.fields)
		got := one(t, &Brevo{}, post(body), body)
		if got.DispatchID != tt.want || got.MessageID != "<201803011158.9876543210@smtp-relay.mailin.fr>" {
			t.Errorf("%s: got dispatch_id %q message_id %q, want %q and the message-id", tt.name, got.DispatchID, got.MessageID, tt.want)
		}
	}
}

// Brevo has no event id: a retry of an event gets the same key; another event of
// the message, or the same one at another time, another.
func TestBrevoSyntheticID(t *testing.T) {
	t.Parallel()
	els := elements(t, fixture(t, "brevo_events.json"))
	open := els[10]
	a := one(t, &Brevo{}, post(open), open)
	retry, err := (&Brevo{}).Normalize(post(open), open, receivedAt.Add(time.Hour))
	if err != nil || len(retry.Events) != 1 {
		t.Fatalf("retry: %+v, %v", retry, err)
	}
	later := edit(t, open, map[string]any{"ts_epoch": 1520363424000})
	b := one(t, &Brevo{}, post(later), later)
	click := one(t, &Brevo{}, post(els[13]), els[13])
	if a.ID != retry.Events[0].ID || a.ID == b.ID || a.ID == click.ID || !strings.HasPrefix(a.ID, "syn-") {
		t.Errorf("ids: open %q, its retry %q, an open a second later %q, a click %q", a.ID, retry.Events[0].ID, b.ID, click.ID)
	}
	if !b.Timestamp.Equal(brevoSent.Add(time.Second)) {
		t.Errorf("ts_epoch in milliseconds: got %s", b.Timestamp)
	}
}

// A body that is neither a JSON object nor an array is refused with 400, which
// Brevo does not retry.
func TestBrevoRefusesNotJSON(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"event":`, `"delivered"`, `null`, `7`, ``, `[{"event":"delivered"}`} {
		got, err := (&Brevo{}).Normalize(post([]byte(body)), []byte(body), receivedAt)
		var refused *RefusedError
		if !errors.Is(err, ErrBadRequest) || errors.As(err, &refused) || len(got.Events)+len(got.Invalid) > 0 {
			t.Errorf("%q: got %+v, %v; want a bad request", body, got, err)
		}
	}
}

// An event that cannot be read is set aside, named by its field and index, and
// never quoted; the others of a batch are read.
func TestBrevoInvalidEvent(t *testing.T) {
	t.Parallel()
	els := elements(t, fixture(t, "brevo_events.json"))
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no event", map[string]any{"event": nil}, "event: is required"},
		{"event a number", map[string]any{"event": 4}, "event: a JSON number where a string is expected"},
		{"ts_epoch a string", map[string]any{"ts_epoch": "SECRET-1520363423000"}, "ts_epoch: a JSON string where a number is expected"},
		{"ts_epoch negative", map[string]any{"ts_epoch": -5}, "ts_epoch: not a Unix time"},
		{"message-id an object", map[string]any{"message-id": map[string]string{"SECRET": "x"}}, "message-id: a JSON object where a string is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			broken := edit(t, els[1], tt.fields)
			if got := invalid(t, &Brevo{}, post(broken), broken); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
			batch := []byte("[" + string(els[0]) + "," + string(broken) + "," + string(els[2]) + "]")
			b, err := (&Brevo{}).Normalize(post(batch), batch, receivedAt)
			if err != nil || len(b.Events) != 2 || len(b.Invalid) != 1 || b.Invalid[0].Index != 1 || b.Invalid[0].Reason != tt.want {
				t.Fatalf("batch with a broken event: %+v, %v; want 2 events and event 1 invalid", b, err)
			}
			if strings.Contains(b.Invalid[0].Reason, "SECRET") {
				t.Errorf("the reason %q quotes the payload", b.Invalid[0].Reason)
			}
		})
	}
}
