package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

const (
	knownID     = "0f8fad5bd9cb469fa16570867728950e"
	escalatedID = "1b4e28ba2fa1411d9a2d0a4a5f7e0c3b"
	flakyID     = "2c5e28ba2fa1411d9a2d0a4a5f7e0c3b"
)

// request is what the fake API received.
type request struct {
	Method, Path string
	Query        map[string][]string
	Header       http.Header
	Body         string
}

// fakeAPI imitates the API's answers (the API itself is tested in starter and
// devserver/integration); states are the real types' JSON.
type fakeAPI struct {
	mu    sync.Mutex
	reqs  []request
	flaky int // 503s left for flakyID and for sends
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), string(body)})
	flaky := f.flaky > 0
	if flaky {
		f.flaky--
	}
	f.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.Unmarshal(body, &req)
		switch {
		case flaky:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "Service Unavailable: temporal: connection refused"})
		case req["to"] == "bad":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `to: "bad" is not an email address`})
		default:
			if req["external_send_id"] == "order-1" {
				w.Header().Set("Idempotent-Replayed", "true")
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"dispatch_id": knownID, "status": "queued"})
		}
	})
	mux.HandleFunc("GET /v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); {
		case id == flakyID && flaky:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "Service Unavailable: temporal: deadline exceeded"})
		case id == knownID || id == flakyID:
			writeJSON(w, http.StatusOK, sampleState())
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "message " + id + " not found"})
		}
	})
	mux.HandleFunc("GET /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		started := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
		msg := func(id, status string, closed bool) map[string]any {
			m := map[string]any{"dispatch_id": id, "status": status, "external_send_id": "order-" + id[:4],
				"campaign_api_id": "spring", "workspace": "default", "esp": "sandbox", "fallback_state": "none",
				"started_at": started}
			if closed {
				m["closed_at"] = started.Add(time.Hour)
			}
			return m
		}
		if r.URL.Query().Get("page_token") == "" {
			writeJSON(w, http.StatusOK, map[string]any{"messages": []any{msg(knownID, "bounced", false)}, "next_page_token": "page-2"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"messages": []any{msg(escalatedID, "delivered", true)}})
	})
	mux.HandleFunc("POST /v1/events/{provider}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("provider") != "generic" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": `unknown provider "` + r.PathValue("provider") + `"`})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"accepted": 1, "duplicates": 0, "unmatched": 1})
	})
	mux.HandleFunc("POST /v1/messages/{id}/fallback/cancel", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == escalatedID {
			writeJSON(w, http.StatusConflict, map[string]string{"error": "the fallback already escalated"})
			return
		}
		writeJSON(w, http.StatusOK, workflows.FallbackState{State: workflows.FallbackCancelled})
	})
	mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// sampleState is a bounced message's state as the API answers it.
func sampleState() workflows.State {
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	return workflows.State{
		DispatchID: knownID, Status: message.StatusBounced, Reason: "550 5.1.1 no such user",
		ExternalSendID: "order-1", CampaignAPIID: "spring", Recipient: "bounce@example.com",
		ESP:       &esp.Receipt{Provider: "sandbox", MessageID: "sb-42"},
		UpdatedAt: t0.Add(2 * time.Second), TrackingUntil: t0.Add(72 * time.Hour),
		Events: []workflows.EventRecord{
			{Provider: "sandbox", Type: "bounced", ID: "ev-1", Timestamp: t0.Add(2 * time.Second), Reason: "550 5.1.1 no such user", ChangedStatus: true},
			{Provider: "generic", Type: "processed", ID: "ev-2", Timestamp: t0.Add(3 * time.Second), Note: "status already bounced"},
		},
		DuplicateEvents: 1,
		Postbacks: []workflows.PostbackRecord{
			{Seq: 1, Status: message.StatusSent, Endpoint: "crm", State: workflows.PostbackDelivered, Attempts: []postback.Attempt{{StatusCode: 200, Class: postback.ClassSuccess}}, DeliveredAt: t0.Add(time.Second)},
			{Seq: 2, Status: message.StatusBounced, Endpoint: "crm", State: workflows.PostbackDelivering, Attempts: make([]postback.Attempt, 3), LastError: "HTTP 502", NextAttemptAt: t0.Add(time.Minute)},
		},
		Fallback: workflows.FallbackState{State: workflows.FallbackNone},
	}
}

func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	reqFile := filepath.Join(dir, "request.json")
	if err := os.WriteFile(reqFile, []byte(`{"to":"ok@example.com","subject":"Hi","text":"Hello",
		"fallback":{"delivered_within":"10s","steps":[{"channel":"sandbox","to":"+33612345678","text":"hi"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	eventFile := filepath.Join(dir, "event.json")
	const event = `{"dispatch_id":"` + knownID + `","event":"bounced","reason":"550 5.1.1 late bounce","event_id":"evt-1"}`
	if err := os.WriteFile(eventFile, []byte(event), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		stdin  string
		flaky  int
		env    string // DISPATCHFLOW_API_URL, when not passed with --api
		code   int
		stdout []string // each must appear, in this order
		stderr []string
		check  func(t *testing.T, reqs []request)
	}{
		{
			name: "send", args: []string{"send", "--to", "Ann <ok@example.com>", "--subject", "Your order", "--text", "Thanks.",
				"--external-send-id", "order-2", "--campaign-api-id", "spring", "--postback-url", "http://app.internal/pb", "--workspace", "shop"},
			stdout: []string{"dispatch_id", knownID, "status", "queued"},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 1, "POST", "/v1/messages")
				wantBody(t, reqs[0].Body, map[string]any{"to": "Ann <ok@example.com>", "subject": "Your order", "text": "Thanks.",
					"external_send_id": "order-2", "campaign_api_id": "spring", "postback_url": "http://app.internal/pb", "workspace": "shop"})
				if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			},
		},
		{
			name: "send replayed", args: []string{"send", "--to", "ok@example.com", "--subject", "s", "--text", "t", "--external-send-id", "order-1"},
			stdout: []string{knownID, "already sent with this external_send_id"},
		},
		{
			name: "send --json", args: []string{"--json", "send", "--to", "x"}, code: 2, // flags belong to the subcommand
			stderr: []string{"Usage:"},
		},
		{
			name: "send file with override", args: []string{"send", "--file", reqFile, "--to", "bounce@example.com", "--json"},
			stdout: []string{`"dispatch_id": "` + knownID + `"`, `"status": "queued"`},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 1, "POST", "/v1/messages")
				wantBody(t, reqs[0].Body, map[string]any{"to": "bounce@example.com", "subject": "Hi", "text": "Hello",
					"fallback": map[string]any{"delivered_within": "10s", "steps": []any{map[string]any{"channel": "sandbox", "to": "+33612345678", "text": "hi"}}}})
			},
		},
		{
			name: "send file from stdin", args: []string{"send", "--file", "-"}, stdin: `{"to":"ok@example.com","subject":"s","html":"<p>hi</p>"}`,
			stdout: []string{knownID},
			check: func(t *testing.T, reqs []request) {
				wantBody(t, reqs[0].Body, map[string]any{"to": "ok@example.com", "subject": "s", "html": "<p>hi</p>"})
			},
		},
		{name: "send nothing", args: []string{"send", "--json"}, code: 2, stderr: []string{"nothing to send", "Usage: dispatchflow send"}},
		{name: "send file missing", args: []string{"send", "--file", filepath.Join(dir, "nope.json")}, code: 1, stderr: []string{"--file", "no such file"}},
		{name: "send refused", args: []string{"send", "--to", "bad", "--subject", "s", "--text", "t"}, code: 1,
			stderr: []string{`dispatchflow send: to: "bad" is not an email address (HTTP 400)`}},
		{
			// Without external_send_id a retry could send the email twice: one try only.
			name: "send not retried", args: []string{"send", "--to", "ok@example.com", "--subject", "s", "--text", "t"}, flaky: 5, code: 1,
			stderr: []string{"temporal: connection refused (HTTP 503)"},
			check:  func(t *testing.T, reqs []request) { wantRequest(t, reqs, 1, "POST", "/v1/messages") },
		},
		{
			name: "send with external_send_id retried", args: []string{"send", "--to", "ok@example.com", "--subject", "s", "--text", "t", "--external-send-id", "order-9"},
			flaky: 1, stdout: []string{knownID},
			check: func(t *testing.T, reqs []request) { wantRequest(t, reqs, 2, "POST", "/v1/messages") },
		},
		{
			name: "status", args: []string{"status", knownID},
			stdout: []string{
				"dispatch_id", knownID, "status", "bounced", "reason", "550 5.1.1 no such user",
				"recipient", "bounce@example.com", "esp", "sandbox (message id sb-42)", "fallback", "none",
				"Events:", "2026-05-04T10:00:02Z", "bounced", "sandbox", "yes", "550 5.1.1 no such user",
				"processed", "generic", "no", "status already bounced", "(1 duplicate events dropped)",
				"Postbacks:", "1", "sent", "delivered", "2026-05-04T10:00:01Z",
				"2", "bounced", "delivering", "3", "next 2026-05-04T10:01:00Z", "HTTP 502",
			},
			check: func(t *testing.T, reqs []request) { wantRequest(t, reqs, 1, "GET", "/v1/messages/"+knownID) },
		},
		{
			name: "status --json after the argument", args: []string{"status", knownID, "--json"},
			stdout: []string{`"dispatch_id": "` + knownID + `"`, `"status": "bounced"`, `"postbacks": [`},
		},
		{name: "status retried on 503", args: []string{"status", flakyID}, flaky: 1, stdout: []string{"bounced"},
			check: func(t *testing.T, reqs []request) { wantRequest(t, reqs, 2, "GET", "/v1/messages/"+flakyID) }},
		{name: "status unknown", args: []string{"status", "ffffffffffffffffffffffffffffffff"}, code: 1,
			stderr: []string{"message ffffffffffffffffffffffffffffffff not found (HTTP 404)"}},
		{name: "status without id", args: []string{"status"}, code: 2, stderr: []string{"want 1 argument(s) <dispatch_id>, got 0", "Usage: dispatchflow status"}},
		{name: "status two ids", args: []string{"status", knownID, flakyID}, code: 2, stderr: []string{"got 2"}},
		{name: "status bad flag", args: []string{"status", "--jsn", knownID}, code: 2, stderr: []string{"flag provided but not defined: -jsn"}},
		{name: "status --help", args: []string{"status", "--help"}, stdout: []string{"Usage: dispatchflow status [flags] <dispatch_id>", "--api URL", "--json", "Example:"}},
		{name: "status from env", args: []string{"status", knownID}, env: "server", stdout: []string{"bounced"}},
		{name: "bad --api", args: []string{"status", "--api", "localhost:8080", knownID}, code: 2, stderr: []string{"--api", "not an absolute http(s) URL"}},
		{name: "API down", args: []string{"status", "--api", "http://127.0.0.1:1", knownID}, code: 1, stderr: []string{"connection refused"}},
		{
			name: "list", args: []string{"list", "--status", "bounced", "--external-send-id", "order-1", "--campaign-api-id", "spring", "--workspace", "default", "--page-size", "1"},
			stdout: []string{"DISPATCH_ID", "STATUS", "EXTERNAL_SEND_ID", "CAMPAIGN_API_ID", "WORKSPACE", "ESP", "FALLBACK", "STARTED", "CLOSED",
				knownID, "bounced", "order-0f8f", "spring", "default", "sandbox", "none", "2026-05-04T10:00:00Z", "-"},
			stderr: []string{"more: --page-token page-2"},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 1, "GET", "/v1/messages")
				want := map[string][]string{"status": {"bounced"}, "external_send_id": {"order-1"}, "campaign_api_id": {"spring"}, "workspace": {"default"}, "page_size": {"1"}}
				if !equalJSON(reqs[0].Query, want) {
					t.Errorf("query %v, want %v", reqs[0].Query, want)
				}
			},
		},
		{
			name: "list --all", args: []string{"list", "--all"},
			stdout: []string{knownID, "bounced", escalatedID, "delivered", "2026-05-04T11:00:00Z"},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 2, "GET", "/v1/messages")
				if got := reqs[1].Query["page_token"]; len(got) != 1 || got[0] != "page-2" {
					t.Errorf("second page_token %v, want page-2", got)
				}
			},
		},
		{
			name: "list --json one page", args: []string{"list", "--json", "--page-token", "page-2"},
			stdout: []string{`"messages": [`, escalatedID},
		},
		{
			name: "list --all --json", args: []string{"list", "--all", "--json"},
			stdout: []string{`"messages": [`, `"dispatch_id": "` + knownID + `"`, `"closed_at": "2026-05-04T11:00:00Z"`, `"dispatch_id": "` + escalatedID + `"`},
		},
		{name: "list bad page size", args: []string{"list", "--page-size", "x"}, code: 2, stderr: []string{"invalid value", "-page-size"}},
		{name: "list stray argument", args: []string{"list", "bounced"}, code: 2, stderr: []string{"want 0 argument(s)"}},
		{
			name: "events post", args: []string{"events", "post", "generic", eventFile, "--header", "X-Signature: abc", "--header", "X-Other:  1 2"},
			stdout: []string{"accepted 1, duplicates 0, unmatched 1"}, stderr: []string{"unmatched: no open message"},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 1, "POST", "/v1/events/generic")
				if reqs[0].Body != event {
					t.Errorf("body %q, want the file as is %q", reqs[0].Body, event)
				}
				if got := reqs[0].Header.Get("X-Signature"); got != "abc" {
					t.Errorf("X-Signature %q, want abc", got)
				}
				if got := reqs[0].Header.Get("X-Other"); got != "1 2" {
					t.Errorf("X-Other %q, want %q", got, "1 2")
				}
			},
		},
		{
			name: "events post stdin with content type", args: []string{"events", "post", "--json", "--header", "Content-Type: application/x-ndjson", "generic", "-"},
			stdin: event, stdout: []string{`"accepted": 1`},
			check: func(t *testing.T, reqs []request) {
				if reqs[0].Body != event || reqs[0].Header.Get("Content-Type") != "application/x-ndjson" {
					t.Errorf("body %q, Content-Type %q; want the stdin and the header's", reqs[0].Body, reqs[0].Header.Get("Content-Type"))
				}
			},
		},
		{name: "events post unknown provider", args: []string{"events", "post", "sendmail", eventFile}, code: 1, stderr: []string{`unknown provider "sendmail" (HTTP 404)`}},
		{name: "events post bad header", args: []string{"events", "post", "--header", "nocolon", "generic", eventFile}, code: 2, stderr: []string{`"nocolon" is not 'Name: value'`}},
		{name: "events without verb", args: []string{"events", "generic", eventFile}, code: 2, stderr: []string{"want 'dispatchflow events post'"}},
		{name: "events post --help", args: []string{"events", "post", "-h"}, stdout: []string{"Usage: dispatchflow events post [flags] <provider> <file>", "--header 'Name: value'"}},
		{
			name: "fallback cancel", args: []string{"fallback", "cancel", knownID, "--reason", "called them"},
			stdout: []string{"fallback", "cancelled"},
			check: func(t *testing.T, reqs []request) {
				wantRequest(t, reqs, 1, "POST", "/v1/messages/"+knownID+"/fallback/cancel")
				wantBody(t, reqs[0].Body, map[string]any{"reason": "called them"})
			},
		},
		{
			name: "fallback cancel without reason sends no body", args: []string{"fallback", "cancel", "--json", knownID},
			stdout: []string{`"state": "cancelled"`},
			check: func(t *testing.T, reqs []request) {
				if reqs[0].Body != "" {
					t.Errorf("body %q, want none", reqs[0].Body)
				}
			},
		},
		{name: "fallback cancel after escalation", args: []string{"fallback", "cancel", escalatedID}, code: 1, stderr: []string{"the fallback already escalated (HTTP 409)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{flaky: tt.flaky}
			srv := httptest.NewServer(api)
			defer srv.Close()
			args := tt.args
			if tt.env != "" {
				t.Setenv("DISPATCHFLOW_API_URL", srv.URL)
			} else if len(args) > 0 && !contains(args, "--api") {
				t.Setenv("DISPATCHFLOW_API_URL", "http://127.0.0.1:1") // --api must win
				args = append(append([]string(nil), args...), "--api", srv.URL)
			}
			var stdout, stderr bytes.Buffer
			code := run(args, stdio{strings.NewReader(tt.stdin), &stdout, &stderr})
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			wantInOrder(t, "stdout", stdout.String(), tt.stdout)
			wantInOrder(t, "stderr", stderr.String(), tt.stderr)
			if tt.check != nil {
				tt.check(t, api.requests())
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func wantInOrder(t *testing.T, name, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s lacks %q (in order)\n%s", name, w, got)
			return
		}
		rest = rest[i+len(w):]
	}
}

func wantRequest(t *testing.T, reqs []request, n int, method, path string) {
	t.Helper()
	if len(reqs) != n {
		t.Fatalf("%d requests, want %d: %+v", len(reqs), n, reqs)
	}
	for _, r := range reqs {
		if r.Method != method || r.Path != path {
			t.Errorf("request %s %s, want %s %s", r.Method, r.Path, method, path)
		}
	}
}

func wantBody(t *testing.T, body string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if !equalJSON(got, want) {
		t.Errorf("body %s, want %v", body, want)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
