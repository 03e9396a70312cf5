package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestSendGrid(t *testing.T) {
	t.Parallel()
	const key = "SG.test-key"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 202
		want   outcome
		text   string // in the message id, refusal reason or error
	}{
		{name: "202 accepted", want: sent, text: esptest.SendGridMessageID},
		{name: "400 invalid request", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("sendgrid-400.json")},
			want: refused, text: "Invalid type. Expected: object, given: string. (field custom_args)"},
		{name: "403 unverified sender", answer: esptest.Answer{Status: 403, Body: esptest.Fixture("sendgrid-403.json")},
			want: refused, text: "does not match a verified Sender Identity"},
		{name: "413 payload too large", answer: esptest.Answer{Status: 413}, want: refused, text: "413"},
		{name: "401 bad key: configuration, retried", answer: esptest.Answer{Status: 401, Body: esptest.Fixture("sendgrid-401.json")},
			want: transient, text: "DISPATCHFLOW_SENDGRID_API_KEY"},
		{name: "403 key without Mail Send: configuration, retried", answer: esptest.Answer{Status: 403, Body: esptest.Fixture("sendgrid-403-access.json")},
			want: transient, text: "access forbidden"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429, Body: esptest.Fixture("sendgrid-429.json")},
			want: transient, text: "429 Too Many Requests"},
		{name: "500", answer: esptest.Answer{Status: 500, Body: `{"errors":[{"message":"internal error"}]}`},
			want: transient, text: "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.SendGrid(t, key)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			s := &esp.SendGrid{APIKey: key, BaseURL: f.URL}
			rcpt, err := s.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, key)
			checkRequest(t, f, "shop@example.com", "ann@example.com")
			if tc.want == sent && (rcpt.Provider != "sendgrid" || rcpt.MessageID != esptest.SendGridMessageID) {
				t.Errorf("receipt %+v, want provider sendgrid and message id %s", rcpt, esptest.SendGridMessageID)
			}
		})
	}
}

// Without an answer, and with an address nobody can send to, nothing is sent.
func TestSendGridNoAnswer(t *testing.T) {
	t.Parallel()
	f := esptest.SendGrid(t, "k")
	f.Close()
	_, err := (&esp.SendGrid{APIKey: "k", BaseURL: f.URL}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "sendgrid: no answer from", "")

	bad := testEmail
	bad.To = "not an address"
	_, err = (&esp.SendGrid{APIKey: "k", BaseURL: "http://127.0.0.1:1"}).Send(context.Background(), bad)
	checkOutcome(t, esp.Receipt{}, err, refused, `invalid to address "not an address"`, "")
}
