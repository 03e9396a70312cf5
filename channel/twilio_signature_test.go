package channel

import (
	"net/url"
	"testing"
)

// The vector Twilio publishes for request validation: auth token 12345, a POST to
// https://mycompany.com/myapp.php?foo=1&bar=2 with these params, signed
// RSOYDt4T1cUTdK1PDd93/VVr8B8=. It is the one of Twilio's official Go library's
// tests (github.com/twilio/twilio-go, client/request_validator_test.go, with its
// port variants) and of Twilio's docs snippet
// (github.com/TwilioDevEd/api-snippets, security/signature_validation/signature_validation.2.x.js).
// The 3.x snippet of the same docs signs Caller/From +14158675310 as
// GvWf1cFY/Q7PnoempGyD5oXAezc=.
const (
	vectorToken = "12345"
	vectorURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
	vectorSig   = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
)

func vectorParams() url.Values {
	return url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
}

func TestVerifyTwilioSignature(t *testing.T) {
	t.Parallel()
	tampered := vectorParams()
	tampered.Set("Digits", "1235")
	extra := vectorParams()
	extra.Set("MessageStatus", "delivered")
	missing := vectorParams()
	missing.Del("To")
	docs3x := vectorParams()
	docs3x.Set("Caller", "+14158675310")
	docs3x.Set("From", "+14158675310")

	tests := []struct {
		name   string
		token  string
		url    string
		params url.Values
		sig    string
		want   bool
	}{
		{name: "published vector", token: vectorToken, url: vectorURL, params: vectorParams(), sig: vectorSig, want: true},
		{name: "docs 3.x vector", token: vectorToken, url: vectorURL, params: docs3x, sig: "GvWf1cFY/Q7PnoempGyD5oXAezc=", want: true},
		// twilio-go's port cases: Twilio may sign the URL with or without the port.
		{name: "https with port, signed without", token: vectorToken, url: "https://mycompany.com:1234/myapp.php?foo=1&bar=2", params: vectorParams(), sig: vectorSig, want: true},
		{name: "https, signed with :443", token: vectorToken, url: vectorURL, params: vectorParams(), sig: "kvajT1Ptam85bY51eRf/AJRuM3w=", want: true},
		{name: "http, signed with :80", token: vectorToken, url: "http://mycompany.com/myapp.php?foo=1&bar=2", params: vectorParams(), sig: "0ZXoZLH/DfblKGATFgpif+LLRf4=", want: true},
		{name: "http with port, signed with it", token: vectorToken, url: "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params: vectorParams(), sig: "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", want: true},

		{name: "tampered param", token: vectorToken, url: vectorURL, params: tampered, sig: vectorSig},
		{name: "extra param", token: vectorToken, url: vectorURL, params: extra, sig: vectorSig},
		{name: "missing param", token: vectorToken, url: vectorURL, params: missing, sig: vectorSig},
		{name: "wrong token", token: "54321", url: vectorURL, params: vectorParams(), sig: vectorSig},
		{name: "empty token", token: "", url: vectorURL, params: vectorParams(), sig: vectorSig},
		{name: "other url", token: vectorToken, url: "https://mycompany.com/myapp.php?foo=1&bar=3", params: vectorParams(), sig: vectorSig},
		{name: "other host", token: vectorToken, url: "https://evil.example/myapp.php?foo=1&bar=2", params: vectorParams(), sig: vectorSig},
		{name: "empty signature", token: vectorToken, url: vectorURL, params: vectorParams(), sig: ""},
		{name: "not base64", token: vectorToken, url: vectorURL, params: vectorParams(), sig: "WRONG SIGNATURE"},
		{name: "truncated signature", token: vectorToken, url: vectorURL, params: vectorParams(), sig: "RSOYDt4T1cUTdK1PDd93/VVr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifyTwilioSignature(tt.token, tt.url, tt.params, tt.sig); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// A name with several values is signed once per distinct value, values sorted,
// as twilio-node does: the order the values arrive in does not matter.
func TestVerifyTwilioSignatureRepeatedParams(t *testing.T) {
	t.Parallel()
	// HMAC-SHA1("12345", vectorURL+"A1A2B3") computed independently of this package.
	const sig = "zcXZDTmCoK1prySoE8u5U72AjdY="
	tests := []struct {
		name   string
		params url.Values
		want   bool
	}{
		{name: "sorted", params: url.Values{"A": {"1", "2"}, "B": {"3"}}, want: true},
		{name: "unsorted", params: url.Values{"A": {"2", "1"}, "B": {"3"}}, want: true},
		{name: "duplicate", params: url.Values{"A": {"2", "1", "2"}, "B": {"3"}}, want: true},
		{name: "other value", params: url.Values{"A": {"1", "4"}, "B": {"3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifyTwilioSignature(vectorToken, vectorURL, tt.params, sig); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
