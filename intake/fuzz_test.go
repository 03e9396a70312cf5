package intake

import (
	"encoding/json"
	"net/url"
	"regexp"
	"testing"
)

// Every fuzz target holds a normalizer to the same rules: no panic; a body that is
// not JSON is an error, with nothing read; no event is made up from garbage:
// there are never more events and invalid events than the body holds, and every
// event passes checkInvariants. The seed corpus is under testdata/fuzz/<FuzzName>/
// (the fixtures and a few malformed bodies).

func fuzzNormalizer(f *testing.F, provider string, n Normalizer) {
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := n.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, provider, body, b, err, 1)
	})
}

func checkFuzzResult(t *testing.T, provider string, body []byte, b Batch, err error, held int) {
	t.Helper()
	if err != nil && (len(b.Events) > 0 || len(b.Invalid) > 0) {
		t.Fatalf("error %v with %d events, %d invalid", err, len(b.Events), len(b.Invalid))
	}
	if !json.Valid(body) && err == nil {
		t.Fatalf("no error for a body that is not JSON; %d events, %d invalid", len(b.Events), len(b.Invalid))
	}
	checkBatch(t, provider, b, held)
}

// checkBatch checks a batch read from a body that holds at most held events.
func checkBatch(t *testing.T, provider string, b Batch, held int) {
	t.Helper()
	if n := len(b.Events) + len(b.Invalid); n > held {
		t.Fatalf("%d events and invalid events from a body of %d", n, held)
	}
	for _, inv := range b.Invalid {
		if inv.Index < 0 || inv.Index >= held || inv.Reason == "" {
			t.Fatalf("invalid event %+v of a body of %d", inv, held)
		}
	}
	checkInvariants(t, provider, b.Events)
}

// FuzzSendGrid posts arrays: the body holds as many events as its elements.
func FuzzSendGrid(f *testing.F) {
	sg := &SendGrid{}
	f.Fuzz(func(t *testing.T, body []byte) {
		var elems []json.RawMessage
		_ = json.Unmarshal(body, &elems)
		b, err := sg.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderSendGrid, body, b, err, len(elems))
	})
}

func FuzzMailgun(f *testing.F) {
	plain, signed := NewMailgun("", 0), NewMailgun("key-fuzz", 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderMailgun, body, b, err, 1)
		if b, err := signed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("unsigned body accepted with a signing key: %+v, %v", b, err)
		}
	})
}

func FuzzPostmark(f *testing.F) { fuzzNormalizer(f, ProviderPostmark, &Postmark{}) }

func FuzzSarbacane(f *testing.F) { fuzzNormalizer(f, ProviderSarbacane, &Sarbacane{}) }

func FuzzAJO(f *testing.F) { fuzzNormalizer(f, ProviderAJO, &AJO{}) }

// FuzzSES fuzzes the SNS envelope (its signature never verifies: no host is
// allowed, so nothing is fetched) and, separately, the SES event inside a
// verified envelope, where garbage is an invalid event, never an error.
func FuzzSES(f *testing.F) {
	ses := NewSES(nil, regexp.MustCompile(`a^`), nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := post(body)
		r.Header.Set(SNSMessageTypeHeader, "Notification")
		if b, err := ses.Normalize(r, body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("unverifiable SNS message accepted: %+v, %v", b, err)
		}
		b := sesEvents(&snsMessage{Type: "Notification", MessageID: "m", Message: string(body)}, receivedAt)
		if !json.Valid(body) && len(b.Events) > 0 {
			t.Fatalf("%d events from a Message that is not JSON", len(b.Events))
		}
		checkBatch(t, ProviderSES, b, 1)
	})
}

// FuzzResend fuzzes an unsigned Resend intake, and holds a signed one to refuse
// every body without a valid signature.
func FuzzResend(f *testing.F) {
	plain, signed := &Resend{}, mustResend(f, resendSecret)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderResend, body, b, err, 1)
		if b, err := signed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("unsigned body accepted with a signing secret: %+v, %v", b, err)
		}
	})
}

func mustResend(f *testing.F, secret string) *Resend {
	f.Helper()
	rs, err := NewResend(secret)
	if err != nil {
		f.Fatal(err)
	}
	return rs
}

// FuzzMailerSend fuzzes an unsigned MailerSend intake, and a signed one with
// bodies signed with the public test secret: only a ping may pass, with no event.
func FuzzMailerSend(f *testing.F) {
	plain, signed := &MailerSend{}, &MailerSend{SigningSecret: mailerSendSecret}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderMailerSend, body, b, err, 1)
		r := post(body)
		r.Header.Set(MailerSendSignatureHeader, SignMailerSend(MailerSendTestSecret, body))
		if b, err := signed.Normalize(r, body, receivedAt); len(b.Events) > 0 || len(b.Invalid) > 0 || (err == nil && !isMailerSendPing(body)) {
			t.Fatalf("body signed with the public test secret accepted: %+v, %v", b, err)
		}
	})
}

// FuzzPostal fuzzes an unsigned Postal intake, and holds a verifying one to refuse
// every unsigned body.
func FuzzPostal(f *testing.F) {
	_, record := newPostalKey(f)
	plain, signed := &Postal{}, mustPostal(f, record)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderPostal, body, b, err, 1)
		if b, err := signed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("unsigned body accepted with a public key: %+v, %v", b, err)
		}
	})
}

func mustPostal(f *testing.F, key string) *Postal {
	f.Helper()
	p, err := NewPostal(key, 0)
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// heldBy is how many events body holds for providers that post one object or an
// array of them: the array's elements, else 1.
func heldBy(body []byte) int {
	var elems []json.RawMessage
	if json.Unmarshal(body, &elems) == nil {
		return len(elems)
	}
	return 1
}

// FuzzBrevo fuzzes Brevo's object or batched array, unauthenticated, and holds an
// intake with credentials to refuse every request without them.
func FuzzBrevo(f *testing.F) {
	plain, authed := &Brevo{}, &Brevo{Username: "u", Password: "p"}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderBrevo, body, b, err, heldBy(body))
		if b, err := authed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("request without credentials accepted: %+v, %v", b, err)
		}
	})
}

// FuzzMailjet fuzzes Mailjet's object or grouped array.
func FuzzMailjet(f *testing.F) {
	plain, authed := &Mailjet{}, &Mailjet{Username: "u", Password: "p"}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderMailjet, body, b, err, heldBy(body))
		if b, err := authed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("request without credentials accepted: %+v, %v", b, err)
		}
	})
}

// FuzzSparkPost fuzzes SparkPost's batch: at most one event per element (a ping
// has none).
func FuzzSparkPost(f *testing.F) {
	plain, authed := &SparkPost{}, &SparkPost{Username: "u", Password: "p"}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderSparkPost, body, b, err, heldBy(body))
		if b, err := authed.Normalize(post(body), body, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("request without credentials accepted: %+v, %v", b, err)
		}
	})
}

// FuzzMandrill fuzzes the mandrill_events JSON of a validly signed form (the
// seeds are event arrays), and holds the intake to refuse the same bytes posted
// as a raw, unsigned body.
func FuzzMandrill(f *testing.F) {
	const key, hook = "fuzz-key", "https://hooks.example.com/v1/events/mandrill"
	m := &Mandrill{Key: key, URL: hook}
	f.Fuzz(func(t *testing.T, events []byte) {
		form := url.Values{"mandrill_events": {string(events)}}
		body := []byte(form.Encode())
		r := post(body)
		r.Header.Set(MandrillSignatureHeader, SignMandrill(key, hook, form))
		b, err := m.Normalize(r, body, receivedAt)
		if err != nil && (len(b.Events) > 0 || len(b.Invalid) > 0) {
			t.Fatalf("error %v with %d events, %d invalid", err, len(b.Events), len(b.Invalid))
		}
		if !json.Valid(events) && err == nil {
			t.Fatalf("no error for mandrill_events that are not JSON; %d events", len(b.Events))
		}
		checkBatch(t, ProviderMandrill, b, heldBy(events))
		if b, err := m.Normalize(post(events), events, receivedAt); err == nil || len(b.Events) > 0 || len(b.Invalid) > 0 {
			t.Fatalf("unsigned body accepted: %+v, %v", b, err)
		}
	})
}
