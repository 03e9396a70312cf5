package channel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
)

// defaultTwilioBaseURL is where SMS sends when its BaseURL is empty.
const defaultTwilioBaseURL = "https://api.twilio.com"

// SMS sends fallbacks as text messages through a Twilio-compatible Messages API:
// POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json, form-encoded To,
// From, Body and StatusCallback, HTTP basic auth AccountSID:AuthToken. Twilio
// answers 201 with the Message resource (sid, status "queued" or "accepted", …):
// the text is accepted, not delivered, so the Result is not Confirmed; its delivery
// is reported later to StatusCallbackURL (see VerifyTwilioSignature).
//
// A 4xx answer other than 408/429 is a *PermanentError "<code> <message>" taken from
// Twilio's error body ({"code": 21211, "message": "The 'To' number … is not a valid
// phone number.", …}); 408, 429, 5xx and network errors are transient.
//
// Idempotency: Twilio's Messages API has no idempotency key. The create-message
// reference documents no such parameter or header, and the I-Twilio-Idempotency-Token
// header is one Twilio sets on the webhooks it sends (so that a receiver can spot
// Twilio's own retries), not one its REST API honours. So Message.IdempotencyKey is
// not sent, and a send is at-least-once: if an attempt times out or loses its
// connection after Twilio created the message (or a gateway in front of it answers
// 5xx although it did), the activity is retried and Twilio creates a second message:
// the recipient can get the text twice. A 4xx answer means nothing was created. To
// keep the window small, give the activity a StartToCloseTimeout above HTTP's
// timeout, so that an attempt ends on its own timeout rather than being abandoned
// mid-request, and a bounded retry policy. A 2xx answer without a sid is not retried
// (Twilio may have created the message): it is a *PermanentError, and the ladder
// moves on.
type SMS struct {
	// BaseURL is the API's origin (DISPATCHFLOW_TWILIO_BASE_URL); empty: https://api.twilio.com.
	BaseURL    string
	AccountSID string
	AuthToken  string
	// From is the sender: a Twilio phone number (E.164), short code or alphanumeric sender ID.
	From string
	// HTTP sends the request. It must not retry (RetryMax 0) nor follow redirects:
	// see NewHTTPClient. Nil: NewHTTPClient with a 10s timeout, refusing internal addresses.
	HTTP *retryablehttp.Client
}

var _ Sender = (*SMS)(nil)

// twilioMessage is the part of Twilio's Message resource SMS reads.
type twilioMessage struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// twilioError is Twilio's error body: {"code": 21211, "message": "…", "more_info": "…", "status": 400}.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send creates one Twilio message to m.To with m.Text.
func (s *SMS) Send(ctx context.Context, m Message) (Result, error) {
	if s.AccountSID == "" || s.AuthToken == "" {
		return Result{}, &PermanentError{Reason: "sms channel is not configured: no Twilio account SID or auth token"}
	}
	if m.To == "" {
		return Result{}, &PermanentError{Reason: "sms fallback has no To number"}
	}
	base := s.BaseURL
	if base == "" {
		base = defaultTwilioBaseURL
	}
	endpoint := strings.TrimRight(base, "/") + "/2010-04-01/Accounts/" + url.PathEscape(s.AccountSID) + "/Messages.json"
	form := url.Values{}
	form.Set("To", m.To)
	form.Set("From", s.From)
	form.Set("Body", m.Text)
	if m.StatusCallbackURL != "" {
		form.Set("StatusCallback", m.StatusCallbackURL)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, &PermanentError{Reason: "sms: twilio base url: " + err.Error()}
	}
	req.SetBasicAuth(s.AccountSID, s.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	host := Host(endpoint)
	resp, err := clientOr(s.HTTP).Do(req)
	if err != nil {
		return Result{}, RequestError("sms via", endpoint, err)
	}
	body := readBody(resp)

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		var msg twilioMessage
		if err := json.Unmarshal(body, &msg); err != nil || msg.SID == "" {
			// Twilio may well have created the message: retrying could text twice.
			// Give the step up instead; the ladder moves on.
			return Result{}, &PermanentError{Reason: fmt.Sprintf("sms via %s: answered %s without a message sid: %s", host, resp.Status, snippet(body))}
		}
		return Result{Channel: "sms", ProviderID: msg.SID, Status: msg.Status}, nil
	}

	var te twilioError
	_ = json.Unmarshal(body, &te)
	if permanentStatus(resp.StatusCode) {
		if te.Code != 0 || te.Message != "" {
			return Result{}, &PermanentError{Reason: strings.TrimSpace(codeText(te.Code) + " " + te.Message)}
		}
		return Result{}, &PermanentError{Reason: fmt.Sprintf("twilio answered %s: %s", resp.Status, snippet(body))}
	}
	detail := ""
	if te.Code != 0 || te.Message != "" {
		detail = ": " + strings.TrimSpace(codeText(te.Code)+" "+te.Message)
	}
	return Result{}, fmt.Errorf("sms via %s: twilio answered %s%s", host, resp.Status, detail)
}

func codeText(code int) string {
	if code == 0 {
		return ""
	}
	return strconv.Itoa(code)
}
