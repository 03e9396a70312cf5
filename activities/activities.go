// Package activities holds every side effect of a message's life: handing the email
// to the ESP, POSTing postbacks and sending fallback steps. Workflows call them through a nil *Activities
// (the worker registers the real one), so the workflow package never does I/O.
//
// Retries belong to Temporal, not to this package: an activity makes one attempt and
// says whether a failure is permanent (a non-retryable ApplicationError) or not; the
// workflow's retry policy schedules the next attempt, which shows in the Temporal UI.
// Postback is the exception: each activity makes one HTTP attempt and the
// workflow waits out the endpoint's schedule on a durable timer, so that a
// continue-as-new can carry a postback that waits to retry.
package activities

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	// Suppressions is the suppression list Send checks before any ESP is
	// called (checkSuppressed); nil: none is checked.
	Suppressions *Suppressions
	// Senders are the providers of DISPATCHFLOW_ESP by name, when it names
	// several: a hand-over names its provider (SendInput.Provider). Nil with
	// one provider: ESP takes every message.
	Senders map[string]esp.Sender
	// Circuits keep the providers' circuit breakers when there are several
	// (see sendVia); nil: every provider is always tried.
	Circuits Circuits

	latencyMu sync.Mutex
	slowUntil map[string]time.Time // endpoints that answered slowly, until when
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
	// Workspace owns the message: the suppression list checked is its own.
	// Empty (an attempt scheduled before the list existed): none is checked.
	Workspace string `json:",omitempty"`
	// Provider names the provider of DISPATCHFLOW_ESP to hand the email to,
	// when it names several (the workflow moves down the list, see sendVia).
	// Empty: ESP.
	Provider string `json:",omitempty"`
	// Failover: the workflow moves on to another provider when this one fails
	// (every provider of the list but the last). Send then skips the provider
	// while its circuit is open, and the failure of FinalAttempt (the retry
	// policy's last attempt) opens its circuit.
	Failover     bool  `json:",omitempty"`
	FinalAttempt int32 `json:",omitempty"`
}

// SendResult is the output of Send.
type SendResult struct {
	Receipt esp.Receipt
	// ExecutedAt is when this attempt started; SentAt when the ESP accepted.
	ExecutedAt time.Time
	SentAt     time.Time
	// Attempt is the attempt that succeeded, with a named Provider.
	Attempt int32 `json:",omitempty"`
}

// Send hands the email to the ESP. A permanent refusal is a non-retryable
// ApplicationError of type ErrRefused whose message is the ESP's reason; a
// suppressed address, one of type ErrSuppressed, and no ESP is called. With a
// named provider (DISPATCHFLOW_ESP naming several), see sendVia.
func (a *Activities) Send(ctx context.Context, in SendInput) (_ SendResult, err error) {
	provider := in.Provider
	if provider == "" {
		provider = a.ESP.Name()
	}
	defer func() { metrics.Send(provider, sendOutcome(err)) }()
	if err := a.checkSuppressed(ctx, in); err != nil {
		return SendResult{}, err
	}
	if in.Provider != "" {
		return a.sendVia(ctx, in)
	}
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
	// Notification is what to post. The workflow fixes it when the status
	// changes, so every attempt of one webhook-id renders the same bytes.
	Notification postback.Notification
	// Made counts the attempts made before this one: where the endpoint's
	// schedule stands.
	Made int
	// First marks the first attempt, which the workflow runs as a local activity
	// inside its workflow task. It is made only to an endpoint that answered
	// within FirstAttemptBudget lately; to a slow one it sends nothing and answers
	// OutcomeDeferred, and the workflow makes the attempt as a regular activity,
	// which holds no workflow task open however long the endpoint takes.
	First bool
	// Body is the Braze body of callers that predate Notification, used when
	// Notification.Postback is empty. Deprecated: set Notification.
	Body message.Postback
}

// Postback outcomes: what the workflow does next.
const (
	// OutcomeDelivered: the endpoint answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeRetry: the attempt failed; the next is due after RetryIn.
	OutcomeRetry = "retry"
	// OutcomeFailed: failed for good (the schedule is exhausted, or the postback
	// can never be sent as configured).
	OutcomeFailed = "failed"
	// OutcomeHeld: the endpoint is disabled (by an operator, a 410 Gone or a long
	// failure); nothing more is sent until it is enabled and the postback replayed.
	OutcomeHeld = "held"
	// OutcomeDeferred: a first attempt not made, the endpoint being slow.
	OutcomeDeferred = "deferred"
)

// PostbackResult is the output of Postback.
type PostbackResult struct {
	Outcome string
	// Attempt is the HTTP attempt made; zero when none was (held, deferred).
	Attempt postback.Attempt
	// RetryIn is the wait before the next attempt (OutcomeRetry): the endpoint's
	// schedule step with jitter, Retry-After honoured within [step, 2×step].
	RetryIn time.Duration
	// Error says why the postback is not delivered (every outcome but delivered).
	Error       string
	DeliveredAt time.Time
}

// FirstAttemptBudget is how fast an endpoint must have answered lately for the
// first attempt to run inside the workflow task; see PostbackInput.First.
const FirstAttemptBudget = time.Second

// slowFor is how long an endpoint that answered slower than FirstAttemptBudget
// gets its first attempts as regular activities.
const slowFor = 10 * time.Minute

// sendOutcome is the outcome label of a Send that returned err.
func sendOutcome(err error) string {
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return metrics.SendSent
	case !errors.As(err, &appErr):
		return metrics.SendFailed
	case appErr.Type() == ErrRefused:
		return metrics.SendRefused
	case appErr.Type() == ErrSuppressed:
		return metrics.SendSuppressed
	case appErr.Type() == ErrCircuitOpen:
		return metrics.SendSkipped
	}
	return metrics.SendFailed
}

// heartbeatEvery is how often a regular Postback activity heartbeats while its
// request runs. The workflow's heartbeat timeout is a few of these: a worker that
// dies mid-attempt is noticed in seconds, not at the attempt's timeout.
const heartbeatEvery = 2 * time.Second

// maxErrorText bounds an attempt's error text kept in the state.
const maxErrorText = 500

// Postback makes one delivery attempt of a notification to one endpoint, signed
// and authenticated as the endpoint says (see package postback), and says what
// the workflow does next (PostbackResult.Outcome). Retries belong to the
// workflow, on durable timers that a continue-as-new carries; the activity's own
// retry policy only covers a worker that died mid-attempt, which it notices by
// the heartbeats.
//
//   - 2xx: OutcomeDelivered;
//   - 410 Gone: the endpoint is disabled (Health.Disable) and OutcomeHeld (a
//     message's own postback_url, without a switch to enable: OutcomeFailed);
//   - a disabled endpoint: OutcomeHeld, nothing sent;
//   - any other failure: OutcomeRetry after the endpoint's schedule step, or,
//     once the schedule is exhausted, OutcomeFailed;
//   - an unknown endpoint, or a postback that can never be sent: OutcomeFailed.
//
// An error is returned only when the attempt's fate is unknown (the health
// store could not record a 410): Temporal retries it.
func (a *Activities) Postback(ctx context.Context, in PostbackInput) (PostbackResult, error) {
	n := in.Notification
	if n.Postback.DispatchID == "" {
		n.Postback = in.Body
	}
	ep, err := a.postbackEndpoint(in)
	if err != nil {
		return PostbackResult{Outcome: OutcomeFailed, Error: err.Error()}, nil
	}
	if ep.ID != "" && a.Health != nil {
		if reason, off := a.Health.Disabled(ctx, ep.ID); off {
			return PostbackResult{Outcome: OutcomeHeld, Error: fmt.Sprintf("endpoint %s is disabled: %s", ep.ID, reason)}, nil
		}
	}
	if in.First && a.slow(ep) {
		return PostbackResult{Outcome: OutcomeDeferred}, nil
	}
	webhookID := in.WebhookID
	if webhookID == "" {
		webhookID = "pb_" + n.Postback.DispatchID + "_" + n.Name()
	}
	if ep.Timeout == 0 {
		ep.Timeout = postback.Duration(a.PostbackTimeout)
	}

	stop := heartbeat(ctx)
	at := postback.Deliver(ctx, a.HTTP, ep, n, webhookID, a.now())
	stop()
	at.Error = cut(at.Error, maxErrorText)
	a.noteLatency(ep, at)
	// Attempts made: those before this activity, then this activity's earlier
	// attempts (a worker that died mid-attempt), then this one.
	made := in.Made + int(activity.GetInfo(ctx).Attempt)
	metrics.PostbackAttempt(ep.Label(), at.OK())
	if ep.ID != "" && a.Health != nil {
		a.Health.Report(ep.ID, at)
	}
	res := PostbackResult{Attempt: at, Error: at.Error}
	switch at.Class {
	case postback.ClassSuccess:
		res.Outcome, res.Error, res.DeliveredAt = OutcomeDelivered, "", a.now()
		if !n.ReceivedAt.IsZero() {
			metrics.PostbackLatency(ep.Label(), res.DeliveredAt.Sub(n.ReceivedAt))
		}
		return res, nil
	case postback.ClassGone:
		if ep.ID == "" || a.Health == nil {
			res.Outcome = OutcomeFailed
			return res, nil
		}
		if err := a.Health.Disable(ctx, ep.ID, "answered 410 Gone"); err != nil {
			// Retried: the next attempt meets the 410 again and disables it then.
			return PostbackResult{}, fmt.Errorf("%s; disabling endpoint %s: %w", at.Error, ep.ID, err)
		}
		res.Outcome, res.Error = OutcomeHeld, at.Error+"; endpoint "+ep.ID+" disabled"
		return res, nil
	case postback.ClassInvalid:
		res.Outcome = OutcomeFailed
		return res, nil
	}
	delay, ok := ep.RetrySchedule().Delay(made, a.Rand)
	if !ok {
		res.Outcome, res.Error = OutcomeFailed, fmt.Sprintf("%s; given up after %d attempts", at.Error, made)
		return res, nil
	}
	res.Outcome, res.RetryIn = OutcomeRetry, postback.ClampRetryAfter(delay, at.RetryAfter)
	res.Attempt.NextAttemptAt = a.now().Add(res.RetryIn)
	return res, nil
}

// heartbeat records a heartbeat every heartbeatEvery until stop is called (a
// no-op in a local activity, which has none).
func heartbeat(ctx context.Context) (stop func()) {
	if activity.GetInfo(ctx).IsLocalActivity {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// slowKey names an endpoint in the latency memory: its id, or its URL.
func slowKey(ep postback.Endpoint) string {
	if ep.ID != "" {
		return "id:" + ep.ID
	}
	return "url:" + ep.URL
}

// slow reports whether ep answered slower than FirstAttemptBudget (or not at
// all) within the last slowFor, on this worker.
func (a *Activities) slow(ep postback.Endpoint) bool {
	a.latencyMu.Lock()
	defer a.latencyMu.Unlock()
	until, ok := a.slowUntil[slowKey(ep)]
	return ok && a.now().Before(until)
}

// noteLatency remembers an endpoint that took longer than FirstAttemptBudget.
func (a *Activities) noteLatency(ep postback.Endpoint, at postback.Attempt) {
	if at.Duration <= FirstAttemptBudget || at.Class == postback.ClassInvalid {
		return
	}
	a.latencyMu.Lock()
	defer a.latencyMu.Unlock()
	if a.slowUntil == nil {
		a.slowUntil = map[string]time.Time{}
	}
	if len(a.slowUntil) >= maxSlowEndpoints {
		now := a.now()
		for k, until := range a.slowUntil {
			if !now.Before(until) {
				delete(a.slowUntil, k)
			}
		}
		if len(a.slowUntil) >= maxSlowEndpoints {
			return
		}
	}
	a.slowUntil[slowKey(ep)] = a.now().Add(slowFor)
}

// maxSlowEndpoints bounds the latency memory (ad-hoc URLs are many).
const maxSlowEndpoints = 10_000

// cut returns s cut to at most n bytes on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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
