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

// ResendBaseURL is the origin of Resend's API.
const ResendBaseURL = "https://api.resend.com"

// Resend hands messages to Resend's Email API (POST {BaseURL}/emails,
// Authorization: Bearer {APIKey}). Name() is "resend".
//
// The message carries the tag {"name": "dispatch_id", "value": <dispatch id>},
// which Resend returns in every webhook event as data.tags.dispatch_id. Tag
// values may hold only ASCII letters, digits, '_' and '-' (at most 256): a
// dispatch id is 32 lowercase hex characters, so it travels as is; one that is
// not of that form is refused before anything is sent. Receipt.MessageID is the
// answer's id, the events' data.email_id.
//
// The request also carries the header Idempotency-Key: <dispatch id>. Resend
// answers a request whose key it has seen in the last 24 hours, with the same
// payload, with the first answer (the same id) and sends nothing: a Send
// retried after a lost answer (a crash or a timeout between Resend's acceptance
// and Temporal's record of it) hands the email over once, not twice. Temporal
// retries a Send for DISPATCHFLOW_SEND_RETRY_WINDOW (1h by default), well within
// those 24 hours. A 409 (the key in use by a request still running, or by
// another payload) is transient.
//
// Answers: 200 is sent. 400 and 422 (validation_error, invalid_from_address,
// missing_required_field, …) and 403 validation_error (a sender domain Resend has
// not verified, the testing-only onboarding address) are refusals whose reason
// is Resend's message and error name. 401, 403 invalid_api_key and a 400
// "API key is invalid" are our configuration's fault: transient, so that fixing
// the key rescues the queued mail within DISPATCHFLOW_SEND_RETRY_WINDOW. 409,
// 429 (rate limit, daily or monthly quota), 5xx, any other answer and network
// errors are transient.
type Resend struct {
	// APIKey is the API key, sending access at least (DISPATCHFLOW_RESEND_API_KEY). Required.
	APIKey string
	// BaseURL is the API origin; ResendBaseURL when empty.
	BaseURL string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Resend)(nil)

// Name returns "resend".
func (r *Resend) Name() string { return "resend" }

// resendTag, resendEmail are the parts of a POST /emails body.
type resendTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type resendEmail struct {
	From    string      `json:"from"`
	To      []string    `json:"to"`
	Subject string      `json:"subject"`
	Text    string      `json:"text,omitempty"`
	HTML    string      `json:"html,omitempty"`
	Tags    []resendTag `json:"tags"`
}

// resendAnswer is Resend's answer: {"id"} on success,
// {"statusCode", "name", "message"} on errors.
type resendAnswer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// resendTagValue reports whether s may be a Resend tag's value: 1 to 256 ASCII
// letters, digits, '_' or '-'.
func resendTagValue(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Send hands e to Resend; see Resend for what its errors mean.
func (r *Resend) Send(ctx context.Context, e Email) (Receipt, error) {
	if r.APIKey == "" {
		return Receipt{}, errors.New("resend: no API key configured (DISPATCHFLOW_RESEND_API_KEY)")
	}
	if !resendTagValue(e.DispatchID) {
		return Receipt{}, &RefusedError{Reason: "dispatch_id: not a Resend tag value (1 to 256 ASCII letters, digits, '_' or '-')"}
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	body, err := json.Marshal(resendEmail{
		From: from.String(), To: []string{to.String()}, Subject: e.Subject, Text: e.Text, HTML: e.HTML,
		Tags: []resendTag{{Name: "dispatch_id", Value: e.DispatchID}},
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("resend: encoding the request: %w", err)
	}
	base := r.BaseURL
	if base == "" {
		base = ResendBaseURL
	}
	a, err := post(ctx, r.HTTP, "resend", strings.TrimRight(base, "/")+"/emails", "application/json", body,
		http.Header{"Authorization": {"Bearer " + r.APIKey}, "Idempotency-Key": {e.DispatchID}})
	if err != nil {
		return Receipt{}, err
	}

	var ans resendAnswer
	jsonErr := json.Unmarshal(a.body, &ans)
	badKey := strings.EqualFold(strings.TrimSpace(ans.Message), "API key is invalid")
	switch {
	case a.status == http.StatusOK:
		// Accepted, even without an id we can read: a retry would send twice.
		return Receipt{Provider: r.Name(), MessageID: ans.ID, Response: "200 OK"}, nil
	case a.status == http.StatusUnauthorized, a.status == http.StatusForbidden && ans.Name == "invalid_api_key", badKey:
		return Receipt{}, fmt.Errorf("resend refused the API key (check DISPATCHFLOW_RESEND_API_KEY): %s", a.describe())
	case (a.status == http.StatusBadRequest || a.status == http.StatusForbidden || a.status == http.StatusUnprocessableEntity) &&
		jsonErr == nil && ans.Message != "":
		return Receipt{}, &RefusedError{Reason: truncate(ans.Message, 500) + " (Resend " + truncate(ans.Name, 50) + ")"}
	case a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity:
		return Receipt{}, &RefusedError{Reason: truncate(a.describe(), 500)}
	case a.status == http.StatusConflict:
		return Receipt{}, fmt.Errorf("resend: idempotency key (the dispatch_id) in use: %s", a.describe())
	}
	return Receipt{}, fmt.Errorf("resend answered %s", a.describe())
}
