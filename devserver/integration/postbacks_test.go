package integration

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/health"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// hook is a postback receiver for the endpoints-file tests: it records every
// request (headers, body, the code it answered) and answers what answer says for
// the n-th request (1-based); nil answers 200.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []hookRequest
	answer func(n int) int
}

type hookRequest struct {
	Header http.Header
	Body   []byte
	JSON   map[string]any
	Code   int
}

func newHook(t *testing.T, answer func(n int) int) *hook {
	h := &hook{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		n := len(h.reqs) + 1
		code := http.StatusOK
		if h.answer != nil {
			code = h.answer(n)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("postback is not JSON: %q", body)
		}
		h.reqs = append(h.reqs, hookRequest{Header: r.Header.Clone(), Body: body, JSON: m, Code: code})
		h.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"received":%d,"answer":"code %d"}`, n, code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) setAnswer(answer func(n int) int) {
	h.mu.Lock()
	h.answer = answer
	h.mu.Unlock()
}

// requests returns the requests received so far whose body keep selects.
func (h *hook) requests(keep func(hookRequest) bool) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.reqs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// acked returns the braze postbacks of message id the hook answered 2xx, in
// arrival order.
func (h *hook) acked(id string) []hookRequest {
	return h.requests(func(r hookRequest) bool { return r.JSON["dispatch_id"] == id && r.Code/100 == 2 })
}

func ackedStatuses(reqs []hookRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = str(r.JSON["status"])
	}
	return out
}

// uniqueID is an endpoint id no other test (nor an earlier -count run on the same
// server) uses: an endpoint's health is one workflow per id on the shared server.
func uniqueID(prefix string) string { return prefix + "-" + message.NewDispatchID()[:10] }

// newSecret returns a fresh Standard Webhooks secret.
func newSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// withEndpoints writes the endpoints file (docs/postbacks.md) to a temporary
// directory and points the configuration at it.
func withEndpoints(t *testing.T, endpoints ...map[string]any) func(*config.Config) {
	t.Helper()
	raw, err := json.MarshalIndent(map[string]any{"endpoints": endpoints}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.EndpointsFile = path }
}

// schedule returns n retry delays of d.
func schedule(n int, d string) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = d
	}
	return s
}

// withShortRetries registers rcv as an endpoint with short retries: the
// messages' own postback_url (rcv.URL) is covered by it and gets its settings.
func withShortRetries(t *testing.T, rcv *receiver, delays ...string) func(*config.Config) {
	return withEndpoints(t, map[string]any{"id": uniqueID("settings"), "url": rcv.URL, "schedule": delays})
}

// Every postback is signed the Standard Webhooks way, checked with the reference
// library under both secrets of a rotation; a retried postback keeps its
// webhook-id, and distinct postbacks have distinct ones, as in the state.
func TestPostbackSignatures(t *testing.T) {
	t.Parallel()
	oldSecret, newerSecret := newSecret(t), newSecret(t)
	h := newHook(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError // the sent postback is retried once
		}
		return http.StatusOK
	})
	epID := uniqueID("signed")
	s := setup(t, withEndpoints(t, map[string]any{
		"id": epID, "url": h.URL + "/hooks", "secrets": []string{oldSecret, newerSecret}, "schedule": schedule(3, "200ms"),
	}))
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"})
	eventually(t, "3 postbacks acknowledged", func() bool { return len(h.acked(id)) == 3 })

	reqs := h.requests(func(r hookRequest) bool { return r.JSON["dispatch_id"] == id })
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4 (sent twice, processed, delivered)", len(reqs))
	}
	for _, secret := range []string{oldSecret, newerSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			if err := wh.Verify(r.Body, r.Header); err != nil {
				t.Errorf("request %d (%s): the reference library refuses it: %v (webhook-signature %q)", i, r.JSON["status"], err, r.Header.Get("webhook-signature"))
			}
		}
	}
	for _, r := range reqs {
		if sigs := strings.Fields(r.Header.Get("webhook-signature")); len(sigs) != 2 {
			t.Errorf("webhook-signature %q, want one signature per secret", r.Header.Get("webhook-signature"))
		}
	}
	wid := func(r hookRequest) string { return r.Header.Get("webhook-id") }
	if reqs[0].Code != 500 || str(reqs[0].JSON["status"]) != "sent" || str(reqs[1].JSON["status"]) != "sent" || wid(reqs[0]) != wid(reqs[1]) || wid(reqs[0]) == "" {
		t.Errorf("sent postback and its retry: webhook-id %q then %q, want the same", wid(reqs[0]), wid(reqs[1]))
	}
	ids := map[string]bool{wid(reqs[1]): true, wid(reqs[2]): true, wid(reqs[3]): true}
	if len(ids) != 3 {
		t.Errorf("webhook-ids %v, want one per postback", slices.Collect(maps.Keys(ids)))
	}

	var st workflows.State
	eventually(t, "postbacks recorded as delivered", func() bool {
		st = s.state(id)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered
	})
	for i, p := range st.Postbacks {
		if p.WebhookID != wid(reqs[i+1]) || p.Endpoint != epID {
			t.Errorf("postback %d: webhook_id %q endpoint %q, want %q and %q as sent", p.Seq, p.WebhookID, p.Endpoint, wid(reqs[i+1]), epID)
		}
	}
	if log := st.Postbacks[0].Attempts; len(log) != 2 || log[0].StatusCode != 500 || log[1].StatusCode != 200 || !strings.Contains(log[0].ResponseBody, "code 500") {
		t.Errorf("sent postback attempts %+v, want a 500 (with its body) then a 200", log)
	}
	// No secret leaks into the state.
	raw, _ := json.Marshal(st)
	for _, secret := range []string{oldSecret, newerSecret} {
		if strings.Contains(string(raw), strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("the message's state holds a signing secret")
		}
	}
}

// checkOrdered checks that each message's postbacks were acknowledged once per
// status, in status order.
func checkOrdered(t *testing.T, h *hook, ids []string) {
	t.Helper()
	want := []string{"sent", "processed", "delivered"}
	for _, id := range ids {
		if got := ackedStatuses(h.acked(id)); !slices.Equal(got, want) {
			t.Errorf("message %s: acknowledged postbacks %v, want %v (once each, in order)", id, got, want)
		}
		// No postback was sent before the one before it was acknowledged.
		reqs := h.requests(func(r hookRequest) bool { return r.JSON["dispatch_id"] == id })
		rank := 0
		for _, r := range reqs {
			got := slices.Index(want, str(r.JSON["status"]))
			if got < rank {
				t.Errorf("message %s: %s attempted after %s was acknowledged", id, want[got], want[rank])
			}
			if got > rank {
				t.Errorf("message %s: %s attempted before %s was acknowledged", id, want[got], want[rank])
			}
			if r.Code/100 == 2 {
				rank++
			}
		}
	}
}

// A receiver that fails every other request still gets every postback of every
// message exactly once, each message's in status order, retried on the
// endpoint's schedule.
func TestPostbackOrderingFlakyReceiver(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(n int) int {
		if n%2 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	s := setup(t, withEndpoints(t, map[string]any{"id": uniqueID("flaky"), "url": h.URL, "schedule": schedule(12, "200ms")}))
	var ids []string
	for range 4 {
		ids = append(ids, s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}))
	}
	for _, id := range ids {
		eventually(t, "3 postbacks acknowledged for "+id, func() bool { return len(h.acked(id)) >= 3 })
	}
	checkOrdered(t, h, ids)

	// Retries follow the endpoint's schedule (200ms ±20%), not the default one (5s).
	for _, id := range ids {
		var st workflows.State
		eventually(t, "postbacks recorded as delivered", func() bool {
			st = s.state(id)
			return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered
		})
		for _, p := range st.Postbacks {
			for i := 1; i < len(p.Attempts); i++ {
				if gap := p.Attempts[i].At.Sub(p.Attempts[i-1].At); gap < 160*time.Millisecond || gap > 4*time.Second {
					t.Errorf("postback %d (%s): %s between attempts %d and %d, want the schedule's 200ms ±20%%", p.Seq, p.Status, gap, i, i+1)
				}
			}
		}
	}
}

// A receiver down for a while (500 for about 3 s), then up, gets every postback
// of every message, once, in order.
func TestPostbackReceiverDownThenUp(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(int) int { return http.StatusInternalServerError })
	s := setup(t, withEndpoints(t, map[string]any{
		"id": uniqueID("outage"), "url": h.URL,
		"schedule": []string{"200ms", "500ms", "1s", "1s", "1s", "1s", "1s", "1s", "2s", "2s"},
	}))
	var ids []string
	for range 3 {
		ids = append(ids, s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}))
	}
	time.Sleep(3 * time.Second) // the outage
	if n := len(h.requests(func(r hookRequest) bool { return r.Code/100 == 2 })); n != 0 {
		t.Fatalf("%d postbacks acknowledged during the outage", n)
	}
	h.setAnswer(nil)
	for _, id := range ids {
		eventually(t, "3 postbacks acknowledged for "+id, func() bool { return len(h.acked(id)) >= 3 })
	}
	checkOrdered(t, h, ids)
}

// endpointsView is GET /v1/endpoints.
type endpointsView struct {
	Endpoints []struct {
		ID string `json:"id"`
		workflows.EndpointState
		Signed bool   `json:"signed"`
		URL    string `json:"url"`
	} `json:"endpoints"`
}

// 410 Gone disables the endpoint: GET /v1/endpoints says so and why, later
// postbacks are held without a request; once enabled, a replay delivers what was
// held, with the same webhook-id.
func TestPostbackGoneDisablesThenReplay(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(int) int { return http.StatusGone })
	epID := uniqueID("gone")
	s := setup(t, withEndpoints(t, map[string]any{"id": epID, "url": h.URL, "schedule": schedule(3, "200ms")}))

	first := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"})
	var st workflows.State
	eventually(t, "the first message's postbacks held", func() bool {
		st = s.state(first)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackHeld
	})
	for _, p := range st.Postbacks {
		if p.State != workflows.PostbackHeld {
			t.Errorf("postback %d (%s) is %s, want held", p.Seq, p.Status, p.State)
		}
	}
	if n := len(h.requests(nil)); n != 1 {
		t.Errorf("%d requests to the endpoint, want 1: the 410 disables it at once", n)
	}

	var eps endpointsView
	eventually(t, "GET /v1/endpoints shows the endpoint disabled", func() bool {
		eps = endpointsView{}
		s.do("GET", "/v1/endpoints", nil, &eps)
		return len(eps.Endpoints) == 1 && !eps.Endpoints[0].Enabled
	})
	if ep := eps.Endpoints[0]; ep.ID != epID || !strings.Contains(ep.DisabledReason, "410") || ep.DisabledAt.IsZero() {
		t.Errorf("endpoint %+v, want %s disabled for its 410", ep, epID)
	}

	second := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"})
	eventually(t, "the second message's postbacks held", func() bool {
		st = s.state(second)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackHeld
	})
	for _, p := range st.Postbacks {
		if p.State != workflows.PostbackHeld || len(p.Attempts) != 0 {
			t.Errorf("second message: postback %d is %s after %d attempts, want held with none", p.Seq, p.State, len(p.Attempts))
		}
	}
	if n := len(h.requests(nil)); n != 1 {
		t.Errorf("%d requests to the disabled endpoint, want still 1", n)
	}
	heldIDs := map[string]string{}
	for _, p := range st.Postbacks {
		heldIDs[string(p.Status)] = p.WebhookID
	}

	// The receiver is fixed; an operator enables the endpoint and replays.
	h.setAnswer(nil)
	var on struct {
		Enabled bool `json:"enabled"`
	}
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/enable", `{"reason":"receiver fixed"}`, &on); resp.StatusCode != 200 || !on.Enabled {
		t.Fatalf("enable: %d %+v", resp.StatusCode, on)
	}
	eventually(t, "GET /v1/endpoints shows the endpoint enabled", func() bool {
		eps = endpointsView{}
		s.do("GET", "/v1/endpoints", nil, &eps)
		return len(eps.Endpoints) == 1 && eps.Endpoints[0].Enabled && eps.Endpoints[0].DisabledReason == ""
	})
	// Workers trust the state they read for health.CacheTTL.
	time.Sleep(health.CacheTTL + 500*time.Millisecond)
	// A replay's filters are checked, naming the field.
	for body, want := range map[string]string{
		`{"states": ["lost"]}`: `states: "lost" is not one of delivered, failed, held`,
		`{"since": "2026-11-28T10:00:00Z", "until": "2026-11-28T09:00:00Z"}`: "until: must be after since",
	} {
		var e struct {
			Error string `json:"error"`
		}
		if resp := s.do("POST", "/v1/messages/"+first+"/postbacks/replay", body, &e); resp.StatusCode != http.StatusBadRequest || e.Error != want {
			t.Errorf("replay %s: %d %q, want 400 %q", body, resp.StatusCode, e.Error, want)
		}
	}
	for _, id := range []string{first, second} {
		var res workflows.ReplayResult
		if resp := s.do("POST", "/v1/messages/"+id+"/postbacks/replay", `{"states": ["held"]}`, &res); resp.StatusCode != http.StatusAccepted || res.Replayed != 3 {
			t.Fatalf("replay %s: %d %+v, want 202 with 3 replayed", id, resp.StatusCode, res)
		}
	}
	for _, id := range []string{first, second} {
		eventually(t, "replayed postbacks acknowledged", func() bool { return len(h.acked(id)) >= 3 })
		if got := ackedStatuses(h.acked(id)); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
			t.Errorf("message %s: replayed postbacks %v, want [sent processed delivered]", id, got)
		}
	}
	for _, r := range h.acked(second) {
		if want := heldIDs[str(r.JSON["status"])]; r.Header.Get("webhook-id") != want {
			t.Errorf("replayed %s: webhook-id %q, want the held postback's %q", r.JSON["status"], r.Header.Get("webhook-id"), want)
		}
	}
	eventually(t, "replayed postbacks recorded as delivered", func() bool {
		st = s.state(second)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered
	})
	for _, p := range st.Postbacks {
		if p.State != workflows.PostbackDelivered || p.Replays != 1 {
			t.Errorf("postback %d after the replay: %s, %d replays, want delivered after 1", p.Seq, p.State, p.Replays)
		}
	}
}

// POST /v1/postbacks/test reports what a real receiver answered.
func TestPostbackTest(t *testing.T) {
	t.Parallel()
	up := newHook(t, nil)
	down := newHook(t, func(int) int { return http.StatusInternalServerError })
	secret := newSecret(t)
	upID, downID := uniqueID("test-up"), uniqueID("test-down")
	s := setup(t, withEndpoints(t,
		map[string]any{"id": upID, "url": up.URL, "secrets": []string{secret}},
		map[string]any{"id": downID, "url": down.URL}))
	type result struct {
		Endpoint   string `json:"endpoint"`
		WebhookID  string `json:"webhook_id"`
		OK         bool   `json:"ok"`
		StatusCode int    `json:"status_code"`
		LatencyMS  *int64 `json:"latency_ms"`
		Body       string `json:"body"`
		Error      string `json:"error"`
	}
	for _, tt := range []struct {
		name, body string
		to         *hook
		ok         bool
		code       int
		adHoc      bool // an ad-hoc URL's answer is not relayed
	}{
		{"configured endpoint", `{"endpoint_id":"` + upID + `"}`, up, true, 200, false},
		{"failing endpoint", `{"endpoint_id":"` + downID + `","status":"bounced"}`, down, false, 500, false},
		{"url", `{"url":"` + up.URL + `/other"}`, up, true, 200, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.to.requests(nil))
			var res result
			if resp := s.do("POST", "/v1/postbacks/test", tt.body, &res); resp.StatusCode != 200 {
				t.Fatalf("answered %d %+v", resp.StatusCode, res)
			}
			reqs := tt.to.requests(nil)
			if len(reqs) != before+1 {
				t.Fatalf("the receiver got %d requests, want 1", len(reqs)-before)
			}
			n := len(reqs)
			wantBody := fmt.Sprintf(`{"received":%d,"answer":"code %d"}`, n, tt.code)
			if tt.adHoc {
				wantBody = ""
			}
			if res.OK != tt.ok || res.StatusCode != tt.code || res.LatencyMS == nil || *res.LatencyMS < 0 || res.Body != wantBody {
				t.Errorf("result %+v, want ok=%v, code %d, a latency and the body %q", res, tt.ok, tt.code, wantBody)
			}
			if got := reqs[n-1].Header.Get("webhook-id"); got != res.WebhookID {
				t.Errorf("webhook-id sent %q, reported %q", got, res.WebhookID)
			}
		})
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if r := up.requests(nil)[0]; wh.Verify(r.Body, r.Header) != nil {
		t.Errorf("the test postback to a signed endpoint does not verify")
	}
}

// keysOf returns the keys of a JSON object.
func keysOf(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// seedFixture reads one of intake's documented provider examples.
func seedFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../intake/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Endpoints in the sarbacane and ajo formats get the seeds' shapes: sarbacane one
// call per event it subscribes to (engagement included), ajo the feedback of
// each status it can express.
func TestPostbackFormats(t *testing.T) {
	t.Parallel()
	sarb, ajo := newHook(t, nil), newHook(t, nil)
	s := setup(t, func(c *config.Config) {
		withEndpoints(t,
			map[string]any{"id": uniqueID("sarbacane"), "url": sarb.URL, "format": "sarbacane", "events": []string{"delivered", "open", "click"}},
			map[string]any{"id": uniqueID("ajo"), "url": ajo.URL, "format": "ajo"})(c)
		c.SandboxDelay = time.Hour // the events come from the test
	})
	ext := "fmt-" + message.NewDispatchID()[:8]
	const campaign = "417220e4-5a2a-b634-7f7d-9ec891532368"
	id := s.send(message.SendRequest{To: "ok@example.com", From: "shop@example.com", Subject: "Your order", Text: "t", ExternalSendID: ext, CampaignAPIID: campaign})
	eventually(t, "the ajo sent feedback", func() bool { return len(ajo.requests(nil)) >= 1 })
	var res map[string]int
	body := `[{"dispatch_id":"` + id + `","event":"delivered","event_id":"d"},{"dispatch_id":"` + id + `","event":"open","event_id":"o"}]`
	if resp := s.do("POST", "/v1/events/generic", body, &res); resp.StatusCode != 200 || res["accepted"] != 2 {
		t.Fatalf("events: %d %v", resp.StatusCode, res)
	}
	eventually(t, "sarbacane delivered and open", func() bool { return len(sarb.requests(nil)) >= 2 })
	eventually(t, "ajo sent and delivered", func() bool { return len(ajo.requests(nil)) >= 2 })
	time.Sleep(300 * time.Millisecond) // nothing more comes
	if n, m := len(sarb.requests(nil)), len(ajo.requests(nil)); n != 2 || m != 2 {
		t.Errorf("sarbacane got %d calls, ajo %d, want 2 each (sarbacane: delivered, open; ajo: sent, delivered)", n, m)
	}

	// Sarbacane (seed 003): the fixture's keys less what ESPs don't report uniformly.
	for i, want := range []string{"delivered", "open"} {
		p := sarb.requests(nil)[i].JSON
		seed := seedFixture(t, "sarbacane_"+want+".json")
		for _, k := range []string{"operatingSystem", "language", "browser", "webmail"} {
			delete(seed, k)
		}
		if !slices.Equal(keysOf(p), keysOf(seed)) {
			t.Errorf("sarbacane %s: keys %v, want the seed's %v", want, keysOf(p), keysOf(seed))
		}
		if p["type"] != want || p["whId"] != id || p["email"] != "ok@example.com" || p["sendId"] != ext || p["campaignId"] != campaign || p["from"] != "shop@example.com" {
			t.Errorf("sarbacane %s: %v, want type %s, whId = dispatch_id, email, sendId, campaignId, from", want, p, want)
		}
		if _, err := time.Parse(time.RFC3339, str(p["date"])); err != nil {
			t.Errorf("sarbacane %s: date %v: %v", want, p["date"], err)
		}
	}

	// AJO (seed 004): the fixture's keys less those with no counterpart.
	seed := seedFixture(t, "ajo_bounce.json")
	for _, k := range []string{"imsOrg", "sandbox"} {
		delete(seed, k)
	}
	for i, want := range []string{"sent", "delivered"} {
		p := ajo.requests(nil)[i].JSON
		if !slices.Equal(keysOf(p), keysOf(seed)) {
			t.Errorf("ajo %s: keys %v, want the seed's %v", want, keysOf(p), keysOf(seed))
		}
		fb, _ := p["messageDeliveryFeedback"].(map[string]any)
		status, _ := fb["feedbackStatus"].(map[string]any)
		exec, _ := p["messageExecution"].(map[string]any)
		if p["requestId"] != id || p["eventType"] != "message.feedback" || p["channel"] != "email" || status["value"] != want ||
			fb["messageFailure"] != nil || exec["campaignID"] != campaign || exec["messageExecutionID"] != id {
			t.Errorf("ajo %s: %v, want requestId = dispatch_id, feedbackStatus %s, no failure", want, p, want)
		}
		if seedFB := seed["messageDeliveryFeedback"].(map[string]any); !slices.Equal(keysOf(fb), keysOf(seedFB)) {
			t.Errorf("ajo %s: messageDeliveryFeedback keys %v, want the seed's %v", want, keysOf(fb), keysOf(seedFB))
		}
	}
}
