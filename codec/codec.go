// Package codec encrypts the payloads dispatchflow hands to Temporal: workflow
// inputs and results, signals, queries, activity inputs and results. A message's
// input holds its recipient's address, subject and body; with a key configured
// (DISPATCHFLOW_PAYLOAD_KEY), Temporal stores and shows only ciphertext.
//
// Search attributes are not payloads and stay readable (they never hold
// personal data). The Temporal Web UI shows encrypted payloads as such, the
// workflow's summary and details included, unless it is given a codec server:
// the API serves one over a Keyring on DISPATCHFLOW_CODEC_ADDR
// (starter.API.CodecHandler).
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// Encoding marks a payload encrypted by this package.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key a payload was encrypted with (a hash of it, not the key).
	MetadataKeyID = "encryption-key-id"
)

// AES is a converter.PayloadCodec with AES-256-GCM. Payloads it did not encrypt
// pass through Decode unchanged, so enabling a key keeps older messages readable.
type AES struct {
	aead  cipher.AEAD
	keyID string
}

var _ converter.PayloadCodec = (*AES)(nil)

// ParseKey reads a key in the form DISPATCHFLOW_PAYLOAD_KEY takes: 32 bytes,
// base64 (standard or URL alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("the key is %d bytes, want 32 (e.g. openssl rand -base64 32)", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("not base64 (e.g. openssl rand -base64 32)")
}

// NewAES returns the codec of a 32-byte key.
func NewAES(key []byte) (*AES, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("AES-256 needs a 32-byte key, got %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("dispatchflow payload key id\x00"), key...))
	return &AES{aead: aead, keyID: hex.EncodeToString(sum[:8])}, nil
}

// KeyID identifies the key in payload metadata without revealing it.
func (c *AES) KeyID() string { return c.keyID }

// Encode encrypts each payload, whole (its metadata included).
func (c *AES) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encoding payload: %w", err)
		}
		nonce := make([]byte, c.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), MetadataKeyID: []byte(c.keyID)},
			Data:     c.aead.Seal(nonce, nonce, plain, nil),
		}
	}
	return out, nil
}

// Decode decrypts the payloads this codec encrypted; others pass unchanged. A
// payload encrypted with another key is an error naming that key's id.
func (c *AES) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		if id := string(p.GetMetadata()[MetadataKeyID]); id != c.keyID {
			return nil, fmt.Errorf("payload encrypted with key %s, not with this key (%s)", id, c.keyID)
		}
		n := c.aead.NonceSize()
		if len(p.GetData()) < n {
			return nil, errors.New("encrypted payload too short")
		}
		plain, err := c.aead.Open(nil, p.GetData()[:n], p.GetData()[n:], nil)
		if err != nil {
			return nil, fmt.Errorf("decrypting payload: %w", err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("decoding decrypted payload: %w", err)
		}
		out[i] = &dec
	}
	return out, nil
}

// DataConverter is Temporal's default converter with payloads encrypted by c.
func DataConverter(c *AES) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Keyring encrypts with its first key and decrypts with any of them, chosen by
// the key id each payload carries: keys rotate without a pause. Add the new key
// first (DISPATCHFLOW_PAYLOAD_KEYS=new,old) on every process; new payloads are
// encrypted with it while open messages' older payloads still decrypt; drop the
// old key once no open message (nor any history still read) holds payloads of it.
type Keyring struct {
	current *AES
	byID    map[string]*AES
}

var _ converter.PayloadCodec = (*Keyring)(nil)

// NewKeyring returns the keyring of keys, newest first; at least one.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	k := &Keyring{byID: map[string]*AES{}}
	for i, key := range keys {
		c, err := NewAES(key)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if _, dup := k.byID[c.keyID]; dup {
			return nil, fmt.Errorf("key %d: listed twice", i+1)
		}
		if i == 0 {
			k.current = c
		}
		k.byID[c.keyID] = c
	}
	return k, nil
}

// KeyID is the id of the key that encrypts.
func (k *Keyring) KeyID() string { return k.current.keyID }

// Encode encrypts with the newest key.
func (k *Keyring) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return k.current.Encode(payloads)
}

// Decode decrypts each payload with the key its metadata names; payloads not
// encrypted pass unchanged; a key not in the ring is an error naming its id.
func (k *Keyring) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		c := k.current
		if string(p.GetMetadata()[converter.MetadataEncoding]) == Encoding {
			id := string(p.GetMetadata()[MetadataKeyID])
			if c = k.byID[id]; c == nil {
				return nil, fmt.Errorf("payload encrypted with key %s, which is not in DISPATCHFLOW_PAYLOAD_KEYS", id)
			}
		}
		dec, err := c.Decode([]*commonpb.Payload{p})
		if err != nil {
			return nil, err
		}
		out[i] = dec[0]
	}
	return out, nil
}

// ParseKeys reads DISPATCHFLOW_PAYLOAD_KEYS: keys as ParseKey takes them, newest first.
func ParseKeys(list []string) ([][]byte, error) {
	out := make([][]byte, 0, len(list))
	for i, s := range list {
		key, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		out = append(out, key)
	}
	return out, nil
}

// ForKeys returns the data converter of keys (base64, newest first): Temporal's
// default when there are none, else one encrypting through a Keyring.
func ForKeys(keys []string) (converter.DataConverter, *Keyring, error) {
	if len(keys) == 0 {
		return converter.GetDefaultDataConverter(), nil, nil
	}
	raw, err := ParseKeys(keys)
	if err != nil {
		return nil, nil, err
	}
	ring, err := NewKeyring(raw...)
	if err != nil {
		return nil, nil, err
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), ring), ring, nil
}
