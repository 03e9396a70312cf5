package channel

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// VerifyTwilioSignature reports whether sig (header X-Twilio-Signature) is Twilio's signature of a
// POST to fullURL with form params, under authToken: base64(HMAC-SHA1(authToken, fullURL + each param name+value, names sorted)).
//
// fullURL must be the URL exactly as Twilio requested it (scheme, host, path and
// query string: the StatusCallback given to Twilio), not as a proxy rewrote it.
// Like Twilio's own libraries (twilio-go client/request_validator.go, twilio-node
// src/webhooks/webhooks.ts), it also accepts the signature of fullURL without its
// port, or with the scheme's default port when it has none, since Twilio is not
// consistent about ports when it signs; and a name with several values is signed
// once per distinct value, values sorted. Status callbacks are form-encoded; a
// JSON webhook (bodySHA256 in the query string) is not checked here.
func VerifyTwilioSignature(authToken, fullURL string, params url.Values, sig string) bool {
	if authToken == "" || sig == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	var suffix strings.Builder
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		values := slices.Clone(params[name])
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			suffix.WriteString(name)
			suffix.WriteString(v)
		}
	}
	for _, u := range portVariants(fullURL) {
		mac := hmac.New(sha1.New, []byte(authToken))
		mac.Write([]byte(u + suffix.String()))
		if hmac.Equal(mac.Sum(nil), got) {
			return true
		}
	}
	return false
}

// portVariants returns raw as given, then without its port if it has one, or with
// the scheme's default port if it has none: Twilio's libraries accept both forms.
func portVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return out
	}
	v := *u
	if u.Port() != "" {
		v.Host = u.Hostname()
		if strings.Contains(v.Host, ":") { // IPv6 literal
			v.Host = "[" + v.Host + "]"
		}
		return append(out, v.String())
	}
	def := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if def == "" {
		return out
	}
	v.Host = net.JoinHostPort(u.Hostname(), def)
	return append(out, v.String())
}
