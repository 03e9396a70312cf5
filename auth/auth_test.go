package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The keys of testdata/keys.{yaml,json}, whose hashes the files hold. key_old's
// secret ends with '_' and key_office's holds '-': neither may confuse KeyID.
const (
	ciKey     = "dfk_key_ci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	oldKey    = "dfk_key_old_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB_"
	officeKey = "dfk_key_office_c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c"
)

// Two valid signing secrets for the tests' own files.
const (
	secret1 = "whsec_bEZwdiOv8BKZuwQADY/3MmzvNI1PPxyKuMnfgTEEYa8="
	secret2 = "whsec_4wcZsbDyHBUaagUp3noCLBFUr14O3ITw"
)

func loadTestdata(t *testing.T, name string) *Keys {
	t.Helper()
	ks, err := LoadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Both forms of the file load to the same keys and workspaces.
func TestLoadFile(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"keys.yaml", "keys.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ks := loadTestdata(t, name)
			if ks.Len() != 3 {
				t.Errorf("Len() = %d, want 3", ks.Len())
			}
			var names []string
			for _, w := range ks.Workspaces() {
				names = append(names, w.Name)
			}
			if want := []string{"shop", "billing.eu"}; !reflect.DeepEqual(names, want) {
				t.Errorf("workspaces %v, want %v (file order)", names, want)
			}
			shop, ok := ks.Workspace("shop")
			if !ok || len(shop.SigningSecrets) != 2 {
				t.Fatalf("Workspace(shop) = %v, %v; want it with 2 signing secrets", shop, ok)
			}
			if want := []string{"shop.example.com", "mail.example.org"}; !reflect.DeepEqual(shop.FromDomains, want) {
				t.Errorf("from_domains %v, want %v (lowercased)", shop.FromDomains, want)
			}
			if _, ok := ks.Workspace("nope"); ok {
				t.Error(`Workspace("nope") found`)
			}

			old := ks.byID["key_old"]
			if want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !old.ExpiresAt.Equal(want) {
				t.Errorf("key_old expires_at %v, want %v", old.ExpiresAt, want)
			}
			if got := old.Limit(); got != DefaultRateLimit {
				t.Errorf("key_old Limit() = %+v, want the default %+v", got, DefaultRateLimit)
			}
			if got, want := ks.byID["key_office"].Limit(), (RateLimit{PerSecond: 0.5, Burst: 3}); got != want {
				t.Errorf("key_office Limit() = %+v, want %+v", got, want)
			}
			if got := len(ks.byID["key_office"].networks); got != 3 {
				t.Errorf("key_office has %d networks, want 3", got)
			}
		})
	}
}

// Every problem names the file, the entry and the field.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const ws = "workspaces:\n  - {name: shop, signing_secrets: [" + secret1 + "]}\n"
	const hash = "sha256:5a9537c25ac666861d5d778cad118e289fe80cbe994eb4231ef722607bbc9fb2"
	key := func(fields string) string {
		return ws + "keys:\n  - {id: key_ci, workspace: shop, scopes: [messages:send], hash: " + hash + fields + "}\n"
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"no keys", ws, `keys.yaml: keys: at least one key is required`},
		{"empty file", "", `keys.yaml: keys: at least one key is required`},
		{"unknown top field", key("") + "endpoints: []\n", `keys.yaml: endpoints: unknown field`},
		{"unknown key field", key(", scope: x"), `keys.yaml: keys[0] (id "key_ci"): scope: unknown field`},
		{"unknown scope", ws + "keys:\n  - {id: ci-bot, workspace: shop, scopes: [messages:read, messages:write], hash: " + hash + "}\n",
			`keys.yaml: keys[0] (id "ci-bot"): scopes[1]: unknown scope "messages:write" (want one of messages:send, messages:read, postbacks:replay, fallback:write, endpoints:admin, suppressions:write, payloads:decode, *)`},
		{"no scopes", ws + "keys:\n  - {id: key_ci, workspace: shop, hash: " + hash + "}\n", `keys[0] (id "key_ci"): scopes: at least one is required`},
		{"no id", ws + "keys:\n  - {workspace: shop, scopes: ['*'], hash: " + hash + "}\n", `keys.yaml: keys[0]: id: required`},
		{"bad id", ws + "keys:\n  - {id: CI, workspace: shop, scopes: ['*'], hash: " + hash + "}\n", `keys[0] (id "CI"): id: "CI" must be 3 to 64 of a-z, 0-9, '_' and '-'`},
		{"duplicate id", key("") + "  - {id: key_ci, workspace: shop, scopes: ['*'], hash: sha256:" + strings.Repeat("0", 64) + "}\n",
			`keys[1] (id "key_ci"): id: "key_ci" is used by another key`},
		{"duplicate hash", key("") + "  - {id: key_cd, workspace: shop, scopes: ['*'], hash: " + hash + "}\n",
			`keys[1] (id "key_cd"): hash: same as key "key_ci"'s`},
		{"no workspace", ws + "keys:\n  - {id: key_ci, scopes: ['*'], hash: " + hash + "}\n", `keys[0] (id "key_ci"): workspace: required`},
		{"unlisted workspace", ws + "keys:\n  - {id: key_ci, workspace: billing, scopes: ['*'], hash: " + hash + "}\n",
			`keys[0] (id "key_ci"): workspace: "billing" is not in workspaces`},
		{"bad workspace", ws + "keys:\n  - {id: key_ci, workspace: 'a b', scopes: ['*'], hash: " + hash + "}\n", `workspace: "a b" must be 1 to 64 of`},
		{"uppercase hash", ws + "keys:\n  - {id: key_ci, workspace: shop, scopes: ['*'], hash: " + strings.ToUpper(hash) + "}\n", `keys[0] (id "key_ci"): hash: must be "sha256:" and 64 lowercase hex digits`},
		{"short hash", ws + "keys:\n  - {id: key_ci, workspace: shop, scopes: ['*'], hash: sha256:abc}\n", `hash: must be "sha256:"`},
		{"not hex", ws + "keys:\n  - {id: key_ci, workspace: shop, scopes: ['*'], hash: sha256:" + strings.Repeat("g", 64) + "}\n", `hash: must be "sha256:"`},
		{"bad expiry", key(", expires_at: next year"), `keys[0] (id "key_ci"): expires_at: "next year" is not an RFC 3339 time`},
		{"bad network", key(", allowed_networks: [10.0.0.0/8, 10.0.0.0/33]"), `keys[0] (id "key_ci"): allowed_networks[1]: "10.0.0.0/33" is not a CIDR`},
		{"host bits", key(", allowed_networks: [10.1.0.0/8]"), `allowed_networks[0]: "10.1.0.0/8" has host bits set (the network is 10.0.0.0/8)`},
		{"zone", key(", allowed_networks: ['fe80::1%eth0']"), `allowed_networks[0]: "fe80::1%eth0" is not a CIDR`},
		{"zero rate", key(", rate_limit: {per_second: 0, burst: 5}"), `keys[0] (id "key_ci"): rate_limit.per_second: 0 must be positive`},
		{"zero burst", key(", rate_limit: {per_second: 1}"), `rate_limit.burst: 0 must be at least 1`},
		{"rate not a number", key(", rate_limit: {per_second: fast, burst: 1}"), `rate_limit.per_second: must be float64, not string`},
		{"unknown rate field", key(", rate_limit: {per_minute: 1, burst: 1}"), `rate_limit.per_minute: unknown field`},
		{"workspace without name", "workspaces:\n  - {signing_secrets: [" + secret1 + "]}\n", `keys.yaml: workspaces[0]: name: required`},
		{"duplicate workspace", ws + "  - {name: shop, signing_secrets: [" + secret2 + "]}\n", `workspaces[1] (name "shop"): name: "shop" is used by another workspace`},
		{"workspace without secret", "workspaces:\n  - {name: shop}\n", `workspaces[0] (name "shop"): signing_secrets: at least one is required`},
		{"secret without prefix", "workspaces:\n  - {name: shop, signing_secrets: [" + secret1 + ", c2VjcmV0]}\n", `workspaces[0] (name "shop"): signing_secrets[1]: must start with "whsec_"`},
		{"short secret", "workspaces:\n  - {name: shop, signing_secrets: [whsec_c2VjcmV0]}\n", `signing_secrets[0]: must encode 24 to 64 bytes, not 6`},
		{"bad domain", "workspaces:\n  - {name: shop, signing_secrets: [" + secret1 + "], from_domains: ['@example.com']}\n", `workspaces[0] (name "shop"): from_domains[0]: "@example.com" is not a domain name`},
		{"workspace unknown field", "workspaces:\n  - {name: shop, secrets: [" + secret1 + "]}\n", `workspaces[0] (name "shop"): secrets: unknown field`},
		{"not YAML", "keys: [", `keys.yaml: yaml:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("keys.yaml", []byte(tt.yaml), ".yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error %v, want one containing %q\nfile:\n%s", err, tt.want, tt.yaml)
			}
		})
	}
}

// A signing secret never appears in an error about it.
func TestParseErrorHidesSecret(t *testing.T) {
	t.Parallel()
	const bad = "whsec_c2VjcmV0c2VjcmV0"
	_, err := Parse("keys.yaml", []byte("workspaces:\n  - {name: shop, signing_secrets: ["+bad+"]}\n"), ".yaml")
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error %v: want one that does not quote the secret", err)
	}
}

func TestParseExtension(t *testing.T) {
	t.Parallel()
	for ext, ok := range map[string]bool{".yaml": true, ".yml": true, ".YAML": true, ".json": true, ".toml": false} {
		_, err := Parse("keys"+ext, []byte("keys: []"), ext)
		if got := err != nil && strings.Contains(err.Error(), "unknown extension"); got == ok {
			t.Errorf("Parse(%s): error %v; want unknown extension: %v", ext, err, !ok)
		}
	}
	// JSON is not YAML: a JSON file is read as JSON, so YAML syntax fails.
	if _, err := Parse("keys.json", []byte("keys: []"), ".json"); err == nil {
		t.Error("Parse(.json) of YAML: no error")
	}
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	if _, err := LoadFile(filepath.Join(t.TempDir(), "keys.yaml")); err == nil || !strings.Contains(err.Error(), "keys.yaml") {
		t.Errorf("LoadFile of a missing file: %v, want an error naming it", err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ks := loadTestdata(t, "keys.yaml")
	before := time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)
	expiry := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	office := netip.MustParseAddr("10.20.30.40")
	wrongSecret := ciKey[:len(ciKey)-1] + "B"

	tests := []struct {
		name   string
		token  string
		from   netip.Addr
		now    time.Time
		wantID string // "" when refused
		err    error
		msg    string // the error's text contains it
	}{
		{name: "right key", token: ciKey, from: office, now: before, wantID: "key_ci"},
		{name: "no key", token: "", from: office, now: before, err: ErrNoKey, msg: "Authorization: Bearer"},
		{name: "wrong secret, same id", token: wrongSecret, from: office, now: before, err: ErrUnknownKey},
		{name: "unknown id", token: "dfk_key_cd_" + ciKey[len(ciKey)-43:], from: office, now: before, err: ErrUnknownKey},
		{name: "malformed", token: "key_ci", from: office, now: before, err: ErrUnknownKey},
		{name: "short secret", token: ciKey[:len(ciKey)-1], from: office, now: before, err: ErrUnknownKey},
		{name: "hash instead of key", token: HashKey(ciKey), from: office, now: before, err: ErrUnknownKey},
		{name: "before expiry", token: oldKey, from: office, now: before, wantID: "key_old"},
		{name: "at expiry", token: oldKey, from: office, now: expiry, err: ErrExpired, msg: "API key key_old expired at 2026-01-01T00:00:00Z"},
		{name: "expired, wrong secret", token: oldKey[:len(oldKey)-1] + "A", from: office, now: expiry, err: ErrUnknownKey},
		{name: "IPv4 network", token: officeKey, from: office, now: before, wantID: "key_office"},
		{name: "IPv4 single address", token: officeKey, from: netip.MustParseAddr("192.0.2.7"), now: before, wantID: "key_office"},
		{name: "IPv4 mapped in IPv6", token: officeKey, from: netip.MustParseAddr("::ffff:10.1.2.3"), now: before, wantID: "key_office"},
		{name: "IPv6 network", token: officeKey, from: netip.MustParseAddr("2001:db8::42"), now: before, wantID: "key_office"},
		{name: "IPv4 refused", token: officeKey, from: netip.MustParseAddr("192.0.2.8"), now: before, err: ErrNetwork, msg: "API key key_office not allowed from 192.0.2.8"},
		{name: "IPv6 refused", token: officeKey, from: netip.MustParseAddr("2001:db9::1"), now: before, err: ErrNetwork},
		{name: "no address refused", token: officeKey, from: netip.Addr{}, now: before, err: ErrNetwork},
		{name: "any network without allowed_networks", token: ciKey, from: netip.MustParseAddr("2001:db9::1"), now: before, wantID: "key_ci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ks.Authenticate(tt.token, tt.from, tt.now)
			if tt.wantID != "" {
				if err != nil || k == nil || k.ID != tt.wantID {
					t.Fatalf("Authenticate = %v, %v; want key %s", k, err, tt.wantID)
				}
				return
			}
			if k != nil || !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Authenticate = %v, %v; want nil and %v containing %q", k, err, tt.err, tt.msg)
			}
		})
	}
}

func TestAuthenticateNilKeys(t *testing.T) {
	t.Parallel()
	var ks *Keys
	if _, err := ks.Authenticate(ciKey, netip.Addr{}, time.Now()); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("nil Keys: %v, want ErrUnknownKey", err)
	}
}

func TestHas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scopes []Scope
		s      Scope
		want   bool
	}{
		{[]Scope{ScopeMessagesSend}, ScopeMessagesSend, true},
		{[]Scope{ScopeMessagesSend}, ScopeMessagesRead, false},
		{[]Scope{ScopeMessagesRead, ScopeFallbackWrite}, ScopeFallbackWrite, true},
		{[]Scope{ScopeAll}, ScopeEndpointsAdmin, true},
		{[]Scope{ScopeAll}, ScopePostbacksReplay, true},
		{[]Scope{ScopeAll}, ScopePayloadsDecode, false}, // across workspaces: by name only
		{[]Scope{ScopeMessagesRead, ScopePayloadsDecode}, ScopePayloadsDecode, true},
		{[]Scope{ScopeMessagesSend}, ScopeAll, false},
		{nil, ScopeMessagesSend, false},
	}
	for _, tt := range tests {
		k := &Key{Scopes: tt.scopes}
		if got := k.Has(tt.s); got != tt.want {
			t.Errorf("Key with %v: Has(%s) = %v, want %v", tt.scopes, tt.s, got, tt.want)
		}
	}
}

func TestWorkspaceStringHidesSecrets(t *testing.T) {
	t.Parallel()
	w := Workspace{Name: "shop", SigningSecrets: []string{secret1}}
	for _, s := range []string{w.String(), fmt.Sprintf("%v", w), fmt.Sprintf("%+v", []Workspace{w})} {
		if strings.Contains(s, "whsec_") || !strings.Contains(s, "shop") {
			t.Errorf("printed %q: want the name and no secret", s)
		}
	}
}
