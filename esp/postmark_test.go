package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestPostmark(t *testing.T) {
	t.Parallel()
	const token = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		want   outcome
		text   string
	}{
		{name: "200 OK", want: sent, text: esptest.PostmarkMessageID},
		{name: "422 ErrorCode 300 invalid email request", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("postmark-422-300.json")},
			want: refused, text: "Invalid 'To' address: 'mike at topchoice'. (Postmark ErrorCode 300)"},
		{name: "422 ErrorCode 406 inactive recipient", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("postmark-422-406.json")},
			want: refused, text: "marked as inactive"},
		{name: "422 ErrorCode 412 account pending: retried", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("postmark-422-412.json")},
			want: transient, text: "ErrorCode 412, account is pending"},
		{name: "422 ErrorCode 10 bad token: retried", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("postmark-401.json")},
			want: transient, text: "DISPATCHFLOW_POSTMARK_SERVER_TOKEN"},
		{name: "401 bad token: retried", answer: esptest.Answer{Status: 401, Body: esptest.Fixture("postmark-401.json")},
			want: transient, text: "DISPATCHFLOW_POSTMARK_SERVER_TOKEN"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429, Body: `{"ErrorCode":429,"Message":"Rate limit exceeded."}`},
			want: transient, text: "429"},
		{name: "500", answer: esptest.Answer{Status: 500}, want: transient, text: "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.Postmark(t, token)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			p := &esp.Postmark{ServerToken: token, BaseURL: f.URL, MessageStream: "outbound"}
			rcpt, err := p.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, token)
			r := checkRequest(t, f, `"Shop" <shop@example.com>`, `"Ann" <ann@example.com>`)
			if r.Extra["MessageStream"] != "outbound" {
				t.Errorf("MessageStream %q, want outbound", r.Extra["MessageStream"])
			}
			if tc.want == sent && rcpt.MessageID != esptest.PostmarkMessageID {
				t.Errorf("receipt %+v, want message id %s", rcpt, esptest.PostmarkMessageID)
			}
		})
	}
}
