package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// statusHook is a braze postback receiver that answers by the postback's
// status (fail: those answered 400) and records every request.
type statusHook struct {
	*httptest.Server
	mu   sync.Mutex
	fail map[string]bool
	reqs []hookRequest
}

func newStatusHook(t *testing.T, fail ...string) *statusHook {
	h := &statusHook{fail: map[string]bool{}}
	for _, s := range fail {
		h.fail[s] = true
	}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("postback is not JSON: %q", body)
		}
		h.mu.Lock()
		code := http.StatusOK
		if h.fail[str(m["status"])] {
			code = http.StatusBadRequest
		}
		h.reqs = append(h.reqs, hookRequest{Header: r.Header.Clone(), Body: body, JSON: m, Code: code})
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *statusHook) heal() {
	h.mu.Lock()
	h.fail = map[string]bool{}
	h.mu.Unlock()
}

func (h *statusHook) all() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

// of returns the requests of message id, in arrival order.
func (h *statusHook) of(id string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.reqs {
		if r.JSON["dispatch_id"] == id {
			out = append(out, r)
		}
	}
	return out
}

func acked(reqs []hookRequest) []hookRequest {
	var out []hookRequest
	for _, r := range reqs {
		if r.Code/100 == 2 {
			out = append(out, r)
		}
	}
	return out
}

// recoveryAnswer is the recovery part of the API's answers.
type recoveryAnswer struct {
	WorkflowID string    `json:"workflow_id"`
	Messages   int64     `json:"messages"`
	States     []string  `json:"states"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
}

// waitVisible polls visibility until the recovery query of endpoint (in
// workspace default) counts n open messages: it lags the workflows.
func waitVisible(t *testing.T, s *system, endpoint string, states []string, n int64) {
	t.Helper()
	q := workflows.RecoveryQuery(message.DefaultWorkspace, endpoint, states)
	eventually(t, "visibility to show the messages", func() bool {
		resp, err := s.client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: s.cfg.Temporal.Namespace, Query: q,
		})
		if err != nil {
			t.Fatalf("CountWorkflow(%s): %v", q, err)
		}
		return resp.GetCount() == n
	})
}

// recoveryResult waits for recovery workflow id to complete and returns its result.
func recoveryResult(t *testing.T, s *system, id string) workflows.RecoveryProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var p workflows.RecoveryProgress
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &p); err != nil {
		t.Fatalf("recovery %s: %v", id, err)
	}
	return p
}

func running(t *testing.T, s *system, id string) bool {
	t.Helper()
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// Postbacks held for a disabled endpoint keep their messages open past the
// tracking window; enabling it with replay_held starts a recovery that sends
// them, each message's in order and with their webhook-ids, and the messages
// then close, delivered.
func TestEndpointEnableReplaysHeld(t *testing.T) {
	t.Parallel()
	h := newStatusHook(t)
	epID := uniqueID("held")
	s := setup(t, func(c *config.Config) {
		withEndpoints(t, map[string]any{"id": epID, "url": h.URL, "schedule": schedule(2, "200ms")})(c)
		c.TrackingWindow = 3 * time.Second
	})
	var eps endpointsView
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/disable", `{"reason":"receiver migrating"}`, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	eventually(t, "GET /v1/endpoints shows the endpoint disabled", func() bool {
		eps = endpointsView{}
		s.do("GET", "/v1/endpoints", nil, &eps)
		return len(eps.Endpoints) == 1 && !eps.Endpoints[0].Enabled
	})

	start := time.Now()
	ids := []string{
		s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}),
		s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}),
	}
	heldIDs := map[string][]string{} // dispatch_id → webhook-ids, in order
	for _, id := range ids {
		var st workflows.State
		eventually(t, "the postbacks of "+id+" held", func() bool {
			st = s.state(id)
			return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackHeld
		})
		for _, p := range st.Postbacks {
			if p.State != workflows.PostbackHeld || p.HeldAt.IsZero() {
				t.Errorf("message %s: postback %d is %s (held at %s), want held", id, p.Seq, p.State, p.HeldAt)
			}
			heldIDs[id] = append(heldIDs[id], p.WebhookID)
		}
	}
	if n := len(h.all()); n != 0 {
		t.Fatalf("the disabled endpoint got %d requests", n)
	}
	// A recovery of a disabled endpoint would only hold the postbacks again.
	var e map[string]string
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/replay", `{"since":"`+start.Add(-time.Minute).UTC().Format(time.RFC3339)+`"}`, &e); resp.StatusCode != http.StatusConflict {
		t.Errorf("replay of a disabled endpoint: %d %v, want 409", resp.StatusCode, e)
	}
	// Past the tracking window (3s, grace 0.3s), the held postbacks keep the messages open.
	time.Sleep(time.Until(start.Add(4 * time.Second)))
	for _, id := range ids {
		if !running(t, s, id) {
			t.Errorf("message %s closed with postbacks held", id)
		}
	}
	waitVisible(t, s, epID, []string{workflows.PostbackHeld}, 2)

	var on struct {
		Enabled  bool            `json:"enabled"`
		Recovery *recoveryAnswer `json:"recovery"`
	}
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/enable", `{"reason":"migrated","replay_held":true}`, &on); resp.StatusCode != http.StatusOK || !on.Enabled || on.Recovery == nil {
		t.Fatalf("enable with replay_held: %d %+v", resp.StatusCode, on)
	}
	rec := *on.Recovery
	if rec.WorkflowID != workflows.RecoveryWorkflowID(epID) || rec.Messages != 2 || !slices.Equal(rec.States, []string{"held"}) {
		t.Errorf("recovery %+v, want %s over 2 messages, held", rec, workflows.RecoveryWorkflowID(epID))
	}
	// One recovery of an endpoint at a time (it waits for the workers to see the enable first).
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/enable", `{"replay_held":true}`, &e); resp.StatusCode != http.StatusConflict {
		t.Errorf("a second recovery while one runs: %d %v, want 409", resp.StatusCode, e)
	}

	res := recoveryResult(t, s, rec.WorkflowID)
	if want := (workflows.RecoveryProgress{MessagesReached: 2, PostbacksReplayed: 6}); res != want {
		t.Errorf("recovery result %+v, want %+v", res, want)
	}
	for _, id := range ids {
		eventually(t, "the replayed postbacks of "+id, func() bool { return len(acked(h.of(id))) >= 3 })
		got := acked(h.of(id))
		var wids []string
		for _, r := range got {
			wids = append(wids, r.Header.Get("webhook-id"))
		}
		if st := ackedStatuses(got); !slices.Equal(st, []string{"sent", "processed", "delivered"}) {
			t.Errorf("message %s: replayed %v, want [sent processed delivered] in order", id, st)
		}
		if !slices.Equal(wids, heldIDs[id]) {
			t.Errorf("message %s: webhook-ids %v, want the held postbacks' %v", id, wids, heldIDs[id])
		}
		if n := len(h.of(id)); n != 3 {
			t.Errorf("message %s: %d requests, want 3 (each postback once)", id, n)
		}
	}
	for _, id := range ids {
		waitClosed(t, s, id)
		st := s.state(id)
		for _, p := range st.Postbacks {
			if p.State != workflows.PostbackDelivered || p.Replays != 1 {
				t.Errorf("message %s: postback %d %s after %d replays, want delivered after 1", id, p.Seq, p.State, p.Replays)
			}
		}
	}

	// The query tells the same; once it has closed, another recovery may start.
	v, err := s.client.QueryWorkflow(context.Background(), rec.WorkflowID, "", workflows.QueryRecovery)
	if err != nil {
		t.Fatal(err)
	}
	var status workflows.RecoveryStatus
	if err := v.Get(&status); err != nil || status.State != workflows.RecoveryCompleted || status.RecoveryProgress != res {
		t.Errorf("query %s: %+v (%v), want completed with %+v", workflows.QueryRecovery, status, err, res)
	}
	on.Recovery = nil
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/enable", `{"replay_held":true}`, &on); resp.StatusCode != http.StatusOK || on.Recovery == nil {
		t.Errorf("enable with replay_held after the recovery: %d %+v, want 200 and a new recovery", resp.StatusCode, on)
	}
}

// POST /v1/endpoints/{id}/replay re-sends the endpoint's failed postbacks of
// its open messages whose events came within the window, with their
// webhook-ids; other states and other windows are left alone. Bad requests
// are 400s naming the field, another workspace's endpoint a 404.
func TestEndpointReplayFailed(t *testing.T) {
	t.Parallel()
	h := newStatusHook(t, "delivered") // sent and processed go through, delivered fails
	other := newStatusHook(t)
	epID, otherID := uniqueID("failing"), uniqueID("globex")
	s := setup(t, func(c *config.Config) {
		withEndpoints(t,
			map[string]any{"id": epID, "url": h.URL, "schedule": []string{"100ms"}},
			map[string]any{"id": otherID, "workspace": "globex", "url": other.URL})(c)
		c.TrackingWindow = time.Minute // the messages stay open through the test
	})
	start := time.Now().UTC()
	ids := []string{
		s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}),
		s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}),
	}
	failedID := map[string]string{}
	for _, id := range ids {
		var st workflows.State
		eventually(t, "the delivered postback of "+id+" failed", func() bool {
			st = s.state(id)
			return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackFailed
		})
		if st.Postbacks[0].State != workflows.PostbackDelivered || st.Postbacks[1].State != workflows.PostbackDelivered {
			t.Fatalf("message %s: postbacks %+v, want sent and processed delivered", id, st.Postbacks)
		}
		failedID[id] = st.Postbacks[2].WebhookID
	}

	since := func(d time.Duration) string { return start.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct{ name, body, field string }{
		{"no body", "", "empty body"},
		{"since missing", `{"states":["failed"]}`, "since: required"},
		{"since malformed", `{"since":"yesterday"}`, "since:"},
		{"until before since", `{"since":"` + since(-time.Hour) + `","until":"` + since(-2*time.Hour) + `"}`, "until: must be after since"},
		{"unknown state", `{"since":"` + since(-time.Hour) + `","states":["failed","bounced"]}`, `states[1]: "bounced"`},
		{"unknown field", `{"since":"` + since(-time.Hour) + `","endpoint":"x"}`, "malformed JSON"},
	} {
		var e map[string]string
		if resp := s.do("POST", "/v1/endpoints/"+epID+"/replay", tc.body, &e); resp.StatusCode != http.StatusBadRequest || len(e["error"]) < len(tc.field) || e["error"][:len(tc.field)] != tc.field {
			t.Errorf("%s: %d %v, want 400 naming %q", tc.name, resp.StatusCode, e, tc.field)
		}
	}
	body := `{"since":"` + since(-time.Minute) + `","states":["failed"]}`
	var e map[string]string
	if resp := s.do("POST", "/v1/endpoints/"+otherID+"/replay", body, &e); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another workspace's endpoint: %d %v, want 404", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/v1/endpoints/no-such-endpoint/replay", body, &e); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown endpoint: %d %v, want 404", resp.StatusCode, e)
	}
	if resp := s.as("reader").do("POST", "/v1/endpoints/"+epID+"/replay", body, &e); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a key without endpoints:admin: %d %v, want 403", resp.StatusCode, e)
	}
	waitVisible(t, s, epID, []string{workflows.PostbackFailed}, 2)

	// A window before the messages' events: every message visited, none matches.
	h.heal()
	var rec recoveryAnswer
	early := `{"since":"` + since(-time.Hour) + `","until":"` + since(-30*time.Minute) + `","states":["failed"]}`
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/replay", early, &rec); resp.StatusCode != http.StatusAccepted || rec.Messages != 2 {
		t.Fatalf("replay: %d %+v, want 202 over 2 messages", resp.StatusCode, rec)
	}
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/replay", body, &e); resp.StatusCode != http.StatusConflict {
		t.Errorf("a second recovery while one runs: %d %v, want 409", resp.StatusCode, e)
	}
	if res := recoveryResult(t, s, rec.WorkflowID); res != (workflows.RecoveryProgress{Skipped: 2}) {
		t.Errorf("recovery of an empty window: %+v, want 2 messages skipped", res)
	}
	for _, id := range ids {
		if n := len(h.of(id)); n != 4 {
			t.Errorf("message %s: %d requests after an empty recovery, want still 4 (sent, processed, delivered twice)", id, n)
		}
	}

	// The window of the messages: their failed postbacks (only) are sent again.
	rec = recoveryAnswer{}
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/replay", body, &rec); resp.StatusCode != http.StatusAccepted ||
		rec.WorkflowID != workflows.RecoveryWorkflowID(epID) || rec.Messages != 2 || !slices.Equal(rec.States, []string{"failed"}) ||
		!rec.Since.Equal(start.Add(-time.Minute).Truncate(time.Second)) || rec.Until.Before(start) {
		t.Fatalf("replay: %d %+v, want 202 over 2 messages, failed, from since to now", resp.StatusCode, rec)
	}
	if res := recoveryResult(t, s, rec.WorkflowID); res != (workflows.RecoveryProgress{MessagesReached: 2, PostbacksReplayed: 2}) {
		t.Errorf("recovery result %+v, want 2 messages reached, 2 postbacks replayed", res)
	}
	for _, id := range ids {
		eventually(t, "the replayed postback of "+id, func() bool { return len(acked(h.of(id))) >= 3 })
		reqs := h.of(id)
		if got := ackedStatuses(acked(reqs)); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
			t.Errorf("message %s: acknowledged %v, want [sent processed delivered]", id, got)
		}
		if len(reqs) != 5 || reqs[4].Header.Get("webhook-id") != failedID[id] {
			t.Errorf("message %s: %d requests, the last with webhook-id %q; want 5, the replay with the failed postback's %q",
				id, len(reqs), reqs[len(reqs)-1].Header.Get("webhook-id"), failedID[id])
		}
		var st workflows.State
		eventually(t, "the replayed postback recorded as delivered", func() bool {
			st = s.state(id)
			return st.Postbacks[2].State == workflows.PostbackDelivered
		})
		if st.Postbacks[2].Replays != 1 || st.Postbacks[0].Replays != 0 {
			t.Errorf("message %s: replays %d (sent) and %d (delivered), want 0 and 1", id, st.Postbacks[0].Replays, st.Postbacks[2].Replays)
		}
	}
}

// An endpoint failing without a success for DISPATCHFLOW_ENDPOINT_DISABLE_AFTER
// (1s here) is disabled automatically, saying since when: the worker carries the
// setting to the endpoint's workflow with its reports, and the postbacks are
// held from then on.
func TestEndpointAutoDisabled(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(int) int { return http.StatusInternalServerError })
	epID := uniqueID("auto-off")
	s := setup(t, func(c *config.Config) {
		withEndpoints(t, map[string]any{"id": epID, "url": h.URL, "schedule": schedule(20, "600ms")})(c)
		c.EndpointDisableAfter = time.Second
	})
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"})
	var eps endpointsView
	eventually(t, "the endpoint disabled automatically", func() bool {
		eps = endpointsView{}
		s.do("GET", "/v1/endpoints", nil, &eps)
		return len(eps.Endpoints) == 1 && !eps.Endpoints[0].Enabled
	})
	ep := eps.Endpoints[0]
	if want := "failing since " + ep.FailingSince.UTC().Format(time.RFC3339) + " (1s): disabled automatically"; ep.DisabledReason != want || ep.FailingSince.IsZero() {
		t.Errorf("endpoint %+v, want disabled with reason %q", ep, want)
	}
	if ep.ConsecutiveFailures < 2 || ep.LastFailureAt.Sub(ep.FailingSince) < time.Second {
		t.Errorf("endpoint %+v, want failures over 1s at least", ep)
	}
	eventually(t, "the sent postback held", func() bool {
		st := s.state(id)
		return len(st.Postbacks) > 0 && st.Postbacks[0].State == workflows.PostbackHeld
	})
	// Enabling forgets the run of failures.
	var on struct {
		workflows.EndpointState
	}
	if resp := s.do("POST", "/v1/endpoints/"+epID+"/enable", nil, &on); resp.StatusCode != http.StatusOK || !on.Enabled || !on.FailingSince.IsZero() {
		t.Errorf("enable: %d %+v, want enabled, failing since nothing", resp.StatusCode, on)
	}
}
