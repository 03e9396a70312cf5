package postback

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	secretA Secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	secretB Secret = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="
)

// Our signatures verify with the Standard Webhooks reference library, for each
// secret of a rotation, and not with another secret or another body.
func TestSignVerifiesWithReferenceLibrary(t *testing.T) {
	t.Parallel()
	body := []byte(`{"dispatch_id":"acf471119f7449d579e8089032003ded","status":"delivered"}`)
	now := time.Now()
	tests := []struct {
		name    string
		secrets []Secret
	}{
		{"one secret", []Secret{secretA}},
		{"rotation", []Secret{secretA, secretB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sig, err := Sign(tt.secrets, "msg_2Lq8", now, body)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set(HeaderID, "msg_2Lq8")
			h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			h.Set(HeaderSignature, sig)
			if got := len(strings.Fields(sig)); got != len(tt.secrets) {
				t.Errorf("got %d signatures, want %d", got, len(tt.secrets))
			}
			for _, s := range tt.secrets {
				wh, err := standardwebhooks.NewWebhook(s.Reveal())
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.Verify(body, h); err != nil {
					t.Errorf("reference library: %v", err)
				}
				if err := wh.Verify(append(body, ' '), h); err == nil {
					t.Error("reference library accepted a changed body")
				}
			}
			other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("QUFB", 8))
			if err := other.Verify(body, h); err == nil {
				t.Error("reference library accepted another secret")
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	if _, err := Sign([]Secret{secretA}, "msg.1", time.Now(), nil); err == nil {
		t.Error("accepted a webhook id with a full stop")
	}
	if _, err := Sign([]Secret{"whsec_short"}, "msg_1", time.Now(), nil); err == nil {
		t.Error("accepted a malformed secret")
	}
}

// The reference library's own test vector (libraries/go/webhook_test.go,
// TestWebhookSign).
func ExampleSign() {
	ts := time.Unix(1614265330, 0)
	sig, _ := Sign([]Secret{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, []byte(`{"test": 2432232314}`))
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}
