package intake

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// normalized is what a Normalizer made of one request a real HTTP server received.
type normalized struct {
	batch Batch
	err   error
}

// serve runs n behind a real HTTP server, as the API does (body read whole, then
// normalized), and returns its URL and what it made of each request.
func serve(t *testing.T, n Normalizer) (string, <-chan normalized) {
	t.Helper()
	got := make(chan normalized, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		b, err := n.Normalize(r, body, receivedAt)
		got <- normalized{b, err}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// postTo posts body to rawURL (credentials in the URL become basic auth, as the
// providers send them) and returns what the server made of it.
func postTo(t *testing.T, rawURL, contentType string, body []byte, header http.Header, got <-chan normalized) normalized {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case n := <-got:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("the server got no request")
	}
	return normalized{}
}

// withUserinfo returns rawURL with user:password in it, as the webhook URL
// configured at the provider.
func withUserinfo(t *testing.T, rawURL, user, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// Brevo, Mailjet and SparkPost sign nothing: the credentials of the webhook URL
// authenticate. Through a real server, from a URL with credentials in it as the
// providers are configured: the right ones pass, anything else is unauthorized and
// reads nothing — even a body that is not the provider's format, so that nothing
// is said about the body to whoever lacks the credentials.
func TestBasicAuthIntakes(t *testing.T) {
	t.Parallel()
	const user, password = "esp-hooks", "s3cret-Pa55"
	for _, tc := range []struct {
		provider string
		n        Normalizer
		body     []byte
	}{
		{ProviderBrevo, &Brevo{Username: user, Password: password}, firstElement(t, fixture(t, "brevo_events.json"))},
		{ProviderMailjet, &Mailjet{Username: user, Password: password}, fixture(t, "mailjet_events.json")},
		{ProviderSparkPost, &SparkPost{Username: user, Password: password}, fixture(t, "sparkpost_events.json")},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			base, got := serve(t, tc.n)
			base += "/v1/events/" + tc.provider
			for _, c := range []struct {
				name string
				url  string
				body []byte
				ok   bool
			}{
				{"valid", withUserinfo(t, base, user, password), tc.body, true},
				{"wrong password", withUserinfo(t, base, user, password+"!"), tc.body, false},
				{"wrong user", withUserinfo(t, base, "admin", password), tc.body, false},
				{"empty password", withUserinfo(t, base, user, ""), tc.body, false},
				{"none", base, tc.body, false},
				{"none, and not the format", base, []byte(`{"x":`), false},
			} {
				n := postTo(t, c.url, "application/json", c.body, nil, got)
				if c.ok {
					if n.err != nil || len(n.batch.Events) == 0 {
						t.Errorf("%s: got %d events, %v; want events", c.name, len(n.batch.Events), n.err)
					}
					continue
				}
				var refused *RefusedError
				if !errors.Is(n.err, ErrUnauthorized) || errors.As(n.err, &refused) || len(n.batch.Events)+len(n.batch.Invalid) > 0 {
					t.Errorf("%s: got %+v, %v; want unauthorized and nothing read", c.name, n.batch, n.err)
				}
				if n.err != nil && strings.Contains(n.err.Error(), password) {
					t.Errorf("%s: the error %q quotes the password", c.name, n.err)
				}
			}
		})
	}
}

// firstElement returns the first element of a JSON array.
func firstElement(t *testing.T, body []byte) []byte {
	t.Helper()
	return elements(t, body)[0]
}

// elements returns the elements of a JSON array.
func elements(t testing.TB, body []byte) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	return all
}

// edit returns the JSON object raw with fields set (a nil value deletes the field).
func edit(t testing.TB, raw []byte, fields map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDispatchIDIn(t *testing.T) {
	t.Parallel()
	const id = seedDispatchID
	for _, tt := range []struct{ in, want string }{
		{"dispatch_id:" + id, id},
		{" dispatch_id: " + id + " ", id},
		{`{"dispatch_id":"` + id + `","other":1}`, id},
		{`{"dispatch_id":7}`, ""},
		{`{"meta": "data"}`, ""},
		{"dispatch_id:", ""},
		{"dispatch_id:a b", ""},
		{"DISPATCH_ID:" + id, ""},
		{id, ""},
		{"", ""},
		{"{", ""},
	} {
		if got := dispatchIDIn(tt.in); got != tt.want {
			t.Errorf("dispatchIDIn(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
