// Package activities holds every side effect of a message's life: handing the email
// to the ESP, POSTing postbacks and sending fallback steps. Workflows call them through a nil *Activities
// (the worker registers the real one), so the workflow package never does I/O.
//
// Retries belong to Temporal, not to this package: an activity makes one attempt and
// says whether a failure is permanent (a non-retryable ApplicationError) or not; the
// workflow's retry policy schedules the next attempt, which shows in the Temporal UI.
// Postback names that attempt's delay itself (NextRetryDelay), from the endpoint's
// schedule.
package activities

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/netguard"
	"github.com/dispatchflow/dispatchflow/postback"
)

// Error types of the non-retryable and retryable ApplicationErrors returned here;
// workflows branch on them.
const (
	// ErrRefused: the ESP refused the message for good; the message is aborted.
	ErrRefused = "ESPRefused"
	// ErrPostbackStatus: a postback attempt failed (non-2xx answer, network error,
	// timeout); retried after the endpoint's schedule (NextRetryDelay).
	ErrPostbackStatus = "PostbackHTTPStatus"
	// ErrPostbackGivenUp: the last attempt of the endpoint's schedule failed.
	ErrPostbackGivenUp = "PostbackGivenUp"
	// ErrPostbackInvalid: the postback can never be sent as configured (format
	// cannot express the event, body over 256 KB, address refused by the SSRF guard).
	ErrPostbackInvalid = "PostbackInvalid"
	// ErrEndpointUnknown: the input names an endpoint that is not configured.
	ErrEndpointUnknown = "EndpointUnknown"
	// ErrEndpointDisabled: the endpoint is disabled; nothing was sent. The
	// postback is held, to be replayed once the endpoint is enabled.
	ErrEndpointDisabled = "EndpointDisabled"
	// ErrEndpointGone: the endpoint answered 410 Gone and is now disabled.
	ErrEndpointGone = "EndpointGone"
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
	// Endpoints are the configured postback endpoints (DISPATCHFLOW_ENDPOINTS_FILE);
	// nil: none, every postback goes to its input's URL with default settings.
	Endpoints *postback.Set
	// Health says which endpoints are disabled and records attempts; nil: none is
	// ever disabled (a 410 then only fails the postback for good).
	Health postback.Health
	// PostbackTimeout bounds an attempt to an endpoint without its own timeout;
	// zero: postback.DefaultTimeout (15s).
	PostbackTimeout time.Duration
	// Rand draws the schedule's jitter; nil: the global source.
	Rand *rand.Rand
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
// timeout per attempt, every response handed back for the activity to classify,
// internal addresses refused by guard at connection time).
func NewPostbackClient(timeout time.Duration, guard *netguard.Guard) *retryablehttp.Client {
	return channel.NewHTTPClient(timeout, guard)
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
	// EndpointID names a configured endpoint (Activities.Endpoints). Empty with URL
	// set: a message's own ad-hoc postback_url, sent without credentials and signed
	// with its workspace's own secret (postback.Set.AdHoc).
	EndpointID string
	// URL is a message's own postback_url: with EndpointID, a URL that endpoint
	// covers (postback.Endpoint.Covers), sent with its settings; without, ad hoc.
	URL string
	// Workspace of the message, for URL's settings. Defaults to "default".
	Workspace string
	// WebhookID is the postback's webhook-id: unique per postback, the same on all
	// its retries and replays, without a full stop. Empty: derived from the
	// dispatch_id and event name (callers that predate it).
	WebhookID string
	// Notification is what to post.
	Notification postback.Notification
	// Attempts were made before this activity (the workflow's local-activity
	// attempt, …), oldest first: they count against the endpoint's schedule and
	// head the attempts log.
	Attempts []postback.Attempt
	// Body is the Braze body of callers that predate Notification, used when
	// Notification.Postback is empty. Deprecated: set Notification.
	Body message.Postback
}

// PostbackResult is the output of Postback.
type PostbackResult struct {
	StatusCode int
	// Attempt is the activity attempt that succeeded (1 for the first).
	Attempt     int32
	DeliveredAt time.Time
	// Attempts is the attempts log, oldest first: the last MaxAttemptsLog attempts,
	// the successful one last.
	Attempts []postback.Attempt
}

// MaxAttemptsLog bounds the attempts log a postback carries (in heartbeats,
// errors' details and its result).
const MaxAttemptsLog = 20

// Postback makes one delivery attempt of a notification to one endpoint, signed
// and authenticated as the endpoint says (see package postback), and tells
// Temporal what to do next:
//
//   - 2xx: the result, with the attempts log;
//   - 410 Gone: the endpoint is disabled (Health.Disable) and the error is a
//     non-retryable ErrEndpointGone;
//   - any other failure: a retryable ErrPostbackStatus whose NextRetryDelay is the
//     endpoint's schedule step (±20% jitter, Retry-After on 429/503 honoured within
//     [step, 2×step]), or, once the schedule is exhausted, a non-retryable
//     ErrPostbackGivenUp;
//   - a disabled endpoint: a non-retryable ErrEndpointDisabled, nothing sent;
//   - an unknown endpoint: a non-retryable ErrEndpointUnknown;
//   - a postback that can never be sent: a non-retryable ErrPostbackInvalid.
//
// Every error's details are the attempts log ([]postback.Attempt). The log of
// earlier retries travels in heartbeat details, so the activity needs no
// heartbeat timeout; as a local activity (no heartbeats) the log holds
// in.Attempts and this attempt. The caller's retry policy must leave the count of
// attempts to the schedule (MaximumAttempts 0, or more than the schedule's).
func (a *Activities) Postback(ctx context.Context, in PostbackInput) (PostbackResult, error) {
	info := activity.GetInfo(ctx)
	n := in.Notification
	if n.Postback.DispatchID == "" {
		n.Postback = in.Body
	}
	ep, err := a.postbackEndpoint(in)
	if err != nil {
		return PostbackResult{}, postbackError(err.Error(), ErrEndpointUnknown, true, 0, in.Attempts)
	}
	if ep.ID != "" && a.Health != nil {
		if reason, off := a.Health.Disabled(ctx, ep.ID); off {
			return PostbackResult{}, postbackError(fmt.Sprintf("endpoint %s is disabled: %s", ep.ID, reason), ErrEndpointDisabled, true, 0, in.Attempts)
		}
	}
	log := in.Attempts
	if activity.HasHeartbeatDetails(ctx) {
		var prev []postback.Attempt
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			log = prev
		}
	}
	// Attempts made before this one: the caller's, then this activity's earlier
	// attempts (those that died without a heartbeat included).
	made := len(in.Attempts) + int(info.Attempt) - 1
	webhookID := in.WebhookID
	if webhookID == "" {
		webhookID = "pb_" + n.Postback.DispatchID + "_" + n.Name()
	}
	if ep.Timeout == 0 {
		ep.Timeout = postback.Duration(a.PostbackTimeout)
	}

	at := postback.Deliver(ctx, a.HTTP, ep, n, webhookID, a.now())
	made++
	metrics.PostbackAttempt(ep.Label(), at.OK())
	if ep.ID != "" && a.Health != nil {
		a.Health.Report(ep.ID, at)
	}
	switch at.Class {
	case postback.ClassSuccess:
		log = a.logAttempt(ctx, log, at)
		done := a.now()
		if !n.ReceivedAt.IsZero() {
			metrics.PostbackLatency(ep.Label(), done.Sub(n.ReceivedAt))
		}
		return PostbackResult{StatusCode: at.StatusCode, Attempt: info.Attempt, DeliveredAt: done, Attempts: log}, nil
	case postback.ClassGone:
		log = a.logAttempt(ctx, log, at)
		if ep.ID != "" && a.Health != nil {
			if err := a.Health.Disable(ctx, ep.ID, "answered 410 Gone"); err != nil {
				// Retried: the next attempt meets the 410 again and disables it then.
				return PostbackResult{}, postbackError(fmt.Sprintf("%s; disabling endpoint %s: %v", at.Error, ep.ID, err), ErrPostbackStatus, false, 0, log)
			}
			return PostbackResult{}, postbackError(fmt.Sprintf("%s; endpoint %s disabled", at.Error, ep.ID), ErrEndpointGone, true, 0, log)
		}
		return PostbackResult{}, postbackError(at.Error, ErrEndpointGone, true, 0, log)
	case postback.ClassInvalid:
		log = a.logAttempt(ctx, log, at)
		return PostbackResult{}, postbackError(at.Error, ErrPostbackInvalid, true, 0, log)
	}
	delay, ok := ep.RetrySchedule().Delay(made, a.Rand)
	if !ok {
		log = a.logAttempt(ctx, log, at)
		return PostbackResult{}, postbackError(fmt.Sprintf("%s; given up after %d attempts", at.Error, made), ErrPostbackGivenUp, true, 0, log)
	}
	delay = postback.ClampRetryAfter(delay, at.RetryAfter)
	at.NextAttemptAt = a.now().Add(delay)
	log = a.logAttempt(ctx, log, at)
	return PostbackResult{}, postbackError(at.Error, ErrPostbackStatus, false, delay, log)
}

// postbackEndpoint resolves the endpoint of in.
func (a *Activities) postbackEndpoint(in PostbackInput) (postback.Endpoint, error) {
	switch {
	case in.EndpointID != "":
		ep, ok := a.Endpoints.Get(in.EndpointID)
		if !ok {
			return postback.Endpoint{}, fmt.Errorf("endpoint %s is not configured", in.EndpointID)
		}
		if in.URL != "" {
			// Checked again here, where the credentials are: they go only to the
			// URL they were registered for, or below it.
			if !ep.Covers(in.URL) {
				return postback.Endpoint{}, fmt.Errorf("endpoint %s does not cover the message's postback_url", in.EndpointID)
			}
			ep.URL = in.URL
		}
		return ep, nil
	case in.URL != "":
		return a.Endpoints.AdHoc(in.Workspace, in.URL), nil
	}
	return postback.Endpoint{}, errors.New("postback has neither an endpoint nor a URL")
}

// logAttempt appends at to log, keeps the last MaxAttemptsLog, and records the
// log as the activity's heartbeat for its next retry (a no-op in a local activity).
func (a *Activities) logAttempt(ctx context.Context, log []postback.Attempt, at postback.Attempt) []postback.Attempt {
	log = append(slices.Clone(log), at)
	if len(log) > MaxAttemptsLog {
		log = log[len(log)-MaxAttemptsLog:]
	}
	activity.RecordHeartbeat(ctx, log)
	return log
}

// postbackError is the ApplicationError of a failed attempt, carrying the
// attempts log as its details; delay (if not zero) is the next retry's.
func postbackError(msg, typ string, nonRetryable bool, delay time.Duration, log []postback.Attempt) error {
	return temporal.NewApplicationErrorWithOptions(msg, typ, temporal.ApplicationErrorOptions{
		NonRetryable:   nonRetryable,
		NextRetryDelay: delay,
		Details:        []any{log},
	})
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
