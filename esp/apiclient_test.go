package esp_test

import (
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

// outcome is what a sender's answer means: sent, refused (the message is
// aborted) or transient (the Send activity is retried).
type outcome int

const (
	sent outcome = iota
	refused
	transient
)

func (o outcome) String() string { return [...]string{"sent", "refused", "transient"}[o] }

// testEmail is the email every sender test hands over.
var testEmail = esp.Email{
	DispatchID: "0123456789abcdef0123456789abcdef",
	From:       "Shop <shop@example.com>",
	To:         "Ann <ann@example.com>",
	Subject:    "Your order #1234",
	Text:       "Thanks for your order.",
	HTML:       "<p>Thanks for your order.</p>",
}

// checkOutcome checks an answer's outcome, and that the error (or refusal
// reason) says what the provider said (contains want) and never the secret.
func checkOutcome(t *testing.T, rcpt esp.Receipt, err error, want outcome, wantText, secret string) {
	t.Helper()
	got := sent
	reason, isRefused := esp.IsRefused(err)
	switch {
	case isRefused:
		got = refused
	case err != nil:
		got = transient
	}
	if got != want {
		t.Fatalf("got %s (receipt %+v, error %v), want %s", got, rcpt, err, want)
	}
	text := rcpt.MessageID
	if isRefused {
		text = reason
	} else if err != nil {
		text = err.Error()
	}
	if !strings.Contains(text, wantText) {
		t.Errorf("got %q, want it to contain %q", text, wantText)
	}
	if secret != "" && err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows the secret", err)
	}
}

// checkRequest checks that a fake received testEmail once.
func checkRequest(t *testing.T, f *esptest.Fake, wantFrom, wantTo string) esptest.Request {
	t.Helper()
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("provider received %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.DispatchID != testEmail.DispatchID || r.From != wantFrom || r.To != wantTo || r.Subject != testEmail.Subject ||
		r.Text != testEmail.Text || r.HTML != testEmail.HTML {
		t.Errorf("provider received %+v, want dispatch_id %s, from %q, to %q and the email's subject, text and html",
			r, testEmail.DispatchID, wantFrom, wantTo)
	}
	return r
}
