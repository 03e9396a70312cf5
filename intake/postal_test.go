package intake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// The fixtures are the webhook requests of django-anymail's Postal tests
// (anymail/django-anymail tests/test_postal_webhooks.py: test_delivered_event,
// test_deferred_event, test_queued_event, test_failed_event, test_bounce_event,
// test_ignore_incoming_events), and MessageLoaded and MessageLinkClicked requests
// built as Postal builds them (postalserver/postal lib/postal/message_db/message.rb
// create_load, lib/tracking_middleware.rb); intake/testdata/README.md lists our
// changes (the dispatch_id tag).
func TestPostal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want want
	}{
		{"postal_sent.json", want{Type: message.EventDelivered, RawType: "MessageSent", DispatchID: seedDispatchID, MessageID: "1563",
			ID: "58e8d7ee-2cd5-4db2-9af3-3f436105795a", Timestamp: time.UnixMicro(1606753101354368).UTC()}},
		// SoftFail: Postal retries it.
		{"postal_delayed.json", want{Type: message.EventDeferred, RawType: "MessageDelayed", DispatchID: seedDispatchID, MessageID: "1564",
			ID: "0fcc831f-92b9-4e2b-97f2-d873abc77fab", Reason: "server output"}},
		// HardFail: Postal gave up.
		{"postal_failed.json", want{Type: message.EventBounced, RawType: "MessageDeliveryFailed", DispatchID: seedDispatchID, MessageID: "1571",
			ID: "5fec5077-dae7-4989-94d5-e1963f3e9181", Reason: "server output"}},
		// Held until released (or the hold expires): not sent, not given up.
		{"postal_held.json", want{Type: message.EventDeferred, RawType: "MessageHeld", DispatchID: seedDispatchID, MessageID: "1568",
			ID: "9be13015-2e54-456c-bf66-eacbe33da824", Reason: "server output"}},
		// A bounce message came back: the original message bounced.
		{"postal_bounced.json", want{Type: message.EventBounced, RawType: "MessageBounced", DispatchID: seedDispatchID, MessageID: "233843",
			ID: "0fcc831f-92b9-4e2b-97f2-d873abc77fab"}},
		{"postal_loaded.json", want{Type: message.EventOpen, RawType: "MessageLoaded", DispatchID: seedDispatchID, MessageID: "1563"}},
		{"postal_clicked.json", want{Type: message.EventClick, RawType: "MessageLinkClicked", DispatchID: seedDispatchID, MessageID: "1563"}},
		// Sent through Postal's SMTP relay by dispatchflow's smtp sender: our Message-ID.
		{"postal_sent_relay.json", want{Type: message.EventDelivered, RawType: "MessageSent", DispatchID: seedDispatchID, MessageID: "1563"}},
		// About mail Postal received, not mail dispatchflow sent: no message of ours.
		{"postal_incoming.json", want{Type: message.EventUnknown, RawType: "MessageDeliveryFailed/incoming",
			ID: "a01724c0-0d1a-4090-89aa-c3da5a683375"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			got := one(t, &Postal{}, post(body), body)
			checkEvent(t, 0, got, ProviderPostal, tt.want)
			checkInvariants(t, ProviderPostal, []message.Event{got})
		})
	}
}

// postalBody is body with fields of its payload.message set.
func postalBody(t *testing.T, body []byte, msg map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range msg {
		m["payload"].(map[string]any)["message"].(map[string]any)[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The dispatch_id travels in the one tag Postal echoes, "dispatch_id:<id>", or in
// the Message-ID dispatchflow's smtp sender writes; else the event names only
// Postal's message.
func TestPostalDispatchID(t *testing.T) {
	t.Parallel()
	const postalID = "c462ad36-be49-469c-b7b2-dfd317eb40fa@rp.postal.example.com"
	for _, tt := range []struct {
		name      string
		tag       any
		messageID string
		want      string
	}{
		{"tag", "dispatch_id:" + seedDispatchID, postalID, seedDispatchID},
		{"tag over the Message-ID", "dispatch_id:" + seedDispatchID, "0123456789abcdef0123456789abcdef@dispatchflow", seedDispatchID},
		{"our Message-ID", nil, seedDispatchID + "@dispatchflow", seedDispatchID},
		{"our Message-ID in angle brackets", nil, "<" + seedDispatchID + "@dispatchflow>", seedDispatchID},
		{"another tag", "welcome-email", postalID, ""},
		{"a bare id is no tag of ours", seedDispatchID, postalID, ""},
		{"not a dispatch_id", nil, "order-1234@dispatchflow", ""},
		{"another domain", nil, seedDispatchID + "@example.com", ""},
		{"nothing", nil, postalID, ""},
	} {
		body := postalBody(t, fixture(t, "postal_sent.json"), map[string]any{"tag": tt.tag, "message_id": tt.messageID})
		got := one(t, &Postal{}, post(body), body)
		if got.DispatchID != tt.want || got.MessageID != "1563" {
			t.Errorf("%s: got dispatch_id %q message id %q, want %q and 1563", tt.name, got.DispatchID, got.MessageID, tt.want)
		}
	}
}

// Postal's events about no message are kept as unknown.
func TestPostalOtherEvents(t *testing.T) {
	t.Parallel()
	for _, ev := range []string{"DomainDNSError", "SendLimitApproaching", "SendLimitExceeded"} {
		body := []byte(`{"event":"` + ev + `","timestamp":1606753101.354368,"payload":{"server":{"uuid":"54529725-8807-4069-ab29-a3746c1bbd98"}},"uuid":"u-` + ev + `"}`)
		got := one(t, &Postal{}, post(body), body)
		if got.Type != message.EventUnknown || got.RawType != ev || got.MessageID != "" || got.DispatchID != "" || got.ID != "u-"+ev {
			t.Errorf("%s: got %+v, want an unknown event of no message", ev, got)
		}
	}
}

func TestPostalInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no event", `{"timestamp":1606753101.3,"payload":{},"uuid":"u"}`, "event: is required"},
		{"timestamp a string", `{"event":"MessageSent","timestamp":"secret","uuid":"u"}`, "timestamp: a JSON string where a number is expected"},
		{"timestamp out of range", `{"event":"MessageSent","timestamp":-1,"uuid":"u"}`, "timestamp: not a Unix time"},
		{"payload an array", `{"event":"MessageSent","timestamp":1606753101.3,"payload":["secret"]}`, "payload: a JSON array, not an object"},
		{"message a string", `{"event":"MessageSent","timestamp":1606753101.3,"payload":{"message":"secret"}}`,
			"payload.message: a JSON string where an object is expected"},
		{"tag a number", `{"event":"MessageSent","timestamp":1606753101.3,"payload":{"message":{"tag":4}}}`,
			"payload.message.tag: a JSON number where a string is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := invalid(t, &Postal{}, post([]byte(tt.body)), []byte(tt.body))
			if got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "secret") {
				t.Errorf("reason %q quotes the payload", got)
			}
		})
	}
}

func TestPostalRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"not JSON", `{"event":"MessageSent","secret`, "malformed JSON"},
		{"an array", `[{"event":"MessageSent"}]`, "not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := (&Postal{}).Normalize(post([]byte(tt.body)), []byte(tt.body), receivedAt)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) || len(got.Events)+len(got.Invalid) > 0 {
				t.Fatalf("got %+v, %v; want a bad request containing %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the body", err)
			}
		})
	}
}

// newPostalKey returns a signing key and its public half as `postal
// default-dkim-record` prints it.
func newPostalKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, "v=DKIM1; t=s; h=sha256; p=" + base64.StdEncoding.EncodeToString(der) + ";"
}

func TestPostalSignature(t *testing.T) {
	t.Parallel()
	key, record := newPostalKey(t)
	other, _ := newPostalKey(t)
	pg, err := NewPostal(record, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "postal_failed.json")
	sent := time.Unix(1606753101, 0)
	pg.Now = func() time.Time { return sent.Add(40 * time.Minute) } // Postal's last retry: 36 minutes after
	tamper := []byte(strings.Replace(string(body), "MessageDeliveryFailed", "MessageSent", 1))
	sign := func(k *rsa.PrivateKey, b []byte) (string, string) {
		s256, s1, err := SignPostal(k, b)
		if err != nil {
			t.Fatal(err)
		}
		return s256, s1
	}
	good256, good1 := sign(key, body)
	other256, other1 := sign(other, body)
	withTS := func(ts float64) []byte {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["timestamp"] = ts
		b, _ := json.Marshal(m)
		return b
	}
	old := withTS(float64(sent.Add(-25 * time.Minute).Unix())) // 65 minutes old at Now
	old256, _ := sign(key, old)
	future := withTS(float64(sent.Add(50 * time.Minute).Unix()))
	future256, _ := sign(key, future)
	noTS := []byte(`{"event":"MessageSent","payload":{},"uuid":"u"}`)
	noTS256, _ := sign(key, noTS)
	tests := []struct {
		name          string
		sig256, sig1  string
		body          []byte
		wantStatus    int
		wantErrSubstr string
	}{
		{"both, valid", good256, good1, body, http.StatusOK, ""},
		{"SHA-256 only", good256, "", body, http.StatusOK, ""},
		// Postal before 3.2 signs with SHA-1 only.
		{"SHA-1 only", "", good1, body, http.StatusOK, ""},
		// When the SHA-256 signature is there, it is the one that counts.
		{"bad SHA-256, good SHA-1", other256, good1, body, http.StatusUnauthorized, "bad X-Postal-Signature-256"},
		{"other key", other256, other1, body, http.StatusUnauthorized, "bad X-Postal-Signature-256"},
		{"other key, SHA-1", "", other1, body, http.StatusUnauthorized, "bad X-Postal-Signature"},
		{"body changed", good256, good1, tamper, http.StatusUnauthorized, "bad X-Postal-Signature-256"},
		{"none", "", "", body, http.StatusUnauthorized, "is required"},
		{"not base64", "%%%", "", body, http.StatusUnauthorized, "not base64"},
		// Signed, but queued more than an hour ago: a replay, or a retry after the
		// last one Postal makes.
		{"65 minutes old", old256, "", old, http.StatusUnauthorized, "old, more than 1h0m0s"},
		{"from the future", future256, "", future, http.StatusUnauthorized, "in the future"},
		{"no timestamp", noTS256, "", noTS, http.StatusUnauthorized, "timestamp: a Unix time is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ans := overHTTP(t, pg, tt.body, func(h http.Header) {
				if tt.sig256 != "" {
					h.Set(PostalSignature256Header, tt.sig256)
				}
				if tt.sig1 != "" {
					h.Set(PostalSignatureHeader, tt.sig1)
				}
			})
			if ans.Status != tt.wantStatus || !strings.Contains(ans.Error, tt.wantErrSubstr) {
				t.Fatalf("got %+v; want %d with an error containing %q", ans, tt.wantStatus, tt.wantErrSubstr)
			}
			if tt.wantStatus != http.StatusOK {
				if len(ans.Batch.Events)+len(ans.Batch.Invalid) > 0 {
					t.Errorf("got %+v; want nothing read", ans.Batch)
				}
				return
			}
			if len(ans.Batch.Events) != 1 || ans.Batch.Events[0].Type != message.EventBounced || ans.Batch.Events[0].ID != "5fec5077-dae7-4989-94d5-e1963f3e9181" {
				t.Errorf("got %+v; want the failure, by its uuid", ans.Batch)
			}
		})
	}

	t.Run("max age", func(t *testing.T) {
		t.Parallel()
		strict, err := NewPostal(record, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		strict.Now = pg.Now
		ans := overHTTP(t, strict, body, func(h http.Header) { h.Set(PostalSignature256Header, good256) })
		if ans.Status != http.StatusUnauthorized || !strings.Contains(ans.Error, "more than 30m0s") {
			t.Fatalf("40 minutes old, max age 30m: got %+v, want 401", ans)
		}
	})
	t.Run("signed, not an object", func(t *testing.T) {
		t.Parallel()
		b := []byte(`["MessageSent"]`)
		s256, _ := sign(key, b)
		ans := overHTTP(t, pg, b, func(h http.Header) { h.Set(PostalSignature256Header, s256) })
		if ans.Status != http.StatusBadRequest {
			t.Fatalf("got %+v, want 400", ans)
		}
	})
}

// The key is taken as `postal default-dkim-record` prints it, its p= value, or
// PEM, in PKIX or PKCS #1; anything else is refused without being quoted.
func TestNewPostalKey(t *testing.T) {
	t.Parallel()
	key, record := newPostalKey(t)
	pkix, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	p := base64.StdEncoding.EncodeToString(pkix)
	pkcs1 := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	body := fixture(t, "postal_sent.json")
	s256, _, err := SignPostal(key, body)
	if err != nil {
		t.Fatal(err)
	}
	for name, form := range map[string]string{
		"DKIM record":       record,
		"p= value":          p,
		"p= value, wrapped": p[:60] + "\n" + p[60:],
		"PEM":               string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})),
		"PEM, PKCS #1":      string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})),
		"base64 PKCS #1":    base64.StdEncoding.EncodeToString(pkcs1),
	} {
		pg, err := NewPostal(form, 0)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		pg.Now = func() time.Time { return time.Unix(1606753101, 0) }
		r := post(body)
		r.Header.Set(PostalSignature256Header, s256)
		if _, err := pg.Normalize(r, body, receivedAt); err != nil {
			t.Errorf("%s: a valid signature refused: %v", name, err)
		}
	}
	// A 512-bit modulus (Go generates no such key any more).
	small := &rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 511), big.NewInt(1)), E: 65537}
	smallDER, err := x509.MarshalPKIXPublicKey(small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPostal(base64.StdEncoding.EncodeToString(smallDER), 0); err == nil || !strings.Contains(err.Error(), "at least 1024") {
		t.Errorf("a 512-bit key: got %v, want it refused", err)
	}
	ec, _ := newSendGridKey(t)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tt := range []struct{ name, key, want string }{
		{"not base64", "secret-key-material!", "not base64 DER, PEM, or a DKIM record"},
		{"not DER", base64.StdEncoding.EncodeToString([]byte("secret")), "not a DER public key"},
		{"ECDSA", base64.StdEncoding.EncodeToString(ecDER), "not an RSA public key"},
	} {
		_, err := NewPostal(tt.key, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: got %v, want %q without the key", tt.name, err, tt.want)
		}
	}
	if _, err := NewPostal("", -time.Second); err == nil {
		t.Error("a negative max age accepted")
	}
}
