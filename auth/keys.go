package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A key is keyPrefix + id + "_" + secret, the secret being secretLen characters of
// base64url (unpadded) of 32 random bytes. Both the id and base64url may contain
// '_', so a key is not split on underscores: the secret is the last secretLen
// characters, and the id is what lies between keyPrefix and the '_' before them.
const (
	keyPrefix   = "dfk_"
	secretBytes = 32
	secretLen   = 43 // base64.RawURLEncoding.EncodedLen(secretBytes)
)

// signingSecretPrefix starts every signing secret (Standard Webhooks).
const signingSecretPrefix = "whsec_"

// NewKey makes a key of workspace with scopes: the key itself, to hand to the
// client once, and its Key, whose Hash goes in the keys file. An empty id becomes
// "key_" + 12 random characters of a-v and 0-9. Its errors name the field (id,
// workspace, scopes).
func NewKey(id, workspace string, scopes []Scope) (plain string, k Key, err error) {
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		id = "key_" + strings.ToLower(base32.HexEncoding.EncodeToString(b))[:12]
	}
	if err := checkID(id); err != nil {
		return "", Key{}, err
	}
	if err := checkWorkspaceName("workspace", workspace); err != nil {
		return "", Key{}, err
	}
	if err := checkScopes(scopes); err != nil {
		return "", Key{}, err
	}
	secret := make([]byte, secretBytes)
	_, _ = rand.Read(secret)
	plain = keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret)
	k = Key{ID: id, Workspace: workspace, Scopes: append([]Scope(nil), scopes...), Hash: HashKey(plain)}
	if err := k.decodeHash(); err != nil {
		return "", Key{}, err // cannot happen: HashKey's form is decodeHash's
	}
	return plain, k, nil
}

// HashKey returns "sha256:" and the lowercase hex SHA-256 of plain: a key's hash
// as the keys file stores it.
func HashKey(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// KeyID returns the id of token, and false when token is not a key's form:
// "dfk_", an id (3 to 64 of a-z, 0-9, '_', '-'), "_", then 43 base64url
// characters.
func KeyID(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, keyPrefix)
	if !ok || len(rest) < secretLen+1 {
		return "", false
	}
	id, sep, secret := rest[:len(rest)-secretLen-1], rest[len(rest)-secretLen-1], rest[len(rest)-secretLen:]
	if sep != '_' || !validID(id) {
		return "", false
	}
	for _, c := range secret {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return id, true
}

// NewSigningSecret returns a new signing secret for a workspace's
// signing_secrets: "whsec_" and the standard base64 of 32 random bytes.
func NewSigningSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return signingSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// CheckSigningSecret checks that s is "whsec_" and the standard base64 of 24 to
// 64 bytes, as Standard Webhooks requires. Its errors never quote s.
func CheckSigningSecret(s string) error {
	v, ok := strings.CutPrefix(s, signingSecretPrefix)
	if !ok {
		return errors.New(`must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return errors.New(`must be "whsec_" followed by standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("must encode 24 to 64 bytes, not %d", len(key))
	}
	return nil
}
