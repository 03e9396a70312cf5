package esp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
)

// APITimeout bounds one call to a provider's API when a sender has no HTTP client
// of its own.
const APITimeout = 30 * time.Second

// NewHTTPClient returns the client the API senders (SendGrid, Mailgun, Postmark,
// SES, Brevo, Mailjet, SparkPost, Resend) call their provider with: one attempt per Send (RetryMax 0: Temporal retries
// the Send activity, visibly), timeout per attempt, redirects not followed, every
// response handed back for the sender to classify.
func NewHTTPClient(timeout time.Duration) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 0
	c.Logger = nil
	c.HTTPClient.Timeout = timeout
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

// apiAnswer is a provider's answer: its status, headers and (at most 64 KiB of) body.
type apiAnswer struct {
	status int
	header http.Header
	body   []byte
}

// describe renders the answer for an error or a reason: "429 Too Many Requests: {body…}".
func (a apiAnswer) describe() string {
	s := fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))
	if b := strings.TrimSpace(string(a.body)); b != "" {
		s += ": " + truncate(b, 300)
	}
	return s
}

// post sends one request to a provider's API and reads its answer. The error of
// a request that got no answer names the provider and the host, never the
// credentials (they travel in headers, never in the URL).
func post(ctx context.Context, c *retryablehttp.Client, provider, url, contentType string, body []byte, header http.Header) (apiAnswer, error) {
	if c == nil {
		c = NewHTTPClient(APITimeout)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s: %w", provider, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dispatchflow/1")
	resp, err := c.Do(req)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s: no answer from %s: %w", provider, req.URL.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s: reading the answer (%s): %w", provider, resp.Status, err)
	}
	return apiAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// unwrapURLError drops *url.Error's `Post "https://…":` prefix, which repeats
// the endpoint the message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseAddresses parses an Email's From and To. An address that cannot be
// parsed is a refusal: sending the message again would not help.
func parseAddresses(e Email) (from, to *mail.Address, err error) {
	from, err = mail.ParseAddress(e.From)
	if err != nil {
		return nil, nil, &RefusedError{Reason: fmt.Sprintf("invalid from address %q: %v", e.From, err)}
	}
	to, err = mail.ParseAddress(e.To)
	if err != nil {
		return nil, nil, &RefusedError{Reason: fmt.Sprintf("invalid to address %q: %v", e.To, err)}
	}
	return from, to, nil
}

// truncate cuts s to at most n bytes (on a rune boundary), marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
