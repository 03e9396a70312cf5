package esp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
)

// Mailgun's API origins: MailgunBaseURL for domains in the US region,
// MailgunEUBaseURL for domains in the EU region.
const (
	MailgunBaseURL   = "https://api.mailgun.net"
	MailgunEUBaseURL = "https://api.eu.mailgun.net"
)

// Mailgun hands messages to Mailgun's Messages API
// (POST {BaseURL}/v3/{Domain}/messages, form-encoded, basic auth "api":{APIKey}).
// Name() is "mailgun".
//
// The message carries the user variable v:dispatch_id, which comes back in every
// webhook event as event-data.user-variables.dispatch_id. Mailgun also adds it to
// the delivered message as the X-Mailgun-Variables header, visible to the
// recipient: it is an opaque id, nothing personal. Receipt.MessageID is the
// answer's id without its angle brackets, as events carry it in
// event-data.message.headers.message-id.
//
// Answers: 200 is sent. 400 is a refusal whose reason is Mailgun's message
// (an invalid address, a missing body, …). 401, 403 and 404 are our
// configuration's fault (key, domain, or a domain of the other region): transient,
// so that fixing it rescues the queued mail. 429, 5xx, any other answer and
// network errors are transient.
type Mailgun struct {
	// APIKey is the Mailgun API key (DISPATCHFLOW_MAILGUN_API_KEY). Required.
	APIKey string
	// Domain is the sending domain (DISPATCHFLOW_MAILGUN_DOMAIN). Required.
	Domain string
	// BaseURL is the API origin; MailgunBaseURL when empty.
	BaseURL string
	// Tag, when set, is sent as o:tag (Mailgun's analytics tag). Optional.
	Tag string
	// HTTP calls the API; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Mailgun)(nil)

// Name returns "mailgun".
func (m *Mailgun) Name() string { return "mailgun" }

// mailgunAnswer is the body of Mailgun's answers: {"id", "message"} on 200,
// {"message"} on errors.
type mailgunAnswer struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Send hands e to Mailgun; see Mailgun for what its errors mean.
func (m *Mailgun) Send(ctx context.Context, e Email) (Receipt, error) {
	if m.APIKey == "" || m.Domain == "" {
		return Receipt{}, errors.New("mailgun: no API key or domain configured (DISPATCHFLOW_MAILGUN_API_KEY, DISPATCHFLOW_MAILGUN_DOMAIN)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	form := url.Values{
		"from":          {from.String()},
		"to":            {to.String()},
		"subject":       {e.Subject},
		"v:dispatch_id": {e.DispatchID},
	}
	if e.Text != "" {
		form.Set("text", e.Text)
	}
	if e.HTML != "" {
		form.Set("html", e.HTML)
	}
	if m.Tag != "" {
		form.Set("o:tag", m.Tag)
	}
	base := m.BaseURL
	if base == "" {
		base = MailgunBaseURL
	}
	endpoint := strings.TrimRight(base, "/") + "/v3/" + url.PathEscape(m.Domain) + "/messages"
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("api:"+m.APIKey))
	a, err := post(ctx, m.HTTP, "mailgun", endpoint, "application/x-www-form-urlencoded", []byte(form.Encode()),
		http.Header{"Authorization": {auth}})
	if err != nil {
		return Receipt{}, err
	}

	var ans mailgunAnswer
	jsonErr := json.Unmarshal(a.body, &ans)
	switch {
	case a.status == http.StatusOK:
		if jsonErr != nil || ans.ID == "" {
			// Accepted without an id we can read: still sent, or a retry would send twice.
			return Receipt{Provider: m.Name(), Response: truncate(strings.TrimSpace(string(a.body)), 300)}, nil
		}
		return Receipt{Provider: m.Name(), MessageID: strings.Trim(ans.ID, "<>"), Response: ans.Message}, nil
	case a.status == http.StatusBadRequest:
		reason := ans.Message
		if reason == "" {
			reason = a.describe()
		}
		return Receipt{}, &RefusedError{Reason: truncate(reason, 500)}
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden || a.status == http.StatusNotFound:
		return Receipt{}, fmt.Errorf("mailgun refused the request for domain %s (check DISPATCHFLOW_MAILGUN_API_KEY, DISPATCHFLOW_MAILGUN_DOMAIN and DISPATCHFLOW_MAILGUN_BASE_URL's region): %s", m.Domain, a.describe())
	}
	return Receipt{}, fmt.Errorf("mailgun answered %s", a.describe())
}
