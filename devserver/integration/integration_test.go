// Package integration runs dispatchflow end to end on a real Temporal server
// started by the test (embedded, in-memory), with the real HTTP API, the real
// worker, the sandbox ESP posting its events through the public intake, a real
// SMTP server for the smtp ESP, and httptest endpoints receiving the postbacks.
package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tworker "go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/starter"
	"github.com/dispatchflow/dispatchflow/tracing"
	"github.com/dispatchflow/dispatchflow/worker"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// temporalAddr is the server shared by the tests of this package; each test has
// its own task queue, worker and API.
var temporalAddr string

func TestMain(m *testing.M) {
	// Before anything reads the system's CA pool (see snsHost).
	stopSNS, err := startSNSHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the SNS host:", err)
		os.Exit(1)
	}
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting Temporal:", err)
		os.Exit(1)
	}
	temporalAddr = srv.FrontendHostPort()
	code := m.Run()
	_ = srv.Stop()
	stopSNS()
	os.Exit(code)
}

// system is one running dispatchflow: API, worker and a postback receiver.
type system struct {
	t *testing.T
	// keys are the API keys of the system's keys file by name (see testKeys);
	// key is the one do sends ("admin": workspace default, every scope).
	keys map[string]string
	key  string
	// intakeSecret signs what do posts to the generic intake: the intake secret
	// of the key's workspace ("" sends it unsigned).
	intakeSecret string
	client       client.Client
	api          string
	cfg          config.Config
	postback     *receiver
	sends        atomic.Int32
	// sendGate, when set before the worker starts, holds every hand-over to
	// the ESP until it is closed.
	sendGate chan struct{}
	logger   *slog.Logger
	worker   tworker.Worker
}

// startWorker starts the system's worker; stopWorker stops it (Temporal keeps
// the work for the next one).
func (s *system) startWorker() {
	s.t.Helper()
	sender, err := worker.NewESP(s.cfg, s.logger)
	if err != nil {
		s.t.Fatal(err)
	}
	s.worker = worker.New(s.client, s.cfg, countingSender{sender, &s.sends, s.sendGate})
	if err := s.worker.Start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *system) stopWorker() {
	if s.worker != nil {
		s.worker.Stop()
		s.worker = nil
	}
}

// countingSender counts the messages handed to the ESP; with a gate, each
// hand-over waits for the gate to be closed, as a slow ESP API keeps it waiting.
type countingSender struct {
	esp.Sender
	n    *atomic.Int32
	gate chan struct{}
}

func (c countingSender) Send(ctx context.Context, e esp.Email) (esp.Receipt, error) {
	c.n.Add(1)
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return esp.Receipt{}, ctx.Err()
		}
	}
	return c.Sender.Send(ctx, e)
}

func setup(t *testing.T, edit func(*config.Config)) *system {
	t.Helper()
	return setupWith(t, newReceiver(t), edit)
}

// setupWith is setup with rcv as the postback receiver (s.postback), for
// configurations that register its URL.
func setupWith(t *testing.T, rcv *receiver, edit func(*config.Config)) *system {
	t.Helper()
	return setupTraced(t, rcv, nil, edit)
}

// setupTraced is setupWith whose client, worker and API record their spans
// with tp (nil: none, whatever the OTEL_* variables say).
func setupTraced(t *testing.T, rcv *receiver, tp trace.TracerProvider, edit func(*config.Config)) *system {
	t.Helper()
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.SandboxDelay = 50 * time.Millisecond
	cfg.Temporal.Address = temporalAddr
	cfg.TaskQueue = "it-" + strings.ReplaceAll(t.Name(), "/", "-")
	cfg.TrackingWindow = 10 * time.Second // grace 1s: the sandbox settles a message well within it
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	s := &system{t: t, postback: rcv}
	cfg.APIKeysFile, s.keys = writeTestKeys(t)
	s.key, s.intakeSecret = s.keys["admin"], testIntakeSecrets["default"]
	cfg.SandboxWebhookSecret = testSandboxSecret
	cfg.IDSecret = "integration-test-id-secret-0123456789"
	var handler http.Handler
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(api.Close)
	cfg.PublicURL = api.URL
	cfg.AllowNetworks = []string{"127.0.0.0/8", "::1/128"} // the httptest receivers
	// Fallback tests run on sub-second deadlines, and post webhook steps to
	// httptest receivers: TestFallbackCaps checks the production bounds.
	cfg.FallbackMinDuration = 0
	cfg.FallbackWebhookHosts = []string{"127.0.0.1"}
	if edit != nil {
		edit(&cfg)
	}
	s.cfg, s.api = cfg, api.URL

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := app.DialTraced(ctx, cfg, logger, tp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s.client = c
	handler = tracing.Handler(tp, starter.New(c, cfg, logger).Handler())

	s.logger = logger
	s.startWorker()
	t.Cleanup(s.stopWorker)
	return s
}

// testKeys are the keys of every system: name → workspace, scopes, expired.
var testKeys = []struct {
	name, workspace string
	scopes          []auth.Scope
	expired         bool
	rate            *auth.RateLimit
}{
	{"admin", "default", []auth.Scope{auth.ScopeAll}, false, nil},
	{"other", "globex", []auth.Scope{auth.ScopeAll}, false, nil},
	{"expired", "default", []auth.Scope{auth.ScopeAll}, true, nil},
	{"reader", "default", []auth.Scope{auth.ScopeMessagesRead}, false, nil},
	{"sender", "default", []auth.Scope{auth.ScopeMessagesSend}, false, nil},
	{"limited", "default", []auth.Scope{auth.ScopeMessagesRead}, false, &auth.RateLimit{PerSecond: 1, Burst: 2}},
	// An operator's key for the codec server, in another workspace than the messages it decodes.
	{"operator", "globex", []auth.Scope{auth.ScopePayloadsDecode}, false, nil},
}

// testIntakeSecrets are the workspaces' generic intake secrets.
var testIntakeSecrets = map[string]string{
	"default": "whsec_" + base64.StdEncoding.EncodeToString([]byte("default-workspace-intake-key--32")),
	"globex":  "whsec_" + base64.StdEncoding.EncodeToString([]byte("globex-workspace-intake-key---32")),
}

// testSandboxSecret signs the sandbox ESP's events.
var testSandboxSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("sandbox-esp-webhook-secret----32"))

// testSigningSecrets are the workspaces' postback signing secrets.
var testSigningSecrets = map[string]string{
	"default": "whsec_" + base64.StdEncoding.EncodeToString([]byte("default-workspace-signing-key-32")),
	"globex":  "whsec_" + base64.StdEncoding.EncodeToString([]byte("globex-workspace-signing-key--32")),
}

// writeTestKeys writes the keys file of testKeys and returns its path and the
// keys by name.
func writeTestKeys(t *testing.T) (string, map[string]string) {
	t.Helper()
	plain := map[string]string{}
	var keys []auth.Key
	for _, tk := range testKeys {
		p, k, err := auth.NewKey(tk.name, tk.workspace, tk.scopes)
		if err != nil {
			t.Fatal(err)
		}
		if tk.expired {
			k.ExpiresAt = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
		}
		k.RateLimit = tk.rate
		plain[tk.name], keys = p, append(keys, k)
	}
	var wss []auth.Workspace
	for _, name := range []string{"default", "globex"} {
		wss = append(wss, auth.Workspace{Name: name, SigningSecrets: []string{testSigningSecrets[name]},
			IntakeSecrets: []string{testIntakeSecrets[name]}})
	}
	raw, err := json.Marshal(map[string]any{"workspaces": wss, "keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, plain
}

// as returns a copy of s whose requests carry key name (see testKeys); "" sends none.
func (s *system) as(name string) *system {
	ws := "default"
	for _, tk := range testKeys {
		if tk.name == name {
			ws = tk.workspace
		}
	}
	return &system{t: s.t, keys: s.keys, key: s.keys[name], intakeSecret: testIntakeSecrets[ws], client: s.client,
		api: s.api, cfg: s.cfg, postback: s.postback, logger: s.logger}
}

// do sends an API request and decodes the JSON answer into out (when non-nil).
func (s *system) do(method, path string, body any, out any) *http.Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	var raw []byte
	if rd != nil {
		raw, _ = io.ReadAll(rd)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.api+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/v1/events/generic") && s.intakeSecret != "" {
		// As any system posting events does: signed with the workspace's intake secret.
		if err := intake.SignStandard(req.Header, s.intakeSecret, "evt_"+message.NewDispatchID(), time.Now(), raw); err != nil {
			s.t.Fatal(err)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ = io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s answered %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp
}

func (s *system) send(req message.SendRequest) string {
	s.t.Helper()
	var out struct {
		DispatchID string `json:"dispatch_id"`
		Status     string `json:"status"`
	}
	resp := s.do("POST", "/v1/messages", req, &out)
	if resp.StatusCode != http.StatusAccepted || out.Status != "queued" || !message.ValidDispatchID(out.DispatchID) {
		s.t.Fatalf("POST /v1/messages: got %d %+v, want 202 queued with a dispatch_id", resp.StatusCode, out)
	}
	return out.DispatchID
}

func (s *system) state(id string) workflows.State {
	s.t.Helper()
	var st workflows.State
	if resp := s.do("GET", "/v1/messages/"+id, nil, &st); resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /v1/messages/%s: got %d", id, resp.StatusCode)
	}
	return st
}

// eventually polls cond every 50ms for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receiver is a postback endpoint that records what it receives. It answers
// failFirst requests with 503 before it starts accepting.
type receiver struct {
	*httptest.Server
	mu        sync.Mutex
	got       []map[string]any
	calls     int
	failFirst int
	down      bool
}

// setDown makes the endpoint answer 503 until it is set up again.
func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if r.calls <= r.failFirst || r.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if req.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
			t.Errorf("postback is not JSON: %s %q", req.Header.Get("Content-Type"), body)
		}
		r.got = append(r.got, m)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) postbacks(id string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, p := range r.got {
		if p["dispatch_id"] == id {
			out = append(out, p)
		}
	}
	return out
}

func (r *receiver) waitFor(t *testing.T, id string, n int) []map[string]any {
	t.Helper()
	eventually(t, fmt.Sprintf("%d postbacks for %s", n, id), func() bool { return len(r.postbacks(id)) >= n })
	return r.postbacks(id)
}

func statuses(pbs []map[string]any) []string {
	out := make([]string, len(pbs))
	for i, p := range pbs {
		out[i], _ = p["status"].(string)
	}
	return out
}

// seedKeys are the metadata keys of the seed's example postbacks (Braze, seed 002),
// read from message/testdata/seed.
func seedKeys(t *testing.T, status string) []string {
	t.Helper()
	raw, err := os.ReadFile("../../message/testdata/seed/" + status + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range p.Metadata {
		keys = append(keys, k)
	}
	return keys
}

// checkShape compares a postback field by field with the seed's example of its
// status: the same keys (no more, no fewer), our identifiers, timestamps in the
// seed's form.
func checkShape(t *testing.T, p map[string]any, id, externalSendID, campaign string) {
	t.Helper()
	status, _ := p["status"].(string)
	if p["dispatch_id"] != id {
		t.Errorf("%s postback dispatch_id = %v, want %s", status, p["dispatch_id"], id)
	}
	if len(p) != 3 {
		t.Errorf("%s postback has top-level keys %v, want dispatch_id, status, metadata", status, p)
	}
	md, _ := p["metadata"].(map[string]any)
	// The seed's keys, less the identifiers this message was sent without.
	var want []string
	for _, k := range seedKeys(t, status) {
		if (k == "external_send_id" && externalSendID == "") || (k == "campaign_api_id" && campaign == "") {
			continue
		}
		want = append(want, k)
	}
	if len(md) != len(want) {
		t.Errorf("%s postback metadata keys %v, want the seed's %v", status, md, want)
	}
	for _, k := range want {
		v, ok := md[k]
		if !ok {
			t.Errorf("%s postback lacks metadata.%s", status, k)
			continue
		}
		if strings.HasSuffix(k, "_at") {
			if _, err := time.Parse(message.TimestampLayout, v.(string)); err != nil || !strings.HasSuffix(v.(string), "+00:00") {
				t.Errorf("%s postback metadata.%s = %q, want the seed's form 2020-08-31T18:58:41.000+00:00", status, k, v)
			}
		}
	}
	if str(md["external_send_id"]) != externalSendID || str(md["campaign_api_id"]) != campaign {
		t.Errorf("%s postback identifiers = %v / %v, want %s / %s", status, md["external_send_id"], md["campaign_api_id"], externalSendID, campaign)
	}
}

// waitClosed waits for the message's workflow to complete.
func waitClosed(t *testing.T, s *system, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("workflow %s: %v", id, err)
	}
}

// recordHistory writes the workflow's history to workflows/testdata/name for the
// replay test, when DISPATCHFLOW_RECORD_HISTORY is set.
func recordHistory(t *testing.T, s *system, id, name string) {
	t.Helper()
	recordRun(t, s, id, "", name)
}

// recordRun is recordHistory of one run of the workflow ("": the last).
func recordRun(t *testing.T, s *system, id, runID, name string) {
	t.Helper()
	if os.Getenv("DISPATCHFLOW_RECORD_HISTORY") == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var h historypb.History
	iter := s.client.GetWorkflowHistory(ctx, id, runID, false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("../../workflows/testdata/"+name, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", name, len(h.Events))
}

// host is the host:port of rawURL: how a message's own postback_url is named in
// its state.
func host(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
