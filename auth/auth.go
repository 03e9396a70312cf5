package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/conffile"
	"github.com/dispatchflow/dispatchflow/message"
)

// Scope is a permission a key carries.
type Scope string

// The scopes. ScopeAll grants every scope of a workspace, those added later
// included — not ScopePayloadsDecode, which reaches across workspaces and must be
// granted by name.
const (
	ScopeMessagesSend    Scope = "messages:send"
	ScopeMessagesRead    Scope = "messages:read"
	ScopePostbacksReplay Scope = "postbacks:replay"
	ScopeFallbackWrite   Scope = "fallback:write"
	ScopeEndpointsAdmin  Scope = "endpoints:admin"
	// ScopeSuppressionsWrite lifts suppressions (DELETE /v1/suppressions/…):
	// mail to an address that complained or unsubscribed goes out again, so it
	// is not messages:send's. Reading the list takes messages:read.
	ScopeSuppressionsWrite Scope = "suppressions:write"
	// ScopePayloadsDecode lets the Temporal UI decode (and encode) payloads through
	// the codec server (DISPATCHFLOW_CODEC_ADDR): every workspace's messages, in
	// clear. Payloads are not per workspace: it is an operator's scope.
	ScopePayloadsDecode Scope = "payloads:decode"
	ScopeAll            Scope = "*"
)

// Scopes lists every scope a key may carry (ScopeAll included).
var Scopes = []Scope{
	ScopeMessagesSend, ScopeMessagesRead, ScopePostbacksReplay, ScopeFallbackWrite, ScopeEndpointsAdmin, ScopeSuppressionsWrite,
	ScopePayloadsDecode, ScopeAll,
}

// RateLimit is a token bucket: PerSecond tokens added per second up to Burst.
type RateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// DefaultRateLimit applies to keys without rate_limit: 50 per second, burst 100.
var DefaultRateLimit = RateLimit{PerSecond: 50, Burst: 100}

// Key is one entry of the keys file. Only the key's hash is stored.
type Key struct {
	// ID names the key in logs and metrics: required, unique, 3 to 64 of a-z, 0-9,
	// '_' and '-'. It is part of the key itself (see KeyID).
	ID string `json:"id"`
	// Workspace the key acts in: required, one of the file's workspaces (the rule of
	// message.ValidWorkspace: 1 to 64 of letters, digits, '-', '_', '.').
	Workspace string `json:"workspace"`
	// Scopes are what the key may do: required, each one of Scopes.
	Scopes []Scope `json:"scopes"`
	// Hash is "sha256:" + the 64 lowercase hex digits of the SHA-256 of the whole
	// key (HashKey).
	Hash string `json:"hash"`
	// ExpiresAt, when set (RFC 3339), is when the key stops working.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// AllowedNetworks, when set, are the only client addresses the key works from:
	// CIDRs ("10.0.0.0/8", "2001:db8::/32") or single addresses. Empty: any.
	AllowedNetworks []string `json:"allowed_networks,omitempty"`
	// RateLimit overrides DefaultRateLimit: per_second > 0, burst >= 1.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`

	sum      [sha256.Size]byte // Hash, decoded
	networks []netip.Prefix    // AllowedNetworks, parsed
}

// Has reports whether k carries scope s (or "*").
func (k *Key) Has(s Scope) bool {
	return slices.Contains(k.Scopes, s) || (s != ScopePayloadsDecode && slices.Contains(k.Scopes, ScopeAll))
}

// Limit is k's rate limit (DefaultRateLimit when unset).
func (k *Key) Limit() RateLimit {
	if k.RateLimit == nil {
		return DefaultRateLimit
	}
	return *k.RateLimit
}

// Workspace is one entry of the file's workspaces list.
type Workspace struct {
	// Name is required and unique; the rule of Key.Workspace.
	Name string `json:"name"`
	// SigningSecrets sign every postback of the workspace that its endpoint does
	// not sign itself (Standard Webhooks, "whsec_" + base64 of 24 to 64 random
	// bytes, see NewSigningSecret); two during a rotation. Required, at least one.
	SigningSecrets []string `json:"signing_secrets"`
	// IntakeSecrets authenticate events posted to the generic intake
	// (POST /v1/events/generic, Standard Webhooks signatures, same form as
	// SigningSecrets): such events may report on the workspace's messages only.
	// Required when the generic intake is mounted (DISPATCHFLOW_INTAKES).
	IntakeSecrets []string `json:"intake_secrets,omitempty"`
	// FromDomains, when set, are the only domains the workspace's sends may use in
	// from (case-insensitive, exact domain match). LoadFile lowercases them.
	FromDomains []string `json:"from_domains,omitempty"`
}

// String describes w without its signing secrets, so that printing it is safe.
func (w Workspace) String() string {
	return fmt.Sprintf("workspace %q (%d signing secrets, %d intake secrets, from domains %v)", w.Name, len(w.SigningSecrets), len(w.IntakeSecrets), w.FromDomains)
}

// Keys is the loaded keys file. A nil *Keys has no keys and no workspaces.
type Keys struct {
	byID       map[string]*Key
	workspaces []Workspace
	wsByName   map[string]int
}

// Workspace returns the workspace name.
func (ks *Keys) Workspace(name string) (Workspace, bool) {
	if ks == nil {
		return Workspace{}, false
	}
	i, ok := ks.wsByName[name]
	if !ok {
		return Workspace{}, false
	}
	return ks.workspaces[i], true
}

// Workspaces returns every workspace, in file order. Their slices are shared: do
// not modify them.
func (ks *Keys) Workspaces() []Workspace {
	if ks == nil {
		return nil
	}
	return slices.Clone(ks.workspaces)
}

// Len is the number of keys.
func (ks *Keys) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.byID)
}

// Errors of Authenticate. Expiry and network errors name the key, and wrap
// ErrExpired and ErrNetwork: test them with errors.Is.
var (
	ErrNoKey      = errors.New("missing API key: send Authorization: Bearer <key>")
	ErrUnknownKey = errors.New("invalid API key")
	ErrExpired    = errors.New("API key expired")
	ErrNetwork    = errors.New("API key not allowed from this address")
)

// keyError is ErrExpired or ErrNetwork about one key.
type keyError struct {
	sentinel error
	msg      string
}

func (e *keyError) Error() string        { return e.msg }
func (e *keyError) Is(target error) bool { return target == e.sentinel }

// Authenticate checks token, the bearer token of a request ("" when it has none),
// sent from the client address from at now. The key is looked up by the id in
// the token, then the SHA-256 of the token is compared with the key's hash in
// constant time; only a key whose hash matched is checked for expiry (now >=
// ExpiresAt) and network. A malformed token, an unknown id and a wrong secret are
// all ErrUnknownKey, so that an answer tells nothing about which ids exist.
func (ks *Keys) Authenticate(token string, from netip.Addr, now time.Time) (*Key, error) {
	if token == "" {
		return nil, ErrNoKey
	}
	id, ok := KeyID(token)
	if !ok || ks == nil {
		return nil, ErrUnknownKey
	}
	k, ok := ks.byID[id]
	if !ok {
		return nil, ErrUnknownKey
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], k.sum[:]) != 1 {
		return nil, ErrUnknownKey
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, &keyError{ErrExpired, fmt.Sprintf("API key %s expired at %s", k.ID, k.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	if len(k.networks) > 0 && !k.allows(from) {
		return nil, &keyError{ErrNetwork, fmt.Sprintf("API key %s not allowed from %s", k.ID, from)}
	}
	return k, nil
}

// allows reports whether addr is in one of k's networks. An IPv4 address seen as
// IPv6 (::ffff:10.1.2.3, from a dual-stack listener) counts as IPv4.
func (k *Key) allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range k.networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// file is the keys file.
type file struct {
	Workspaces []json.RawMessage `json:"workspaces"`
	Keys       []json.RawMessage `json:"keys"`
}

// LoadFile reads the keys file at path (DISPATCHFLOW_API_KEYS_FILE): YAML (.yaml,
// .yml) or JSON (.json), {"workspaces": [...], "keys": [...]}. Every problem is an
// error naming the file, the entry (index and id or name) and the field:
// `keys.yaml: keys[1] (id "ci"): scopes[0]: unknown scope "messages:write" (want
// one of …)`. Unknown fields, duplicate ids and names, malformed hashes, networks
// and secrets are errors; so are a key whose workspace is not listed (every
// workspace needs a signing secret) and a file without keys.
func LoadFile(path string) (*Keys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, raw, filepath.Ext(path))
}

// Parse is LoadFile on the file's contents raw; ext is ".yaml", ".yml" or
// ".json", and name starts every error.
func Parse(name string, raw []byte, ext string) (*Keys, error) {
	raw, err := conffile.ToJSON(raw, ext)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var f file
	if err := conffile.Strict(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ks := &Keys{byID: make(map[string]*Key, len(f.Keys)), wsByName: make(map[string]int, len(f.Workspaces))}
	for i, entry := range f.Workspaces {
		where := fmt.Sprintf("%s: workspaces[%d]%s", name, i, note(entry, "name"))
		if err := ks.addWorkspace(entry); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("%s: keys: at least one key is required ('dispatchflow keys new' makes one)", name)
	}
	hashes := make(map[string]string, len(f.Keys))
	for i, entry := range f.Keys {
		where := fmt.Sprintf("%s: keys[%d]%s", name, i, note(entry, "id"))
		k, err := ks.addKey(entry)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		// The same hash twice is an entry copied and edited: the copy's key cannot work.
		if other, dup := hashes[k.Hash]; dup {
			return nil, fmt.Errorf("%s: %w", where, conffile.Errorf("hash", "same as key %q's (each key has its own)", other))
		}
		hashes[k.Hash] = k.ID
	}
	return ks, nil
}

// note is ` (field "value")` for an entry whose field is a string, to name it in errors.
func note(entry json.RawMessage, field string) string {
	var peek map[string]any
	_ = json.Unmarshal(entry, &peek)
	if v, ok := peek[field].(string); ok && v != "" {
		return fmt.Sprintf(" (%s %q)", field, v)
	}
	return ""
}

func (ks *Keys) addWorkspace(entry json.RawMessage) error {
	var w Workspace
	if err := conffile.Strict(entry, &w); err != nil {
		return err
	}
	if err := checkWorkspaceName("name", w.Name); err != nil {
		return err
	}
	if _, dup := ks.wsByName[w.Name]; dup {
		return conffile.Errorf("name", "%q is used by another workspace", w.Name)
	}
	if len(w.SigningSecrets) == 0 {
		return conffile.Errorf("signing_secrets", "at least one is required ('dispatchflow keys signing-secret' makes one)")
	}
	for i, s := range w.SigningSecrets {
		if err := CheckSigningSecret(s); err != nil {
			return conffile.Errorf(fmt.Sprintf("signing_secrets[%d]", i), "%s", err)
		}
	}
	for i, s := range w.IntakeSecrets {
		if err := CheckSigningSecret(s); err != nil {
			return conffile.Errorf(fmt.Sprintf("intake_secrets[%d]", i), "%s", err)
		}
	}
	for i, d := range w.FromDomains {
		if !validDomain(d) {
			return conffile.Errorf(fmt.Sprintf("from_domains[%d]", i), "%q is not a domain name", d)
		}
		w.FromDomains[i] = strings.ToLower(d)
	}
	ks.wsByName[w.Name] = len(ks.workspaces)
	ks.workspaces = append(ks.workspaces, w)
	return nil
}

func (ks *Keys) addKey(entry json.RawMessage) (*Key, error) {
	// expires_at and rate_limit are decoded apart: time.Time's errors name no
	// field, and an unknown field's error names it without its parent.
	type plainKey Key
	var e struct {
		plainKey
		ExpiresAt string          `json:"expires_at"`
		RateLimit json.RawMessage `json:"rate_limit"`
	}
	if err := conffile.Strict(entry, &e); err != nil {
		return nil, err
	}
	k := Key(e.plainKey)
	if len(e.RateLimit) > 0 && string(e.RateLimit) != "null" {
		k.RateLimit = new(RateLimit)
		if err := conffile.Strict(e.RateLimit, k.RateLimit); err != nil {
			var fe *conffile.FieldError
			if errors.As(err, &fe) {
				return nil, conffile.Errorf("rate_limit."+fe.Field, "%s", fe.Msg)
			}
			return nil, conffile.Errorf("rate_limit", "%s", err)
		}
	}
	if err := checkID(k.ID); err != nil {
		return nil, err
	}
	if _, dup := ks.byID[k.ID]; dup {
		return nil, conffile.Errorf("id", "%q is used by another key", k.ID)
	}
	if err := checkWorkspaceName("workspace", k.Workspace); err != nil {
		return nil, err
	}
	if _, ok := ks.wsByName[k.Workspace]; !ok {
		return nil, conffile.Errorf("workspace", "%q is not in workspaces (each workspace needs its signing_secrets)", k.Workspace)
	}
	if err := checkScopes(k.Scopes); err != nil {
		return nil, err
	}
	if err := k.decodeHash(); err != nil {
		return nil, err
	}
	if e.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, e.ExpiresAt)
		if err != nil {
			return nil, conffile.Errorf("expires_at", "%q is not an RFC 3339 time (2027-01-01T00:00:00Z)", e.ExpiresAt)
		}
		k.ExpiresAt = t
	}
	for i, n := range k.AllowedNetworks {
		p, err := ParseNetwork(n)
		if err != nil {
			return nil, conffile.Errorf(fmt.Sprintf("allowed_networks[%d]", i), "%s", err)
		}
		k.networks = append(k.networks, p)
	}
	if r := k.RateLimit; r != nil {
		if !(r.PerSecond > 0) {
			return nil, conffile.Errorf("rate_limit.per_second", "%v must be positive", r.PerSecond)
		}
		if r.Burst < 1 {
			return nil, conffile.Errorf("rate_limit.burst", "%d must be at least 1", r.Burst)
		}
	}
	ks.byID[k.ID] = &k
	return &k, nil
}

const hashPrefix = "sha256:"

// decodeHash fills k.sum from k.Hash.
func (k *Key) decodeHash() error {
	h, ok := strings.CutPrefix(k.Hash, hashPrefix)
	if !ok || len(h) != 2*sha256.Size || strings.ToLower(h) != h {
		return conffile.Errorf("hash", `must be "sha256:" and 64 lowercase hex digits ('dispatchflow keys new' prints it)`)
	}
	if _, err := hex.Decode(k.sum[:], []byte(h)); err != nil {
		return conffile.Errorf("hash", `must be "sha256:" and 64 lowercase hex digits ('dispatchflow keys new' prints it)`)
	}
	return nil
}

// ParseNetwork reads an allowed network: a CIDR ("10.0.0.0/8") or a single address
// ("192.0.2.7", "2001:db8::1"). A CIDR with host bits set ("10.0.0.1/8") is refused
// as a likely typo.
func ParseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set (the network is %s)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkID(id string) error {
	if id == "" {
		return conffile.Errorf("id", "required")
	}
	if !validID(id) {
		return conffile.Errorf("id", "%q must be 3 to 64 of a-z, 0-9, '_' and '-'", id)
	}
	return nil
}

// validID is the rule of a key id: 3 to 64 of a-z, 0-9, '_' and '-'.
func validID(id string) bool {
	if len(id) < 3 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkWorkspaceName(field, name string) error {
	if name == "" {
		return conffile.Errorf(field, "required")
	}
	if !message.ValidWorkspace(name) {
		return conffile.Errorf(field, "%q must be 1 to 64 of letters, digits, '-', '_' and '.'", name)
	}
	return nil
}

func checkScopes(scopes []Scope) error {
	if len(scopes) == 0 {
		return conffile.Errorf("scopes", "at least one is required (one of %s)", scopeList())
	}
	for i, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return conffile.Errorf(fmt.Sprintf("scopes[%d]", i), "unknown scope %q (want one of %s)", s, scopeList())
		}
	}
	return nil
}

func scopeList() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// validDomain reports whether d is a domain name: dot-separated labels of
// letters, digits and inner hyphens, 253 characters at most.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
