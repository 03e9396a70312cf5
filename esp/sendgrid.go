package esp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
)

// SendGridBaseURL is the origin of SendGrid's v3 API (EU-pinned subusers use
// https://api.eu.sendgrid.com).
const SendGridBaseURL = "https://api.sendgrid.com"

// SendGrid hands messages to Twilio SendGrid's v3 Mail Send API
// (POST {BaseURL}/v3/mail/send, Authorization: Bearer {APIKey}). Name() is
// "sendgrid".
//
// The message has one personalization whose custom_args carry
// {"dispatch_id": …}: SendGrid merges custom args as top-level keys into every
// Event Webhook event of the message, which is how events find their dispatch.
// Receipt.MessageID is the X-Message-Id response header, the part of the events'
// sg_message_id before its first '.'.
//
// Answers: 202 is sent. 400 and 413, and 403 with SendGrid's errors body (an
// unverified sender identity, …) are refusals whose reason is SendGrid's
// message. 401, and 403 "access forbidden" (a key without the Mail Send
// permission), are our configuration's fault, not the message's: transient, so
// that fixing the key rescues the queued mail within DISPATCHFLOW_SEND_RETRY_WINDOW.
// 429, 5xx, any other answer and network errors are transient.
type SendGrid struct {
	// APIKey is the API key (DISPATCHFLOW_SENDGRID_API_KEY). Required.
	APIKey string
	// BaseURL is the API origin; SendGridBaseURL when empty.
	BaseURL string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*SendGrid)(nil)

// Name returns "sendgrid".
func (s *SendGrid) Name() string { return "sendgrid" }

// sendgridAddress, sendgridMail… are the parts of a Mail Send request body.
type sendgridAddress struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type sendgridPersonalization struct {
	To         []sendgridAddress `json:"to"`
	CustomArgs map[string]string `json:"custom_args"`
}

type sendgridContent struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type sendgridMail struct {
	Personalizations []sendgridPersonalization `json:"personalizations"`
	From             sendgridAddress           `json:"from"`
	Subject          string                    `json:"subject"`
	Content          []sendgridContent         `json:"content"`
}

// sendgridErrors is SendGrid's error body: {"errors": [{"message", "field", "help"}]}.
type sendgridErrors struct {
	Errors []struct {
		Message string  `json:"message"`
		Field   *string `json:"field"`
	} `json:"errors"`
}

// messages joins the errors' messages, each with its field when there is one.
func (e sendgridErrors) messages() string {
	var parts []string
	for _, x := range e.Errors {
		if x.Field != nil && *x.Field != "" {
			parts = append(parts, x.Message+" (field "+*x.Field+")")
		} else {
			parts = append(parts, x.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// Send hands e to SendGrid; see SendGrid for what its errors mean.
func (s *SendGrid) Send(ctx context.Context, e Email) (Receipt, error) {
	if s.APIKey == "" {
		return Receipt{}, errors.New("sendgrid: no API key configured (DISPATCHFLOW_SENDGRID_API_KEY)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	m := sendgridMail{
		Personalizations: []sendgridPersonalization{{
			To:         []sendgridAddress{{Email: to.Address, Name: to.Name}},
			CustomArgs: map[string]string{"dispatch_id": e.DispatchID},
		}},
		From:    sendgridAddress{Email: from.Address, Name: from.Name},
		Subject: e.Subject,
	}
	// SendGrid wants text/plain first, then text/html, and no empty value.
	if e.Text != "" {
		m.Content = append(m.Content, sendgridContent{Type: "text/plain", Value: e.Text})
	}
	if e.HTML != "" {
		m.Content = append(m.Content, sendgridContent{Type: "text/html", Value: e.HTML})
	}
	body, err := json.Marshal(m)
	if err != nil {
		return Receipt{}, fmt.Errorf("sendgrid: encoding the request: %w", err)
	}
	base := s.BaseURL
	if base == "" {
		base = SendGridBaseURL
	}
	a, err := post(ctx, s.HTTP, "sendgrid", strings.TrimRight(base, "/")+"/v3/mail/send", "application/json", body,
		http.Header{"Authorization": {"Bearer " + s.APIKey}})
	if err != nil {
		return Receipt{}, err
	}

	var errs sendgridErrors
	_ = json.Unmarshal(a.body, &errs)
	switch {
	case a.status == http.StatusAccepted || a.status == http.StatusOK:
		return Receipt{Provider: s.Name(), MessageID: a.header.Get("X-Message-Id"), Response: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))}, nil
	case a.status == http.StatusUnauthorized,
		a.status == http.StatusForbidden && strings.EqualFold(errs.messages(), "access forbidden"):
		return Receipt{}, fmt.Errorf("sendgrid refused the API key (check DISPATCHFLOW_SENDGRID_API_KEY and its Mail Send permission): %s", a.describe())
	case (a.status == http.StatusBadRequest || a.status == http.StatusForbidden || a.status == http.StatusRequestEntityTooLarge) && len(errs.Errors) > 0:
		return Receipt{}, &RefusedError{Reason: truncate(errs.messages(), 500)}
	case a.status == http.StatusRequestEntityTooLarge:
		return Receipt{}, &RefusedError{Reason: "413 Payload Too Large"}
	}
	return Receipt{}, fmt.Errorf("sendgrid answered %s", a.describe())
}
