// Package channel sends fallback messages: the steps of a message's escalation ladder.
//
// One Sender per channel makes one attempt and says whether the step can never
// succeed (a *PermanentError: the ladder moves on) or failed for now (any other
// error: the activity is retried durably by Temporal). Retries belong to Temporal,
// not to this package: every HTTP client here is built with RetryMax 0, so that
// each activity attempt is one request and shows in the Temporal UI.
package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/dispatchflow/dispatchflow/netguard"
)

// Message is one fallback send: step Step of dispatch DispatchID's ladder.
type Message struct {
	DispatchID string
	Step       int // 0-based index in the ladder
	// IdempotencyKey is dispatch_id + "-fallback-" + step: the same on every activity
	// retry of the step, so that a receiver able to dedupe sees one send.
	IdempotencyKey string
	Channel        string // "sms" | "webhook" | "sandbox"
	To             string // E.164 phone number for sms and sandbox
	URL            string // webhook target
	Text           string // sms / sandbox text
	// Reason says why the message escalated: not_sent_in_time | not_delivered_in_time | bounced | aborted.
	Reason string
	// About the original email, for the webhook body (the customer's own internal system):
	ExternalSendID, CampaignAPIID, EmailStatus, Recipient, Subject string
	// StatusCallbackURL is where the SMS provider reports the delivery status (Twilio's StatusCallback); empty: none.
	StatusCallbackURL string
}

// Result is the channel's answer.
type Result struct {
	Channel    string `json:"channel"`
	ProviderID string `json:"provider_id,omitempty"` // e.g. Twilio's message SID
	Status     string `json:"status,omitempty"`      // the provider's status as answered, e.g. "queued"
	// Confirmed: the channel confirmed delivery synchronously (webhook 2xx, sandbox). An SMS is only
	// confirmed later, by its status callback.
	Confirmed bool `json:"confirmed"`
}

// Sender sends one fallback message. A *PermanentError means this step can never succeed
// (invalid number, 4xx from the webhook other than 408/429); any other error is transient.
type Sender interface {
	Send(ctx context.Context, m Message) (Result, error)
}

// PermanentError says a step can never succeed: retrying it would only repeat the
// answer, so the ladder moves on to the next step.
type PermanentError struct {
	// Reason is the channel's explanation, for the timeline ("21211 The 'To' number … is not a valid phone number.").
	Reason string
}

func (e *PermanentError) Error() string { return "fallback refused for good: " + e.Reason }

// IsPermanent reports whether err is a permanent failure, and its reason.
func IsPermanent(err error) (reason string, ok bool) {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Reason, true
	}
	return "", false
}

// Names lists the channel names a policy may use: "sms", "webhook", "sandbox".
var Names = []string{"sandbox", "sms", "webhook"}

// Channels dispatches a message to the Sender of its channel ("sms" → *SMS, …).
// Only the channels configured on this deployment are present.
type Channels map[string]Sender

var _ Sender = Channels(nil)

// Send sends m through the Sender of m.Channel. A channel that is not configured
// here is a *PermanentError naming it: retrying cannot make it appear.
func (c Channels) Send(ctx context.Context, m Message) (Result, error) {
	s, ok := c[m.Channel]
	if !ok || s == nil {
		return Result{}, &PermanentError{Reason: fmt.Sprintf("fallback channel %q is not configured", m.Channel)}
	}
	return s.Send(ctx, m)
}

// defaultTimeout bounds one HTTP attempt of a Sender whose HTTP client is nil.
const defaultTimeout = 10 * time.Second

// defaultHTTP refuses every internal address: a Sender built without a client
// gets no exemption from the SSRF guard.
var defaultHTTP = NewHTTPClient(defaultTimeout, netguard.New(nil))

// NewHTTPClient returns the HTTP client fallbacks and postbacks are sent with: one
// attempt per activity attempt (RetryMax 0: Temporal owns retries), redirects not
// followed (a redirect is a failure: the body must not be replayed to wherever it
// points), timeout per attempt, every response handed back whatever its status,
// for the Sender to classify, and connections refused by guard at dial time (a nil
// guard refuses nothing; tests only). With a proxy from the environment
// (HTTPS_PROXY), the guard judges the proxy's address, not the target's.
func NewHTTPClient(timeout time.Duration, guard *netguard.Guard) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 0
	c.Logger = nil
	c.HTTPClient.Timeout = timeout
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if t, ok := c.HTTPClient.Transport.(*http.Transport); ok {
		t.DialContext = guard.Dialer().DialContext
	}
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

func clientOr(c *retryablehttp.Client) *retryablehttp.Client {
	if c != nil {
		return c
	}
	return defaultHTTP
}

// permanentStatus reports whether an HTTP status means the request can never
// succeed: a 4xx other than 408 Request Timeout and 429 Too Many Requests.
func permanentStatus(code int) bool {
	return code >= 400 && code <= 499 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// readBody reads at most 64 KiB of a response body and closes it.
func readBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return b
}

// snippet returns the start of a response body on one line, for an error message.
func snippet(b []byte) string {
	const max = 200
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// Host is the host of rawURL, for errors and logs (a URL's path and query may
// carry secrets; its host does not), or rawURL itself if it has none.
func Host(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		return u.Host
	}
	return rawURL
}

// RequestError describes a request to rawURL that got no answer — "postback to
// host: cause" for what "postback to" — without url.Error's `Post "…":` prefix.
// It wraps err.
func RequestError(what, rawURL string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s %s: %w", what, Host(rawURL), err)
}
