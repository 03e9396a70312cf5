package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestListPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  string
	}{
		{"", "/namespaces/default/workflows"},
		// The form the Temporal UI itself puts in its address bar.
		{`DispatchStatus="bounced"`, "/namespaces/default/workflows?query=DispatchStatus%3D%22bounced%22"},
		{`DispatchStatus="bounced" AND FallbackState="escalated"`,
			"/namespaces/default/workflows?query=DispatchStatus%3D%22bounced%22+AND+FallbackState%3D%22escalated%22"},
	}
	for _, tt := range tests {
		if got := listPath(tt.query); got != tt.want {
			t.Errorf("listPath(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

func TestWithoutEnv(t *testing.T) {
	t.Parallel()
	env := []string{
		"PATH=/usr/bin",
		"TEMPORAL_ADDRESS=prod:7233",
		"TEMPORAL_ADDRESS_FILE=x",
		"DISPATCHFLOW_ESP=smtp",
		"DISPATCHFLOW_HTTP_ADDR=:8080",
		"NOT_DISPATCHFLOW_X=1",
	}
	got := withoutEnv(env, "TEMPORAL_ADDRESS", "DISPATCHFLOW_")
	want := []string{"PATH=/usr/bin", "TEMPORAL_ADDRESS_FILE=x", "NOT_DISPATCHFLOW_X=1"}
	if !slices.Equal(got, want) {
		t.Errorf("withoutEnv = %q, want %q", got, want)
	}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	msgs := messages("n1")
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ExternalSendID] {
			t.Errorf("external_send_id %q used twice: the second send would be a replay", m.ExternalSendID)
		}
		seen[m.ExternalSendID] = true
		if !strings.HasSuffix(m.ExternalSendID, "-n1") {
			t.Errorf("external_send_id %q does not carry the nonce", m.ExternalSendID)
		}
	}
	// Only the escalated message has a fallback policy, and it escalates on a bounce.
	b, _ := json.Marshal(msgs[2].Request["fallback"])
	if got := string(b); !strings.Contains(got, `"on":["bounced"]`) || !strings.Contains(got, `"channel":"sandbox"`) {
		t.Errorf("escalated message's fallback = %s, want on bounced with a sandbox step", got)
	}
	for _, m := range msgs[:2] {
		if _, ok := m.Request["fallback"]; ok {
			t.Errorf("the %s message has a fallback policy", m.Name)
		}
	}
}

// TestAPI runs send and waitFinal against a fake of the API that reports the
// message queued twice, then bounced with its fallback escalated.
func TestAPI(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	var posted map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer dfk_t_key" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error": "missing API key"}`)
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/messages":
			_ = json.NewDecoder(r.Body).Decode(&posted)
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"dispatch_id": "d1", "status": "queued"}`)
		case "GET /v1/messages/d1":
			if polls.Add(1) <= 2 {
				io.WriteString(w, `{"dispatch_id": "d1", "status": "queued", "fallback": {"state": "pending"}}`)
				return
			}
			io.WriteString(w, `{"dispatch_id": "d1", "status": "bounced", "fallback": {"state": "escalated"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	a := newAPI(srv.URL, "dfk_t_key")
	m := messages("t")[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.send(ctx, m); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m.DispatchID != "d1" {
		t.Errorf("dispatch_id = %q, want d1", m.DispatchID)
	}
	if posted["to"] != "bounce@example.com" {
		t.Errorf("posted to = %v, want bounce@example.com", posted["to"])
	}
	if err := a.waitFinal(ctx, m); err != nil {
		t.Fatalf("waitFinal: %v", err)
	}
	if n := polls.Load(); n != 3 {
		t.Errorf("polled %d times, want 3 (until bounced and escalated)", n)
	}

	// A message that never gets there: the error says where it stands.
	stuck := &message{Name: "delivered", DispatchID: "d1", WantStatus: "delivered"}
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	err := a.waitFinal(short, stuck)
	if err == nil || !strings.Contains(err.Error(), `status "bounced"`) || !strings.Contains(err.Error(), `want status "delivered"`) {
		t.Errorf("waitFinal of a stuck message: got %v, want an error naming its status and the wanted one", err)
	}
}

// TestCheckPage drives the real Chromium against pages served on loopback
// that, like the Temporal UI, render their content after loading.
func TestCheckPage(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("no /usr/bin/chromium (apt-get install -y chromium, or make ui-check)")
	}
	mux := http.NewServeMux()
	// Shows the rows 300 ms after loading, as the UI does after fetching.
	mux.HandleFunc("/list", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html><body><h1>Workflows</h1><table id="t"></table><script>
setTimeout(() => { document.getElementById("t").innerHTML = "<tr><td>wf-bounced</td></tr><tr><td>wf-escalated</td></tr>"; }, 300);
</script></body></html>`)
	})
	// Markdown in a same-origin iframe, as the UI renders summaries.
	mux.HandleFunc("/frame", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html><body><p>Main</p><iframe id="f"></iframe><script>
const f = document.getElementById("f"); f.contentDocument.body.innerHTML = "<b>Status:</b> bounced since now";
</script></body></html>`)
	})
	// Shows the answer only once the button is pressed.
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html><body><input id="query-select" value="state"><button onclick="document.getElementById('out').innerText='&quot;status&quot;: &quot;bounced&quot;'">Run Query</button><pre id="out"></pre></body></html>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b, err := startBrowser(context.Background(), "/usr/bin/chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	b.wait = 3 * time.Second

	tests := []struct {
		name        string
		page        page
		wantErr     []string // each must be in the error; none: no error
		wantWarning string
	}{
		{
			name: "all there",
			page: page{Path: "/list", Want: []expect{{"wf-bounced", "the bounced"}, {"wf-escalated", "the escalated"}}, WantNot: []expect{{"wf-delivered", "the delivered"}}},
		},
		{
			name:    "one missing",
			page:    page{Path: "/list", Want: []expect{{"wf-bounced", "the bounced"}, {"wf-other", "the other message's workflow"}}},
			wantErr: []string{`missing the other message's workflow ("wf-other")`},
		},
		{
			name:    "one that must not be there",
			page:    page{Path: "/list", Want: []expect{{"wf-bounced", "the bounced"}}, WantNot: []expect{{"wf-escalated", "the escalated message's workflow"}}},
			wantErr: []string{`shows the escalated message's workflow ("wf-escalated"), which it must not`},
		},
		{
			name:        "one to avoid",
			page:        page{Path: "/list", Want: []expect{{"wf-bounced", "the bounced"}}, Avoid: []expect{{"wf-escalated", "the escalated"}}},
			wantWarning: `shows the escalated ("wf-escalated")`,
		},
		{
			name: "text in an iframe",
			page: page{Path: "/frame", Want: []expect{{"Status: bounced since", "the current details"}}},
		},
		{
			name: "press a button",
			page: page{Path: "/query", Ready: []expect{{"Run Query", "the button"}}, Press: pressRunQuery, Want: []expect{{`"status": "bounced"`, "the answer"}}},
		},
		{
			name:    "no button to press",
			page:    page{Path: "/list", Ready: []expect{{"Run Query", "the Run Query button"}}, Press: pressRunQuery, Want: []expect{{"wf-bounced", "the bounced"}}},
			wantErr: []string{`missing the Run Query button ("Run Query")`},
		},
	}
	for i, tt := range tests { // one browser tab: not parallel
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.page.Name = "page" + string(rune('a'+i))
			warnings, err := checkPage(b, dir, srv.URL, tt.page, io.Discard)
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("got error %v, want none", err)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got error %v, want one containing %q", err, want)
				}
			}
			if got := strings.Join(warnings, "\n"); !strings.Contains(got, tt.wantWarning) || (tt.wantWarning == "" && got != "") {
				t.Errorf("got warnings %q, want %q", got, tt.wantWarning)
			}
			// The screenshot is a PNG file, even when the check fails.
			png, err := os.ReadFile(dir + "/" + tt.page.Name + ".png")
			if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
				t.Errorf("screenshot: %v, %d bytes, want a PNG", err, len(png))
			}
		})
	}
}

// cipherOnly passes a history whose payloads are encrypted, and names what a
// history in clear shows, or that the scan read nothing.
func TestCipherOnly(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secrets := []expect{{"Secret subject", "the subject"}, {"ok@example.com", "the recipient's address"}}
	encrypted := `{"history":{"events":[{"workflowExecutionStartedEventAttributes":{"input":{"payloads":[` +
		`{"metadata":{"encoding":"` + b64("binary/encrypted") + `"},"data":"` + b64("\x01\x02ciphertext") + `"}]},` +
		`"searchAttributes":{"indexedFields":{"ExternalSendId":{"data":"` + b64(`"ext-1"`) + `"}}}}}]}}`
	if got := cipherOnly([]byte(encrypted), "ext-1", secrets); len(got) != 0 {
		t.Errorf("encrypted history: %v, want no problem", got)
	}
	plain := strings.ReplaceAll(encrypted, b64("\x01\x02ciphertext"), b64(`{"to":"ok@example.com","subject":"Secret subject"}`))
	plain = strings.ReplaceAll(plain, b64("binary/encrypted"), b64("json/plain"))
	got := strings.Join(cipherOnly([]byte(plain), "ext-1", secrets), "\n")
	for _, want := range []string{"no payload of encoding binary/encrypted", "the subject", "the recipient's address"} {
		if !strings.Contains(got, want) {
			t.Errorf("history in clear: %q, want it to name %q", got, want)
		}
	}
	if got := cipherOnly([]byte(encrypted), "ext-2", secrets); len(got) != 1 || !strings.Contains(got[0], "reads nothing") {
		t.Errorf("scan of another message: %v, want that it reads nothing", got)
	}
}
