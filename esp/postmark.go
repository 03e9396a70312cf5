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

// PostmarkBaseURL is the origin of Postmark's API.
const PostmarkBaseURL = "https://api.postmarkapp.com"

// Postmark hands messages to Postmark's Email API (POST {BaseURL}/email,
// X-Postmark-Server-Token: {ServerToken}). Name() is "postmark".
//
// The message carries Metadata {"dispatch_id": …}, which Postmark returns in the
// Metadata of every webhook (Delivery, Bounce, Open, Click, …). Receipt.MessageID
// is the answer's MessageID, the MessageID of those webhooks.
//
// Answers: 200 with ErrorCode 0 is sent. A 422 carries Postmark's ErrorCode: a
// code about this message (300 invalid email request, 406 inactive recipient,
// 400/401 sender signature not found or not confirmed for its From, 402/403
// invalid JSON, …, and any code not listed below) is a refusal whose reason is
// Postmark's message; a code about the account or the server (10 bad token,
// 100 maintenance, 405 not allowed to send, 412 account pending, 413 account may
// not send, 429 rate limit, 1226 message stream not found) is transient, so that
// fixing it rescues the queued mail. 401 (bad token), 429, 5xx, any other answer
// and network errors are transient.
type Postmark struct {
	// ServerToken is the server's API token (DISPATCHFLOW_POSTMARK_SERVER_TOKEN). Required.
	ServerToken string
	// BaseURL is the API origin; PostmarkBaseURL when empty.
	BaseURL string
	// MessageStream is the sending stream; Postmark's default ("outbound") when empty.
	MessageStream string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Postmark)(nil)

// Name returns "postmark".
func (p *Postmark) Name() string { return "postmark" }

// postmarkEmail is the body of POST /email.
type postmarkEmail struct {
	From          string            `json:"From"`
	To            string            `json:"To"`
	Subject       string            `json:"Subject"`
	TextBody      string            `json:"TextBody,omitempty"`
	HtmlBody      string            `json:"HtmlBody,omitempty"`
	MessageStream string            `json:"MessageStream,omitempty"`
	Metadata      map[string]string `json:"Metadata"`
}

// postmarkAnswer is Postmark's answer, success or error.
type postmarkAnswer struct {
	ErrorCode int    `json:"ErrorCode"`
	Message   string `json:"Message"`
	MessageID string `json:"MessageID"`
}

// postmarkAccountErrors are the ErrorCodes (in a 422) that say nothing about the
// message: the account, the token or the server is at fault, and the same message
// can succeed once that is fixed. From Postmark's API error code list
// (postmarkapp.com/developer/api/overview#error-codes).
var postmarkAccountErrors = map[int]string{
	10:   "bad or missing server token",
	100:  "maintenance",
	405:  "not allowed to send (account out of credits?)",
	412:  "account is pending",
	413:  "account may not send",
	429:  "rate limit exceeded",
	1226: "message stream not found",
}

// Send hands e to Postmark; see Postmark for what its errors mean.
func (p *Postmark) Send(ctx context.Context, e Email) (Receipt, error) {
	if p.ServerToken == "" {
		return Receipt{}, errors.New("postmark: no server token configured (DISPATCHFLOW_POSTMARK_SERVER_TOKEN)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	body, err := json.Marshal(postmarkEmail{
		From: from.String(), To: to.String(), Subject: e.Subject, TextBody: e.Text, HtmlBody: e.HTML,
		MessageStream: p.MessageStream, Metadata: map[string]string{"dispatch_id": e.DispatchID},
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("postmark: encoding the request: %w", err)
	}
	base := p.BaseURL
	if base == "" {
		base = PostmarkBaseURL
	}
	a, err := post(ctx, p.HTTP, "postmark", strings.TrimRight(base, "/")+"/email", "application/json", body,
		http.Header{"X-Postmark-Server-Token": {p.ServerToken}})
	if err != nil {
		return Receipt{}, err
	}

	var ans postmarkAnswer
	jsonErr := json.Unmarshal(a.body, &ans)
	switch {
	case a.status == http.StatusOK && jsonErr == nil && ans.ErrorCode == 0:
		return Receipt{Provider: p.Name(), MessageID: ans.MessageID, Response: ans.Message}, nil
	case a.status == http.StatusUnauthorized:
		return Receipt{}, fmt.Errorf("postmark refused the server token (check DISPATCHFLOW_POSTMARK_SERVER_TOKEN): %s", a.describe())
	case a.status == http.StatusUnprocessableEntity && jsonErr == nil:
		if what, ok := postmarkAccountErrors[ans.ErrorCode]; ok {
			hint := ""
			if ans.ErrorCode == 10 {
				hint = " (check DISPATCHFLOW_POSTMARK_SERVER_TOKEN)"
			}
			if ans.ErrorCode == 1226 {
				hint = " (check DISPATCHFLOW_POSTMARK_MESSAGE_STREAM)"
			}
			return Receipt{}, fmt.Errorf("postmark: ErrorCode %d, %s%s: %s", ans.ErrorCode, what, hint, truncate(ans.Message, 300))
		}
		return Receipt{}, &RefusedError{Reason: fmt.Sprintf("%s (Postmark ErrorCode %d)", truncate(ans.Message, 500), ans.ErrorCode)}
	}
	return Receipt{}, fmt.Errorf("postmark answered %s", a.describe())
}
