package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
)

// runCLI runs the command line and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, stdio{strings.NewReader(""), &out, &errOut})
	return code, out.String(), errOut.String()
}

// keysFile is a keys file of workspace shop with entry under keys:, as an
// operator pastes it.
func keysFile(entry string) []byte {
	return []byte("workspaces:\n  - name: shop\n    signing_secrets: [" + auth.NewSigningSecret() + "]\nkeys:\n" + entry)
}

// The printed key works with the printed entry in a keys file.
func TestKeysNew(t *testing.T) {
	code, stdout, stderr := runCLI(t, "keys", "new", "--workspace", "shop", "--scopes", "messages:send, messages:read",
		"--id", "shop-backend", "--expires", "2099-01-01T00:00:00Z", "--networks", "10.0.0.0/8,2001:db8::1")
	if code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "shown this once") {
		t.Errorf("stderr %q: want the note that the key is shown once", stderr)
	}
	key, rest, ok := strings.Cut(stdout, "\n\n")
	if !ok || !strings.HasPrefix(key, "dfk_shop-backend_") || !strings.HasPrefix(rest, "# ") {
		t.Fatalf("stdout:\n%s\nwant the key, a blank line, then a comment", stdout)
	}
	for _, want := range []string{"- id: shop-backend\n", "  workspace: shop\n", "hash: sha256:", "expires_at:", "allowed_networks:"} {
		if !strings.Contains(rest, want) {
			t.Errorf("entry lacks %q:\n%s", want, rest)
		}
	}

	ks, err := auth.Parse("keys.yaml", keysFile(rest), ".yaml")
	if err != nil {
		t.Fatalf("the printed entry does not load: %v\n%s", err, rest)
	}
	now := time.Now()
	k, err := ks.Authenticate(key, netip.MustParseAddr("10.1.2.3"), now)
	if err != nil || !k.Has(auth.ScopeMessagesRead) || k.Has(auth.ScopeFallbackWrite) {
		t.Fatalf("Authenticate(printed key) = %+v, %v; want a key with messages:read, without fallback:write", k, err)
	}
	if want := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC); !k.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %v, want %v", k.ExpiresAt, want)
	}
	if _, err := ks.Authenticate(key, netip.MustParseAddr("2001:db8::1"), now); err != nil {
		t.Errorf("from the allowed IPv6 address: %v", err)
	}
	if _, err := ks.Authenticate(key, netip.MustParseAddr("192.0.2.1"), now); err == nil {
		t.Error("from 192.0.2.1: allowed, want refused (outside --networks)")
	}
}

func TestKeysNewJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "keys", "new", "--json", "--workspace", "shop", "--scopes", "*", "--expires", "720h")
	if code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr: %s", code, stderr)
	}
	var got struct {
		Key   string          `json:"key"`
		Entry json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || !strings.HasPrefix(strings.TrimSpace(stdout), `{
  "key": "dfk_key_`) {
		t.Fatalf("stdout %s (%v): want {\"key\": \"dfk_key_…\", \"entry\": …}", stdout, err)
	}
	// The entry is one of the JSON keys file.
	file := `{"workspaces": [{"name": "shop", "signing_secrets": ["` + auth.NewSigningSecret() + `"]}], "keys": [` + string(got.Entry) + `]}`
	ks, err := auth.Parse("keys.json", []byte(file), ".json")
	if err != nil {
		t.Fatalf("the entry does not load: %v\n%s", err, got.Entry)
	}
	k, err := ks.Authenticate(got.Key, netip.Addr{}, time.Now())
	if err != nil || !k.Has(auth.ScopeEndpointsAdmin) {
		t.Fatalf("Authenticate = %+v, %v; want a key with every scope", k, err)
	}
	if left := time.Until(k.ExpiresAt); left < 719*time.Hour || left > 720*time.Hour {
		t.Errorf("expires in %s, want 720h", left)
	}
}

func TestKeysNewUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no workspace", []string{"--scopes", "*"}, "--workspace: required"},
		{"no scopes", []string{"--workspace", "shop"}, "--scopes: required"},
		{"unknown scope", []string{"--workspace", "shop", "--scopes", "messages:send,messages:write"}, `--scopes: unknown scope "messages:write" (want one of messages:send,`},
		{"bad workspace", []string{"--workspace", "shop eu", "--scopes", "*"}, `--workspace: "shop eu" must be`},
		{"bad id", []string{"--workspace", "shop", "--scopes", "*", "--id", "CI"}, `--id: "CI" must be 3 to 64`},
		{"bad expiry", []string{"--workspace", "shop", "--scopes", "*", "--expires", "30d"}, `--expires: "30d" is neither a duration`},
		{"past expiry", []string{"--workspace", "shop", "--scopes", "*", "--expires", "2020-01-01T00:00:00Z"}, `--expires: 2020-01-01T00:00:00Z is not in the future`},
		{"negative expiry", []string{"--workspace", "shop", "--scopes", "*", "--expires", "-1h"}, `is not in the future`},
		{"bad network", []string{"--workspace", "shop", "--scopes", "*", "--networks", "10.0.0.0/8,10.0.0.0/40"}, `--networks: "10.0.0.0/40" is not a CIDR`},
		{"stray argument", []string{"--workspace", "shop", "--scopes", "*", "shop"}, "want 0 argument(s)"},
		{"no --api", []string{"--workspace", "shop", "--scopes", "*", "--api", "http://localhost:8080"}, "flag provided but not defined: -api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"keys", "new"}, tt.args...)...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tt.stderr) || !strings.Contains(stderr, "Usage: dispatchflow keys new") {
				t.Errorf("exit code %d, stdout %q, stderr:\n%s\nwant 2, nothing, and the usage after %q", code, stdout, stderr, tt.stderr)
			}
		})
	}
}

func TestKeysSigningSecret(t *testing.T) {
	code, stdout, stderr := runCLI(t, "keys", "signing-secret")
	if code != 0 || auth.CheckSigningSecret(strings.TrimSuffix(stdout, "\n")) != nil {
		t.Errorf("exit code %d, stdout %q, stderr %q; want 0 and a valid secret", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "keys", "signing-secret", "--json")
	var got struct {
		Secret string `json:"signing_secret"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || auth.CheckSigningSecret(got.Secret) != nil {
		t.Errorf("--json: exit code %d, stdout %q; want 0 and {\"signing_secret\": …}", code, stdout)
	}
}

func TestKeysGroup(t *testing.T) {
	code, _, stderr := runCLI(t, "keys", "rotate")
	if code != 2 || !strings.Contains(stderr, "want 'dispatchflow keys new' or 'dispatchflow keys signing-secret'") {
		t.Errorf("keys rotate: exit code %d, stderr %q; want 2 naming both verbs", code, stderr)
	}
	code, stdout, _ := runCLI(t, "keys", "new", "--help")
	if code != 0 || !strings.Contains(stdout, "Usage: dispatchflow keys new") || strings.Contains(stdout, "--api") {
		t.Errorf("keys new --help: exit code %d, stdout:\n%s\nwant 0, the usage, no --api", code, stdout)
	}
}

// Every client command sends $DISPATCHFLOW_API_KEY as a bearer token; without
// it, no Authorization header.
func TestClientCommandsAPIKey(t *testing.T) {
	const key = "dfk_key_ci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	commands := [][]string{
		{"send", "--to", "ok@example.com", "--subject", "s", "--text", "t"},
		{"status", knownID},
		{"list"},
		{"events", "post", "generic", "-"},
		{"fallback", "cancel", knownID},
	}
	for _, withKey := range []bool{true, false} {
		for _, args := range commands {
			name := args[0] + " without key"
			if withKey {
				name = args[0] + " with key"
			}
			t.Run(name, func(t *testing.T) {
				api := &fakeAPI{}
				srv := httptest.NewServer(api)
				defer srv.Close()
				t.Setenv("DISPATCHFLOW_API_URL", srv.URL)
				want := ""
				if withKey {
					t.Setenv("DISPATCHFLOW_API_KEY", key)
					want = "Bearer " + key
				} else {
					t.Setenv("DISPATCHFLOW_API_KEY", "")
				}
				var stdout, stderr bytes.Buffer
				if code := run(args, stdio{strings.NewReader("{}"), &stdout, &stderr}); code != 0 {
					t.Fatalf("exit code %d, want 0\nstderr: %s", code, stderr.String())
				}
				reqs := api.requests()
				if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != want {
					t.Errorf("requests %+v: want one with Authorization %q", reqs, want)
				}
			})
		}
	}
}

// An explicit --header Authorization (a provider's own) wins over the key.
func TestEventsPostHeaderWins(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("DISPATCHFLOW_API_KEY", "dfk_key_ci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	var stdout, stderr bytes.Buffer
	code := run([]string{"events", "post", "--api", srv.URL, "--header", "Authorization: Basic c2c6cHc=", "generic", "-"},
		stdio{strings.NewReader("{}"), &stdout, &stderr})
	if reqs := api.requests(); code != 0 || len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Basic c2c6cHc=" {
		t.Errorf("exit code %d, requests %+v; want the --header's Authorization", code, reqs)
	}
}

func TestBadAPIKey(t *testing.T) {
	t.Setenv("DISPATCHFLOW_API_KEY", "dfk_key ci")
	code, _, stderr := runCLI(t, "status", knownID, "--api", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "DISPATCHFLOW_API_KEY: API key contains spaces") || strings.Contains(stderr, "dfk_key ci") {
		t.Errorf("exit code %d, stderr %q; want 2 naming DISPATCHFLOW_API_KEY, not quoting it", code, stderr)
	}
}
