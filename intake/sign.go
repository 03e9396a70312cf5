package intake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The Sign* functions sign requests the way each provider does, for tests and
// tools that post to a dispatchflow with verification on.

// SignSendGrid returns the X-Twilio-Email-Event-Webhook-Signature of body sent with
// timestamp (the X-Twilio-Email-Event-Webhook-Timestamp header): base64 of the
// ASN.1 ECDSA signature of SHA-256(timestamp + body).
func SignSendGrid(key *ecdsa.PrivateKey, timestamp string, body []byte) (string, error) {
	sum := sha256.Sum256(append([]byte(timestamp), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// SignMailgun returns the signature of a Mailgun payload's signature block: hex
// HMAC-SHA256(signingKey, timestamp + token).
func SignMailgun(signingKey, timestamp, token string) string {
	mac := hmac.New(sha256.New, []byte(signingKey))
	mac.Write([]byte(timestamp + token))
	return hex.EncodeToString(mac.Sum(nil))
}

// SignSNS signs an SNS message body (JSON with Type, MessageId, TopicArn, Message,
// Timestamp, SignatureVersion "1" or "2", SigningCertURL, and Subject or
// SubscribeURL/Token as its Type has them) with key, and returns the body with its
// Signature set. The key's certificate must be served at SigningCertURL.
func SignSNS(key *rsa.PrivateKey, body []byte) ([]byte, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	var (
		hash   crypto.Hash
		digest []byte
	)
	switch m.SignatureVersion {
	case "1":
		sum := sha1.Sum([]byte(m.stringToSign()))
		hash, digest = crypto.SHA1, sum[:]
	case "2":
		sum := sha256.Sum256([]byte(m.stringToSign()))
		hash, digest = crypto.SHA256, sum[:]
	default:
		return nil, errors.New("SignatureVersion must be 1 or 2")
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, digest)
	if err != nil {
		return nil, err
	}
	fields["Signature"] = base64.StdEncoding.EncodeToString(sig)
	return json.Marshal(fields)
}

// SignAJO returns an HS256 JWT for the Authorization: Bearer header of Adobe
// Journey Optimizer's feedback webhook, expiring at exp.
func SignAJO(secret string, exp time.Time) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte(secret))
}
