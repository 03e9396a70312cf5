package esp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestSES(t *testing.T) {
	t.Parallel()
	const region, akid, secret = "eu-west-1", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		token  string         // session token, when set
		want   outcome
		text   string
	}{
		{name: "200", want: sent, text: esptest.SESMessageID},
		{name: "200 with a session token", token: "FwoGZXIvYXdzEXAMPLE", want: sent, text: esptest.SESMessageID},
		{name: "MessageRejected", answer: esptest.SESError(400, "MessageRejected", "ses-400-messagerejected.json"),
			want: refused, text: "MessageRejected: Email address is not verified"},
		{name: "MailFromDomainNotVerifiedException", answer: esptest.SESError(400, "MailFromDomainNotVerifiedException", "ses-400-badrequest.json"),
			want: refused, text: "MailFromDomainNotVerifiedException"},
		{name: "BadRequestException", answer: esptest.SESError(400, "BadRequestException", "ses-400-badrequest.json"),
			want: refused, text: "BadRequestException: Missing final '@domain'"},
		{name: "TooManyRequestsException", answer: esptest.SESError(429, "TooManyRequestsException", "ses-429-toomanyrequests.json"),
			want: transient, text: "TooManyRequestsException: Maximum sending rate exceeded."},
		{name: "SendingPausedException", answer: esptest.SESError(400, "SendingPausedException", "ses-429-toomanyrequests.json"),
			want: transient, text: "SendingPausedException"},
		{name: "500", answer: esptest.SESError(500, "InternalFailure", "ses-429-toomanyrequests.json"),
			want: transient, text: "InternalFailure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.SES(t, region, akid, secret)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			s := &esp.SES{Region: region, AccessKeyID: akid, SecretAccessKey: secret, SessionToken: tc.token, ConfigurationSet: "dispatchflow", BaseURL: f.URL}
			rcpt, err := s.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, secret)
			r := checkRequest(t, f, `"Shop" <shop@example.com>`, `"Ann" <ann@example.com>`)
			if r.Extra["ConfigurationSetName"] != "dispatchflow" {
				t.Errorf("ConfigurationSetName %q, want dispatchflow", r.Extra["ConfigurationSetName"])
			}
			if tc.want == sent && (rcpt.Provider != "ses" || rcpt.MessageID != esptest.SESMessageID) {
				t.Errorf("receipt %+v, want message id %s", rcpt, esptest.SESMessageID)
			}
		})
	}
}

// A wrong secret key fails the fake's signature check: the check is real.
func TestSESFakeChecksSignature(t *testing.T) {
	t.Parallel()
	f := esptest.SES(t, "eu-west-1", "AKIAIOSFODNN7EXAMPLE", "right")
	s := &esp.SES{Region: "eu-west-1", AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wrong", ConfigurationSet: "c", BaseURL: f.URL}
	if _, err := s.Send(context.Background(), testEmail); err == nil {
		t.Fatal("sent with a wrong secret key, want the fake to refuse the signature")
	}
	if c := f.TakeComplaints(); len(c) != 1 || !strings.Contains(c[0], "signature does not match") {
		t.Errorf("fake complained %q, want one signature mismatch", c)
	}
}
