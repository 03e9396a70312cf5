package postback

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dispatchflow/dispatchflow/conffile"
)

// signingKey returns the JWT signing method and key of j, checking them.
func (j JWT) signingKey() (jwt.SigningMethod, any, error) {
	if j.Key == "" {
		return nil, nil, conffile.Errorf("auth.jwt.key", "required with jwt auth (or key_file)")
	}
	switch j.Algorithm {
	case "HS256":
		if len(j.Key) < 32 {
			return nil, nil, conffile.Errorf("auth.jwt.key", "an HS256 secret must be at least 32 bytes")
		}
		return jwt.SigningMethodHS256, []byte(j.Key.Reveal()), nil
	case "RS256":
		key, err := parseRSAKey([]byte(j.Key.Reveal()))
		if err != nil {
			return nil, nil, conffile.Errorf("auth.jwt.key", "%s", err)
		}
		return jwt.SigningMethodRS256, key, nil
	}
	return nil, nil, conffile.Errorf("auth.jwt.algorithm", "%q is not one of HS256, RS256", j.Algorithm)
}

// parseRSAKey reads a PEM RSA private key, PKCS #1 or PKCS #8. Its errors never
// quote the key.
func parseRSAKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not an RSA private key (PKCS #1 or PKCS #8)")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

// Token mints the JWT of one attempt: iss, aud, sub (those set), iat = now,
// exp = now + TTL, jti = webhookID.
func (j JWT) Token(webhookID string, now time.Time) (string, error) {
	method, key, err := j.signingKey()
	if err != nil {
		return "", err
	}
	ttl := time.Duration(j.TTL)
	if ttl <= 0 {
		ttl = DefaultJWTTTL
	}
	claims := jwt.RegisteredClaims{
		Issuer:    j.Issuer,
		Subject:   j.Subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        webhookID,
	}
	if j.Audience != "" {
		claims.Audience = jwt.ClaimStrings{j.Audience}
	}
	return jwt.NewWithClaims(method, claims).SignedString(key)
}

// authorize sets req's Authorization header for a.
func (a Auth) authorize(req *http.Request, webhookID string, now time.Time) error {
	switch a.Type {
	case AuthBasic:
		req.SetBasicAuth(a.Username, a.Password.Reveal())
	case AuthBearer:
		req.Header.Set("Authorization", "Bearer "+a.Token.Reveal())
	case AuthJWT:
		tok, err := a.JWT.Token(webhookID, now)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}
