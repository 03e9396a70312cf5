package esptest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// MailjetMessageID is mailjet-200.json's Messages[0].To[0].MessageID, in decimal.
const MailjetMessageID = "70368744188491213"

// Mailjet fakes Mailjet's Send API v3.1 for the key pair apiKey:secretKey, as
// documented at dev.mailjet.com/email/reference/send-emails and in the official
// mailjet/mailjet-apiv3-go client (mailjet_resources.go InfoMessagesV31,
// ResultsV31, APIFeedbackErrorsV31): POST /v3.1/send, basic auth, JSON with one
// of Messages[] holding From{Email, Name}, one To[{Email, Name}], Subject,
// TextPart and/or HTMLPart, CustomID (the dispatch id) and EventPayload
// {"dispatch_id": …}. It answers mailjet-200.json.
func Mailjet(t testing.TB, apiKey, secretKey string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("mailjet-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3.1/send" {
			return Request{}, "want POST /v3.1/send"
		}
		if user, pass, okAuth := r.BasicAuth(); !okAuth || user != apiKey || pass != secretKey {
			return Request{}, "want basic auth {API key}:{secret key}"
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		type address struct{ Email, Name string }
		var m struct {
			Messages []struct {
				From                                                address
				To                                                  []address
				Subject, TextPart, HTMLPart, CustomID, EventPayload string
			}
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.Messages) != 1 || len(m.Messages[0].To) != 1 {
			return Request{}, "want one of Messages with one To"
		}
		msg := m.Messages[0]
		var payload map[string]string
		if err := json.Unmarshal([]byte(msg.EventPayload), &payload); err != nil {
			return Request{}, "EventPayload: want a JSON object: " + err.Error()
		}
		req := Request{
			DispatchID: msg.CustomID, From: msg.From.Email, To: msg.To[0].Email, Subject: msg.Subject, Text: msg.TextPart, HTML: msg.HTMLPart,
			Extra: map[string]string{"From.Name": msg.From.Name, "To.Name": msg.To[0].Name, "EventPayload.dispatch_id": payload["dispatch_id"]},
		}
		if req.DispatchID == "" || req.From == "" || req.To == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want From.Email, To[0].Email, TextPart or HTMLPart, and CustomID"
		}
		return req, ""
	})
}
