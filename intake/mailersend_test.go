package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/message"
)

const mailerSendSecret = "Gv7eTQsKZtCNz0bIU4pqvSwlxR2hXcd9"

// The fixtures are the version 2 events of django-anymail's tests
// (anymail/django-anymail tests/test_mailersend_webhooks.py at commit 70004658e1ee,
// MailerSendTrackingTestCase, after https://developers.mailersend.com/api/v1/account/webhooks#payload-example;
// the clicked one with the backslash-escaped slashes MailerSend sends), and a
// legacy version 1 one (the same file's MailerSendV1TrackingTestCase);
// intake/testdata/README.md lists our changes (the dispatch_id tag). The event
// names and their meaning are MailerSend's (https://developers.mailersend.com/api/v1/webhooks.html).
func TestMailerSend(t *testing.T) {
	t.Parallel()
	const v2Message, bounceMessage = "6aa59d2fbf35297925087058", "6892766ae78995a317577aa1"
	tests := []struct {
		file string
		want want
	}{
		{"mailersend_sent.json", want{Type: message.EventProcessed, RawType: "activity.sent", MessageID: v2Message,
			ID: "6aa59d304ab3f14ef03ccf50", Timestamp: mustTime(t, "2026-09-12T18:42:56Z")}},
		{"mailersend_delivered.json", want{Type: message.EventDelivered, RawType: "activity.delivered", MessageID: v2Message, ID: "6aa59d4a531434d718ec48a0"}},
		// The bounce code is the SMTP reply the reason lacked.
		{"mailersend_hard_bounced.json", want{Type: message.EventBounced, RawType: "activity.hard_bounced", MessageID: bounceMessage,
			ID: "6892766a5b66e2daf3dc9158", Reason: "550 Host or domain name not found", Timestamp: mustTime(t, "2025-08-05T21:24:02Z")}},
		// "not delivered because it soft bounced": given up, unlike a deferral.
		{"mailersend_soft_bounced.json", want{Type: message.EventBounced, RawType: "activity.soft_bounced", MessageID: bounceMessage,
			ID: "6892766a5b66e2daf3dc9157", Reason: "452 Mailbox full"}},
		{"mailersend_deferred.json", want{Type: message.EventDeferred, RawType: "activity.deferred", MessageID: bounceMessage, ID: "6892766a5b66e2daf3dc9159"}},
		{"mailersend_suppressed.json", want{Type: message.EventAborted, RawType: "activity.suppressed", MessageID: bounceMessage,
			ID: "6892766a5b66e2daf3dc915f", Reason: "on_hold"}},
		{"mailersend_opened.json", want{Type: message.EventOpen, RawType: "activity.opened", MessageID: v2Message, ID: "6aa59dad05e8ec525fe6ef95"}},
		{"mailersend_clicked.json", want{Type: message.EventClick, RawType: "activity.clicked", MessageID: v2Message, ID: "6aa59db1c8ba039cd6d68435"}},
		{"mailersend_spam_complaint.json", want{Type: message.EventComplaint, RawType: "activity.spam_complaint", MessageID: bounceMessage, ID: "6892766a5b66e2daf3dc915d"}},
		{"mailersend_unsubscribed.json", want{Type: message.EventUnsubscribe, RawType: "activity.unsubscribed", MessageID: bounceMessage, ID: "6892766a5b66e2daf3dc915c"}},
		// Version 1: the message id and tags under data.email, the reason in morph,
		// the time of the activity in data.created_at.
		{"mailersend_v1_hard_bounced.json", want{Type: message.EventBounced, RawType: "activity.hard_bounced", MessageID: "63fd25194d5edba3da09e044",
			ID: "63fd251d5c00f8e52001fce6", Reason: "Host or domain name not found", Timestamp: mustTime(t, "2023-02-27T21:48:13.593Z")}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			got := one(t, &MailerSend{}, post(body), body)
			w := tt.want
			w.DispatchID = seedDispatchID
			checkEvent(t, 0, got, ProviderMailerSend, w)
			checkInvariants(t, ProviderMailerSend, []message.Event{got})
		})
	}
	t.Run("untagged", func(t *testing.T) {
		t.Parallel()
		body := fixture(t, "mailersend_delivered_untagged.json")
		got := one(t, &MailerSend{}, post(body), body)
		checkEvent(t, 0, got, ProviderMailerSend, want{Type: message.EventDelivered, RawType: "activity.delivered", MessageID: v2Message})
	})
}

// editMailerSend sets top-level fields of body, and fields of its data.
func editMailerSend(t *testing.T, body []byte, top, data map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range top {
		m[k] = v
	}
	for k, v := range data {
		m["data"].(map[string]any)[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The other activity events of MailerSend's list: the *_unique ones carry the
// same meaning, the survey ones none of dispatchflow's; the events of other
// resources (sender_identity.verified, maintenance.start…) name no message.
func TestMailerSendOtherEvents(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		typ  string
		want message.EventType
	}{
		{"activity.opened_unique", message.EventOpen},
		{"activity.clicked_unique", message.EventClick},
		{"activity.survey_opened", message.EventUnknown},
		{"activity.survey_submitted", message.EventUnknown},
		{"activity.something_new", message.EventUnknown},
	} {
		body := editMailerSend(t, fixture(t, "mailersend_opened.json"), map[string]any{"type": tt.typ}, nil)
		got := one(t, &MailerSend{}, post(body), body)
		if got.Type != tt.want || got.RawType != tt.typ || got.DispatchID != seedDispatchID {
			t.Errorf("%s: got %s %q dispatch_id %q, want %s", tt.typ, got.Type, got.RawType, got.DispatchID, tt.want)
		}
	}
	for _, typ := range []string{"sender_identity.verified", "maintenance.start", "bulk_email.completed", "recipient.on_hold_added"} {
		// Their data is another resource, read no further.
		body := []byte(`{"type":"` + typ + `","created_at":"2026-09-12T18:42:56.000000Z","data":["anything"]}`)
		got := one(t, &MailerSend{}, post(body), body)
		if got.Type != message.EventUnknown || got.RawType != typ || got.MessageID != "" || got.DispatchID != "" {
			t.Errorf("%s: got %+v, want an unknown event of no message", typ, got)
		}
		checkInvariants(t, ProviderMailerSend, []message.Event{got})
	}
}

// Only the tag "dispatch_id:<id>" carries the dispatch_id.
func TestMailerSendTags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		tags any
		want string
	}{
		{"among others", []any{"welcome", "dispatch_id:" + seedDispatchID, "eu"}, seedDispatchID},
		{"alone", []any{"dispatch_id:" + seedDispatchID}, seedDispatchID},
		{"a bare id is not one", []any{seedDispatchID}, ""},
		{"empty value", []any{"dispatch_id:"}, ""},
		{"null", nil, ""},
		{"not strings", []any{1, true}, ""},
		{"a string, not an array", "dispatch_id:" + seedDispatchID, seedDispatchID},
	} {
		body := editMailerSend(t, fixture(t, "mailersend_delivered.json"), nil, map[string]any{"tags": tt.tags})
		got := one(t, &MailerSend{}, post(body), body)
		if got.DispatchID != tt.want {
			t.Errorf("%s: got dispatch_id %q, want %q", tt.name, got.DispatchID, tt.want)
		}
	}
}

func TestMailerSendInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no type", `{"created_at":"2026-09-12T18:42:56Z","data":{"id":"x"}}`, "type: is required"},
		{"created_at not a time", `{"type":"activity.sent","created_at":"secret o'clock","data":{"id":"x"}}`, "created_at: not an RFC 3339 time"},
		{"v1 created_at not a time", `{"type":"activity.sent","data":{"id":"x","created_at":"secret"}}`, "data.created_at: not an RFC 3339 time"},
		{"data a string", `{"type":"activity.sent","data":"secret"}`, "data: a JSON string, not an object"},
		{"id a number", `{"type":"activity.sent","data":{"id":12}}`, "data.id: a JSON number where a string is expected"},
		{"meta reason a number", `{"type":"activity.hard_bounced","data":{"id":"x","meta":{"bounce_reason":5}}}`,
			"data.meta.bounce_reason: a JSON number where a string is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := invalid(t, &MailerSend{}, post([]byte(tt.body)), []byte(tt.body))
			if got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "secret") {
				t.Errorf("reason %q quotes the payload", got)
			}
		})
	}
}

func TestMailerSendRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"not JSON", `{"type":"activity.sent","secret`, "malformed JSON"},
		{"an array", `[{"type":"activity.sent"}]`, "not a JSON object"},
		{"a string", `"activity.sent"`, "not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := (&MailerSend{}).Normalize(post([]byte(tt.body)), []byte(tt.body), receivedAt)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) || len(got.Events)+len(got.Invalid) > 0 {
				t.Fatalf("got %+v, %v; want a bad request containing %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the body", err)
			}
		})
	}
}

func TestMailerSendSignature(t *testing.T) {
	t.Parallel()
	ms := &MailerSend{SigningSecret: mailerSendSecret}
	body := fixture(t, "mailersend_hard_bounced.json")
	tamper := []byte(strings.Replace(string(body), "hard_bounced", "delivered", 2))
	ping := fixture(t, "mailersend_ping.json")
	// A real event dressed up with the ping's type, signed with the public secret:
	// read as the ping, no event.
	fakePing := editMailerSend(t, body, map[string]any{"type": "webhook.test"}, nil)
	tests := []struct {
		name       string
		signature  string
		body       []byte
		wantStatus int
		wantEvents int
	}{
		{"valid", SignMailerSend(mailerSendSecret, body), body, http.StatusOK, 1},
		{"valid, uppercase hex", strings.ToUpper(SignMailerSend(mailerSendSecret, body)), body, http.StatusOK, 1},
		{"body changed", SignMailerSend(mailerSendSecret, body), tamper, http.StatusUnauthorized, 0},
		{"other secret", SignMailerSend("another-secret", body), body, http.StatusUnauthorized, 0},
		{"no signature", "", body, http.StatusUnauthorized, 0},
		{"not hex", "zz" + SignMailerSend(mailerSendSecret, body)[2:], body, http.StatusUnauthorized, 0},
		{"truncated", SignMailerSend(mailerSendSecret, body)[:32], body, http.StatusUnauthorized, 0},
		// The public test secret proves nothing: an event signed with it is refused.
		{"event signed with the test secret", SignMailerSend(MailerSendTestSecret, body), body, http.StatusUnauthorized, 0},
		{"event with the ping's type, test secret", SignMailerSend(MailerSendTestSecret, fakePing), fakePing, http.StatusOK, 0},
		// The ping MailerSend sends when the webhook is saved: answered 200, no event.
		{"ping, test secret", SignMailerSend(MailerSendTestSecret, ping), ping, http.StatusOK, 0},
		{"ping, signing secret", SignMailerSend(mailerSendSecret, ping), ping, http.StatusOK, 0},
		{"ping, other secret", SignMailerSend("another-secret", ping), ping, http.StatusUnauthorized, 0},
		{"signed, not an object", SignMailerSend(mailerSendSecret, []byte(`[1]`)), []byte(`[1]`), http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ans := overHTTP(t, ms, tt.body, func(h http.Header) {
				if tt.signature != "" {
					h.Set(MailerSendSignatureHeader, tt.signature)
				}
			})
			if ans.Status != tt.wantStatus || len(ans.Batch.Events) != tt.wantEvents || len(ans.Batch.Invalid) > 0 {
				t.Fatalf("got %+v; want %d with %d events", ans, tt.wantStatus, tt.wantEvents)
			}
			if strings.Contains(ans.Error, mailerSendSecret) || strings.Contains(ans.Error, "Host or domain") {
				t.Errorf("error %q quotes the secret or the body", ans.Error)
			}
			if tt.wantEvents == 1 && ans.Batch.Events[0].Type != message.EventBounced {
				t.Errorf("got %+v, want the bounce", ans.Batch.Events[0])
			}
		})
	}
}
