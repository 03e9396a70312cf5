package auth

import (
	"encoding/base64"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A new key authenticates once its entry is in a keys file, and only its hash is
// in the entry.
func TestNewKey(t *testing.T) {
	t.Parallel()
	plain, k, err := NewKey("", "shop", []Scope{ScopeMessagesSend})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^key_[0-9a-v]{12}$`).MatchString(k.ID) {
		t.Errorf("generated id %q, want key_ and 12 of 0-9a-v", k.ID)
	}
	if want := "dfk_" + k.ID + "_"; !strings.HasPrefix(plain, want) || len(plain) != len(want)+43 {
		t.Errorf("key %q, want %s and 43 characters", plain, want)
	}
	if k.Hash != HashKey(plain) || strings.Contains(k.Hash, plain[len(plain)-43:]) {
		t.Errorf("hash %q, want HashKey of the key", k.Hash)
	}
	if id, ok := KeyID(plain); !ok || id != k.ID {
		t.Errorf("KeyID(new key) = %q, %v; want %q", id, ok, k.ID)
	}

	file := "workspaces: [{name: shop, signing_secrets: [" + secret1 + "]}]\n" +
		"keys: [{id: " + k.ID + ", workspace: shop, scopes: [messages:send], hash: '" + k.Hash + "'}]\n"
	ks, err := Parse("keys.yaml", []byte(file), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ks.Authenticate(plain, netip.MustParseAddr("192.0.2.1"), time.Now())
	if err != nil || got.ID != k.ID || !got.Has(ScopeMessagesSend) {
		t.Errorf("Authenticate(new key) = %v, %v; want key %s with messages:send", got, err, k.ID)
	}

	other, _, err := NewKey(k.ID, "shop", []Scope{ScopeMessagesSend})
	if err != nil || other == plain {
		t.Errorf("a second key with the same id: %q, %v; want a different key", other, err)
	}
}

func TestNewKeyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, workspace string
		scopes        []Scope
		want          string
	}{
		{"ci", "shop", []Scope{ScopeAll}, `id: "ci" must be 3 to 64`},
		{"CI-bot", "shop", []Scope{ScopeAll}, `id: "CI-bot" must be 3 to 64`},
		{"ci-bot", "", []Scope{ScopeAll}, `workspace: required`},
		{"ci-bot", "shop/eu", []Scope{ScopeAll}, `workspace: "shop/eu" must be`},
		{"ci-bot", "shop", nil, `scopes: at least one is required`},
		{"ci-bot", "shop", []Scope{ScopeMessagesSend, "messages:write"}, `scopes[1]: unknown scope "messages:write"`},
	}
	for _, tt := range tests {
		if _, _, err := NewKey(tt.id, tt.workspace, tt.scopes); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewKey(%q, %q, %v) error %v, want %q", tt.id, tt.workspace, tt.scopes, err, tt.want)
		}
	}
}

func TestKeyID(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("x", 42) + "_"
	tests := []struct {
		token, id string
		ok        bool
	}{
		{ciKey, "key_ci", true},
		{oldKey, "key_old", true}, // the secret ends with '_'
		{officeKey, "key_office", true},
		{"dfk_a_b-c_" + secret, "a_b-c", true},
		{"dfk_ab_" + secret, "", false},                      // id too short
		{"dfk_Key_" + secret, "", false},                     // uppercase id
		{"dfk_key_ci" + secret, "", false},                   // no '_' before the secret
		{"dfk_key_ci_" + secret + "x", "", false},            // one too many: no '_' before the last 43
		{"dfk_key_ci_" + strings.Repeat("+", 43), "", false}, // not base64url
		{"dfx_key_ci_" + secret, "", false},
		{"", "", false},
		{"dfk_", "", false},
	}
	for _, tt := range tests {
		id, ok := KeyID(tt.token)
		if id != tt.id || ok != tt.ok {
			t.Errorf("KeyID(%q) = %q, %v; want %q, %v", tt.token, id, ok, tt.id, tt.ok)
		}
	}
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	// sha256("abc"), the FIPS 180-2 test vector.
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashKey("abc"); got != want {
		t.Errorf("HashKey(abc) = %s, want %s", got, want)
	}
}

func TestSigningSecret(t *testing.T) {
	t.Parallel()
	s := NewSigningSecret()
	if err := CheckSigningSecret(s); err != nil {
		t.Errorf("CheckSigningSecret(NewSigningSecret()) = %v", err)
	}
	if b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_")); len(b) != 32 {
		t.Errorf("new secret encodes %d bytes, want 32", len(b))
	}
	if s == NewSigningSecret() {
		t.Error("two new secrets are equal")
	}
	tests := []struct{ secret, want string }{
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 24)), ""},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), ""},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), "not 23"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), "not 65"},
		{"whsec_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "standard base64"},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), `start with "whsec_"`},
	}
	for _, tt := range tests {
		err := CheckSigningSecret(tt.secret)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckSigningSecret(%q) = %v, want %q", tt.secret, err, tt.want)
		}
	}
}
