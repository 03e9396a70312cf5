// Package client is a Go client of dispatchflow's HTTP API, the one the
// dispatchflow command line uses. Each call returns the API's answer decoded, with
// its JSON kept verbatim in Raw for callers that pass it on (--json); a non-2xx
// answer is an *Error carrying the API's {"error"} message. WithAPIKey
// authenticates every request with an API key (see package auth).
//
// Requests go through go-retryablehttp: network errors and 429/502/503/504 are
// retried a few times with a short backoff, except a send without
// external_send_id, which is tried once — retrying it could send the email twice,
// while a send with one is idempotent (the API answers the same dispatch_id).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// DefaultURL is the API's address when none is given (make run's).
const DefaultURL = "http://localhost:8080"

// maxAnswerBytes bounds the answers read; the API's largest is a message's state.
const maxAnswerBytes = 16 << 20

// Client calls one dispatchflow API. Create it with New.
type Client struct {
	base   *url.URL
	http   *retryablehttp.Client
	apiKey string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer <key>" with every request. An
// empty key sends no Authorization header (an API without keys). The key never
// appears in the client's errors. Go's HTTP client drops the header on a
// redirect to another host.
func WithAPIKey(key string) Option {
	return func(c *Client) { c.apiKey = key }
}

// ErrInvalidAPIKey is New's error for a key with characters a header cannot
// carry, or that no key has (spaces, control or non-ASCII characters).
var ErrInvalidAPIKey = errors.New("API key contains spaces, control or non-ASCII characters")

// New returns a client of the API at baseURL ("http://localhost:8080"), with up to
// 3 retries per call (see the package doc) and 30 s per attempt.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("API address %q is not an absolute http(s) URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	h := retryablehttp.NewClient()
	h.Logger = nil
	h.RetryMax = 3
	h.RetryWaitMin = 200 * time.Millisecond
	h.RetryWaitMax = 2 * time.Second
	h.HTTPClient.Timeout = 30 * time.Second
	h.CheckRetry = retryPolicy
	// The last answer is handed back whatever its status, so that its {"error"} is read.
	h.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c := &Client{base: u, http: h}
	for _, opt := range opts {
		opt(c)
	}
	// Checked here, once, rather than failing every request; the error does not
	// quote the key.
	if strings.ContainsFunc(c.apiKey, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return nil, ErrInvalidAPIKey
	}
	return c, nil
}

// Error is a non-2xx answer of the API.
type Error struct {
	StatusCode int
	// Message is the API's {"error"}, or the body's start when it has none.
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode) }

// SendRequest is the body of POST /v1/messages. Fallback is the escalation policy,
// passed as is.
type SendRequest struct {
	To             string          `json:"to,omitempty"`
	From           string          `json:"from,omitempty"`
	Subject        string          `json:"subject,omitempty"`
	Text           string          `json:"text,omitempty"`
	HTML           string          `json:"html,omitempty"`
	ExternalSendID string          `json:"external_send_id,omitempty"`
	CampaignAPIID  string          `json:"campaign_api_id,omitempty"`
	PostbackURL    string          `json:"postback_url,omitempty"`
	Workspace      string          `json:"workspace,omitempty"`
	Fallback       json.RawMessage `json:"fallback,omitempty"`
}

// SendResult is the answer to a send.
type SendResult struct {
	DispatchID string `json:"dispatch_id"`
	Status     string `json:"status"`
	// Replayed: the external_send_id was sent before; this is the first send's
	// dispatch_id and nothing was sent again (header Idempotent-Replayed).
	Replayed bool            `json:"-"`
	Raw      json.RawMessage `json:"-"`
}

// Send is POST /v1/messages. body is a SendRequest, or any value that marshals to
// the request's JSON (a json.RawMessage read from a file).
func (c *Client) Send(ctx context.Context, body any) (*SendResult, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	var key struct {
		ExternalSendID string `json:"external_send_id"`
	}
	_ = json.Unmarshal(b, &key)
	if key.ExternalSendID == "" {
		ctx = context.WithValue(ctx, tryOnce{}, true)
	}
	var res SendResult
	resp, err := c.do(ctx, http.MethodPost, "/v1/messages", nil, b, nil, &res, &res.Raw)
	if err != nil {
		return nil, err
	}
	res.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return &res, nil
}

// Message is a message's state (GET /v1/messages/{dispatch_id}): the fields the
// command line shows; Raw has them all.
type Message struct {
	DispatchID     string    `json:"dispatch_id"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason"`
	ExternalSendID string    `json:"external_send_id"`
	CampaignAPIID  string    `json:"campaign_api_id"`
	Recipient      string    `json:"recipient"`
	ESP            *Receipt  `json:"esp"`
	UpdatedAt      time.Time `json:"updated_at"`
	TrackingUntil  time.Time `json:"tracking_until"`
	Events         []Event   `json:"events"`
	// DuplicateEvents counts events dropped as already seen.
	DuplicateEvents int             `json:"duplicate_events"`
	Postbacks       []Postback      `json:"postbacks"`
	Fallback        Fallback        `json:"fallback"`
	Raw             json.RawMessage `json:"-"`
}

// Receipt is the ESP's acceptance of a message.
type Receipt struct {
	Provider  string `json:"provider"`
	MessageID string `json:"message_id"`
}

// Event is one ESP event in a message's timeline.
type Event struct {
	Provider      string    `json:"provider"`
	Type          string    `json:"type"`
	ID            string    `json:"id"`
	Timestamp     time.Time `json:"timestamp"`
	Reason        string    `json:"reason"`
	ChangedStatus bool      `json:"changed_status"`
	Note          string    `json:"note"`
}

// Postback is one postback and how its delivery went.
type Postback struct {
	Seq           int       `json:"seq"`
	Status        string    `json:"status"`
	Event         string    `json:"event"`
	Endpoint      string    `json:"endpoint"`
	WebhookID     string    `json:"webhook_id"`
	State         string    `json:"state"`
	Attempts      []Attempt `json:"attempts"`
	LastError     string    `json:"last_error"`
	DeliveredAt   time.Time `json:"delivered_at"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// Attempt is one HTTP attempt of a postback.
type Attempt struct {
	At           time.Time `json:"at"`
	StatusCode   int       `json:"status_code"`
	ResponseBody string    `json:"response_body"`
	Error        string    `json:"error"`
}

// Fallback is a message's fallback state.
type Fallback struct {
	State       string          `json:"state"`
	Reason      string          `json:"reason"`
	EscalatedAt time.Time       `json:"escalated_at"`
	Outcome     string          `json:"outcome"`
	Steps       []FallbackStep  `json:"steps"`
	Raw         json.RawMessage `json:"-"`
}

// FallbackStep is one step of the ladder that was tried.
type FallbackStep struct {
	Step    int    `json:"step"`
	Channel string `json:"channel"`
	Target  string `json:"target"`
	State   string `json:"state"`
	Error   string `json:"error"`
}

// Message is GET /v1/messages/{dispatch_id}.
func (c *Client) Message(ctx context.Context, dispatchID string) (*Message, error) {
	var m Message
	if _, err := c.do(ctx, http.MethodGet, "/v1/messages/"+url.PathEscape(dispatchID), nil, nil, nil, &m, &m.Raw); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListParams filter GET /v1/messages; zero fields are left out.
type ListParams struct {
	Status         string
	ExternalSendID string
	CampaignAPIID  string
	Workspace      string
	PageSize       int
	PageToken      string
}

func (p ListParams) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{
		"status":           p.Status,
		"external_send_id": p.ExternalSendID,
		"campaign_api_id":  p.CampaignAPIID,
		"workspace":        p.Workspace,
		"page_token":       p.PageToken,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if p.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(p.PageSize))
	}
	return q
}

// MessagePage is one page of GET /v1/messages. The list comes from Temporal's
// visibility store, which is eventually consistent: a message sent or changed a
// moment ago may not be listed, or be listed with its previous status, yet.
type MessagePage struct {
	Messages []MessageSummary `json:"messages"`
	// NextPageToken asks for the next page; empty on the last one.
	NextPageToken string          `json:"next_page_token"`
	Raw           json.RawMessage `json:"-"`
}

// MessageSummary is one message of a list.
type MessageSummary struct {
	DispatchID     string     `json:"dispatch_id"`
	Status         string     `json:"status"`
	ExternalSendID string     `json:"external_send_id"`
	CampaignAPIID  string     `json:"campaign_api_id"`
	Workspace      string     `json:"workspace"`
	ESP            string     `json:"esp"`
	FallbackState  string     `json:"fallback_state"`
	StartedAt      time.Time  `json:"started_at"`
	ClosedAt       *time.Time `json:"closed_at"`
	// Raw is this message's JSON as the API answered it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the message's JSON in Raw.
func (m *MessageSummary) UnmarshalJSON(b []byte) error {
	type plain MessageSummary
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	m.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// List is GET /v1/messages: one page.
func (c *Client) List(ctx context.Context, p ListParams) (*MessagePage, error) {
	var page MessagePage
	if _, err := c.do(ctx, http.MethodGet, "/v1/messages", p.query(), nil, nil, &page, &page.Raw); err != nil {
		return nil, err
	}
	return &page, nil
}

// EventsResult is the answer to a webhook post.
type EventsResult struct {
	Accepted   int             `json:"accepted"`
	Duplicates int             `json:"duplicates"`
	Unmatched  int             `json:"unmatched"`
	Raw        json.RawMessage `json:"-"`
}

// PostEvents is POST /v1/events/{provider} with body as is and header added
// (a provider's signature). Content-Type defaults to application/json. Retrying
// is safe: events are deduplicated.
func (c *Client) PostEvents(ctx context.Context, provider string, body []byte, header http.Header) (*EventsResult, error) {
	var res EventsResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/events/"+url.PathEscape(provider), nil, body, header, &res, &res.Raw); err != nil {
		return nil, err
	}
	return &res, nil
}

// CancelFallback is POST /v1/messages/{dispatch_id}/fallback/cancel, with the
// reason when not empty. It answers the fallback state, now cancelled.
func (c *Client) CancelFallback(ctx context.Context, dispatchID, reason string) (*Fallback, error) {
	var body []byte
	if reason != "" {
		body, _ = json.Marshal(map[string]string{"reason": reason})
	}
	var fb Fallback
	path := "/v1/messages/" + url.PathEscape(dispatchID) + "/fallback/cancel"
	if _, err := c.do(ctx, http.MethodPost, path, nil, body, nil, &fb, &fb.Raw); err != nil {
		return nil, err
	}
	return &fb, nil
}

// do sends one request and decodes a 2xx answer's JSON into v, keeping it in raw.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, header http.Header, v any, raw *json.RawMessage) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var rb any // nil, not an empty []byte: no body at all
	if body != nil {
		rb = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), rb)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header.Del(k)
		for _, hv := range vs {
			req.Header.Add(k, hv)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, answerError(resp.StatusCode, b, c.apiKey)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, path, err)
	}
	*raw = bytes.TrimSpace(b)
	return resp, nil
}

// answerError is the *Error of a non-2xx answer. An API that echoed the key
// back would not put it in the error: key is redacted from the message.
func answerError(code int, body []byte, key string) error {
	var e struct {
		Error string `json:"error"`
	}
	if key != "" {
		body = bytes.ReplaceAll(body, []byte(key), []byte("[redacted]"))
	}
	msg := http.StatusText(code)
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	} else if s := strings.TrimSpace(string(body)); s != "" {
		msg = s[:min(len(s), 200)]
	}
	return &Error{StatusCode: code, Message: msg}
}

// tryOnce marks a request context whose request must not be retried.
type tryOnce struct{}

// retryPolicy retries network errors and the answers that say "later" (429, 502,
// 503, 504), unless the request is marked tryOnce.
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if ctx.Value(tryOnce{}) != nil {
		return false, nil
	}
	if err != nil {
		// Refuses what cannot succeed (bad scheme, TLS certificate, too many redirects).
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}
