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

// SparkPost's API origins: SparkPostBaseURL for US accounts, SparkPostEUBaseURL
// for accounts of SparkPost EU.
const (
	SparkPostBaseURL   = "https://api.sparkpost.com"
	SparkPostEUBaseURL = "https://api.eu.sparkpost.com"
)

// SparkPost hands messages to SparkPost's Transmissions API
// (POST {BaseURL}/api/v1/transmissions, Authorization: {APIKey}). Name() is
// "sparkpost".
//
// The transmission carries the metadata {"dispatch_id": …}, which SparkPost
// returns in every message event (webhooks) as rcpt_meta.dispatch_id, and is
// marked transactional (options.transactional), so that the account's
// non-transactional unsubscribes do not suppress it. Receipt.MessageID is the
// answer's results.id, the transmission id: the send API answers no other id,
// and every event carries it as transmission_id (the events' message_id is
// assigned later and is never in the answer).
//
// Answers: 200 is sent, unless SparkPost rejected the recipient
// (results.total_accepted_recipients 0): a refusal. 400, 413 and 422 with
// SparkPost's errors (an invalid address, an unconfigured or blocked sending
// domain, content it cannot generate, …) are refusals whose reason is
// SparkPost's message and description, except error code 1502 (server
// resources unavailable: retry later), which is transient. 401 and 403 (key,
// its permissions, or an account of the other region), and 420 (hourly or
// sandbox sending limit) are the account's, not the message's: transient, so
// that fixing it rescues the queued mail within DISPATCHFLOW_SEND_RETRY_WINDOW.
// 429, 5xx, any other answer and network errors are transient.
type SparkPost struct {
	// APIKey is the API key with the Transmissions: Read/Write permission
	// (DISPATCHFLOW_SPARKPOST_API_KEY). Required.
	APIKey string
	// BaseURL is the API origin; SparkPostBaseURL when empty.
	BaseURL string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*SparkPost)(nil)

// Name returns "sparkpost".
func (s *SparkPost) Name() string { return "sparkpost" }

// sparkpostAddress, sparkpostTransmission… are the parts of a POST
// /api/v1/transmissions body.
type sparkpostAddress struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type sparkpostContent struct {
	From    sparkpostAddress `json:"from"`
	Subject string           `json:"subject"`
	Text    string           `json:"text,omitempty"`
	HTML    string           `json:"html,omitempty"`
}

type sparkpostRecipient struct {
	Address sparkpostAddress `json:"address"`
}

type sparkpostOptions struct {
	Transactional bool `json:"transactional"`
}

type sparkpostTransmission struct {
	Options    sparkpostOptions     `json:"options"`
	Recipients []sparkpostRecipient `json:"recipients"`
	Content    sparkpostContent     `json:"content"`
	Metadata   map[string]string    `json:"metadata"`
}

// sparkpostAnswer is SparkPost's answer: results on success, errors otherwise
// (code and description only in answers of before 2019).
type sparkpostAnswer struct {
	Results struct {
		ID                      string `json:"id"`
		TotalAcceptedRecipients int    `json:"total_accepted_recipients"`
		TotalRejectedRecipients int    `json:"total_rejected_recipients"`
	} `json:"results"`
	Errors []struct {
		Message     string `json:"message"`
		Description string `json:"description"`
		Code        string `json:"code"`
	} `json:"errors"`
}

// messages joins the errors' messages, each with its description when it has one.
func (a sparkpostAnswer) messages() string {
	var parts []string
	for _, e := range a.Errors {
		s := e.Message
		if e.Description != "" && e.Description != e.Message {
			s += ": " + strings.TrimSpace(e.Description)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// retryLater reports whether the errors say SparkPost is short of resources
// (extended code 1502, answered 400): the same request can succeed later.
func (a sparkpostAnswer) retryLater() bool {
	for _, e := range a.Errors {
		if e.Code == "1502" {
			return true
		}
	}
	return false
}

// Send hands e to SparkPost; see SparkPost for what its errors mean.
func (s *SparkPost) Send(ctx context.Context, e Email) (Receipt, error) {
	if s.APIKey == "" {
		return Receipt{}, errors.New("sparkpost: no API key configured (DISPATCHFLOW_SPARKPOST_API_KEY)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	body, err := json.Marshal(sparkpostTransmission{
		Options:    sparkpostOptions{Transactional: true},
		Recipients: []sparkpostRecipient{{Address: sparkpostAddress{Email: to.Address, Name: to.Name}}},
		Content: sparkpostContent{
			From: sparkpostAddress{Email: from.Address, Name: from.Name}, Subject: e.Subject, Text: e.Text, HTML: e.HTML,
		},
		Metadata: map[string]string{"dispatch_id": e.DispatchID},
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("sparkpost: encoding the request: %w", err)
	}
	base := s.BaseURL
	if base == "" {
		base = SparkPostBaseURL
	}
	a, err := post(ctx, s.HTTP, "sparkpost", strings.TrimRight(base, "/")+"/api/v1/transmissions", "application/json", body,
		http.Header{"Authorization": {s.APIKey}})
	if err != nil {
		return Receipt{}, err
	}

	var ans sparkpostAnswer
	jsonErr := json.Unmarshal(a.body, &ans)
	r := ans.Results
	switch {
	case a.status == http.StatusOK && jsonErr == nil && r.TotalAcceptedRecipients == 0 && r.TotalRejectedRecipients > 0:
		return Receipt{}, &RefusedError{Reason: fmt.Sprintf("SparkPost rejected the recipient (transmission %s: %d accepted, %d rejected)",
			truncate(r.ID, 50), r.TotalAcceptedRecipients, r.TotalRejectedRecipients)}
	case a.status == http.StatusOK:
		// Accepted, even without an id we can read: a retry would send twice.
		return Receipt{Provider: s.Name(), MessageID: r.ID,
			Response: fmt.Sprintf("200 OK: %d recipient accepted", r.TotalAcceptedRecipients)}, nil
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return Receipt{}, fmt.Errorf("sparkpost refused the API key (check DISPATCHFLOW_SPARKPOST_API_KEY, its Transmissions: Read/Write permission, and DISPATCHFLOW_SPARKPOST_BASE_URL's region): %s", a.describe())
	case a.status == 420: // SparkPost's "Exceed Sending Limit"
		return Receipt{}, fmt.Errorf("sparkpost: the account's sending limit is exceeded: %s", a.describe())
	case ans.retryLater():
		return Receipt{}, fmt.Errorf("sparkpost answered %s", a.describe())
	case (a.status == http.StatusBadRequest || a.status == http.StatusRequestEntityTooLarge || a.status == http.StatusUnprocessableEntity) &&
		len(ans.Errors) > 0:
		return Receipt{}, &RefusedError{Reason: truncate(ans.messages(), 500)}
	case a.status == http.StatusRequestEntityTooLarge:
		return Receipt{}, &RefusedError{Reason: "413 Payload Too Large"}
	}
	return Receipt{}, fmt.Errorf("sparkpost answered %s", a.describe())
}
