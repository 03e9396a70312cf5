package esptest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Message ids the fakes' success answers carry, in each provider's format.
const (
	// SendGridMessageID is the X-Message-Id of SendGrid's 202.
	SendGridMessageID = "W86EgYT6SQKk0lRflfLRsA"
	// MailgunMessageID is mailgun-200.json's id without its angle brackets.
	MailgunMessageID = "20111114174239.25659.5817@samples.mailgun.org"
	// PostmarkMessageID is postmark-200.json's MessageID.
	PostmarkMessageID = "0a129aee-e1cd-480d-b08d-4f48548ff48d"
	// SESMessageID is ses-200.json's MessageId.
	SESMessageID = "010201901b4f6d5d-6a9e9ef3-1e3c-4a29-b7c5-8f0b2bd2a3e1-000000"
)

func readAll(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return b
}

func mediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// SendGrid fakes the v3 Mail Send API for apiKey: POST /v3/mail/send, Bearer
// auth, JSON, one personalization whose custom_args carry dispatch_id. It
// answers 202 with X-Message-Id SendGridMessageID and no body.
func SendGrid(t testing.TB, apiKey string) *Fake {
	ok := Answer{Status: http.StatusAccepted, Header: http.Header{"X-Message-Id": {SendGridMessageID}}}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
			return Request{}, "want POST /v3/mail/send"
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+apiKey {
			return Request{}, fmt.Sprintf("Authorization %q, want Bearer and the API key", got)
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		type address struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		}
		var m struct {
			Personalizations []struct {
				To         []address         `json:"to"`
				CustomArgs map[string]string `json:"custom_args"`
			} `json:"personalizations"`
			From    address `json:"from"`
			Subject string  `json:"subject"`
			Content []struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"content"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.Personalizations) != 1 || len(m.Personalizations[0].To) != 1 {
			return Request{}, "want one personalization with one recipient"
		}
		p := m.Personalizations[0]
		req := Request{DispatchID: p.CustomArgs["dispatch_id"], From: m.From.Email, To: p.To[0].Email, Subject: m.Subject}
		for i, c := range m.Content {
			switch {
			case c.Type == "text/plain" && i == 0:
				req.Text = c.Value
			case c.Type == "text/html":
				req.HTML = c.Value
			default:
				return Request{}, fmt.Sprintf("content[%d] is %s: text/plain must come first, then text/html", i, c.Type)
			}
			if c.Value == "" {
				return Request{}, fmt.Sprintf("content[%d] is empty", i)
			}
		}
		if req.DispatchID == "" || req.From == "" || req.To == "" {
			return Request{}, "want from.email, personalizations[0].to[0].email and personalizations[0].custom_args.dispatch_id"
		}
		return req, ""
	})
}

// Mailgun fakes the Messages API of domain for apiKey: POST
// /v3/{domain}/messages, basic auth api:{apiKey}, form or multipart fields, the
// user variable v:dispatch_id. It answers mailgun-200.json.
func Mailgun(t testing.TB, apiKey, domain string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("mailgun-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/"+domain+"/messages" {
			return Request{}, "want POST /v3/" + domain + "/messages"
		}
		if user, pass, okAuth := r.BasicAuth(); !okAuth || user != "api" || pass != apiKey {
			return Request{}, "want basic auth api:{API key}"
		}
		var form url.Values
		switch mediaType(r) {
		case "application/x-www-form-urlencoded":
			f, err := url.ParseQuery(string(body))
			if err != nil {
				return Request{}, "form: " + err.Error()
			}
			form = f
		case "multipart/form-data":
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				return Request{}, "multipart: " + err.Error()
			}
			form = r.MultipartForm.Value
		default:
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want a form"
		}
		req := Request{
			DispatchID: form.Get("v:dispatch_id"), From: form.Get("from"), To: form.Get("to"),
			Subject: form.Get("subject"), Text: form.Get("text"), HTML: form.Get("html"),
			Extra: map[string]string{"o:tag": form.Get("o:tag")},
		}
		if req.DispatchID == "" || req.From == "" || req.To == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want from, to, text or html, and v:dispatch_id"
		}
		return req, ""
	})
}

// Postmark fakes the Email API for serverToken: POST /email,
// X-Postmark-Server-Token, JSON, Metadata.dispatch_id. It answers
// postmark-200.json.
func Postmark(t testing.TB, serverToken string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("postmark-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/email" {
			return Request{}, "want POST /email"
		}
		if got := r.Header.Get("X-Postmark-Server-Token"); got != serverToken {
			return Request{}, "X-Postmark-Server-Token is not the server token"
		}
		if mediaType(r) != "application/json" || !strings.Contains(r.Header.Get("Accept"), "application/json") {
			return Request{}, "want Content-Type and Accept application/json"
		}
		var m struct {
			From, To, Subject, TextBody, HtmlBody, MessageStream string
			Metadata                                             map[string]string
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		req := Request{
			DispatchID: m.Metadata["dispatch_id"], From: m.From, To: m.To, Subject: m.Subject, Text: m.TextBody, HTML: m.HtmlBody,
			Extra: map[string]string{"MessageStream": m.MessageStream},
		}
		if req.DispatchID == "" || req.From == "" || req.To == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want From, To, TextBody or HtmlBody, and Metadata.dispatch_id"
		}
		return req, ""
	})
}

// SES fakes Amazon SES v2 SendEmail in region for the credentials akid/secret:
// POST /v2/email/outbound-emails, JSON, signed with SigV4 for service "ses"
// (the fake recomputes the signature), the message tag dispatch_id. It answers
// ses-200.json. Errors are answered as SES does: the error code in the
// X-Amzn-ErrorType header, {"message"} in the body.
func SES(t testing.TB, region, akid, secret string) *Fake {
	ok := Answer{Status: http.StatusOK, Body: Fixture("ses-200.json")}
	return start(t, ok, func(r *http.Request, body []byte) (Request, string) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
			return Request{}, "want POST /v2/email/outbound-emails"
		}
		if mediaType(r) != "application/json" {
			return Request{}, "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		if complaint := checkSigV4(r, body, region, akid, secret); complaint != "" {
			return Request{}, complaint
		}
		type content struct{ Data, Charset string }
		var m struct {
			FromEmailAddress string
			Destination      struct{ ToAddresses []string }
			Content          struct {
				Simple struct {
					Subject content
					Body    struct{ Text, Html *content }
				}
			}
			EmailTags            []struct{ Name, Value string }
			ConfigurationSetName string
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return Request{}, "body: " + err.Error()
		}
		if len(m.Destination.ToAddresses) != 1 {
			return Request{}, "want one Destination.ToAddresses"
		}
		req := Request{
			From: m.FromEmailAddress, To: m.Destination.ToAddresses[0], Subject: m.Content.Simple.Subject.Data,
			Extra: map[string]string{"ConfigurationSetName": m.ConfigurationSetName},
		}
		if b := m.Content.Simple.Body.Text; b != nil {
			req.Text = b.Data
		}
		if b := m.Content.Simple.Body.Html; b != nil {
			req.HTML = b.Data
		}
		for _, tag := range m.EmailTags {
			if tag.Name == "dispatch_id" {
				req.DispatchID = tag.Value
			}
		}
		if req.DispatchID == "" || req.From == "" || (req.Text == "" && req.HTML == "") {
			return Request{}, "want FromEmailAddress, Content.Simple.Body and the EmailTags dispatch_id"
		}
		return req, ""
	})
}

// SESError is an SES error answer: code in X-Amzn-ErrorType, fixture as body.
func SESError(status int, code, fixture string) Answer {
	return Answer{Status: status, Header: http.Header{"X-Amzn-Errortype": {code}}, Body: Fixture(fixture)}
}

// checkSigV4 recomputes the request's SigV4 signature from the headers it says
// it signed, and compares.
func checkSigV4(r *http.Request, body []byte, region, akid, secret string) string {
	auth := r.Header.Get("Authorization")
	scope := "Credential=" + akid + "/"
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, scope) || !strings.Contains(auth, "/"+region+"/ses/aws4_request") {
		return fmt.Sprintf("Authorization %q: want AWS4-HMAC-SHA256 with the access key, region %s and service ses", redact(auth), region)
	}
	signed := ""
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ", ") {
		if v, ok := strings.CutPrefix(part, "SignedHeaders="); ok {
			signed = v
		}
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "X-Amz-Date: " + err.Error()
	}
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	re.ContentLength = int64(len(body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			re.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), "ses", region, when); err != nil {
		return "signing: " + err.Error()
	}
	if re.Header.Get("Authorization") != auth {
		return "SigV4 signature does not match the secret key"
	}
	return ""
}

// redact keeps a signature out of test output.
func redact(auth string) string {
	if i := strings.Index(auth, "Signature="); i >= 0 {
		return auth[:i] + "Signature=…"
	}
	return auth
}
