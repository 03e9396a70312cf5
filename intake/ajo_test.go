package intake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dispatchflow/dispatchflow/message"
)

// ajoBody is the documented example with its feedback replaced.
func ajoBody(t *testing.T, status string, failure, exclusion map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, "ajo_bounce.json"), &m); err != nil {
		t.Fatal(err)
	}
	fb := m["messageDeliveryFeedback"].(map[string]any)
	fb["feedbackStatus"] = map[string]any{"value": status}
	fb["messageFailure"], fb["messageExclusion"] = failure, exclusion
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAJO(t *testing.T) {
	t.Parallel()
	const req, exec = "8NoByJneShCdCGRnrGS1t1m3CdA73dhR", "HUMA-26362805"
	failure := func(typ, code, reason string) map[string]any {
		return map[string]any{"category": "async", "type": typ, "code": code, "reason": reason}
	}
	tests := []struct {
		name string
		body []byte
		want want
	}{
		{"documented example: bounce, Ignored, 25 Admin Failure", fixture(t, "ajo_bounce.json"),
			want{Type: message.EventAborted, RawType: "bounce (Ignored)", Reason: "Ignored 25 Admin Failure"}},
		{"sent", ajoBody(t, "sent", nil, nil), want{Type: message.EventProcessed, RawType: "sent"}},
		{"delivered", ajoBody(t, "delivered", nil, nil), want{Type: message.EventDelivered, RawType: "delivered"}},
		{"hard bounce 10", ajoBody(t, "bounce", failure("Hard", "10", "Invalid Recipient"), nil),
			want{Type: message.EventBounced, RawType: "bounce (Hard)", Reason: "Hard 10 Invalid Recipient"}},
		{"soft bounce 22", ajoBody(t, "bounce", failure("Soft", "22", "Mailbox Full"), nil),
			want{Type: message.EventDeferred, RawType: "bounce (Soft)", Reason: "Soft 22 Mailbox Full"}},
		{"ignored 24 timeout", ajoBody(t, "bounce", failure("Ignored", "24", "Timeout"), nil),
			want{Type: message.EventDeferred, RawType: "bounce (Ignored)", Reason: "Ignored 24 Timeout"}},
		{"unknown code, type Hard", ajoBody(t, "bounce", failure("Hard", "99", "New"), nil),
			want{Type: message.EventBounced, RawType: "bounce (Hard)", Reason: "Hard 99 New"}},
		{"delay", ajoBody(t, "delay", nil, nil), want{Type: message.EventDeferred, RawType: "delay"}},
		{"exclude", ajoBody(t, "exclude", nil, map[string]any{"code": "1", "reason": "Profile opted out"}),
			want{Type: message.EventAborted, RawType: "exclude", Reason: "Profile opted out"}},
		{"denylist", ajoBody(t, "denylist", nil, nil), want{Type: message.EventAborted, RawType: "denylist", Reason: "denylist"}},
		{"duplicate", ajoBody(t, "duplicate", nil, nil), want{Type: message.EventAborted, RawType: "duplicate", Reason: "duplicate"}},
		{"error", ajoBody(t, "error", failure("", "", "Rendering failed"), nil), want{Type: message.EventAborted, RawType: "error", Reason: "Rendering failed"}},
		{"new status", ajoBody(t, "opened", nil, nil), want{Type: message.EventUnknown, RawType: "opened"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := (&AJO{}).Normalize(post(tt.body), tt.body, receivedAt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d events, want 1", len(got))
			}
			w := tt.want
			w.DispatchID, w.MessageID, w.Timestamp = req, exec, receivedAt
			checkEvent(t, 0, got[0], ProviderAJO, w)
			checkInvariants(t, ProviderAJO, got)
		})
	}
}

// AJO has no event id: a retry gets the same key, another status another one.
func TestAJOSyntheticID(t *testing.T) {
	t.Parallel()
	a, _ := (&AJO{}).Normalize(post(nil), ajoBody(t, "sent", nil, nil), receivedAt)
	b, _ := (&AJO{}).Normalize(post(nil), ajoBody(t, "sent", nil, nil), receivedAt.Add(time.Minute))
	c, _ := (&AJO{}).Normalize(post(nil), ajoBody(t, "delivered", nil, nil), receivedAt)
	if a[0].ID != b[0].ID || a[0].ID == c[0].ID {
		t.Errorf("ids: sent %q, retry %q, delivered %q", a[0].ID, b[0].ID, c[0].ID)
	}
}

func TestAJOJWT(t *testing.T) {
	t.Parallel()
	const secret = "ajo-shared-secret"
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	hs, err := NewAJO(secret, "")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewAJO("", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		t.Fatal(err)
	}
	hs.Now, rs.Now = func() time.Time { return now }, func() time.Time { return now }
	hsToken := func(claims jwt.Claims, key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsToken := func(claims jwt.Claims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}
	signed, _ := SignAJO(secret, now.Add(time.Minute))
	tests := []struct {
		name   string
		ajo    *AJO
		header string
		ok     bool
	}{
		{"HS256", hs, "Bearer " + hsToken(valid, secret), true},
		{"SignAJO", hs, "Bearer " + signed, true},
		{"HS256 wrong secret", hs, "Bearer " + hsToken(valid, "other"), false},
		{"HS256 expired", hs, "Bearer " + hsToken(jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}, secret), false},
		{"HS256 without exp", hs, "Bearer " + hsToken(jwt.RegisteredClaims{Subject: "ajo"}, secret), false},
		{"RS256", rs, "Bearer " + rsToken(valid), true},
		{"RS256 token, HS256 configured", hs, "Bearer " + rsToken(valid), false},
		{"HS256 token signed with the RSA public key", rs, "Bearer " + hsToken(valid, string(der)), false},
		{"no header", hs, "", false},
		{"not Bearer", hs, "Basic dXNlcjpwYXNz", false},
	}
	body := fixture(t, "ajo_bounce.json")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := post(body)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			events, err := tt.ajo.Normalize(r, body, receivedAt)
			if tt.ok && (err != nil || len(events) != 1) {
				t.Fatalf("got %d events, %v; want 1", len(events), err)
			}
			if !tt.ok && (!errors.Is(err, ErrUnauthorized) || events != nil) {
				t.Fatalf("got %d events, %v; want unauthorized", len(events), err)
			}
		})
	}
}
