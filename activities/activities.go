// Package activities holds every side effect of a message's life: handing the email
// to the ESP and POSTing postbacks. Workflows call them through a nil *Activities
// (the worker registers the real one), so the workflow package never does I/O.
//
// Retries belong to Temporal, not to this package: an activity makes one attempt and
// says whether a failure is permanent (a non-retryable ApplicationError) or not; the
// workflow's retry policy schedules the next attempt, which shows in the Temporal UI.
package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
)

// Error types of the non-retryable and retryable ApplicationErrors returned here;
// workflows branch on them.
const (
	// ErrRefused: the ESP refused the message for good; the message is aborted.
	ErrRefused = "ESPRefused"
	// ErrPostbackStatus: the endpoint answered a non-2xx status; retried.
	ErrPostbackStatus = "PostbackHTTPStatus"
	// ErrFallbackRefused: a fallback step can never succeed (invalid number, …).
	ErrFallbackRefused = "FallbackRefused"
)

// Activities carries the dependencies of every activity. Register one with the worker.
type Activities struct {
	// ESP hands emails over.
	ESP esp.Sender
	// HTTP sends postbacks. It must not retry (RetryMax 0) nor follow redirects:
	// Temporal owns retries, and a redirect is a failure. See NewPostbackClient.
	HTTP *retryablehttp.Client
	// Channels send fallback steps.
	Channels channel.Channels
	// CallbackURL is where SMS providers report a fallback's delivery status:
	// {DISPATCHFLOW_PUBLIC_URL}/v1/callbacks/twilio. Empty: no status callbacks.
	CallbackURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// NewPostbackClient returns the HTTP client postbacks are sent with: the same as
// fallback webhooks' (one attempt per activity attempt, redirects not followed,
// timeout per attempt, every response handed back for the activity to classify).
func NewPostbackClient(timeout time.Duration) *retryablehttp.Client {
	return channel.NewHTTPClient(timeout)
}

// SendInput is the input of Send.
type SendInput struct {
	Email esp.Email
}

// SendResult is the output of Send.
type SendResult struct {
	Receipt esp.Receipt
	// ExecutedAt is when this attempt started; SentAt when the ESP accepted.
	ExecutedAt time.Time
	SentAt     time.Time
}

// Send hands the email to the ESP. A permanent refusal is a non-retryable
// ApplicationError of type ErrRefused whose message is the ESP's reason.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendResult, error) {
	executed := a.now()
	rcpt, err := a.ESP.Send(ctx, in.Email)
	if reason, ok := esp.IsRefused(err); ok {
		return SendResult{}, temporal.NewNonRetryableApplicationError(reason, ErrRefused, nil)
	}
	if err != nil {
		return SendResult{}, fmt.Errorf("%s: %w", a.ESP.Name(), err)
	}
	return SendResult{Receipt: rcpt, ExecutedAt: executed, SentAt: a.now()}, nil
}

// PostbackInput is the input of Postback.
type PostbackInput struct {
	URL  string
	Body message.Postback
}

// PostbackResult is the output of Postback.
type PostbackResult struct {
	StatusCode int
	// Attempt is the activity attempt that succeeded (1 for the first).
	Attempt     int32
	DeliveredAt time.Time
}

// Postback POSTs one postback body to its endpoint. Only a 2xx answer is success;
// any other answer or a network error is a retryable error naming it.
func (a *Activities) Postback(ctx context.Context, in PostbackInput) (PostbackResult, error) {
	body, err := json.Marshal(in.Body)
	if err != nil {
		return PostbackResult{}, temporal.NewNonRetryableApplicationError("encoding postback: "+err.Error(), "PostbackEncoding", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, in.URL, body)
	if err != nil {
		return PostbackResult{}, temporal.NewNonRetryableApplicationError("postback url: "+err.Error(), "PostbackURL", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dispatchflow-postback/1")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return PostbackResult{}, channel.RequestError("postback to", in.URL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return PostbackResult{}, temporal.NewApplicationError(
			fmt.Sprintf("postback to %s: endpoint answered %s", channel.Host(in.URL), resp.Status), ErrPostbackStatus, resp.StatusCode)
	}
	return PostbackResult{StatusCode: resp.StatusCode, Attempt: activity.GetInfo(ctx).Attempt, DeliveredAt: a.now()}, nil
}

// FallbackInput is the input of Fallback.
type FallbackInput struct {
	Message channel.Message
}

// Fallback sends one step of a message's fallback ladder. The message carries an
// idempotency key (dispatch_id + step) that channels pass on where they can.
// A permanent failure is a non-retryable ApplicationError of type ErrFallbackRefused.
func (a *Activities) Fallback(ctx context.Context, in FallbackInput) (channel.Result, error) {
	m := in.Message
	if a.CallbackURL != "" && m.Channel == "sms" {
		q := url.Values{"dispatch_id": {m.DispatchID}, "step": {strconv.Itoa(m.Step + 1)}}
		m.StatusCallbackURL = a.CallbackURL + "?" + q.Encode()
	}
	res, err := a.Channels.Send(ctx, m)
	if reason, ok := channel.IsPermanent(err); ok {
		return channel.Result{}, temporal.NewNonRetryableApplicationError(reason, ErrFallbackRefused, nil)
	}
	if err != nil {
		return channel.Result{}, fmt.Errorf("fallback %s: %w", m.Channel, err)
	}
	return res, nil
}
