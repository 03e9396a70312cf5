package esptest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// BrevoMessageID is brevo-201.json's messageId, angle brackets included.
const BrevoMessageID = "<201798300811.5787683@relay.domain.com>"

// Brevo fakes Brevo's transactional email API for apiKey, as documented at
// developers.brevo.com/reference/sendtransacemail and in the official
// getbrevo/brevo-python SDK (models/send_smtp_email.py, create_smtp_email.py,
// error_model.py): POST /v3/smtp/email, header api-key, JSON with sender{email,
// name}, one to[{email, name}], subject, textContent and/or htmlContent, and the
// custom header X-Mailin-custom "dispatch_id:<id>". It answers brevo-201.json.
func Brevo(t testing.TB, apiKey string) *Fake {
	ok := Answer{Status: http.StatusCreated, Body: Fixture("brevo-201.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/smtp/email" {
			return Request{}, "want POST /v3/smtp/email"
		}
		if r.Header.Get("Api-Key") != apiKey {
			return Request{}, "header api-key is not the API key"
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		type address struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		}
		var m struct {
			Sender      address           `json:"sender"`
			To          []address         `json:"to"`
			Subject     string            `json:"subject"`
			TextContent string            `json:"textContent"`
			HTMLContent string            `json:"htmlContent"`
			Headers     map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.To) != 1 {
			return Request{}, "want one to"
		}
		custom := m.Headers["X-Mailin-custom"]
		id, found := strings.CutPrefix(custom, "dispatch_id:")
		req := Request{
			DispatchID: id, From: m.Sender.Email, To: m.To[0].Email, Subject: m.Subject, Text: m.TextContent, HTML: m.HTMLContent,
			Extra: map[string]string{"sender.name": m.Sender.Name, "to.name": m.To[0].Name, "X-Mailin-custom": custom},
		}
		if !found || id == "" || req.From == "" || req.To == "" || req.Subject == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want sender.email, to[0].email, subject, textContent or htmlContent, and headers.X-Mailin-custom dispatch_id:<id>"
		}
		return req, ""
	})
}
