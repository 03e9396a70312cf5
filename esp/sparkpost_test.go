package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestSparkPost(t *testing.T) {
	t.Parallel()
	const key = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		want   outcome
		text   string
	}{
		// Answer bodies: esp/esptest/testdata/README.md says where each comes from.
		{name: "200 accepted", want: sent, text: esptest.SparkPostTransmissionID},
		// results with the recipient rejected, in the shape of sparkpost-200.json
		// (anymail/django-anymail anymail/backends/sparkpost.py reads it as rejected).
		{name: "200 with the recipient rejected", answer: esptest.Answer{Status: 200,
			Body: `{"results":{"total_rejected_recipients":1,"total_accepted_recipients":0,"id":"11111111111111112"}}`},
			want: refused, text: "SparkPost rejected the recipient (transmission 11111111111111112: 0 accepted, 1 rejected)"},
		{name: "400 unconfigured sending domain", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("sparkpost-400-7001.json")},
			want: refused, text: "Invalid domain: Unconfigured Sending Domain <example.com>"},
		// The post-2019 form of the same error (only a message): SparkPost API docs,
		// "Deprecation of API Extended Error Codes", Sending Domain Errors.
		{name: "400 unconfigured sending domain, message only", answer: esptest.Answer{Status: 400,
			Body: `{"errors":[{"message":"Unconfigured Sending Domain <example.com>"}]}`},
			want: refused, text: "Unconfigured Sending Domain <example.com>"},
		{name: "422 invalid content", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("sparkpost-422.json")},
			want: refused, text: "required field is missing: No valid fields exist in the 'content' object"},
		{name: "413 too large", answer: esptest.Answer{Status: 413}, want: refused, text: "413"},
		// Extended code 1502 "Server resources unavailable", answered 400, "retry later"
		// (SparkPost/support-docs content/docs/tech-resources/extended-error-codes.md); the
		// message is the table's.
		{name: "400 server resources unavailable: retried", answer: esptest.Answer{Status: 400,
			Body: `{"errors":[{"message":"Server resources unavailable","code":"1502"}]}`},
			want: transient, text: "Server resources unavailable"},
		// SparkPost's error shape; 401's message is ours, 403's is extended code 1100
		// "permission denied" of the same extended-error-codes.md.
		{name: "401 bad key: configuration, retried", answer: esptest.Answer{Status: 401, Body: `{"errors":[{"message":"Unauthorized."}]}`},
			want: transient, text: "DISPATCHFLOW_SPARKPOST_API_KEY"},
		{name: "403 key without the permission: configuration, retried", answer: esptest.Answer{Status: 403,
			Body: `{"errors":[{"message":"permission denied","code":"1100"}]}`},
			want: transient, text: "Transmissions: Read/Write"},
		{name: "420 sending limit: the account's, retried", answer: esptest.Answer{Status: 420, Body: esptest.Fixture("sparkpost-420.json")},
			want: transient, text: "Exceed Sending Limit (hourly)"},
		{name: "429 rate limited", answer: esptest.Answer{Status: 429}, want: transient, text: "429"},
		{name: "503", answer: esptest.Answer{Status: 503}, want: transient, text: "sparkpost answered 503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.SparkPost(t, key)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			s := &esp.SparkPost{APIKey: key, BaseURL: f.URL}
			rcpt, err := s.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, key)
			// The request SparkPost documents (developers.sparkpost.com/api/transmissions;
			// SparkPost/gosparkpost transmissions.go, templates.go TmplOptions and Content,
			// recipient_lists.go Address): the bare key in Authorization, from and the
			// recipient's address as {email, name}, metadata.dispatch_id (returned in
			// every event's rcpt_meta: anymail/django-anymail anymail/webhooks/sparkpost.py),
			// and options.transactional.
			r := checkRequest(t, f, "shop@example.com", "ann@example.com")
			if r.Extra["from.name"] != "Shop" || r.Extra["address.name"] != "Ann" {
				t.Errorf("names %q, %q, want Shop, Ann", r.Extra["from.name"], r.Extra["address.name"])
			}
			if r.Extra["options.transactional"] != "true" {
				t.Errorf("options.transactional %s, want true", r.Extra["options.transactional"])
			}
			if tc.want == sent && (rcpt.Provider != "sparkpost" || rcpt.MessageID != esptest.SparkPostTransmissionID) {
				t.Errorf("receipt %+v, want provider sparkpost and message id %s (the transmission id the events carry)",
					rcpt, esptest.SparkPostTransmissionID)
			}
		})
	}
}

// Without an answer, and without a key, nothing is sent.
func TestSparkPostNoAnswer(t *testing.T) {
	t.Parallel()
	f := esptest.SparkPost(t, "k")
	f.Close()
	_, err := (&esp.SparkPost{APIKey: "k", BaseURL: f.URL}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "sparkpost: no answer from", "")

	_, err = (&esp.SparkPost{BaseURL: "http://127.0.0.1:1"}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "DISPATCHFLOW_SPARKPOST_API_KEY", "")
}
