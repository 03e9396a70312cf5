package postback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/dispatchflow/dispatchflow/netguard"
)

// MaxBody is the largest body sent: a bigger one is refused (ClassInvalid).
const MaxBody = 256 << 10

// MaxResponseBody is how much of an endpoint's answer an Attempt keeps.
const MaxResponseBody = 1 << 10

// UserAgent of every postback request.
const UserAgent = "dispatchflow-postback/1"

// Attempt is one delivery attempt, as the attempts log shows it.
type Attempt struct {
	// At is when it started (the webhook-timestamp sent).
	At time.Time `json:"at"`
	// StatusCode is the endpoint's answer; 0 without one.
	StatusCode int `json:"status_code,omitempty"`
	// Duration from request to response headers and body.
	Duration time.Duration `json:"duration"`
	// ResponseBody is the start of the answer: at most MaxResponseBody bytes,
	// cut on a UTF-8 boundary.
	ResponseBody string `json:"response_body,omitempty"`
	// Error says what went wrong: the status, a network error, a timeout. It names
	// the endpoint's host, never its path, query or credentials.
	Error string `json:"error,omitempty"`
	Class Class  `json:"class"`
	// RetryAfter is the endpoint's Retry-After on 429 and 503; zero otherwise.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// NextAttemptAt is when the next attempt is due; zero if none is (success,
	// given up). Set by the caller that schedules it.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// OK reports whether the attempt succeeded.
func (a Attempt) OK() bool { return a.Class == ClassSuccess }

// Deliver makes one attempt to POST n to ep, signed, as webhookID at now. client
// must neither retry nor follow redirects (see activities.NewPostbackClient); the
// attempt is bounded by ep.Timeout (DefaultTimeout if zero). It never returns an
// error: the Attempt says what happened.
func Deliver(ctx context.Context, client *retryablehttp.Client, ep Endpoint, n Notification, webhookID string, now time.Time) Attempt {
	a := Attempt{At: now, Class: ClassInvalid}
	body, err := Render(ep.Format, n)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	if len(body) > MaxBody {
		a.Error = fmt.Sprintf("body of %d bytes is over the %d KB limit", len(body), MaxBody>>10)
		return a
	}
	timeout := time.Duration(ep.Timeout)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if deadline, ok := ctx.Deadline(); ok {
		// The caller's deadline (a local activity's timeout) may come first; the
		// error then names it.
		timeout = min(timeout, time.Until(deadline).Round(10*time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := newRequest(ctx, ep, body, webhookID, now)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		a.Duration = time.Since(start)
		a.Class, a.Error = ClassFailure, requestError(ep.URL, err, timeout)
		if netguard.IsRefused(err) {
			a.Class = ClassInvalid
		}
		return a
	}
	a.ResponseBody = readStart(resp.Body)
	a.Duration = time.Since(start)
	a.StatusCode, a.Class = resp.StatusCode, Classify(resp.StatusCode)
	if a.Class != ClassSuccess {
		a.Error = fmt.Sprintf("postback to %s: endpoint answered %s", host(ep.URL), resp.Status)
	}
	if honoursRetryAfter(resp.StatusCode) {
		a.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return a
}

// newRequest builds the signed, authenticated POST of body.
func newRequest(ctx context.Context, ep Endpoint, body []byte, webhookID string, now time.Time) (*retryablehttp.Request, error) {
	if err := checkURL(ep.URL); err != nil {
		return nil, fmt.Errorf("postback url: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, ep.URL, body)
	if err != nil {
		return nil, fmt.Errorf("postback url: %s", host(ep.URL))
	}
	// The attempt's trace context (W3C traceparent) when it is traced: a header
	// the signature does not cover, the body unchanged; an endpoint's own
	// headers win.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	for name, v := range ep.Headers {
		req.Header.Set(name, v.Reveal())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, webhookID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	if len(ep.Secrets) > 0 {
		sig, err := Sign(ep.Secrets, webhookID, now, body)
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		req.Header.Set(HeaderSignature, sig)
	} else if strings.Contains(webhookID, ".") || webhookID == "" {
		return nil, fmt.Errorf("webhook id %q must be non-empty and without a full stop", webhookID)
	}
	if err := ep.Auth.authorize(req.Request, webhookID, now); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return req, nil
}

// readStart returns the first MaxResponseBody bytes of body, cut on a rune
// boundary, then drains a little more (so the connection can be reused) and
// closes it.
func readStart(body io.ReadCloser) string {
	b, _ := io.ReadAll(io.LimitReader(body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// requestError describes a request that got no answer: "postback to host: cause",
// without url.Error's `Post "<full URL>":` prefix (a URL may carry credentials).
func requestError(rawURL string, err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("postback to %s: no answer within %s", host(rawURL), timeout)
	}
	return fmt.Sprintf("postback to %s: %v", host(rawURL), err)
}
