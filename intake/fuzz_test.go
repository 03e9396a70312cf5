package intake

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/dispatchflow/dispatchflow/message"
)

// Every fuzz target holds a normalizer to the same rules: no panic; a body that is
// not JSON is an error and no event; every event passes checkInvariants. The seed
// corpus is under testdata/fuzz/<FuzzName>/ (the fixtures and a few malformed bodies).

func fuzzNormalizer(f *testing.F, provider string, n Normalizer) {
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := n.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, provider, body, events, err)
	})
}

func checkFuzzResult(t *testing.T, provider string, body []byte, events []message.Event, err error) {
	t.Helper()
	if err != nil && events != nil {
		t.Fatalf("error %v with %d events", err, len(events))
	}
	if !json.Valid(body) && err == nil {
		t.Fatalf("no error for a body that is not JSON; %d events", len(events))
	}
	checkInvariants(t, provider, events)
}

func FuzzSendGrid(f *testing.F) { fuzzNormalizer(f, ProviderSendGrid, &SendGrid{}) }

func FuzzMailgun(f *testing.F) {
	plain, signed := NewMailgun("", 0), NewMailgun("key-fuzz", 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := plain.Normalize(post(body), body, receivedAt)
		checkFuzzResult(t, ProviderMailgun, body, events, err)
		if events, err := signed.Normalize(post(body), body, receivedAt); err == nil || events != nil {
			t.Fatalf("unsigned body accepted with a signing key: %d events, %v", len(events), err)
		}
	})
}

func FuzzPostmark(f *testing.F) { fuzzNormalizer(f, ProviderPostmark, &Postmark{}) }

func FuzzSarbacane(f *testing.F) { fuzzNormalizer(f, ProviderSarbacane, &Sarbacane{}) }

func FuzzAJO(f *testing.F) { fuzzNormalizer(f, ProviderAJO, &AJO{}) }

// FuzzSES fuzzes the SNS envelope (its signature never verifies: no host is
// allowed, so nothing is fetched) and, separately, the SES event inside it.
func FuzzSES(f *testing.F) {
	ses := NewSES(nil, regexp.MustCompile(`a^`), nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := post(body)
		r.Header.Set(SNSMessageTypeHeader, "Notification")
		if events, err := ses.Normalize(r, body, receivedAt); err == nil || events != nil {
			t.Fatalf("unverifiable SNS message accepted: %d events, %v", len(events), err)
		}
		if string(body) == sesTopicValidated {
			return
		}
		events, err := sesEvents(&snsMessage{Type: "Notification", MessageID: "m", Message: string(body)}, receivedAt)
		checkFuzzResult(t, ProviderSES, body, events, err)
	})
}
