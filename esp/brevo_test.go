package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestBrevo(t *testing.T) {
	t.Parallel()
	const key = "xkeysib-0123456789abcdef-test"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 201
		want   outcome
		text   string // in the message id, refusal reason or error
	}{
		// Answer bodies: esp/esptest/testdata/README.md says where each comes from.
		{name: "201 created", want: sent, text: esptest.BrevoMessageID},
		{name: "400 sender not validated", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("brevo-400.json")},
			want: refused, text: "the sender you used shop@example.com is not valid. Validate your sender or authenticate your domain (Brevo code invalid_parameter)"},
		{name: "400 without a body", answer: esptest.Answer{Status: 400}, want: refused, text: "400 Bad Request"},
		// The inline bodies below have Brevo's error shape {"code", "message"} with a
		// code Brevo lists (getbrevo/brevo-python models/error_model.py); their
		// messages are ours.
		{name: "422 unprocessable", answer: esptest.Answer{Status: 422, Body: `{"code":"unprocessable_entity","message":"subject is missing"}`},
			want: refused, text: "subject is missing (Brevo code unprocessable_entity)"},
		{name: "401 bad key: configuration, retried", answer: esptest.Answer{Status: 401, Body: esptest.Fixture("brevo-401.json")},
			want: transient, text: "DISPATCHFLOW_BREVO_API_KEY"},
		{name: "402 no credits: the account's, retried", answer: esptest.Answer{Status: 402, Body: `{"code":"not_enough_credits","message":"Not enough credits"}`},
			want: transient, text: "402 Payment Required"},
		{name: "403 permission denied: the account's, retried", answer: esptest.Answer{Status: 403, Body: `{"code":"permission_denied","message":"unrecognised IP address"}`},
			want: transient, text: "403 Forbidden"},
		{name: "400 account under validation: retried", answer: esptest.Answer{Status: 400, Body: `{"code":"account_under_validation","message":"account under validation"}`},
			want: transient, text: "account_under_validation"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429, Body: `{"code":"too_many_requests","message":"rate limit"}`},
			want: transient, text: "429 Too Many Requests"},
		{name: "500", answer: esptest.Answer{Status: 500}, want: transient, text: "brevo answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.Brevo(t, key)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			b := &esp.Brevo{APIKey: key, BaseURL: f.URL}
			rcpt, err := b.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, key)
			// The request Brevo documents (developers.brevo.com/reference/sendtransacemail;
			// getbrevo/brevo-python models/send_smtp_email.py): sender and to as
			// {email, name}, the dispatch id in the custom header X-Mailin-custom, which
			// Brevo's transactional webhooks echo as "X-Mailin-custom"
			// (developers.brevo.com/docs/transactional-webhooks; anymail/django-anymail
			// anymail/backends/brevo.py puts its metadata there too).
			r := checkRequest(t, f, "shop@example.com", "ann@example.com")
			if r.Extra["sender.name"] != "Shop" || r.Extra["to.name"] != "Ann" {
				t.Errorf("names %q, %q, want Shop, Ann", r.Extra["sender.name"], r.Extra["to.name"])
			}
			if got, want := r.Extra["X-Mailin-custom"], "dispatch_id:"+testEmail.DispatchID; got != want {
				t.Errorf("X-Mailin-custom %q, want %q", got, want)
			}
			if tc.want == sent && (rcpt.Provider != "brevo" || rcpt.MessageID != esptest.BrevoMessageID || rcpt.Response != "201 Created") {
				t.Errorf("receipt %+v, want provider brevo, message id %s (as the events' message-id carries it) and 201 Created",
					rcpt, esptest.BrevoMessageID)
			}
		})
	}
}

// Without an answer, and without a key, nothing is sent.
func TestBrevoNoAnswer(t *testing.T) {
	t.Parallel()
	f := esptest.Brevo(t, "k")
	f.Close()
	_, err := (&esp.Brevo{APIKey: "k", BaseURL: f.URL}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "brevo: no answer from", "")

	_, err = (&esp.Brevo{BaseURL: "http://127.0.0.1:1"}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "DISPATCHFLOW_BREVO_API_KEY", "")
}
