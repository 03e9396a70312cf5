package esptest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
)

// ResendEmailID is resend-200.json's id.
const ResendEmailID = "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"

// Resend fakes Resend's Email API for apiKey, as documented at
// resend.com/docs/api-reference/emails/send-email and
// resend.com/docs/dashboard/emails/idempotency-keys: POST /emails, Bearer
// auth, JSON with from, one to, subject, text and/or html, and the tag
// {"name": "dispatch_id", "value": …}; the Idempotency-Key header is required
// here (the sender always sends it) and is 1 to 256 characters. Resend sends
// nothing for a key it has seen with the same body in the last 24 hours: the
// fake records the key (Extra["Idempotency-Key"]) and the body's SHA-256
// (Extra["body.sha256"]) for tests to check that a retry would be recognised.
// It answers resend-200.json.
func Resend(t testing.TB, apiKey string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("resend-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/emails" {
			return Request{}, "want POST /emails"
		}
		if r.Header.Get("Authorization") != "Bearer "+apiKey {
			return Request{}, "Authorization is not Bearer and the API key"
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		key := r.Header.Get("Idempotency-Key")
		if key == "" || len(key) > 256 {
			return Request{}, "want an Idempotency-Key of 1 to 256 characters"
		}
		var m struct {
			From    string   `json:"from"`
			To      []string `json:"to"`
			Subject string   `json:"subject"`
			Text    string   `json:"text"`
			HTML    string   `json:"html"`
			Tags    []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"tags"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.To) != 1 {
			return Request{}, "want one to"
		}
		sum := sha256.Sum256(body)
		req := Request{From: m.From, To: m.To[0], Subject: m.Subject, Text: m.Text, HTML: m.HTML,
			Extra: map[string]string{"Idempotency-Key": key, "body.sha256": hex.EncodeToString(sum[:])}}
		for _, tag := range m.Tags {
			if tag.Name == "dispatch_id" {
				req.DispatchID = tag.Value
			}
		}
		if req.DispatchID == "" || req.From == "" || req.Subject == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want from, to, subject, text or html, and the tag dispatch_id"
		}
		return req, ""
	})
}
