package intake

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// The events of testdata/mailjet_events.json, in order. Sources
// (testdata/README.md): the sample events of Mailjet's Event API guide
// (mailjet/api-documentation guides/_event-api.md,
// https://dev.mailjet.com/email/guides/webhooks/), anymail/django-anymail
// tests/test_mailjet_webhooks.py for the greylisting, and the guide's grouped
// ("Version 2") example for the last.
var mailjetWant = []want{
	// 0: "Sample sent event": the receiving server accepted it. Its MessageID,
	// 19421777835146490, is above 2^53: read digit for digit.
	{Type: message.EventDelivered, RawType: "sent", DispatchID: seedDispatchID, MessageID: "19421777835146490",
		Timestamp: time.Unix(1433333949, 0).UTC()},
	// 1: "Sample open event".
	{Type: message.EventOpen, RawType: "open", DispatchID: seedDispatchID, MessageID: "19421777396190490"},
	// 2: "Sample click event".
	{Type: message.EventClick, RawType: "click", DispatchID: seedDispatchID, MessageID: "19421777836302490"},
	// 3: "Sample bounce event": hard_bounce true.
	{Type: message.EventBounced, RawType: "bounce/hard/recipient/user unknown", DispatchID: seedDispatchID, MessageID: "13792286917004336",
		Reason: "recipient: user unknown"},
	// 4: "Sample blocked event": Mailjet did not send it.
	{Type: message.EventAborted, RawType: "blocked/recipient/user unknown", DispatchID: seedDispatchID, MessageID: "13792286917004336",
		Reason: "recipient: user unknown"},
	// 5: "Sample spam event".
	{Type: message.EventComplaint, RawType: "spam", DispatchID: seedDispatchID, MessageID: "13792286917004336"},
	// 6: "Sample unsub event".
	{Type: message.EventUnsubscribe, RawType: "unsub", DispatchID: seedDispatchID, MessageID: "20547674933128000"},
	// 7: anymail's test_bounced_greylist_event: "Delivery will be re-attempted";
	// the dispatch_id in Payload (our EventPayload) only.
	{Type: message.EventDeferred, RawType: "bounce/soft/domain/greylisted", DispatchID: seedDispatchID, MessageID: "12345678901234567",
		Reason: "domain: greylisted"},
	// 8: the guide's grouped example: no CustomID, no MessageID, only the
	// (deprecated) mj_message_id.
	{Type: message.EventDelivered, RawType: "sent", MessageID: "18858825588804172", Timestamp: time.Unix(1424873938, 0).UTC()},
}

// The documented events in one grouped post (Version 2), then each alone
// (Version 1, what Mailjet sends by default): the same events.
func TestMailjet(t *testing.T) {
	t.Parallel()
	body := fixture(t, "mailjet_events.json")
	b, err := (&Mailjet{}).Normalize(post(body), body, receivedAt)
	if err != nil || len(b.Invalid) != 0 || len(b.Events) != len(mailjetWant) {
		t.Fatalf("got %d events, invalid %+v, %v; want %d events", len(b.Events), b.Invalid, err, len(mailjetWant))
	}
	for i, e := range b.Events {
		checkEvent(t, i, e, ProviderMailjet, mailjetWant[i])
	}
	checkInvariants(t, ProviderMailjet, b.Events)
	var alone []message.Event
	for _, el := range elements(t, body) {
		alone = append(alone, one(t, &Mailjet{}, post(el), el))
	}
	if !slices.Equal(alone, b.Events) {
		t.Errorf("events posted alone differ from the grouped ones:\n got %+v\nwant %+v", alone, b.Events)
	}
}

// A bounce is final unless it is a greylisting that was not a hard bounce; the
// other error kinds of Mailjet's table stay bounces.
func TestMailjetBounces(t *testing.T) {
	t.Parallel()
	bounce := elements(t, fixture(t, "mailjet_events.json"))[3]
	for _, tt := range []struct {
		relatedTo, error string
		hard             bool
		want             message.EventType
	}{
		{"domain", "greylisted", false, message.EventDeferred},
		{"domain", "greylisted", true, message.EventBounced},
		{"recipient", "quota exceeded", false, message.EventBounced},
		{"domain", "no mail host", false, message.EventBounced},
		{"spam", "content blocked", true, message.EventBounced},
		{"system", "connection issue", false, message.EventBounced},
	} {
		body := edit(t, bounce, map[string]any{"error_related_to": tt.relatedTo, "error": tt.error, "hard_bounce": tt.hard})
		got := one(t, &Mailjet{}, post(body), body)
		hardness := map[bool]string{true: "hard", false: "soft"}[tt.hard]
		if got.Type != tt.want || got.Reason != tt.relatedTo+": "+tt.error || got.RawType != rawType("bounce", hardness, tt.relatedTo, tt.error) {
			t.Errorf("%s/%s hard %t: got %s %q reason %q, want %s", tt.relatedTo, tt.error, tt.hard, got.Type, got.RawType, got.Reason, tt.want)
		}
	}
	blocked := elements(t, fixture(t, "mailjet_events.json"))[4]
	for _, e := range []string{"preblocked", "duplicate in campaign", "typofix"} {
		body := edit(t, blocked, map[string]any{"error_related_to": "mailjet", "error": e})
		if got := one(t, &Mailjet{}, post(body), body); got.Type != message.EventAborted {
			t.Errorf("blocked/%s: got %s, want aborted", e, got.Type)
		}
	}
}

// CustomID carries the dispatch_id; else Payload (our EventPayload), as
// "dispatch_id:<id>" or a JSON object; any other custom value is not it.
func TestMailjetDispatchID(t *testing.T) {
	t.Parallel()
	sent := elements(t, fixture(t, "mailjet_events.json"))[0]
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"CustomID", map[string]any{}, seedDispatchID},
		{"Payload object", map[string]any{"CustomID": "", "Payload": `{"dispatch_id":"` + seedDispatchID + `"}`}, seedDispatchID},
		{"Payload text", map[string]any{"CustomID": nil, "Payload": "dispatch_id:" + seedDispatchID}, seedDispatchID},
		{"other Payload", map[string]any{"CustomID": "", "Payload": `{"meta1": "simple string", "meta2": 2}`}, ""},
		{"none", map[string]any{"CustomID": nil, "Payload": nil}, ""},
		{"CustomID a number", map[string]any{"CustomID": 42}, ""},
	} {
		body := edit(t, sent, tt.fields)
		got := one(t, &Mailjet{}, post(body), body)
		if got.DispatchID != tt.want || got.MessageID != "19421777835146490" {
			t.Errorf("%s: got dispatch_id %q message_id %q, want %q", tt.name, got.DispatchID, got.MessageID, tt.want)
		}
	}
}

func TestMailjetUnknownEvent(t *testing.T) {
	t.Parallel()
	body := edit(t, elements(t, fixture(t, "mailjet_events.json"))[0], map[string]any{"event": "sms_sent"})
	got := one(t, &Mailjet{}, post(body), body)
	if got.Type != message.EventUnknown || got.RawType != "sms_sent" || got.DispatchID != seedDispatchID {
		t.Fatalf("got %+v; want one unknown event", got)
	}
}

// Mailjet has no event id: a retry gets the same key, another event another.
func TestMailjetSyntheticID(t *testing.T) {
	t.Parallel()
	els := elements(t, fixture(t, "mailjet_events.json"))
	a := one(t, &Mailjet{}, post(els[4]), els[4])
	retry, err := (&Mailjet{}).Normalize(post(els[4]), els[4], receivedAt.Add(time.Hour))
	if err != nil || len(retry.Events) != 1 {
		t.Fatal(retry, err)
	}
	bounce := one(t, &Mailjet{}, post(els[3]), els[3]) // the same message, time and error, another event
	if a.ID != retry.Events[0].ID || a.ID == bounce.ID {
		t.Errorf("ids: blocked %q, its retry %q, the bounce %q", a.ID, retry.Events[0].ID, bounce.ID)
	}
}

// Mailjet retries every answer but a 200, so no answer stops it: a body that is
// neither a JSON object nor an array is a plain 400.
func TestMailjetRefusesNotJSON(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`[{"event":"sent"`, `"sent"`, `null`, `true`, ``} {
		got, err := (&Mailjet{}).Normalize(post([]byte(body)), []byte(body), receivedAt)
		var refused *RefusedError
		if !errors.Is(err, ErrBadRequest) || errors.As(err, &refused) || len(got.Events)+len(got.Invalid) > 0 {
			t.Errorf("%q: got %+v, %v; want a bad request", body, got, err)
		}
	}
}

func TestMailjetInvalidEvent(t *testing.T) {
	t.Parallel()
	els := elements(t, fixture(t, "mailjet_events.json"))
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no event", map[string]any{"event": nil}, "event: is required"},
		{"time a string", map[string]any{"time": "SECRET"}, "time: a JSON string where a number is expected"},
		{"time zero", map[string]any{"time": 0}, "time: not a Unix time"},
		{"hard_bounce a string", map[string]any{"hard_bounce": "SECRET"}, "hard_bounce: a JSON string where a boolean is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			broken := edit(t, els[3], tt.fields)
			batch := []byte("[" + string(els[0]) + "," + string(broken) + "," + string(els[1]) + "]")
			b, err := (&Mailjet{}).Normalize(post(batch), batch, receivedAt)
			if err != nil || len(b.Events) != 2 || len(b.Invalid) != 1 || b.Invalid[0].Index != 1 || b.Invalid[0].Reason != tt.want {
				t.Fatalf("got %+v, %v; want 2 events and event 1 invalid: %q", b, err, tt.want)
			}
			if strings.Contains(b.Invalid[0].Reason, "SECRET") {
				t.Errorf("the reason %q quotes the payload", b.Invalid[0].Reason)
			}
		})
	}
}
