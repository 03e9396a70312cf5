package intake

import (
	"encoding/json"
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
