package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestMailjet(t *testing.T) {
	t.Parallel()
	const key, secret = "mj-public-key", "mj-secret-key"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		want   outcome
		text   string
	}{
		// Answer bodies: esp/esptest/testdata/README.md says where each comes from.
		{name: "200 success", want: sent, text: esptest.MailjetMessageID},
		{name: "400 invalid address", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("mailjet-400-mj0013.json")},
			want: refused, text: `"invalid@123.4" is an invalid email address. (Mailjet mj-0013, field To[0].Email)`},
		{name: "403 sender not authorised", answer: esptest.Answer{Status: 403, Body: esptest.Fixture("mailjet-403-send0008.json")},
			want: refused, text: "is not an authorized sender email address for your account. (Mailjet send-0008, field From)"},
		// A global error, as anymail/django-anymail tests/test_mailjet_backend.py
		// (test_api_error_includes_details) quotes it; the message is anymail's.
		{name: "400 about the whole request", answer: esptest.Answer{Status: 400,
			Body: `{"ErrorIdentifier":"06df1144-c6f3-4ca7-8885-7ec5d4344113","ErrorCode":"mj-0002","ErrorMessage":"Helpful explanation from Mailjet.","StatusCode":400}`},
			want: refused, text: "Helpful explanation from Mailjet. (Mailjet mj-0002)"},
		{name: "401 bad key: configuration, retried", answer: esptest.Answer{Status: 401, Body: esptest.Fixture("mailjet-401.json")},
			want: transient, text: "DISPATCHFLOW_MAILJET_API_SECRET"},
		// Shape of mailjet-401.json; the message is ours.
		{name: "403 without message errors: configuration, retried", answer: esptest.Answer{Status: 403, Body: `{"ErrorMessage":"Forbidden","StatusCode":403}`},
			want: transient, text: "403 Forbidden"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429}, want: transient, text: "429"},
		{name: "500", answer: esptest.Answer{Status: 500, Body: "Ack! Bad proxy!"}, want: transient, text: "mailjet answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.Mailjet(t, key, secret)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			m := &esp.Mailjet{APIKey: key, SecretKey: secret, BaseURL: f.URL}
			rcpt, err := m.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, secret)
			// The request Mailjet documents (dev.mailjet.com/email/reference/send-emails,
			// Send API v3.1; mailjet/mailjet-apiv3-go mailjet_resources.go InfoMessagesV31):
			// From and To as {Email, Name}, CustomID the dispatch id (echoed as CustomID by
			// the Event API, dev.mailjet.com/email/guides/webhooks) and EventPayload
			// {"dispatch_id": …} (echoed as Payload; anymail/django-anymail
			// anymail/backends/mailjet.py sends its metadata there as JSON).
			r := checkRequest(t, f, "shop@example.com", "ann@example.com")
			if r.Extra["From.Name"] != "Shop" || r.Extra["To.Name"] != "Ann" {
				t.Errorf("names %q, %q, want Shop, Ann", r.Extra["From.Name"], r.Extra["To.Name"])
			}
			if r.Extra["EventPayload.dispatch_id"] != testEmail.DispatchID {
				t.Errorf("EventPayload dispatch_id %q, want %s", r.Extra["EventPayload.dispatch_id"], testEmail.DispatchID)
			}
			// MessageID 70368744188491213 is above 2^53: read as a float it would be
			// 70368744188491216, and match no event.
			if tc.want == sent && (rcpt.Provider != "mailjet" || rcpt.MessageID != esptest.MailjetMessageID || rcpt.Response != "success") {
				t.Errorf("receipt %+v, want provider mailjet, message id %s (digit for digit) and success", rcpt, esptest.MailjetMessageID)
			}
		})
	}
}

// Without an answer, and without the secret, nothing is sent.
func TestMailjetNoAnswer(t *testing.T) {
	t.Parallel()
	f := esptest.Mailjet(t, "k", "s")
	f.Close()
	_, err := (&esp.Mailjet{APIKey: "k", SecretKey: "s", BaseURL: f.URL}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "mailjet: no answer from", "")

	_, err = (&esp.Mailjet{APIKey: "k", BaseURL: "http://127.0.0.1:1"}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "DISPATCHFLOW_MAILJET_API_SECRET", "")
}
