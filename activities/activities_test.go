package activities

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/netguard"
	"github.com/dispatchflow/dispatchflow/postback"
)

// Signing secrets of the tests: whsec_ + base64 of 32 bytes, two for a rotation.
var (
	testSecret    = postback.Secret("whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	testOldSecret = postback.Secret("whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210")))
)

// loopback allow-lists the httptest receivers through the SSRF guard.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

var testNotification = postback.Notification{
	Postback: message.NewPostback(message.Identity{DispatchID: "acf471119f7449d579e8089032003ded", ExternalSendID: "order-1234"},
		message.StatusDelivered, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), "", message.SendTimes{}),
	Recipient:  "ok@example.com",
	ReceivedAt: time.Now(),
}

// postbackEnv is the Postback activity over a MemoryHealth, with endpoint "crm"
// at url, guarded with allow as the allow-list.
type postbackEnv struct {
	acts   *Activities
	health *postback.MemoryHealth
	// heartbeats counts the heartbeats the activity recorded.
	heartbeats atomic.Int32
	// local runs the activity as the workflow's local first attempt would
	// (no heartbeats).
	local bool
}

func newPostbackEnv(t *testing.T, ep postback.Endpoint, allow []netip.Prefix) *postbackEnv {
	t.Helper()
	set, err := postback.NewSet(ep)
	if err != nil {
		t.Fatal(err)
	}
	h := &postback.MemoryHealth{}
	return &postbackEnv{health: h, acts: &Activities{
		HTTP:      NewPostbackClient(20*time.Second, netguard.New(allow)),
		Endpoints: set,
		Health:    h,
		Rand:      rand.New(rand.NewPCG(1, 2)),
	}}
}

// run runs the Postback activity in Temporal's activity test environment.
func (e *postbackEnv) run(t *testing.T, in PostbackInput) (PostbackResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(e.acts)
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { e.heartbeats.Add(1) })
	val, err := env.ExecuteActivity(e.acts.Postback, in)
	var res PostbackResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// outcome runs the activity, which must answer without an error.
func (e *postbackEnv) outcome(t *testing.T, in PostbackInput) PostbackResult {
	t.Helper()
	res, err := e.run(t, in)
	if err != nil {
		t.Fatalf("got error %v, want an outcome", err)
	}
	return res
}

// A configured endpoint gets the Braze body, signed with both secrets of a
// rotation (each verified by the Standard Webhooks reference library), with its
// bearer token and custom header.
func TestPostbackDelivers(t *testing.T) {
	t.Parallel()
	type received struct {
		body   []byte
		header http.Header
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{b, r.Header.Clone()}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	e := newPostbackEnv(t, postback.Endpoint{
		ID: "crm", URL: srv.URL + "/hooks/braze", Secrets: []postback.Secret{testSecret, testOldSecret},
		Auth:    postback.Auth{Type: postback.AuthBearer, Token: "tok-123"},
		Headers: map[string]postback.Secret{"X-Tenant": "acme"},
	}, loopback)

	res, err := e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_acf4711-delivered", Notification: testNotification})
	if err != nil {
		t.Fatalf("got %v, want success", err)
	}
	r := <-got
	want, _ := json.Marshal(testNotification.Postback)
	if string(r.body) != string(want) {
		t.Errorf("body: got %s, want %s", r.body, want)
	}
	for _, secret := range []postback.Secret{testSecret, testOldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("reference library: %v (signature %q)", err, r.header.Get("webhook-signature"))
		}
	}
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("got %d signatures, want 2 during a rotation", n)
	}
	for name, want := range map[string]string{
		"webhook-id": "msg_acf4711-delivered", "Authorization": "Bearer tok-123", "X-Tenant": "acme",
		"Content-Type": "application/json", "User-Agent": "dispatchflow-postback/1",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s: got %q, want %q", name, got, want)
		}
	}
	if res.Outcome != OutcomeDelivered || res.DeliveredAt.IsZero() || !res.Attempt.OK() || res.Attempt.StatusCode != http.StatusNoContent || res.Error != "" {
		t.Errorf("got %+v, want delivered with a 204 attempt", res)
	}
	if reports := e.health.Reports("crm"); len(reports) != 1 || !reports[0].OK() {
		t.Errorf("health got %+v, want one success", reports)
	}
}

// A message's own postback_url without configured endpoints, given the old way
// (URL and Body, as the workflow still does), is posted unsigned in Braze's format.
func TestPostbackLegacyInput(t *testing.T) {
	t.Parallel()
	var got message.Postback
	var sig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig = r.Header.Get("webhook-signature")
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &got)
	}))
	defer srv.Close()
	acts := &Activities{HTTP: NewPostbackClient(2*time.Second, netguard.New(loopback))}
	e := &postbackEnv{acts: acts}
	res, err := e.run(t, PostbackInput{URL: srv.URL, Body: testNotification.Postback})
	if err != nil || res.Outcome != OutcomeDelivered || res.Attempt.StatusCode != http.StatusOK {
		t.Fatalf("got %+v, %v; want 200", res, err)
	}
	if got.DispatchID != testNotification.Postback.DispatchID || got.Status != message.StatusDelivered || sig != "" {
		t.Errorf("endpoint got %+v signed %q, want the unsigned postback", got, sig)
	}
}

// Failures are classified, retried on the schedule (first retry: 5s ±20%), with
// Retry-After honoured within [step, 2×step]; 410 disables the endpoint and
// holds the postback.
func TestPostbackFailures(t *testing.T) {
	t.Parallel()
	const step = 5 * time.Second
	lo, hi := step*8/10, step*12/10
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		wantOutcome  string
		wantErr      string
		delayMin     time.Duration // bounds of RetryIn (OutcomeRetry only)
		delayMax     time.Duration
		wantDisabled bool
	}{
		{name: "500 is retried on the schedule", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "oops", http.StatusInternalServerError)
		}, wantOutcome: OutcomeRetry, wantErr: "endpoint answered 500 Internal Server Error", delayMin: lo, delayMax: hi},
		{name: "4xx is retried too", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusBadRequest)
		}, wantOutcome: OutcomeRetry, wantErr: "endpoint answered 400 Bad Request", delayMin: lo, delayMax: hi},
		{name: "redirects are failures, not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				t.Error("the redirect was followed")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantOutcome: OutcomeRetry, wantErr: "endpoint answered 302 Found", delayMin: lo, delayMax: hi},
		{name: "429 Retry-After within bounds is honoured", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantOutcome: OutcomeRetry, wantErr: "429", delayMin: 7 * time.Second, delayMax: 7 * time.Second},
		{name: "503 Retry-After is capped at twice the step", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, wantOutcome: OutcomeRetry, wantErr: "503", delayMin: 2 * lo, delayMax: 2 * hi},
		{name: "429 Retry-After sooner than the step waits the step", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantOutcome: OutcomeRetry, wantErr: "429", delayMin: lo, delayMax: hi},
		{name: "500 Retry-After is ignored", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "9")
			w.WriteHeader(http.StatusInternalServerError)
		}, wantOutcome: OutcomeRetry, wantErr: "500", delayMin: lo, delayMax: hi},
		{name: "410 disables the endpoint", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusGone)
		}, wantOutcome: OutcomeHeld, wantErr: "endpoint answered 410 Gone; endpoint crm disabled", wantDisabled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: srv.URL + "/hook"}, loopback)
			res := e.outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
			if res.Outcome != tt.wantOutcome || !strings.Contains(res.Error, tt.wantErr) {
				t.Errorf("got %s %q, want %s containing %q", res.Outcome, res.Error, tt.wantOutcome, tt.wantErr)
			}
			if tt.wantOutcome == OutcomeRetry && (res.RetryIn < tt.delayMin || res.RetryIn > tt.delayMax) {
				t.Errorf("got next attempt in %s, want within [%s, %s]", res.RetryIn, tt.delayMin, tt.delayMax)
			}
			if at := res.Attempt; at.OK() || at.StatusCode == 0 || at.Error == "" {
				t.Fatalf("got attempt %+v, want a failed attempt with its status", at)
			}
			if tt.wantOutcome == OutcomeRetry && res.Attempt.NextAttemptAt.Sub(res.Attempt.At) < tt.delayMin {
				t.Errorf("got next attempt at %s after %s, want >= %s later", res.Attempt.NextAttemptAt, res.Attempt.At, tt.delayMin)
			}
			if _, disabled := e.health.Disabled(context.Background(), "crm"); disabled != tt.wantDisabled {
				t.Errorf("disabled: got %v, want %v", disabled, tt.wantDisabled)
			}
		})
	}
}

// A message's own postback_url has no switch: a 410 there fails the postback.
func TestPostbackURLGone(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }))
	defer srv.Close()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: "https://crm.example.com/hook"}, loopback)
	if res := e.outcome(t, PostbackInput{URL: srv.URL, WebhookID: "msg_1", Notification: testNotification}); res.Outcome != OutcomeFailed {
		t.Errorf("got %s, want failed", res.Outcome)
	}
}

// A disabled endpoint gets nothing: the postback is held.
func TestPostbackDisabledEndpoint(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: srv.URL}, loopback)
	_ = e.health.Disable(context.Background(), "crm", "answered 410 Gone")
	res := e.outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	if res.Outcome != OutcomeHeld || !strings.Contains(res.Error, "answered 410 Gone") || res.Attempt.Class != "" {
		t.Errorf("got %+v, want held with the reason and no attempt", res)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the endpoint got %d requests, want none", n)
	}
}

func TestPostbackUnknownEndpoint(t *testing.T) {
	t.Parallel()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: "https://crm.example.com/hook"}, nil)
	res := e.outcome(t, PostbackInput{EndpointID: "erp", WebhookID: "msg_1", Notification: testNotification})
	if res.Outcome != OutcomeFailed || res.Error != "endpoint erp is not configured" {
		t.Errorf("got %+v, want failed: endpoint erp is not configured", res)
	}
}

// The schedule counts the attempts made before (Made) and this activity's
// earlier attempts (a worker that died mid-attempt); its last failure gives up.
// Response bodies are cut.
func TestPostbackSchedule(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(strings.Repeat("é", 2000))) // 4000 bytes of 2-byte runes
	}))
	t.Cleanup(srv.Close) // after the parallel subtests
	ep := postback.Endpoint{ID: "crm", URL: srv.URL, Schedule: postback.Schedule{postback.Duration(time.Minute), postback.Duration(time.Hour)}}

	t.Run("second step after one attempt", func(t *testing.T) {
		t.Parallel()
		res := newPostbackEnv(t, ep, loopback).outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification, Made: 1})
		if res.Outcome != OutcomeRetry || res.RetryIn < 48*time.Minute || res.RetryIn > 72*time.Minute {
			t.Errorf("got %s in %s, want retry in 1h ±20%%", res.Outcome, res.RetryIn)
		}
		if got := res.Attempt.ResponseBody; len(got) != postback.MaxResponseBody || !strings.HasPrefix(got, "éé") {
			t.Errorf("got a response body of %d bytes, want the first %d", len(got), postback.MaxResponseBody)
		}
	})
	t.Run("the schedule's last attempt gives up", func(t *testing.T) {
		t.Parallel()
		res := newPostbackEnv(t, ep, loopback).outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification, Made: 2})
		if res.Outcome != OutcomeFailed || !strings.Contains(res.Error, "given up after 3 attempts") || !res.Attempt.NextAttemptAt.IsZero() {
			t.Errorf("got %+v, want failed after 3 attempts with no next one", res)
		}
	})
}

// A regular attempt heartbeats while the receiver takes its time, so that a
// dead worker is noticed in seconds; the first attempt (local) to an endpoint
// that answered slowly is deferred to a regular activity, sending nothing.
func TestPostbackSlowReceiver(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(heartbeatEvery + FirstAttemptBudget)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: srv.URL}, loopback)
	in := PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification}
	if res := e.outcome(t, in); res.Outcome != OutcomeDelivered {
		t.Fatalf("got %+v, want delivered", res)
	}
	if e.heartbeats.Load() == 0 {
		t.Error("no heartbeat while the receiver took its time")
	}
	in.First = true
	if res := e.outcome(t, in); res.Outcome != OutcomeDeferred || res.Attempt.Class != "" {
		t.Errorf("first attempt to a slow endpoint: got %+v, want deferred with nothing sent", res)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
	e.acts.Now = func() time.Time { return time.Now().Add(slowFor + time.Minute) }
	if e.acts.slow(postback.Endpoint{ID: "crm"}) {
		t.Error("still slow once slowFor has passed")
	}
}

// The SSRF guard refuses a receiver on a loopback address for good, unless the
// loopback network is allow-listed.
func TestPostbackSSRFGuard(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	ep := postback.Endpoint{ID: "crm", URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)}

	res := newPostbackEnv(t, ep, nil).outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	if res.Outcome != OutcomeFailed || !strings.Contains(res.Error, netguard.Variable) || res.Attempt.Class != postback.ClassInvalid {
		t.Errorf("guarded: got %+v, want failed for good naming %s", res, netguard.Variable)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("guarded: the receiver got %d requests, want none", n)
	}
	if res := newPostbackEnv(t, ep, loopback).outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification}); res.Outcome != OutcomeDelivered {
		t.Errorf("allow-listed: got %+v, want delivered", res)
	}
}

func TestPostbackNetworkError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: url}, loopback)
	res := e.outcome(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	if res.Outcome != OutcomeRetry || !strings.Contains(res.Error, "connection refused") || res.Attempt.StatusCode != 0 {
		t.Errorf("got %+v; want a retry after connection refused", res)
	}
}

type stubESP struct {
	err error
}

func (s stubESP) Name() string { return "stub" }
func (s stubESP) Send(context.Context, esp.Email) (esp.Receipt, error) {
	return esp.Receipt{Provider: "stub", MessageID: "m-1"}, s.err
}

// Send turns the ESP's answer into what the workflow branches on: a result, a
// non-retryable ErrRefused with the ESP's reason, or a retryable error.
func TestSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		wantType  string
		retryable bool
	}{
		{name: "accepted"},
		{name: "refused", err: &esp.RefusedError{Reason: "550 5.1.1 user unknown"}, wantType: ErrRefused},
		{name: "transient", err: errors.New("421 try later"), retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			acts := &Activities{ESP: stubESP{tt.err}}
			env.RegisterActivity(acts)
			val, err := env.ExecuteActivity(acts.Send, SendInput{Email: esp.Email{DispatchID: "d"}})
			if tt.err == nil {
				var res SendResult
				if err != nil || val.Get(&res) != nil || res.Receipt.MessageID != "m-1" || res.SentAt.Before(res.ExecutedAt) {
					t.Fatalf("got %+v, %v; want the receipt with sent_at >= executed_at", res, err)
				}
				return
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) {
				t.Fatalf("got %v, want an ApplicationError", err)
			}
			if appErr.NonRetryable() == tt.retryable || (tt.wantType != "" && (appErr.Type() != tt.wantType || appErr.Message() != "550 5.1.1 user unknown")) {
				t.Errorf("got %v (type %s, non-retryable %v), want type %q retryable %v", err, appErr.Type(), appErr.NonRetryable(), tt.wantType, tt.retryable)
			}
		})
	}
}
