package starter

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
)

// keyedAPI is an API (without Temporal) over a keys file holding one key of
// workspace shop per scope list in scopes, by name; it returns the keys.
func keyedAPI(t *testing.T, edit func(*config.Config), scopes map[string][]auth.Scope) (*API, map[string]string) {
	t.Helper()
	plain := map[string]string{}
	var keys []auth.Key
	for name, sc := range scopes {
		p, k, err := auth.NewKey(name, "shop", sc)
		if err != nil {
			t.Fatal(err)
		}
		if name == "slow" {
			k.RateLimit = &auth.RateLimit{PerSecond: 0.5, Burst: 1}
		}
		plain[name], keys = p, append(keys, k)
	}
	raw, _ := json.Marshal(map[string]any{
		"workspaces": []auth.Workspace{{Name: "shop", SigningSecrets: []string{auth.NewSigningSecret()}}},
		"keys":       keys,
	})
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Auth: "on", APIKeysFile: path, IDSecret: strings.Repeat("s", config.MinIDSecretLength)}
	if edit != nil {
		edit(&cfg)
	}
	return New(nil, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), plain
}

// The guard answers before the handler runs: 401 with a Bearer challenge, 403
// naming the scope, 429 with Retry-After; the handler sees the key's workspace.
func TestGuard(t *testing.T) {
	t.Parallel()
	a, keys := keyedAPI(t, nil, map[string][]auth.Scope{
		"reader": {auth.ScopeMessagesRead}, "slow": {auth.ScopeAll},
	})
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	var seen []string
	h := a.guard(auth.ScopeMessagesSend, func(w http.ResponseWriter, r *http.Request) {
		ws, _ := a.workspace(r, "", "workspace")
		seen = append(seen, ws)
		w.WriteHeader(http.StatusNoContent)
	})
	call := func(authz string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		h(w, r)
		return w
	}
	for _, tc := range []struct {
		name, authz string
		code        int
		errorHas    string
		challenge   string
	}{
		{"no header", "", 401, "missing API key", `Bearer realm="dispatchflow"`},
		{"basic scheme", "Basic " + keys["slow"], 401, "missing API key", `Bearer realm="dispatchflow"`},
		{"unknown key", "Bearer dfk_nobody_" + strings.Repeat("x", 43), 401, "invalid API key", `error="invalid_token"`},
		{"missing scope", "Bearer " + keys["reader"], 403, "lacks the scope messages:send", ""},
		{"right key", "Bearer " + keys["slow"], 204, "", ""},
		{"over the rate limit", "Bearer " + keys["slow"], 429, "rate limit", ""},
	} {
		w := call(tc.authz)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.errorHas) || !strings.Contains(w.Header().Get("WWW-Authenticate"), tc.challenge) {
			t.Errorf("%s: %d %s (WWW-Authenticate %q), want %d naming %q", tc.name, w.Code, w.Body, w.Header().Get("WWW-Authenticate"), tc.code, tc.errorHas)
		}
		if tc.code == 429 && w.Header().Get("Retry-After") != "2" {
			t.Errorf("%s: Retry-After %q, want 2 (one token every 2 s)", tc.name, w.Header().Get("Retry-After"))
		}
	}
	now = now.Add(2 * time.Second)
	if w := call("Bearer " + keys["slow"]); w.Code != 204 {
		t.Errorf("after Retry-After: %d, want 204", w.Code)
	}
	if len(seen) != 2 || seen[0] != "shop" {
		t.Errorf("the handler ran %d times in workspace %v, want twice in shop", len(seen), seen)
	}
}

// With DISPATCHFLOW_INTAKE_ADDR, the intake and the management routes are on two
// routers that share nothing but /healthz.
func TestIntakeListener(t *testing.T) {
	t.Parallel()
	a, _ := keyedAPI(t, func(c *config.Config) { c.IntakeAddr = ":8081" }, map[string][]auth.Scope{"admin": {auth.ScopeAll}})
	mgmt, intake := a.Handler().(*http.ServeMux), a.IntakeHandler().(*http.ServeMux)
	for _, tc := range []struct {
		method, path   string
		onMgmt, onIntk bool
	}{
		{"POST", "/v1/events/sendgrid", false, true},
		{"POST", "/v1/callbacks/twilio", false, true},
		{"GET", "/healthz", true, true},
		{"POST", "/v1/messages", true, false},
		{"GET", "/v1/messages/0123", true, false},
		{"GET", "/openapi.json", true, false},
		{"GET", "/metrics", false, false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		_, pm := mgmt.Handler(r)
		_, pi := intake.Handler(r)
		if (pm != "") != tc.onMgmt || (pi != "") != tc.onIntk {
			t.Errorf("%s %s: on the API %v, on the intake %v; want %v, %v", tc.method, tc.path, pm != "", pi != "", tc.onMgmt, tc.onIntk)
		}
	}
	shared, _ := keyedAPI(t, nil, map[string][]auth.Scope{"admin": {auth.ScopeAll}})
	if shared.IntakeHandler() != nil {
		t.Error("IntakeHandler without DISPATCHFLOW_INTAKE_ADDR is not nil")
	}
}

// The caller's workspace wins: another one named in a body is a 403; with auth
// off, the body's (or "default") is taken.
func TestWorkspaceOfCaller(t *testing.T) {
	t.Parallel()
	a := testAPI() // auth off
	r := httptest.NewRequest("GET", "/", nil)
	if ws, err := a.workspace(r, "", "workspace"); ws != "default" || err != nil {
		t.Errorf("auth off, none asked: %q %v, want default", ws, err)
	}
	if ws, err := a.workspace(r, "eu", "workspace"); ws != "eu" || err != nil {
		t.Errorf("auth off, eu asked: %q %v, want eu", ws, err)
	}
	r = r.WithContext(contextWithCaller(r, caller{key: &auth.Key{ID: "k1", Workspace: "shop"}, workspace: "shop"}))
	if ws, err := a.workspace(r, "shop", "workspace"); ws != "shop" || err != nil {
		t.Errorf("key of shop, shop asked: %q %v", ws, err)
	}
	_, err := a.workspace(r, "eu", "workspace")
	if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), `workspace: the API key k1 belongs to workspace "shop", not "eu"`) {
		t.Errorf("key of shop, eu asked: %v (%d), want 403 naming both", err, statusOf(err))
	}
	if owns(r, "eu") || !owns(r, "shop") {
		t.Error("owns: a key of shop must own shop's resources and only them")
	}
}

// Behind trusted proxies the client is the X-Forwarded-For hop nearest to them;
// a peer that is not a trusted proxy cannot claim another address.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	a := testAPI()
	a.trustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, peer, xff, want string
	}{
		{"no proxy", "203.0.113.7:5000", "", "203.0.113.7"},
		{"untrusted peer claims an address", "203.0.113.7:5000", "10.1.1.1", "203.0.113.7"},
		{"one trusted proxy", "10.0.0.2:5000", "198.51.100.4", "198.51.100.4"},
		{"two trusted proxies", "10.0.0.2:5000", "198.51.100.4, 10.0.0.9", "198.51.100.4"},
		{"the client forges hops on the left", "10.0.0.2:5000", "10.9.9.9, 198.51.100.4", "198.51.100.4"},
		{"several headers", "10.0.0.2:5000", "", "198.51.100.4"},
		{"a malformed hop", "10.0.0.2:5000", "garbage", "10.0.0.2"},
		{"IPv6 client", "10.0.0.2:5000", "2001:db8::1", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.name == "several headers" {
			r.Header.Add("X-Forwarded-For", "10.9.9.9")
			r.Header.Add("X-Forwarded-For", "198.51.100.4")
		}
		if got := a.clientAddr(r).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
