package channel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testAccountSID = "AC00000000000000000000000000000000"
	testAuthToken  = "test-auth-token"
	testFrom       = "+15005550006"
)

// A Message resource as Twilio's Messages API answers a create (201 Created).
const twilioCreated = `{
  "account_sid": "AC00000000000000000000000000000000",
  "api_version": "2010-04-01",
  "body": "Your order shipped: check your inbox.",
  "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
  "date_sent": null,
  "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
  "direction": "outbound-api",
  "error_code": null,
  "error_message": null,
  "from": "+15005550006",
  "messaging_service_sid": null,
  "num_media": "0",
  "num_segments": "1",
  "price": null,
  "price_unit": "USD",
  "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
  "status": "queued",
  "subresource_uris": {"media": "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/SM1f0e8ae6ade43cb3c0ce4525424e404f/Media.json"},
  "to": "+14155552345",
  "uri": "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/SM1f0e8ae6ade43cb3c0ce4525424e404f.json"
}`

// twilioRequest is what the test server saw of one request.
type twilioRequest struct {
	method, path, contentType string
	user, pass                string
	authOK                    bool
	form                      url.Values
}

// twilioServer answers every request with status and body, and reports each
// request on the returned channel.
func twilioServer(t *testing.T, status int, body string) (*httptest.Server, <-chan twilioRequest, *atomic.Int32) {
	t.Helper()
	seen := make(chan twilioRequest, 10)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		user, pass, ok := r.BasicAuth()
		_ = r.ParseForm()
		seen <- twilioRequest{
			method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
			user: user, pass: pass, authOK: ok, form: r.PostForm,
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, seen, &n
}

func TestSMS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		body      string
		callback  string
		want      Result
		permanent string // the PermanentError's reason, if one is wanted
		transient string // a substring of the transient error, if one is wanted
	}{
		{
			name: "created", status: http.StatusCreated, body: twilioCreated,
			callback: "https://dispatchflow.example/v1/fallback/sms-status?dispatch_id=d1&step=0",
			want:     Result{Channel: "sms", ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Status: "queued"},
		},
		{
			name: "created without status callback", status: http.StatusCreated, body: twilioCreated,
			want: Result{Channel: "sms", ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Status: "queued"},
		},
		{
			name: "invalid number", status: http.StatusBadRequest,
			body:      `{"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`,
			permanent: "21211 The 'To' number +15005550001 is not a valid phone number.",
		},
		{
			name: "bad credentials", status: http.StatusUnauthorized,
			body:      `{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}`,
			permanent: "20003 Authenticate",
		},
		{
			name: "4xx without a twilio body", status: http.StatusNotFound, body: `not found`,
			permanent: "twilio answered 404 Not Found: not found",
		},
		{
			name: "2xx without a sid", status: http.StatusOK, body: `<html>hello</html>`,
			permanent: "answered 200 OK without a message sid: <html>hello</html>",
		},
		{
			name: "rate limited", status: http.StatusTooManyRequests,
			body:      `{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}`,
			transient: "twilio answered 429 Too Many Requests: 20429 Too Many Requests",
		},
		{
			name: "request timeout", status: http.StatusRequestTimeout, body: ``,
			transient: "twilio answered 408 Request Timeout",
		},
		{
			name: "unavailable", status: http.StatusServiceUnavailable, body: `{"code": 20503, "message": "Service Unavailable", "status": 503}`,
			transient: "twilio answered 503 Service Unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen, attempts := twilioServer(t, tt.status, tt.body)
			s := &SMS{BaseURL: srv.URL + "/", AccountSID: testAccountSID, AuthToken: testAuthToken, From: testFrom, HTTP: NewHTTPClient(5*time.Second, nil)}
			m := Message{
				DispatchID: "d1", Step: 0, IdempotencyKey: "d1-fallback-0", Channel: "sms",
				To: "+14155552345", Text: "Your order shipped: check your inbox.", Reason: "bounced",
				StatusCallbackURL: tt.callback,
			}
			got, err := s.Send(context.Background(), m)

			req := <-seen
			if req.method != http.MethodPost {
				t.Errorf("got method %s, want POST", req.method)
			}
			if want := "/2010-04-01/Accounts/" + testAccountSID + "/Messages.json"; req.path != want {
				t.Errorf("got path %s, want %s", req.path, want)
			}
			if req.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("got Content-Type %q, want application/x-www-form-urlencoded", req.contentType)
			}
			if !req.authOK || req.user != testAccountSID || req.pass != testAuthToken {
				t.Errorf("got basic auth %q:%q (present %v), want %s:%s", req.user, req.pass, req.authOK, testAccountSID, testAuthToken)
			}
			wantForm := url.Values{"To": {m.To}, "From": {testFrom}, "Body": {m.Text}}
			if tt.callback != "" {
				wantForm.Set("StatusCallback", tt.callback)
			}
			if req.form.Encode() != wantForm.Encode() {
				t.Errorf("got form %s, want %s", req.form.Encode(), wantForm.Encode())
			}
			if n := attempts.Load(); n != 1 {
				t.Errorf("got %d requests, want 1 (Temporal owns retries)", n)
			}

			if !checkOutcome(t, err, tt.permanent, tt.transient) {
				return
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSMSNetworkErrors(t *testing.T) {
	t.Parallel()
	// Connection refused: a server that was listening and is closed.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	// A server slower than the client's per-attempt timeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close return at once

	tests := []struct {
		name    string
		baseURL string
		timeout time.Duration
	}{
		{name: "connection refused", baseURL: closed.URL, timeout: 5 * time.Second},
		{name: "attempt timeout", baseURL: slow.URL, timeout: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &SMS{BaseURL: tt.baseURL, AccountSID: testAccountSID, AuthToken: testAuthToken, From: testFrom, HTTP: NewHTTPClient(tt.timeout, nil)}
			_, err := s.Send(context.Background(), Message{To: "+14155552345", Text: "hi"})
			if _, permanent := IsPermanent(err); err == nil || permanent {
				t.Errorf("got error %v, want a transient error", err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "sms via 127.0.0.1:") {
				t.Errorf("got error %q, want it to name the host", err)
			}
		})
	}
}

func TestSMSNotConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sms  *SMS
		to   string
	}{
		{name: "no account", sms: &SMS{AuthToken: testAuthToken}, to: "+14155552345"},
		{name: "no token", sms: &SMS{AccountSID: testAccountSID}, to: "+14155552345"},
		{name: "no number", sms: &SMS{AccountSID: testAccountSID, AuthToken: testAuthToken}, to: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.sms.Send(context.Background(), Message{To: tt.to})
			if _, permanent := IsPermanent(err); !permanent {
				t.Errorf("got error %v, want a permanent error", err)
			}
		})
	}
}
