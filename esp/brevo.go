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

// BrevoBaseURL is the origin of Brevo's (formerly Sendinblue's) v3 API.
const BrevoBaseURL = "https://api.brevo.com"

// BrevoCustomHeader is the custom header Brevo echoes, as a field of the same
// name, in every transactional webhook event; BrevoCustomPrefix the form of its
// value: X-Mailin-custom: dispatch_id:<dispatch_id>.
const (
	BrevoCustomHeader = "X-Mailin-custom"
	BrevoCustomPrefix = "dispatch_id:"
)

// Brevo hands messages to Brevo's transactional email API
// (POST {BaseURL}/v3/smtp/email, header api-key: {APIKey}). Name() is "brevo".
//
// The message carries the custom header X-Mailin-custom: dispatch_id:<id>, which
// Brevo returns in every transactional webhook event as the field
// "X-Mailin-custom". Brevo also delivers the header with the message, visible to
// the recipient: it is an opaque id, nothing personal (and ASCII, as Brevo
// needs: it sends custom headers unencoded). Receipt.MessageID is the answer's
// messageId as Brevo wrote it, angle brackets included
// ("<202501011200.1234@smtp-relay.mailin.fr>"): the events' "message-id" carries
// the same string (as captured in django-anymail's Brevo tests; the examples of
// Brevo's documentation show a sample id without brackets).
//
// Answers: 201 (202 for a scheduled send) is sent. 400 and 422 carry Brevo's
// {"code", "message"}: a refusal whose reason is Brevo's message and code (an
// invalid address, a sender Brevo has not validated, …), except the codes about
// the account (unauthorized, permission_denied, not_enough_credits,
// account_under_validation), which are transient. 401 (key), 402 (not enough
// credits) and 403 (permission denied: the key's authorised IPs, …) are the
// account's fault, not the message's: transient, so that fixing it rescues the
// queued mail within DISPATCHFLOW_SEND_RETRY_WINDOW. 429, 5xx, any other answer
// and network errors are transient.
type Brevo struct {
	// APIKey is the v3 API key (DISPATCHFLOW_BREVO_API_KEY). Required.
	APIKey string
	// BaseURL is the API origin; BrevoBaseURL when empty.
	BaseURL string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Brevo)(nil)

// Name returns "brevo".
func (b *Brevo) Name() string { return "brevo" }

// brevoAddress, brevoEmail are the parts of a POST /v3/smtp/email body.
type brevoAddress struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type brevoEmail struct {
	Sender      brevoAddress      `json:"sender"`
	To          []brevoAddress    `json:"to"`
	Subject     string            `json:"subject"`
	TextContent string            `json:"textContent,omitempty"`
	HTMLContent string            `json:"htmlContent,omitempty"`
	Headers     map[string]string `json:"headers"`
}

// brevoAnswer is Brevo's answer: {"messageId"} on success, {"code", "message"}
// on errors.
type brevoAnswer struct {
	MessageID string `json:"messageId"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// brevoAccountCodes are the error codes about the account or the key, not the
// message: the same message can succeed once they are fixed.
var brevoAccountCodes = map[string]bool{
	"unauthorized":             true,
	"permission_denied":        true,
	"not_enough_credits":       true,
	"account_under_validation": true,
}

// Send hands e to Brevo; see Brevo for what its errors mean.
func (b *Brevo) Send(ctx context.Context, e Email) (Receipt, error) {
	if b.APIKey == "" {
		return Receipt{}, errors.New("brevo: no API key configured (DISPATCHFLOW_BREVO_API_KEY)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	body, err := json.Marshal(brevoEmail{
		Sender:      brevoAddress{Email: from.Address, Name: from.Name},
		To:          []brevoAddress{{Email: to.Address, Name: to.Name}},
		Subject:     e.Subject,
		TextContent: e.Text,
		HTMLContent: e.HTML,
		Headers:     map[string]string{BrevoCustomHeader: BrevoCustomPrefix + e.DispatchID},
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("brevo: encoding the request: %w", err)
	}
	base := b.BaseURL
	if base == "" {
		base = BrevoBaseURL
	}
	a, err := post(ctx, b.HTTP, "brevo", strings.TrimRight(base, "/")+"/v3/smtp/email", "application/json", body,
		http.Header{"Api-Key": {b.APIKey}})
	if err != nil {
		return Receipt{}, err
	}

	var ans brevoAnswer
	jsonErr := json.Unmarshal(a.body, &ans)
	status := fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))
	switch {
	case a.status == http.StatusCreated || a.status == http.StatusAccepted:
		// Accepted, even without an id we can read: a retry would send twice.
		return Receipt{Provider: b.Name(), MessageID: ans.MessageID, Response: status}, nil
	case a.status == http.StatusUnauthorized || a.status == http.StatusPaymentRequired || a.status == http.StatusForbidden ||
		brevoAccountCodes[ans.Code]:
		return Receipt{}, fmt.Errorf("brevo refused the request for the account (check DISPATCHFLOW_BREVO_API_KEY, its authorised IPs and the account's credits): %s", a.describe())
	case (a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity) && jsonErr == nil && ans.Message != "":
		return Receipt{}, &RefusedError{Reason: truncate(ans.Message, 500) + " (Brevo code " + truncate(ans.Code, 50) + ")"}
	case a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity:
		return Receipt{}, &RefusedError{Reason: truncate(a.describe(), 500)}
	}
	return Receipt{}, fmt.Errorf("brevo answered %s", a.describe())
}
