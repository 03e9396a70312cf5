package esptest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// SparkPostTransmissionID is sparkpost-200.json's results.id.
const SparkPostTransmissionID = "11111111111111111"

// SparkPost fakes SparkPost's Transmissions API for apiKey, as documented at
// developers.sparkpost.com/api/transmissions and in the official
// SparkPost/gosparkpost client (transmissions.go, templates.go Content,
// recipient_lists.go Address): POST /api/v1/transmissions, Authorization: the
// bare API key, JSON with one recipients[].address{email, name},
// content{from{email, name}, subject, text and/or html}, and metadata.dispatch_id.
// It answers sparkpost-200.json.
func SparkPost(t testing.TB, apiKey string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("sparkpost-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/transmissions" {
			return Request{}, "want POST /api/v1/transmissions"
		}
		if r.Header.Get("Authorization") != apiKey {
			return Request{}, "Authorization is not the API key"
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		type address struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		}
		var m struct {
			Options struct {
				Transactional *bool `json:"transactional"`
			} `json:"options"`
			Recipients []struct {
				Address address `json:"address"`
			} `json:"recipients"`
			Content struct {
				From    address `json:"from"`
				Subject string  `json:"subject"`
				Text    string  `json:"text"`
				HTML    string  `json:"html"`
			} `json:"content"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.Recipients) != 1 {
			return Request{}, "want one of recipients"
		}
		transactional := "unset"
		if m.Options.Transactional != nil && *m.Options.Transactional {
			transactional = "true"
		} else if m.Options.Transactional != nil {
			transactional = "false"
		}
		c := m.Content
		req := Request{
			DispatchID: m.Metadata["dispatch_id"], From: c.From.Email, To: m.Recipients[0].Address.Email, Subject: c.Subject, Text: c.Text, HTML: c.HTML,
			Extra: map[string]string{"from.name": c.From.Name, "address.name": m.Recipients[0].Address.Name, "options.transactional": transactional},
		}
		if req.DispatchID == "" || req.From == "" || req.To == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want content.from.email, recipients[0].address.email, content.text or content.html, and metadata.dispatch_id"
		}
		return req, ""
	})
}
