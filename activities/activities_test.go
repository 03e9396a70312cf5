package activities

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
)

// postback runs the Postback activity in Temporal's activity test environment.
func postback(t *testing.T, in PostbackInput) (PostbackResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	acts := &Activities{HTTP: NewPostbackClient(2 * time.Second)}
	env.RegisterActivity(acts)
	val, err := env.ExecuteActivity(acts.Postback, in)
	var res PostbackResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

func TestPostback(t *testing.T) {
	t.Parallel()
	body := message.NewPostback(message.Identity{DispatchID: "acf471119f7449d579e8089032003ded"}, message.StatusDelivered,
		time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), "", message.SendTimes{})
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		wantErr   string // empty: success
		retryable bool
	}{
		{name: "2xx", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }},
		{name: "503 is retried", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}, wantErr: "endpoint answered 503 Service Unavailable", retryable: true},
		{name: "redirects are not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantErr: "endpoint answered 302 Found", retryable: true},
		{name: "4xx is retried too", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusBadRequest)
		}, wantErr: "endpoint answered 400 Bad Request", retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got message.Postback
			var contentType string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				contentType = r.Header.Get("Content-Type")
				raw, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(raw, &got)
				tt.handler(w, r)
			}))
			defer srv.Close()
			res, err := postback(t, PostbackInput{URL: srv.URL, Body: body})
			if got.DispatchID != body.DispatchID || got.Status != message.StatusDelivered || contentType != "application/json" {
				t.Errorf("endpoint got %+v as %q, want the postback as application/json", got, contentType)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if res.StatusCode != http.StatusNoContent || res.Attempt != 1 || res.DeliveredAt.IsZero() {
					t.Errorf("got %+v, want 204 at attempt 1", res)
				}
				return
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || !strings.Contains(appErr.Message(), tt.wantErr) || appErr.NonRetryable() == tt.retryable {
				t.Errorf("got error %v, want retryable=%v containing %q", err, tt.retryable, tt.wantErr)
			}
		})
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
	_, err = postback(t, PostbackInput{URL: url})
	var appErr *temporal.ApplicationError
	if err == nil || !strings.Contains(err.Error(), "connection refused") || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		t.Errorf("got %v, want a retryable connection refused", err)
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
