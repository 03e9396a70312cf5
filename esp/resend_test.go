package esp_test

import (
	"context"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

func TestResend(t *testing.T) {
	t.Parallel()
	const key = "re_123456789_TestKey"
	for _, tc := range []struct {
		name   string
		answer esptest.Answer // zero: the fake's documented 200
		want   outcome
		text   string
	}{
		// Answer bodies: esp/esptest/testdata/README.md says where each comes from.
		{name: "200 OK", want: sent, text: esptest.ResendEmailID},
		{name: "422 missing field", answer: esptest.Answer{Status: 422, Body: esptest.Fixture("resend-422.json")},
			want: refused, text: "The request body is missing one or more required fields. (Resend missing_required_field)"},
		{name: "403 domain not verified", answer: esptest.Answer{Status: 403, Body: esptest.Fixture("resend-403-domain.json")},
			want: refused, text: "The domain.com domain is not verified. Please, add and verify your domain. (Resend validation_error)"},
		// Resend's validation_error of status 400, message as its errors page words it.
		{name: "400 validation error", answer: esptest.Answer{Status: 400,
			Body: `{"statusCode":400,"message":"We found an error with one or more fields in the request.","name":"validation_error"}`},
			want: refused, text: "We found an error with one or more fields in the request."},
		{name: "400 API key is invalid: configuration, retried", answer: esptest.Answer{Status: 400, Body: esptest.Fixture("resend-400-key.json")},
			want: transient, text: "DISPATCHFLOW_RESEND_API_KEY"},
		// Resend's missing_api_key and invalid_api_key, as its errors page words them.
		{name: "401 missing key: configuration, retried", answer: esptest.Answer{Status: 401,
			Body: `{"statusCode":401,"message":"Missing API key in the authorization header.","name":"missing_api_key"}`},
			want: transient, text: "DISPATCHFLOW_RESEND_API_KEY"},
		{name: "403 invalid key: configuration, retried", answer: esptest.Answer{Status: 403,
			Body: `{"statusCode":403,"message":"API key is invalid.","name":"invalid_api_key"}`},
			want: transient, text: "invalid_api_key"},
		{name: "409 idempotent request in progress: retried", answer: esptest.Answer{Status: 409, Body: esptest.Fixture("resend-409.json")},
			want: transient, text: "idempotency key (the dispatch_id) in use"},
		{name: "429 daily quota", answer: esptest.Answer{Status: 429, Body: esptest.Fixture("resend-429.json")},
			want: transient, text: "daily_quota_exceeded"},
		{name: "500", answer: esptest.Answer{Status: 500,
			Body: `{"statusCode":500,"message":"An unexpected error occurred.","name":"internal_server_error"}`},
			want: transient, text: "resend answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := esptest.Resend(t, key)
			if tc.answer.Status != 0 {
				f.Answer(tc.answer)
			}
			r := &esp.Resend{APIKey: key, BaseURL: f.URL}
			rcpt, err := r.Send(context.Background(), testEmail)
			checkOutcome(t, rcpt, err, tc.want, tc.text, key)
			// The request Resend documents (resend.com/docs/api-reference/emails/send-email):
			// from and to as "Name <address>", the tag {"name": "dispatch_id", "value": …}
			// (webhooks return it in data.tags; anymail/django-anymail
			// anymail/backends/resend.py sends tags the same way), and the Idempotency-Key
			// header (resend.com/docs/dashboard/emails/idempotency-keys).
			req := checkRequest(t, f, `"Shop" <shop@example.com>`, `"Ann" <ann@example.com>`)
			if req.Extra["Idempotency-Key"] != testEmail.DispatchID {
				t.Errorf("Idempotency-Key %q, want the dispatch id %s", req.Extra["Idempotency-Key"], testEmail.DispatchID)
			}
			if tc.want == sent && (rcpt.Provider != "resend" || rcpt.MessageID != esptest.ResendEmailID) {
				t.Errorf("receipt %+v, want provider resend and message id %s (the events' data.email_id)", rcpt, esptest.ResendEmailID)
			}
		})
	}
}

// A Send made again (its answer lost) is the same request under the same
// Idempotency-Key, which Resend answers with the first answer for 24 hours
// without sending a second email.
func TestResendRetryIsRecognisable(t *testing.T) {
	t.Parallel()
	f := esptest.Resend(t, "k")
	r := &esp.Resend{APIKey: "k", BaseURL: f.URL}
	f.Answer(esptest.Answer{Status: 500}, esptest.Answer{Status: 200, Body: esptest.Fixture("resend-200.json")})
	if _, err := r.Send(context.Background(), testEmail); err == nil {
		t.Fatal("first attempt answered 500: want an error")
	}
	rcpt, err := r.Send(context.Background(), testEmail)
	if err != nil || rcpt.MessageID != esptest.ResendEmailID {
		t.Fatalf("second attempt: receipt %+v, error %v; want message id %s", rcpt, err, esptest.ResendEmailID)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("Resend received %d requests, want 2", len(reqs))
	}
	for i, req := range reqs {
		if req.Extra["Idempotency-Key"] != testEmail.DispatchID {
			t.Errorf("request %d: Idempotency-Key %q, want %s", i, req.Extra["Idempotency-Key"], testEmail.DispatchID)
		}
	}
	if reqs[0].Extra["body.sha256"] != reqs[1].Extra["body.sha256"] {
		t.Error("the two attempts sent different bodies: Resend would answer 409 invalid_idempotent_request, not the first answer")
	}

	// Another message has another key.
	other := testEmail
	other.DispatchID = "fedcba9876543210fedcba9876543210"
	if _, err := r.Send(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if got := f.Requests()[2].Extra["Idempotency-Key"]; got != other.DispatchID {
		t.Errorf("Idempotency-Key %q, want %s", got, other.DispatchID)
	}
}

// A dispatch_id that cannot be a tag value is refused before anything is sent;
// without an answer, or a key, nothing is sent.
func TestResendRefusesWhatItCannotTag(t *testing.T) {
	t.Parallel()
	f := esptest.Resend(t, "k")
	r := &esp.Resend{APIKey: "k", BaseURL: f.URL}
	bad := testEmail
	bad.DispatchID = "order 1234/é"
	_, err := r.Send(context.Background(), bad)
	checkOutcome(t, esp.Receipt{}, err, refused, "dispatch_id: not a Resend tag value", "")
	if n := len(f.Requests()); n != 0 {
		t.Errorf("Resend received %d requests, want none", n)
	}

	f.Close()
	_, err = r.Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "resend: no answer from", "")

	_, err = (&esp.Resend{BaseURL: "http://127.0.0.1:1"}).Send(context.Background(), testEmail)
	checkOutcome(t, esp.Receipt{}, err, transient, "DISPATCHFLOW_RESEND_API_KEY", "")
}
