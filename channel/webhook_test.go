package channel

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type webhookRequest struct {
	method, contentType, userAgent, idempotencyKey string
	body                                           map[string]any
	raw                                            string
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		answer    string
		want      Result
		permanent string
		transient string
	}{
		{name: "ok", status: http.StatusOK, want: Result{Channel: "webhook", Status: "200 OK", Confirmed: true}},
		{name: "accepted", status: http.StatusAccepted, want: Result{Channel: "webhook", Status: "202 Accepted", Confirmed: true}},
		{name: "no content", status: http.StatusNoContent, want: Result{Channel: "webhook", Status: "204 No Content", Confirmed: true}},
		{name: "bad request", status: http.StatusBadRequest, answer: `{"error": "unknown dispatch"}`, permanent: `endpoint answered 400 Bad Request: {"error": "unknown dispatch"}`},
		{name: "gone", status: http.StatusGone, permanent: "endpoint answered 410 Gone"},
		{name: "request timeout", status: http.StatusRequestTimeout, transient: "endpoint answered 408 Request Timeout"},
		{name: "too many requests", status: http.StatusTooManyRequests, transient: "endpoint answered 429 Too Many Requests"},
		{name: "unavailable", status: http.StatusServiceUnavailable, transient: "endpoint answered 503 Service Unavailable"},
		{name: "internal error", status: http.StatusInternalServerError, transient: "endpoint answered 500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan webhookRequest, 10)
			var attempts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				raw, _ := io.ReadAll(r.Body)
				var body map[string]any
				_ = json.Unmarshal(raw, &body)
				seen <- webhookRequest{
					method: r.Method, contentType: r.Header.Get("Content-Type"), userAgent: r.Header.Get("User-Agent"),
					idempotencyKey: r.Header.Get("Idempotency-Key"), body: body, raw: string(raw),
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			t.Cleanup(srv.Close)

			w := &Webhook{HTTP: NewHTTPClient(5*time.Second, nil)}
			m := Message{
				DispatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", Step: 1, IdempotencyKey: "0f8fad5b-d9cb-469f-a165-70867728950e-fallback-1",
				Channel: "webhook", URL: srv.URL + "/hooks/fallback?tenant=7", Reason: "not_delivered_in_time",
				ExternalSendID: "ext-42", CampaignAPIID: "camp-9", EmailStatus: "sent", Recipient: "ann@example.com", Subject: "Your receipt",
				// Text is not part of a webhook's body.
				Text: "ignored",
			}
			got, err := w.Send(context.Background(), m)

			req := <-seen
			if req.method != http.MethodPost {
				t.Errorf("got method %s, want POST", req.method)
			}
			if req.contentType != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", req.contentType)
			}
			if req.userAgent != "dispatchflow-fallback/1" {
				t.Errorf("got User-Agent %q, want dispatchflow-fallback/1", req.userAgent)
			}
			if req.idempotencyKey != m.IdempotencyKey {
				t.Errorf("got Idempotency-Key %q, want %q", req.idempotencyKey, m.IdempotencyKey)
			}
			wantBody := map[string]any{
				"dispatch_id": m.DispatchID, "external_send_id": "ext-42", "campaign_api_id": "camp-9",
				"email_status": "sent", "recipient": "ann@example.com", "subject": "Your receipt",
				"reason": "not_delivered_in_time", "step": float64(1), "idempotency_key": m.IdempotencyKey,
			}
			if !maps.Equal(req.body, wantBody) {
				t.Errorf("got body %s, want %v", req.raw, wantBody)
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

// Empty fields about the original email are left out of the body; step 0 is not.
func TestWebhookOmitsEmptyFields(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		seen <- string(raw)
	}))
	t.Cleanup(srv.Close)
	w := &Webhook{HTTP: NewHTTPClient(5*time.Second, nil)}
	if _, err := w.Send(context.Background(), Message{DispatchID: "d1", IdempotencyKey: "d1-fallback-0", URL: srv.URL, Reason: "bounced"}); err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	got, want := <-seen, `{"dispatch_id":"d1","reason":"bounced","step":0,"idempotency_key":"d1-fallback-0"}`
	if got != want {
		t.Errorf("got body %s, want %s", got, want)
	}
}

// A redirect is a failure, and its target is never requested.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	t.Cleanup(target.Close)
	tests := []struct {
		name   string
		status int
	}{
		{name: "found", status: http.StatusFound},
		{name: "moved permanently", status: http.StatusMovedPermanently},
		{name: "temporary redirect", status: http.StatusTemporaryRedirect},
		{name: "permanent redirect", status: http.StatusPermanentRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", tt.status)
			}))
			t.Cleanup(srv.Close)
			w := &Webhook{HTTP: NewHTTPClient(5*time.Second, nil)}
			got, err := w.Send(context.Background(), Message{DispatchID: "d1", IdempotencyKey: "d1-fallback-0", URL: srv.URL})
			if err == nil || got.Confirmed {
				t.Fatalf("got %+v, %v, want an error", got, err)
			}
			if _, permanent := IsPermanent(err); permanent {
				t.Errorf("got permanent error %v, want a transient one", err)
			}
			if !strings.Contains(err.Error(), "not followed") {
				t.Errorf("got error %q, want it to say the redirect was not followed", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := targetHits.Load(); n != 0 {
			t.Errorf("got %d requests to the redirect target, want 0", n)
		}
	})
}

func TestWebhookNetworkErrors(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close return at once
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
	}{
		{name: "connection refused", url: closed.URL, timeout: 5 * time.Second},
		{name: "attempt timeout", url: slow.URL, timeout: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := &Webhook{HTTP: NewHTTPClient(tt.timeout, nil)}
			_, err := w.Send(context.Background(), Message{DispatchID: "d1", URL: tt.url})
			if _, permanent := IsPermanent(err); err == nil || permanent {
				t.Errorf("got error %v, want a transient error", err)
			}
		})
	}
}

func TestWebhookBadURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url string }{
		{name: "empty", url: ""},
		{name: "unparsable", url: "http://[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := (&Webhook{}).Send(context.Background(), Message{URL: tt.url})
			if _, permanent := IsPermanent(err); !permanent {
				t.Errorf("got error %v, want a permanent error", err)
			}
		})
	}
}
