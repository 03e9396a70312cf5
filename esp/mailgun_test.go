package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestMailgun(t *testing.T) {
	t.Parallel()
	const key, domain = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0", "mg.example.com"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		want   outcome
		text   string
	}{
		{name: "200 queued", want: sent, text: esptest.MailgunMessageID},
		{name: "400 invalid address", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("mailgun-400.json")},
			want: refused, text: "'to' parameter is not a valid address"},
		{name: "401 bad key: configuration, retried", answer: esptest.Answer{Status: 401, Header: textPlain, Body: esptest.Fixture("mailgun-401.txt")},
			want: transient, text: "DISPATCHFLOW_MAILGUN_API_KEY"},
		{name: "403 forbidden: configuration, retried", answer: esptest.Answer{Status: 403, Header: textPlain, Body: "Forbidden"},
			want: transient, text: "403 Forbidden"},
		{name: "404 domain of the other region", answer: esptest.Answer{Status: 404, Body: `{"message":"Domain not found: mg.example.com"}`},
			want: transient, text: "Domain not found"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429}, want: transient, text: "429"},
		{name: "503", answer: esptest.Answer{Status: 503}, want: transient, text: "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.Mailgun(t, key, domain)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			m := &esp.Mailgun{APIKey: key, Domain: domain, BaseURL: f.URL, Tag: "transactional"}
			rcpt, err := m.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, key)
			r := checkRequest(t, f, `"Shop" <shop@example.com>`, `"Ann" <ann@example.com>`)
			if r.Extra["o:tag"] != "transactional" {
				t.Errorf("o:tag %q, want transactional", r.Extra["o:tag"])
			}
			if tc.want == sent && (rcpt.MessageID != esptest.MailgunMessageID || rcpt.Response != "Queued. Thank you.") {
				t.Errorf("receipt %+v, want message id %s (no angle brackets) and Mailgun's message", rcpt, esptest.MailgunMessageID)
			}
		})
	}
}

var textPlain = map[string][]string{"Content-Type": {"text/plain"}}
