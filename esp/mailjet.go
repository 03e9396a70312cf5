package esp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
)

// MailjetBaseURL is the origin of Mailjet's API.
const MailjetBaseURL = "https://api.mailjet.com"

// Mailjet hands messages to Mailjet's Send API v3.1
// (POST {BaseURL}/v3.1/send, basic auth {APIKey}:{SecretKey}). Name() is
// "mailjet".
//
// The message's CustomID is the dispatch id, which Mailjet returns in every
// event of its Event API (webhooks) as "CustomID"; its EventPayload is
// {"dispatch_id": …}, returned as "Payload". Receipt.MessageID is the answer's
// Messages[0].To[0].MessageID, a 64-bit number, written in decimal: the events
// carry the same number as "MessageID".
//
// Answers: 200 with Messages[0].Status "success" is sent. A 400 or 403 whose
// Messages[].Errors describe the message (mj-0013 an invalid address, send-0008
// a sender not authorised for the account, …) is a refusal whose reason is
// Mailjet's ErrorMessage, with its ErrorCode and the fields it names; so is a
// 400 about the request as a whole ({"ErrorMessage"} at the top level). 401
// (key or secret refused) and a 403 without message errors are our
// configuration's fault: transient, so that fixing it rescues the queued mail
// within DISPATCHFLOW_SEND_RETRY_WINDOW. 429, 5xx, any other answer and network
// errors are transient.
type Mailjet struct {
	// APIKey and SecretKey are the API key pair (DISPATCHFLOW_MAILJET_API_KEY,
	// DISPATCHFLOW_MAILJET_API_SECRET). Required.
	APIKey    string
	SecretKey string
	// BaseURL is the API origin; MailjetBaseURL when empty.
	BaseURL string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Mailjet)(nil)

// Name returns "mailjet".
func (m *Mailjet) Name() string { return "mailjet" }

// mailjetAddress, mailjetMessage… are the parts of a Send API v3.1 body.
type mailjetAddress struct {
	Email string `json:"Email"`
	Name  string `json:"Name,omitempty"`
}

type mailjetMessage struct {
	From         mailjetAddress   `json:"From"`
	To           []mailjetAddress `json:"To"`
	Subject      string           `json:"Subject"`
	TextPart     string           `json:"TextPart,omitempty"`
	HTMLPart     string           `json:"HTMLPart,omitempty"`
	CustomID     string           `json:"CustomID"`
	EventPayload string           `json:"EventPayload"`
}

type mailjetSend struct {
	Messages []mailjetMessage `json:"Messages"`
}

// mailjetError is one error of Mailjet's answers, at the top level or in a
// message's Errors.
type mailjetError struct {
	ErrorCode      string   `json:"ErrorCode"`
	ErrorMessage   string   `json:"ErrorMessage"`
	ErrorRelatedTo []string `json:"ErrorRelatedTo"`
}

// text renders the error for a reason: its message, code and fields.
func (e mailjetError) text() string {
	s := truncate(e.ErrorMessage, 300)
	var detail []string
	if e.ErrorCode != "" {
		detail = append(detail, "Mailjet "+truncate(e.ErrorCode, 20))
	}
	if len(e.ErrorRelatedTo) > 0 {
		detail = append(detail, "field "+truncate(strings.Join(e.ErrorRelatedTo, ", "), 100))
	}
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return s
}

// mailjetAnswer is Mailjet's answer: per-message results (success or
// Errors), or one error about the whole request.
type mailjetAnswer struct {
	Messages []struct {
		Status string         `json:"Status"`
		Errors []mailjetError `json:"Errors"`
		To     []struct {
			MessageID json.Number `json:"MessageID"`
		} `json:"To"`
	} `json:"Messages"`
	mailjetError
}

// messageErrors joins the messages' errors; empty when there are none.
func (a mailjetAnswer) messageErrors() string {
	var parts []string
	for _, m := range a.Messages {
		for _, e := range m.Errors {
			parts = append(parts, e.text())
		}
	}
	return strings.Join(parts, "; ")
}

// Send hands e to Mailjet; see Mailjet for what its errors mean.
func (m *Mailjet) Send(ctx context.Context, e Email) (Receipt, error) {
	if m.APIKey == "" || m.SecretKey == "" {
		return Receipt{}, errors.New("mailjet: no API key or secret configured (DISPATCHFLOW_MAILJET_API_KEY, DISPATCHFLOW_MAILJET_API_SECRET)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	payload, err := json.Marshal(map[string]string{"dispatch_id": e.DispatchID})
	if err != nil {
		return Receipt{}, fmt.Errorf("mailjet: encoding the event payload: %w", err)
	}
	body, err := json.Marshal(mailjetSend{Messages: []mailjetMessage{{
		From:         mailjetAddress{Email: from.Address, Name: from.Name},
		To:           []mailjetAddress{{Email: to.Address, Name: to.Name}},
		Subject:      e.Subject,
		TextPart:     e.Text,
		HTMLPart:     e.HTML,
		CustomID:     e.DispatchID,
		EventPayload: string(payload),
	}}})
	if err != nil {
		return Receipt{}, fmt.Errorf("mailjet: encoding the request: %w", err)
	}
	base := m.BaseURL
	if base == "" {
		base = MailjetBaseURL
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(m.APIKey+":"+m.SecretKey))
	a, err := post(ctx, m.HTTP, "mailjet", strings.TrimRight(base, "/")+"/v3.1/send", "application/json", body,
		http.Header{"Authorization": {auth}})
	if err != nil {
		return Receipt{}, err
	}

	var ans mailjetAnswer
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	jsonErr := dec.Decode(&ans)
	switch {
	case a.status == http.StatusOK:
		if jsonErr != nil || len(ans.Messages) == 0 || len(ans.Messages[0].To) == 0 {
			// Accepted without an id we can read: still sent, or a retry would send twice.
			return Receipt{Provider: m.Name(), Response: truncate(strings.TrimSpace(string(a.body)), 300)}, nil
		}
		return Receipt{Provider: m.Name(), MessageID: ans.Messages[0].To[0].MessageID.String(), Response: ans.Messages[0].Status}, nil
	case a.status == http.StatusUnauthorized:
		return Receipt{}, fmt.Errorf("mailjet refused the API key (check DISPATCHFLOW_MAILJET_API_KEY and DISPATCHFLOW_MAILJET_API_SECRET): %s", a.describe())
	case (a.status == http.StatusBadRequest || a.status == http.StatusForbidden) && ans.messageErrors() != "":
		return Receipt{}, &RefusedError{Reason: truncate(ans.messageErrors(), 500)}
	case a.status == http.StatusBadRequest && jsonErr == nil && ans.ErrorMessage != "":
		return Receipt{}, &RefusedError{Reason: truncate(ans.mailjetError.text(), 500)}
	case a.status == http.StatusForbidden:
		return Receipt{}, fmt.Errorf("mailjet refused the request for the account (check DISPATCHFLOW_MAILJET_API_KEY): %s", a.describe())
	}
	return Receipt{}, fmt.Errorf("mailjet answered %s", a.describe())
}
