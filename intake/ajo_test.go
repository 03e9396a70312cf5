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
			want{Type: message.EventAborted, RawType: "bounce/Ignored/25", Reason: "Ignored 25 Admin Failure"}},
		{"sent", ajoBody(t, "sent", nil, nil), want{Type: message.EventProcessed, RawType: "sent"}},
		{"delivered", ajoBody(t, "delivered", nil, nil), want{Type: message.EventDelivered, RawType: "delivered"}},
		{"hard bounce 10", ajoBody(t, "bounce", failure("Hard", "10", "Invalid Recipient"), nil),
			want{Type: message.EventBounced, RawType: "bounce/Hard/10", Reason: "Hard 10 Invalid Recipient"}},
		{"hard bounce 15", ajoBody(t, "bounce", failure("Hard", "15", "Recipient Refused"), nil),
			want{Type: message.EventBounced, RawType: "bounce/Hard/15", Reason: "Hard 15 Recipient Refused"}},
		// Soft bounces AJO retries within its retry period.
		{"soft bounce 22", ajoBody(t, "bounce", failure("Soft", "22", "Mailbox Full"), nil),
			want{Type: message.EventDeferred, RawType: "bounce/Soft/22", Reason: "Soft 22 Mailbox Full"}},
		{"soft bounce 21", ajoBody(t, "bounce", failure("Soft", "21", "DNS Failure"), nil),
			want{Type: message.EventDeferred, RawType: "bounce/Soft/21", Reason: "Soft 21 DNS Failure"}},
		{"ignored 23 too large", ajoBody(t, "bounce", failure("Ignored", "23", "Too Large"), nil),
			want{Type: message.EventDeferred, RawType: "bounce/Ignored/23", Reason: "Ignored 23 Too Large"}},
		// The message's validity expired: AJO gave up.
		{"ignored 24 timeout", ajoBody(t, "bounce", failure("Ignored", "24", "Timeout"), nil),
			want{Type: message.EventBounced, RawType: "bounce/Ignored/24", Reason: "Ignored 24 Timeout"}},
		{"unknown code, type Hard", ajoBody(t, "bounce", failure("Hard", "99", "New"), nil),
			want{Type: message.EventBounced, RawType: "bounce/Hard/99", Reason: "Hard 99 New"}},
		{"delay", ajoBody(t, "delay", nil, nil), want{Type: message.EventDeferred, RawType: "delay"}},
		{"exclude", ajoBody(t, "exclude", nil, map[string]any{"code": "1", "reason": "Profile opted out"}),
			want{Type: message.EventAborted, RawType: "exclude/1", Reason: "Profile opted out"}},
		{"denylist", ajoBody(t, "denylist", nil, nil), want{Type: message.EventAborted, RawType: "denylist", Reason: "denylist"}},
		{"duplicate", ajoBody(t, "duplicate", nil, nil), want{Type: message.EventAborted, RawType: "duplicate", Reason: "duplicate"}},
		{"error", ajoBody(t, "error", failure("", "", "Rendering failed"), nil), want{Type: message.EventAborted, RawType: "error", Reason: "Rendering failed"}},
		{"new status", ajoBody(t, "opened", nil, nil), want{Type: message.EventUnknown, RawType: "opened"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := one(t, &AJO{}, post(tt.body), tt.body)
			w := tt.want
			w.DispatchID, w.MessageID, w.Timestamp = req, exec, receivedAt
			checkEvent(t, 0, got, ProviderAJO, w)
			checkInvariants(t, ProviderAJO, []message.Event{got})
		})
	}
}

// AJO has no event id: a retry gets the same key, another status another one.
func TestAJOSyntheticID(t *testing.T) {
	t.Parallel()
	a := one(t, &AJO{}, post(nil), ajoBody(t, "sent", nil, nil))
	b, _ := (&AJO{}).Normalize(post(nil), ajoBody(t, "sent", nil, nil), receivedAt.Add(time.Minute))
	c := one(t, &AJO{}, post(nil), ajoBody(t, "delivered", nil, nil))
	if a.ID != b.Events[0].ID || a.ID == c.ID {
		t.Errorf("ids: sent %q, retry %q, delivered %q", a.ID, b.Events[0].ID, c.ID)
	}
}

func TestAJOInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no status", `{"requestId":"r","messageDeliveryFeedback":{}}`, "messageDeliveryFeedback.feedbackStatus.value: is required"},
		{"failure a string", `{"requestId":"r","messageDeliveryFeedback":{"feedbackStatus":{"value":"bounce"},"messageFailure":"hard"}}`,
			"messageDeliveryFeedback.messageFailure: a JSON string where an object is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := invalid(t, &AJO{}, post([]byte(tt.body)), []byte(tt.body)); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := (&AJO{}).Normalize(post(nil), []byte(`[1]`), receivedAt); !errors.Is(err, ErrBadRequest) {
		t.Errorf("an array: got %v, want a bad request", err)
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
	bound, _ := NewAJO(secret, "") // aud and iss configured: tokens for another audience are refused
	bound.Now, bound.Audience, bound.Issuer = hs.Now, "https://hooks.example.com/v1/events/ajo", "adobe-ajo"
	exp := jwt.NewNumericDate(now.Add(time.Minute))
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
		{"aud and iss as configured", bound, "Bearer " + hsToken(jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"https://hooks.example.com/v1/events/ajo"}, Issuer: "adobe-ajo"}, secret), true},
		{"another audience", bound, "Bearer " + hsToken(jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"https://other.example/"}, Issuer: "adobe-ajo"}, secret), false},
		{"no audience", bound, "Bearer " + hsToken(jwt.RegisteredClaims{ExpiresAt: exp, Issuer: "adobe-ajo"}, secret), false},
		{"another issuer", bound, "Bearer " + hsToken(jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"https://hooks.example.com/v1/events/ajo"}, Issuer: "someone"}, secret), false},
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
			got, err := tt.ajo.Normalize(r, body, receivedAt)
			if tt.ok && (err != nil || len(got.Events) != 1) {
				t.Fatalf("got %d events, %v; want 1", len(got.Events), err)
			}
			if !tt.ok && (!errors.Is(err, ErrUnauthorized) || len(got.Events) != 0) {
				t.Fatalf("got %d events, %v; want unauthorized", len(got.Events), err)
			}
		})
	}
}
