package postback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers (https://www.standardwebhooks.com, spec v1.0.0).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// decodeSecret returns the key of a "whsec_<base64>" secret: 24 to 64 bytes, as the
// Standard Webhooks spec requires. Its errors never quote the secret.
func decodeSecret(s Secret) ([]byte, error) {
	v, ok := strings.CutPrefix(s.Reveal(), SecretPrefix)
	if !ok {
		return nil, errors.New(`must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New(`must be "whsec_" followed by standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("must encode 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header of body sent as webhookID at ts: one
// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" per secret, space-separated
// (two during a rotation). webhookID must not contain a full stop.
func Sign(secrets []Secret, webhookID string, ts time.Time, body []byte) (string, error) {
	if webhookID == "" || strings.Contains(webhookID, ".") {
		return "", fmt.Errorf("webhook id %q must be non-empty and without a full stop", webhookID)
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return "", fmt.Errorf("secrets[%d]: %w", i, err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(webhookID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}
