package intake

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// resendSecret is a Svix signing secret of the tests' own ("whsec_" + base64).
const resendSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// resendDocID is the email_id of Resend's documented examples.
const resendDocID = "56761188-7520-42d8-8898-ff6fc54ce618"

// The fixtures are the example payload of each event's page of Resend's webhook
// reference, https://resend.com/docs/webhooks/emails/<event> (sent, delivered,
// delivery-delayed, bounced, failed, suppressed, opened, clicked, complained,
// scheduled), and two events of django-anymail's Resend tests, which its authors
// triggered at Resend (anymail/django-anymail tests/test_resend_webhooks.py:
// test_hard_bounced_event, test_delivered_event); intake/testdata/README.md lists our changes (the
// dispatch_id tag).
func TestResend(t *testing.T) {
	t.Parallel()
	const svixID = "msg_2W2D3qXLS5fOaPja1GDg7rF2CwB"
	tests := []struct {
		file string
		want want
	}{
		// "the API request was successful. Resend will attempt to deliver the message"
		{"resend_sent.json", want{Type: message.EventProcessed, RawType: "email.sent", Timestamp: mustTime(t, "2024-02-22T23:41:12.126Z")}},
		{"resend_delivered.json", want{Type: message.EventDelivered, RawType: "email.delivered"}},
		// "the email couldn't be delivered due to a temporary issue"
		{"resend_delivery_delayed.json", want{Type: message.EventDeferred, RawType: "email.delivery_delayed"}},
		// Permanent/Suppressed: Resend did not attempt it, the address being on
		// the suppression list.
		{"resend_bounced.json", want{Type: message.EventAborted, RawType: "email.bounced/Permanent/Suppressed",
			Reason: "The recipient's email address is on the suppression list because it has a recent history of producing hard bounces."}},
		{"resend_failed.json", want{Type: message.EventAborted, RawType: "email.failed", Reason: "reached_daily_quota"}},
		{"resend_suppressed.json", want{Type: message.EventAborted, RawType: "email.suppressed/OnAccountSuppressionList",
			Reason: "Resend has suppressed sending to this address because it is on the account-level suppression list. This does not count toward your bounce rate metric"}},
		{"resend_opened.json", want{Type: message.EventOpen, RawType: "email.opened"}},
		{"resend_clicked.json", want{Type: message.EventClick, RawType: "email.clicked"}},
		{"resend_complained.json", want{Type: message.EventComplaint, RawType: "email.complained"}},
		// dispatchflow schedules nothing: a scheduled email is no status of ours.
		{"resend_scheduled.json", want{Type: message.EventUnknown, RawType: "email.scheduled"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			r := post(body)
			r.Header.Set(ResendIDHeader, svixID)
			got := one(t, &Resend{}, r, body)
			w := tt.want
			w.DispatchID, w.MessageID, w.ID = seedDispatchID, resendDocID, svixID
			checkEvent(t, 0, got, ProviderResend, w)
			checkInvariants(t, ProviderResend, []message.Event{got})
		})
	}

	// A hard bounce as Resend sends it, without a type: Resend gave up.
	t.Run("captured hard bounce", func(t *testing.T) {
		t.Parallel()
		body := fixture(t, "resend_bounced_hard.json")
		got := one(t, &Resend{}, post(body), body)
		checkEvent(t, 0, got, ProviderResend, want{Type: message.EventBounced, RawType: "email.bounced", DispatchID: seedDispatchID,
			MessageID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", Timestamp: mustTime(t, "2023-10-02T18:11:26.101Z"),
			Reason: "The recipient's email provider sent a hard bounce message, but didn't specify the reason for the hard bounce. We recommend removing the recipient's email address from your mailing list. Sending messages to addresses that produce hard bounces can have a negative impact on your reputation as a sender."})
		if !strings.HasPrefix(got.ID, "syn-") {
			t.Errorf("no svix-id: got id %q, want a synthetic one", got.ID)
		}
	})
	// Mail sent before dispatchflow, or by another path: no tag, only Resend's id.
	t.Run("untagged", func(t *testing.T) {
		t.Parallel()
		body := fixture(t, "resend_delivered_untagged.json")
		got := one(t, &Resend{}, post(body), body)
		checkEvent(t, 0, got, ProviderResend, want{Type: message.EventDelivered, RawType: "email.delivered",
			MessageID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"})
	})
}

// editResend sets fields of the data of body.
func editResend(t *testing.T, body []byte, data map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
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

// The bounce reference's other types (https://resend.com/docs/webhooks/emails/bounced:
// bounce.type "Permanent, Transient", subType "Suppressed, MessageRejected",
// diagnosticCode "Array of SMTP diagnostic responses … (e.g., smtp; 550 5.5.0
// Requested action not taken: mailbox unavailable)"): every email.bounced is a
// message Resend gave up on, except those it never attempted.
func TestResendBounceTypes(t *testing.T) {
	t.Parallel()
	const diag = "smtp; 550 5.5.0 Requested action not taken: mailbox unavailable"
	tests := []struct {
		typ, subType string
		diagnostic   any
		wantType     message.EventType
		wantReason   string
	}{
		{"Permanent", "General", []string{diag}, message.EventBounced, diag},
		{"Permanent", "NoEmail", []string{diag}, message.EventBounced, diag},
		// A soft bounce Resend no longer retries (its bounce types are SES's, which
		// publishes transient bounces once it stopped retrying).
		{"Transient", "MailboxFull", []string{"smtp; 452 4.2.2 mailbox full"}, message.EventBounced, "smtp; 452 4.2.2 mailbox full"},
		{"Undetermined", "Undetermined", nil, message.EventBounced, "the message"},
		{"Permanent", "MessageRejected", diag, message.EventBounced, diag}, // one string, not an array
		{"Permanent", "OnAccountSuppressionList", nil, message.EventAborted, "the message"},
		{"Permanent", "Suppressed", []string{}, message.EventAborted, "the message"},
	}
	for _, tt := range tests {
		body := editResend(t, fixture(t, "resend_bounced.json"), map[string]any{"bounce": map[string]any{
			"type": tt.typ, "subType": tt.subType, "message": "the message", "diagnosticCode": tt.diagnostic}})
		got := one(t, &Resend{}, post(body), body)
		if got.Type != tt.wantType || got.Reason != tt.wantReason || got.RawType != "email.bounced/"+tt.typ+"/"+tt.subType {
			t.Errorf("%s/%s: got %s %q reason %q, want %s reason %q", tt.typ, tt.subType, got.Type, got.RawType, got.Reason, tt.wantType, tt.wantReason)
		}
	}
}

// Resend's reference showed tags as an array of {name, value} before it showed
// them as an object ("tags array — Array of tag objects … name: The tag key,
// value: The tag value", an earlier revision of
// https://resend.com/docs/webhooks/emails/bounced): both bring the dispatch_id.
func TestResendTagForms(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		tags any
		want string
	}{
		{"object", map[string]string{"category": "confirm_email", "dispatch_id": seedDispatchID}, seedDispatchID},
		{"array", []map[string]string{{"name": "category", "value": "confirm_email"}, {"name": "dispatch_id", "value": seedDispatchID}}, seedDispatchID},
		{"no dispatch_id", map[string]string{"category": "confirm_email"}, ""},
		{"not a string", map[string]any{"dispatch_id": 12}, ""},
		{"another form", "dispatch_id", ""},
	} {
		body := editResend(t, fixture(t, "resend_delivered.json"), map[string]any{"tags": tt.tags})
		got := one(t, &Resend{}, post(body), body)
		if got.DispatchID != tt.want || got.MessageID != resendDocID {
			t.Errorf("%s: got dispatch_id %q message id %q, want %q and %q", tt.name, got.DispatchID, got.MessageID, tt.want, resendDocID)
		}
	}
}

// Resend's other events (contact.*, domain.*, email.received, and names it adds)
// are kept as unknown, never refused.
func TestResendUnknownEvents(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"contact.created", "domain.updated", "email.received", "email.something_new"} {
		body := []byte(`{"type":"` + typ + `","created_at":"2024-11-22T23:41:12.126Z","data":{"id":"e169aa45-1ecf-4183-9955-b1499d5701d3"}}`)
		got := one(t, &Resend{}, post(body), body)
		if got.Type != message.EventUnknown || got.RawType != typ || got.DispatchID != "" {
			t.Errorf("%s: got %s %q dispatch_id %q; want unknown", typ, got.Type, got.RawType, got.DispatchID)
		}
		checkInvariants(t, ProviderResend, []message.Event{got})
	}
}

// An object that is no readable event is answered 200, counted invalid, the
// field named and nothing of the payload quoted.
func TestResendInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no type", `{"created_at":"2024-11-22T23:41:12.126Z","data":{}}`, "type: is required"},
		{"type a number", `{"type":7,"data":{}}`, "type: a JSON number where a string is expected"},
		{"created_at not a time", `{"type":"email.sent","created_at":"yesterday-secret","data":{}}`, "created_at: not an RFC 3339 time"},
		{"data a string", `{"type":"email.sent","data":"secret"}`, "data: a JSON string where an object is expected"},
		{"email_id a number", `{"type":"email.sent","data":{"email_id":5}}`, "data.email_id: a JSON number where a string is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := invalid(t, &Resend{}, post([]byte(tt.body)), []byte(tt.body))
			if got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "secret") || strings.Contains(got, "yesterday") {
				t.Errorf("reason %q quotes the payload", got)
			}
		})
	}
}

// A body that is not Resend's (one JSON object) is a 400 naming the problem,
// never quoting the body.
func TestResendRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"not JSON", `{"type": "email.sent", "secret`, "malformed JSON"},
		{"an array", `[{"type":"email.sent"}]`, "not a JSON object"},
		{"empty", ``, "malformed JSON"},
		{"null", `null`, "not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := (&Resend{}).Normalize(post([]byte(tt.body)), []byte(tt.body), receivedAt)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) || len(got.Events)+len(got.Invalid) > 0 {
				t.Fatalf("got %+v, %v; want a bad request containing %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the body", err)
			}
		})
	}
}

func TestResendSignature(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	rs, err := NewResend(resendSecret)
	if err != nil {
		t.Fatal(err)
	}
	rs.Now = func() time.Time { return now }
	body := fixture(t, "resend_bounced.json")
	tamper := []byte(strings.Replace(string(body), `"Suppressed"`, `"General"`, 1))
	const id = "msg_2W2D3qXLS5fOaPja1GDg7rF2CwB"
	signed := func(secret string, at time.Time, b []byte) http.Header {
		h := http.Header{}
		if err := SignResend(h, secret, id, at, b); err != nil {
			t.Fatal(err)
		}
		return h
	}
	without := func(h http.Header, name string) http.Header { h.Del(name); return h }
	headers := func(id, ts, sig string) http.Header {
		h := http.Header{}
		h.Set(ResendIDHeader, id)
		h.Set(ResendTimestampHeader, ts)
		h.Set(ResendSignatureHeader, sig)
		return h
	}
	good := signed(resendSecret, now, body)
	goodTS, goodSig := good.Get(ResendTimestampHeader), good.Get(ResendSignatureHeader)
	other := signed("whsec_"+"b3RoZXItc2VjcmV0LW9mLXRoZS10ZXN0cw==", now, body)
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		wantErr bool
	}{
		{"valid", good, body, false},
		{"4 minutes old", signed(resendSecret, now.Add(-4*time.Minute), body), body, false},
		// During a rotation Svix sends a signature per secret.
		{"rotation: one of two signatures", headers(id, goodTS, other.Get(ResendSignatureHeader)+" "+goodSig), body, false},
		{"body changed", good, tamper, true},
		{"other secret", other, body, true},
		{"id changed", headers("msg_other", goodTS, goodSig), body, true},
		{"no svix-signature", without(signed(resendSecret, now, body), ResendSignatureHeader), body, true},
		{"no svix-id", without(signed(resendSecret, now, body), ResendIDHeader), body, true},
		{"no svix-timestamp", without(signed(resendSecret, now, body), ResendTimestampHeader), body, true},
		{"no headers", http.Header{}, body, true},
		// A captured request replayed later: signed, but stale.
		{"6 minutes old", signed(resendSecret, now.Add(-6*time.Minute), body), body, true},
		{"6 minutes ahead", signed(resendSecret, now.Add(6*time.Minute), body), body, true},
		{"timestamp not a number", headers(id, "soon", goodSig), body, true},
		{"signature not v1", headers(id, goodTS, strings.Replace(goodSig, "v1,", "v2,", 1)), body, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ans := overHTTP(t, rs, tt.body, func(h http.Header) {
				for k, v := range tt.header {
					h[k] = v
				}
			})
			if tt.wantErr {
				if ans.Status != http.StatusUnauthorized || len(ans.Batch.Events)+len(ans.Batch.Invalid) > 0 {
					t.Fatalf("got %+v; want 401 and nothing read", ans)
				}
				if strings.Contains(ans.Error, resendSecret) || strings.Contains(ans.Error, "Suppressed") {
					t.Errorf("error %q quotes the secret or the body", ans.Error)
				}
				return
			}
			if ans.Status != http.StatusOK || len(ans.Batch.Events) != 1 {
				t.Fatalf("got %+v; want 200 and one event", ans)
			}
			// svix-id, the same across Svix's retries, is the dedupe key.
			if e := ans.Batch.Events[0]; e.ID != id || e.Type != message.EventAborted || e.DispatchID != seedDispatchID {
				t.Errorf("got %+v; want the aborted event %s of the dispatch", e, id)
			}
		})
	}

	// Signed, but not Resend's format: a 400, as unsigned.
	t.Run("signed non-object", func(t *testing.T) {
		t.Parallel()
		b := []byte(`["email.sent"]`)
		ans := overHTTP(t, rs, b, func(h http.Header) {
			for k, v := range signed(resendSecret, now, b) {
				h[k] = v
			}
		})
		if ans.Status != http.StatusBadRequest || ans.Error != "bad request: not a JSON object" {
			t.Fatalf("got %+v; want 400 not a JSON object", ans)
		}
	})
}

// A secret of another form is refused at start, with an error that does not
// quote it.
func TestNewResendSecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_%%not-base64%%", "re_123456789"} {
		_, err := NewResend(secret)
		if err == nil || !strings.Contains(err.Error(), "not a Svix signing secret") {
			t.Errorf("got %v, want the secret refused", err)
			continue
		}
		if strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) && strings.TrimPrefix(secret, "whsec_") != "" {
			t.Errorf("error %q quotes the secret", err)
		}
	}
	if rs, err := NewResend(""); err != nil || rs.wh != nil {
		t.Errorf("no secret: %v; want an unsigned normalizer", err)
	}
}

// The same event posted again by Svix (same svix-id) keeps its id: the message
// drops it as a duplicate; another event of the same type has another id.
func TestResendDedupeKey(t *testing.T) {
	t.Parallel()
	body := fixture(t, "resend_opened.json")
	ids := map[string]bool{}
	for _, svixID := range []string{"msg_a", "msg_a", "msg_b"} {
		r := post(body)
		r.Header.Set(ResendIDHeader, svixID)
		ids[one(t, &Resend{}, r, body).ID] = true
	}
	if got := slices.Sorted(maps.Keys(ids)); !slices.Equal(got, []string{"msg_a", "msg_b"}) {
		t.Errorf("got ids %v, want [msg_a msg_b]", got)
	}
}
