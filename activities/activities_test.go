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
	// heartbeats are the attempts logs the activity recorded.
	heartbeats [][]postback.Attempt
	prior      []postback.Attempt // heartbeat details of an earlier retry
}

func newPostbackEnv(t *testing.T, ep postback.Endpoint, allow []netip.Prefix) *postbackEnv {
	t.Helper()
	set, err := postback.NewSet(ep)
	if err != nil {
		t.Fatal(err)
	}
	h := &postback.MemoryHealth{}
	return &postbackEnv{health: h, acts: &Activities{
		HTTP:      NewPostbackClient(2*time.Second, netguard.New(allow)),
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
	if e.prior != nil {
		env.SetHeartbeatDetails(e.prior)
	}
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var log []postback.Attempt
		if details.Get(&log) == nil {
			e.heartbeats = append(e.heartbeats, log)
		}
	})
	val, err := env.ExecuteActivity(e.acts.Postback, in)
	var res PostbackResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// appError digs the activity's ApplicationError and its attempts log out of err.
func appError(t *testing.T, err error) (*temporal.ApplicationError, []postback.Attempt) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("got %v, want an ApplicationError", err)
	}
	var log []postback.Attempt
	if appErr.HasDetails() {
		if err := appErr.Details(&log); err != nil {
			t.Fatalf("details: %v", err)
		}
	}
	return appErr, log
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
	if res.StatusCode != http.StatusNoContent || res.Attempt != 1 || res.DeliveredAt.IsZero() ||
		len(res.Attempts) != 1 || !res.Attempts[0].OK() || res.Attempts[0].StatusCode != http.StatusNoContent {
		t.Errorf("got %+v, want 204 at attempt 1 with a one-success log", res)
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
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("got %+v, %v; want 200", res, err)
	}
	if got.DispatchID != testNotification.Postback.DispatchID || got.Status != message.StatusDelivered || sig != "" {
		t.Errorf("endpoint got %+v signed %q, want the unsigned postback", got, sig)
	}
}

// Failures are classified, retried on the schedule (first retry: 5s ±20%), with
// Retry-After honoured within [step, 2×step]; 410 disables the endpoint.
func TestPostbackFailures(t *testing.T) {
	t.Parallel()
	const step = 5 * time.Second
	lo, hi := step*8/10, step*12/10
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		wantType     string
		retryable    bool
		wantErr      string
		delayMin     time.Duration // bounds of NextRetryDelay (retryable only)
		delayMax     time.Duration
		wantDisabled bool
	}{
		{name: "500 is retried on the schedule", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "oops", http.StatusInternalServerError)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "endpoint answered 500 Internal Server Error", delayMin: lo, delayMax: hi},
		{name: "4xx is retried too", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusBadRequest)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "endpoint answered 400 Bad Request", delayMin: lo, delayMax: hi},
		{name: "redirects are failures, not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				t.Error("the redirect was followed")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "endpoint answered 302 Found", delayMin: lo, delayMax: hi},
		{name: "429 Retry-After within bounds is honoured", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "429", delayMin: 7 * time.Second, delayMax: 7 * time.Second},
		{name: "503 Retry-After is capped at twice the step", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "503", delayMin: 2 * lo, delayMax: 2 * hi},
		{name: "429 Retry-After sooner than the step waits the step", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "429", delayMin: lo, delayMax: hi},
		{name: "500 Retry-After is ignored", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "9")
			w.WriteHeader(http.StatusInternalServerError)
		}, wantType: ErrPostbackStatus, retryable: true, wantErr: "500", delayMin: lo, delayMax: hi},
		{name: "410 disables the endpoint", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusGone)
		}, wantType: ErrEndpointGone, wantErr: "endpoint answered 410 Gone; endpoint crm disabled", wantDisabled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: srv.URL + "/hook"}, loopback)
			_, err := e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
			appErr, log := appError(t, err)
			if appErr.Type() != tt.wantType || appErr.NonRetryable() == tt.retryable || !strings.Contains(appErr.Message(), tt.wantErr) {
				t.Errorf("got %v (type %s, non-retryable %v), want type %s retryable %v containing %q",
					err, appErr.Type(), appErr.NonRetryable(), tt.wantType, tt.retryable, tt.wantErr)
			}
			if d := appErr.NextRetryDelay(); tt.retryable && (d < tt.delayMin || d > tt.delayMax) {
				t.Errorf("got next retry in %s, want within [%s, %s]", d, tt.delayMin, tt.delayMax)
			}
			if len(log) != 1 || log[0].OK() || log[0].StatusCode == 0 || log[0].Error == "" {
				t.Fatalf("got log %+v, want one failed attempt with its status", log)
			}
			if tt.retryable && log[0].NextAttemptAt.Sub(log[0].At) < tt.delayMin {
				t.Errorf("got next attempt at %s after %s, want >= %s later", log[0].NextAttemptAt, log[0].At, tt.delayMin)
			}
			if len(e.heartbeats) == 0 || len(e.heartbeats[len(e.heartbeats)-1]) != 1 {
				t.Errorf("got heartbeats %+v, want the log recorded for the next retry", e.heartbeats)
			}
			if _, disabled := e.health.Disabled(context.Background(), "crm"); disabled != tt.wantDisabled {
				t.Errorf("disabled: got %v, want %v", disabled, tt.wantDisabled)
			}
		})
	}
}

// A disabled endpoint gets nothing: the postback is held (ErrEndpointDisabled).
func TestPostbackDisabledEndpoint(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: srv.URL}, loopback)
	_ = e.health.Disable(context.Background(), "crm", "answered 410 Gone")
	_, err := e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	appErr, _ := appError(t, err)
	if appErr.Type() != ErrEndpointDisabled || !appErr.NonRetryable() || !strings.Contains(appErr.Message(), "answered 410 Gone") {
		t.Errorf("got %v (type %s), want a non-retryable %s with the reason", err, appErr.Type(), ErrEndpointDisabled)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the endpoint got %d requests, want none", n)
	}
}

func TestPostbackUnknownEndpoint(t *testing.T) {
	t.Parallel()
	e := newPostbackEnv(t, postback.Endpoint{ID: "crm", URL: "https://crm.example.com/hook"}, nil)
	_, err := e.run(t, PostbackInput{EndpointID: "erp", WebhookID: "msg_1", Notification: testNotification})
	appErr, _ := appError(t, err)
	if appErr.Type() != ErrEndpointUnknown || !appErr.NonRetryable() || appErr.Message() != "endpoint erp is not configured" {
		t.Errorf("got %v (type %s), want a non-retryable %q", err, appErr.Type(), "endpoint erp is not configured")
	}
}

// The attempts log carries the caller's attempts and those of earlier retries
// (heartbeat details); the schedule counts them, and its last failure gives up.
func TestPostbackAttemptsLog(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(strings.Repeat("é", 2000))) // 4000 bytes of 2-byte runes
	}))
	t.Cleanup(srv.Close) // after the parallel subtests
	ep := postback.Endpoint{ID: "crm", URL: srv.URL, Schedule: postback.Schedule{postback.Duration(time.Minute), postback.Duration(time.Hour)}}
	earlier := postback.Attempt{At: time.Now().Add(-time.Hour), StatusCode: 502, Class: postback.ClassFailure, Error: "earlier"}

	t.Run("heartbeat details head the log", func(t *testing.T) {
		t.Parallel()
		e := newPostbackEnv(t, ep, loopback)
		e.prior = []postback.Attempt{earlier}
		_, err := e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
		appErr, log := appError(t, err)
		if len(log) != 2 || log[0].Error != "earlier" || log[1].StatusCode != http.StatusBadGateway {
			t.Fatalf("got log %+v, want the earlier attempt then this one", log)
		}
		if got := log[1].ResponseBody; len(got) != postback.MaxResponseBody || !strings.HasPrefix(got, "éé") {
			t.Errorf("got a response body of %d bytes, want the first %d", len(got), postback.MaxResponseBody)
		}
		// One attempt made (this activity's first): the next waits the first step.
		if d := appErr.NextRetryDelay(); d < 48*time.Second || d > 72*time.Second {
			t.Errorf("got next retry in %s, want 1m ±20%%", d)
		}
	})
	t.Run("the schedule's last attempt gives up", func(t *testing.T) {
		t.Parallel()
		e := newPostbackEnv(t, ep, loopback)
		_, err := e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification,
			Attempts: []postback.Attempt{earlier, earlier}})
		appErr, log := appError(t, err)
		if appErr.Type() != ErrPostbackGivenUp || !appErr.NonRetryable() || !strings.Contains(appErr.Message(), "given up after 3 attempts") {
			t.Errorf("got %v (type %s), want a non-retryable %s after 3 attempts", err, appErr.Type(), ErrPostbackGivenUp)
		}
		if len(log) != 3 || log[2].StatusCode != http.StatusBadGateway || !log[2].NextAttemptAt.IsZero() {
			t.Errorf("got log %+v, want 3 attempts, the last with no next one", log)
		}
	})
}

// The SSRF guard refuses a receiver on a loopback address for good, unless the
// loopback network is allow-listed.
func TestPostbackSSRFGuard(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	ep := postback.Endpoint{ID: "crm", URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)}

	_, err := newPostbackEnv(t, ep, nil).run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	appErr, log := appError(t, err)
	if appErr.Type() != ErrPostbackInvalid || !appErr.NonRetryable() || !strings.Contains(appErr.Message(), netguard.Variable) {
		t.Errorf("guarded: got %v (type %s), want a non-retryable %s naming %s", err, appErr.Type(), ErrPostbackInvalid, netguard.Variable)
	}
	if n := hits.Load(); n != 0 || len(log) != 1 || log[0].Class != postback.ClassInvalid {
		t.Errorf("guarded: the receiver got %d requests and the log is %+v, want none and one refused attempt", n, log)
	}

	if _, err := newPostbackEnv(t, ep, loopback).run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification}); err != nil {
		t.Errorf("allow-listed: got %v, want success", err)
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
	_, err = e.run(t, PostbackInput{EndpointID: "crm", WebhookID: "msg_1", Notification: testNotification})
	appErr, log := appError(t, err)
	if !strings.Contains(appErr.Message(), "connection refused") || appErr.NonRetryable() || len(log) != 1 || log[0].StatusCode != 0 {
		t.Errorf("got %v, log %+v; want a retryable connection refused, logged", err, log)
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
