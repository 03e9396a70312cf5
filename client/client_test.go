package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const testKey = "dfk_key_ci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// authServer answers 200 to requests bearing testKey, and 401 to others, echoing
// the header it got (as a careless API might) to show the key stays out of errors.
// It records each request's Authorization header.
type authServer struct {
	mu   sync.Mutex
	seen []string
}

func (s *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("Authorization")
	s.mu.Lock()
	s.seen = append(s.seen, got)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if got != "Bearer "+testKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid API key (got ` + got + `)"}`))
		return
	}
	_, _ = w.Write([]byte(`{"messages":[]}`))
}

func (s *authServer) headers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func setup(t *testing.T, opts ...Option) (*Client, *authServer) {
	t.Helper()
	s := &authServer{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestAPIKeySent(t *testing.T) {
	t.Parallel()
	c, s := setup(t, WithAPIKey(testKey))
	if _, err := c.List(context.Background(), ListParams{}); err != nil {
		t.Fatalf("List with the key: %v", err)
	}
	if _, err := c.PostEvents(context.Background(), "generic", []byte(`{}`), nil); err != nil {
		t.Fatalf("PostEvents with the key: %v", err)
	}
	if got, want := s.headers(), []string{"Bearer " + testKey, "Bearer " + testKey}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Authorization headers %q, want %q", got, want)
	}
}

func TestNoAPIKey(t *testing.T) {
	t.Parallel()
	c, s := setup(t) // no option, as before WithAPIKey
	_, err := c.List(context.Background(), ListParams{})
	if got := s.headers(); len(got) != 1 || got[0] != "" {
		t.Errorf("Authorization headers %q, want one empty", got)
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(apiErr.Message, "invalid API key") {
		t.Errorf("error %#v, want *Error 401 invalid API key", err)
	}
}

// A refused key is a 401 *Error, not retried, and the key is not in its text.
func TestWrongAPIKey(t *testing.T) {
	t.Parallel()
	const wrong = "dfk_key_ci_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	c, s := setup(t, WithAPIKey(wrong))
	_, err := c.Message(context.Background(), "0f8fad5bd9cb469fa16570867728950e")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("error %#v, want *Error with StatusCode 401", err)
	}
	if strings.Contains(err.Error(), "BBBB") || !strings.Contains(err.Error(), "invalid API key (got Bearer [redacted])") {
		t.Errorf("error %q: want the API's message with the key redacted", err)
	}
	if got := s.headers(); len(got) != 1 {
		t.Errorf("%d requests, want 1 (a 401 is not retried)", len(got))
	}
}

func TestAPIKeyInvalid(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"dfk_a b", "dfk_a\r\nX-Evil: 1", "dfk_é"} {
		_, err := New("http://localhost:8080", WithAPIKey(key))
		if !errors.Is(err, ErrInvalidAPIKey) || strings.Contains(err.Error(), "dfk_") {
			t.Errorf("New with key %q: %v; want an error not quoting it", key, err)
		}
	}
}
