package postback

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/dispatchflow/dispatchflow/message"
)

// testClient is a client as activities.NewPostbackClient builds it, minus the
// SSRF guard (the receivers here are on loopback).
func testClient() *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax, c.Logger = 0, nil
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

var testN = Notification{Postback: message.NewPostback(message.Identity{DispatchID: "acf471119f7449d579e8089032003ded"},
	message.StatusDelivered, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), "", message.SendTimes{})}

// Each auth method sets Authorization as documented; JWTs carry the documented
// claims and verify with the endpoint's key.
func TestDeliverAuth(t *testing.T) {
	t.Parallel()
	pem, err := os.ReadFile("testdata/jwt-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := parseRSAKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	const hsKey = "0123456789abcdef0123456789abcdef"
	now := time.Now().Truncate(time.Second)
	jwtClaims := func(t *testing.T, header string, key any, alg string) jwt.MapClaims {
		t.Helper()
		tok, ok := strings.CutPrefix(header, "Bearer ")
		if !ok {
			t.Fatalf("got Authorization %q, want a bearer token", header)
		}
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{alg}), jwt.WithAudience("https://crm.example.com"), jwt.WithIssuer("dispatchflow"))
		if err != nil {
			t.Fatalf("token does not verify: %v", err)
		}
		return claims
	}
	tests := []struct {
		name  string
		auth  Auth
		check func(t *testing.T, got string)
	}{
		{"none", Auth{}, func(t *testing.T, got string) {
			if got != "" {
				t.Errorf("got %q, want no Authorization", got)
			}
		}},
		{"basic", Auth{Type: AuthBasic, Username: "dispatchflow", Password: "hunter2"}, func(t *testing.T, got string) {
			if want := "Basic ZGlzcGF0Y2hmbG93Omh1bnRlcjI="; got != want { // base64("dispatchflow:hunter2")
				t.Errorf("got %q, want %q", got, want)
			}
		}},
		{"bearer", Auth{Type: AuthBearer, Token: "tok-123"}, func(t *testing.T, got string) {
			if got != "Bearer tok-123" {
				t.Errorf("got %q, want Bearer tok-123", got)
			}
		}},
		{"jwt HS256", Auth{Type: AuthJWT, JWT: JWT{Algorithm: "HS256", Key: hsKey, Issuer: "dispatchflow", Audience: "https://crm.example.com", Subject: "ws-default"}},
			func(t *testing.T, got string) {
				c := jwtClaims(t, got, []byte(hsKey), "HS256")
				if c["sub"] != "ws-default" || c["jti"] != "msg_1" || c["iat"] != float64(now.Unix()) || c["exp"] != float64(now.Add(DefaultJWTTTL).Unix()) {
					t.Errorf("got claims %v, want sub, jti = webhook-id, iat = now, exp = now + 5m", c)
				}
			}},
		{"jwt RS256", Auth{Type: AuthJWT, JWT: JWT{Algorithm: "RS256", Key: Secret(pem), Issuer: "dispatchflow", Audience: "https://crm.example.com", TTL: Duration(time.Minute)}},
			func(t *testing.T, got string) {
				c := jwtClaims(t, got, &rsaKey.PublicKey, "RS256")
				if _, hasSub := c["sub"]; hasSub || c["exp"] != float64(now.Add(time.Minute).Unix()) {
					t.Errorf("got claims %v, want no sub and exp = now + ttl", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Authorization") }))
			defer srv.Close()
			ep := Endpoint{ID: "crm", URL: srv.URL, Auth: tt.auth}
			if _, err := NewSet(ep); err != nil {
				t.Fatal(err)
			}
			if a := Deliver(context.Background(), testClient(), ep, testN, "msg_1", now); !a.OK() {
				t.Fatalf("got %+v, want success", a)
			}
			tt.check(t, <-got)
		})
	}
}

func TestDeliverAttempt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		handler        http.HandlerFunc
		timeout        time.Duration
		wantClass      Class
		wantCode       int
		wantErr        string
		wantRetryAfter time.Duration
		wantBodyLen    int
	}{
		{name: "2xx", handler: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) },
			wantClass: ClassSuccess, wantCode: 200, wantBodyLen: 2},
		{name: "body truncated to 1 KB", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
		}, wantClass: ClassFailure, wantCode: 500, wantErr: "endpoint answered 500 Internal Server Error", wantBodyLen: MaxResponseBody},
		{name: "429 keeps Retry-After", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantClass: ClassFailure, wantCode: 429, wantErr: "429", wantRetryAfter: 30 * time.Second},
		{name: "302 not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
		}, wantClass: ClassFailure, wantCode: 302, wantErr: "302 Found", wantBodyLen: -1},
		{name: "410", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) },
			wantClass: ClassGone, wantCode: 410, wantErr: "410 Gone"},
		{name: "timeout", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, timeout: 50 * time.Millisecond, wantClass: ClassFailure, wantErr: "no answer within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			ep := Endpoint{ID: "crm", URL: srv.URL + "/hook?token=secret", Timeout: Duration(tt.timeout)}
			a := Deliver(context.Background(), testClient(), ep, testN, "msg_1", now)
			if a.Class != tt.wantClass || a.StatusCode != tt.wantCode || !strings.Contains(a.Error, tt.wantErr) ||
				a.RetryAfter != tt.wantRetryAfter || !a.At.Equal(now) || a.Duration <= 0 {
				t.Errorf("got %+v, want class %s, status %d, error with %q, retry after %s", a, tt.wantClass, tt.wantCode, tt.wantErr, tt.wantRetryAfter)
			}
			if tt.wantBodyLen >= 0 && len(a.ResponseBody) != tt.wantBodyLen {
				t.Errorf("got a response body of %d bytes, want %d", len(a.ResponseBody), tt.wantBodyLen)
			}
			if strings.Contains(a.Error, "token=secret") || strings.Contains(a.Error, "/hook") {
				t.Errorf("error %q shows the URL's path or query", a.Error)
			}
		})
	}
}

// A body over 256 KB is refused before any request.
func TestDeliverRefusesLargeBodies(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	n := testN
	n.Postback.Status, n.Postback.Metadata.Reason = message.StatusBounced, strings.Repeat("x", MaxBody)
	a := Deliver(context.Background(), testClient(), Endpoint{URL: srv.URL}, n, "msg_1", time.Now())
	if a.Class != ClassInvalid || !strings.Contains(a.Error, "over the 256 KB limit") || hits.Load() != 0 {
		t.Errorf("got %+v after %d requests, want refused as invalid before any request", a, hits.Load())
	}
}

// Custom headers are sent; the signature headers are ours.
func TestDeliverHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer srv.Close()
	now := time.Unix(1800000000, 0)
	ep := Endpoint{URL: srv.URL, Headers: map[string]Secret{"X-Api-Key": "k-1"}, Secrets: []Secret{secretA}}
	if a := Deliver(context.Background(), testClient(), ep, testN, "msg_1", now); !a.OK() {
		t.Fatalf("got %+v", a)
	}
	h := <-got
	for name, want := range map[string]string{
		"X-Api-Key": "k-1", "Webhook-Id": "msg_1", "Webhook-Timestamp": "1800000000", "Content-Type": "application/json",
	} {
		if h.Get(name) != want {
			t.Errorf("%s: got %q, want %q", name, h.Get(name), want)
		}
	}
	if !strings.HasPrefix(h.Get("Webhook-Signature"), "v1,") {
		t.Errorf("got signature %q, want v1,…", h.Get("Webhook-Signature"))
	}
}

// A caller's earlier deadline bounds the attempt, and the error names it rather
// than the endpoint's (default) timeout.
func TestDeliverCallerDeadline(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	a := Deliver(ctx, testClient(), Endpoint{URL: srv.URL}, testN, "msg_1", time.Now())
	if a.Class != ClassFailure || !strings.Contains(a.Error, "no answer within") || strings.Contains(a.Error, "15s") {
		t.Errorf("got %+v, want a failure with no answer within the caller's deadline", a)
	}
}
