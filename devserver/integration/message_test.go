package integration

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// maxHappyPathEvents is the history length of a delivered message (measured:
// README "Design notes").
const maxHappyPathEvents = 30

func TestHappyPath(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	ext := "order-1234-" + message.NewDispatchID()[:8] // unique per run: the server outlives -count
	id := s.send(message.SendRequest{
		To: "ok@example.com", Subject: "Your order #1234", Text: "Thanks!",
		ExternalSendID: ext, CampaignAPIID: "417220e4-5a2a-b634-7f7d-9ec891532368",
		PostbackURL: s.postback.URL,
	})
	if want := message.DispatchIDFor([]byte(s.cfg.IDSecret), message.DefaultWorkspace, ext); id != want {
		t.Errorf("dispatch_id = %s, want %s (derived from external_send_id)", id, want)
	}
	pbs := s.postback.waitFor(t, id, 3)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Fatalf("postbacks arrived as %v, want [sent processed delivered]", got)
	}
	for _, p := range pbs {
		checkShape(t, p, id, ext, "417220e4-5a2a-b634-7f7d-9ec891532368")
	}

	st := s.state(id)
	if st.Status != message.StatusDelivered || st.Recipient != "ok@example.com" || st.ESP == nil || st.ESP.Provider != "sandbox" {
		t.Errorf("state: status %s recipient %s esp %+v, want delivered ok@example.com sandbox", st.Status, st.Recipient, st.ESP)
	}
	var timeline []string
	for _, e := range st.Events {
		timeline = append(timeline, string(e.Type))
		if !e.ChangedStatus {
			t.Errorf("event %s did not change the status", e.Type)
		}
	}
	if !slices.Equal(timeline, []string{"sent", "processed", "delivered"}) {
		t.Errorf("timeline %v, want [sent processed delivered]", timeline)
	}
	eventually(t, "postbacks recorded as delivered", func() bool {
		st = s.state(id)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered
	})
	for _, p := range st.Postbacks {
		if p.State != workflows.PostbackDelivered || len(p.Attempts) != 1 || p.DeliveredAt.IsZero() || p.Endpoint != host(s.postback.URL) {
			t.Errorf("postback %d: %+v, want delivered at the first attempt", p.Seq, p)
		}
	}

	// The Temporal UI reads the message in words: a static summary, and current
	// details kept up to date — without the recipient's address.
	ctx0, cancel0 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel0()
	desc, err := s.client.DescribeWorkflowExecution(ctx0, id, "")
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if err := converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary); err != nil ||
		!strings.Contains(summary, "order-1234") || strings.Contains(summary, "ok@example.com") {
		t.Errorf("static summary %q (%v), want the external_send_id and no address", summary, err)
	}
	q, err := s.client.QueryWorkflow(ctx0, id, "", "__temporal_workflow_metadata")
	var meta sdkpb.WorkflowMetadata
	if err == nil {
		err = q.Get(&meta)
	}
	if err != nil || !strings.Contains(meta.GetCurrentDetails(), "**Status:** delivered") ||
		!strings.Contains(meta.GetCurrentDetails(), "3 delivered") || strings.Contains(meta.GetCurrentDetails(), "ok@example.com") {
		t.Errorf("current details %q (%v), want the status and postbacks, no address", meta.GetCurrentDetails(), err)
	}

	// The tracking window (10s here) closes the workflow cleanly, with its final state.
	var final workflows.State
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &final); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if final.Status != message.StatusDelivered {
		t.Errorf("final status %s, want delivered", final.Status)
	}
	// The cost of a message: its history length (README "Design notes").
	iter := s.client.GetWorkflowHistory(ctx, id, "", false, 0)
	n := 0
	byType := map[string]int{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		n++
		byType[ev.GetEventType().String()]++
	}
	var breakdown []string
	for _, k := range slices.Sorted(maps.Keys(byType)) {
		breakdown = append(breakdown, fmt.Sprintf("%s %d", k, byType[k]))
	}
	t.Logf("happy-path history: %d events: %s", n, strings.Join(breakdown, ", "))
	recordHistory(t, s, id, "history_happy_path_v1.json")
	if n > maxHappyPathEvents {
		t.Errorf("happy-path history has %d events, want at most %d (README design notes)", n, maxHappyPathEvents)
	}
	// The state stays readable after completion.
	if st := s.state(id); st.Status != message.StatusDelivered {
		t.Errorf("state after completion: %s", st.Status)
	}
}

func TestBounceAndAbort(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	tests := []struct {
		to     string
		want   []string
		reason string
	}{
		{"bounce@example.com", []string{"sent", "processed", "bounced"}, esp.SandboxBounceReason},
		{"abort@example.com", []string{"aborted"}, "User not emailable"},
		{"suppressed@example.com", []string{"aborted"}, "User not emailable"},
		{"softbounce@example.com", []string{"sent", "delivered"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			id := s.send(message.SendRequest{To: tt.to, Subject: "s", HTML: "<p>hi</p>", PostbackURL: s.postback.URL})
			pbs := s.postback.waitFor(t, id, len(tt.want))
			if got := statuses(pbs); !slices.Equal(got, tt.want) {
				t.Fatalf("postbacks %v, want %v", got, tt.want)
			}
			last := pbs[len(pbs)-1]
			checkShape(t, last, id, "", "")
			md := last["metadata"].(map[string]any)
			if tt.reason != "" && md["reason"] != tt.reason {
				t.Errorf("reason %v, want %q", md["reason"], tt.reason)
			}
			if tt.to == "bounce@example.com" {
				waitClosed(t, s, id)
				recordHistory(t, s, id, "history_bounce_v1.json")
			}
			st := s.state(id)
			if string(st.Status) != tt.want[len(tt.want)-1] || st.Reason != tt.reason {
				t.Errorf("state %s %q, want %s %q", st.Status, st.Reason, tt.want[len(tt.want)-1], tt.reason)
			}
		})
	}
}

func TestSameExternalSendIDSendsOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	req := message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", ExternalSendID: "once-" + message.NewDispatchID(), PostbackURL: s.postback.URL}
	first := s.send(req)
	var again struct {
		DispatchID string `json:"dispatch_id"`
	}
	resp := s.do("POST", "/v1/messages", req, &again)
	if resp.StatusCode != http.StatusAccepted || again.DispatchID != first || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second send: %d %s replayed=%q, want 202 %s replayed=true", resp.StatusCode, again.DispatchID, resp.Header.Get("Idempotent-Replayed"), first)
	}
	s.postback.waitFor(t, first, 3)
	if n := s.sends.Load(); n != 1 {
		t.Errorf("ESP got %d sends, want 1", n)
	}
}

func TestPostbackEndpointDownThenUp(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	s := setupWith(t, rcv, withShortRetries(t, rcv, schedule(5, "200ms")...))
	s.postback.failFirst = 2 // the local first attempt and the first retry
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	pbs := s.postback.waitFor(t, id, 3)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Fatalf("postbacks %v, want them in status order despite the outage", got)
	}
	var st workflows.State
	eventually(t, "all postbacks delivered", func() bool {
		st = s.state(id)
		return len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered
	})
	if log := st.Postbacks[0].Attempts; len(log) != 3 || log[0].StatusCode != 503 || log[1].StatusCode != 503 || log[2].StatusCode != 200 {
		t.Errorf("sent postback attempts = %+v, want 3 (two 503s, then 2xx)", log)
	}
}

func TestEventsIntake(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) { c.SandboxDelay = time.Hour }) // the sandbox stays quiet
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 1)

	type counts struct{ Accepted, Duplicates, Unmatched int }
	post := func(body string) (int, counts, string) {
		var raw map[string]any
		resp := s.do("POST", "/v1/events/generic", body, &raw)
		c := counts{}
		if v, ok := raw["accepted"].(float64); ok {
			c = counts{int(v), int(raw["duplicates"].(float64)), int(raw["unmatched"].(float64))}
		}
		msg, _ := raw["error"].(string)
		return resp.StatusCode, c, msg
	}
	batch := `[{"dispatch_id":"` + id + `","event":"delivered","event_id":"d1"},
	           {"dispatch_id":"` + id + `","event":"processed","event_id":"p1"},
	           {"dispatch_id":"` + id + `","event":"delivered","event_id":"d1"},
	           {"dispatch_id":"00000000000000000000000000000000","event":"delivered","event_id":"x","timestamp":"2020-01-01T00:00:00Z"}]`
	code, c, _ := post(batch)
	if code != 200 || c != (counts{2, 1, 1}) {
		t.Fatalf("batch: %d %+v, want 200 {accepted 2, duplicates 1, unmatched 1 (an old event for no message)}", code, c)
	}
	// A recent event for a message not started (yet): the provider is asked to
	// post it again rather than have it dropped.
	var pending map[string]any
	resp := s.do("POST", "/v1/events/generic", `{"dispatch_id":"`+message.NewDispatchID()+`","event":"delivered","event_id":"soon"}`, &pending)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(str(pending["error"]), "not found yet") {
		t.Errorf("recent event for no message yet: %d %v (Retry-After %q), want 503 with Retry-After", resp.StatusCode, pending, resp.Header.Get("Retry-After"))
	}
	// The ESP retries the whole batch: nothing new.
	if code, c, _ = post(batch); code != 200 || c.Accepted != 0 || c.Duplicates != 3 {
		t.Errorf("retried batch: %d %+v, want 3 duplicates", code, c)
	}
	pbs := s.postback.waitFor(t, id, 2)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "delivered"}) {
		t.Errorf("postbacks %v, want [sent delivered]: a late processed changes nothing", got)
	}
	st := s.state(id)
	late := st.Events[len(st.Events)-1]
	if late.Type != message.EventProcessed || late.ChangedStatus || !strings.Contains(late.Note, "delivered") {
		t.Errorf("late processed recorded as %+v, want unchanged with a note", late)
	}

	for _, tt := range []struct {
		name, path, body string
		code             int
		errorHas         string
	}{
		{"malformed", "/v1/events/generic", `{"dispatch_id":`, 400, "malformed JSON"},
		{"unknown provider", "/v1/events/nosuchesp", `{}`, 404, `no intake for provider "nosuchesp"`},
		{"provider not mounted", "/v1/events/sendgrid", `[]`, 404, `no intake for provider "sendgrid"`},
		{"too large", "/v1/events/generic", `[` + strings.Repeat(`{"dispatch_id":"`+id+`","event":"open"},`, 30000) + `{}]`, 413, "body larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]string
			resp := s.do("POST", tt.path, tt.body, &raw)
			if resp.StatusCode != tt.code || !strings.Contains(raw["error"], tt.errorHas) {
				t.Errorf("got %d %q, want %d with an error containing %q", resp.StatusCode, raw["error"], tt.code, tt.errorHas)
			}
		})
	}
	// One unreadable event in a batch is counted invalid; the rest are accepted.
	var res map[string]any
	mixed := `[{"dispatch_id":"` + id + `","event":"exploded"},{"event":"open"},{"dispatch_id":"` + id + `","event":"open","event_id":"o1"}]`
	if resp := s.do("POST", "/v1/events/generic", mixed, &res); resp.StatusCode != 200 || res["invalid"] != float64(2) || res["accepted"] != float64(1) {
		t.Errorf("batch with two unreadable events: %d %v, want 200 with invalid 2, accepted 1", resp.StatusCode, res)
	}
}

func TestSendAndQueryErrors(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	for _, tt := range []struct {
		name, method, path, body string
		code                     int
		errorHas                 string
	}{
		{"missing to", "POST", "/v1/messages", `{"subject":"s","text":"t"}`, 400, "to: is required"},
		{"no body", "POST", "/v1/messages", `{"to":"a@example.com","subject":"s"}`, 400, "text or html is required"},
		{"typo", "POST", "/v1/messages", `{"to":"a@example.com","subject":"s","txt":"t"}`, 400, `unknown field "txt"`},
		{"wrong type", "POST", "/v1/messages", `{"to":42}`, 400, "to: must be a string"},
		{"not json", "POST", "/v1/messages", `to=a@example.com`, 400, "malformed JSON"},
		{"unknown message", "GET", "/v1/messages/0123456789abcdef0123456789abcdef", "", 404, "not found"},
		{"not a dispatch id", "GET", "/v1/messages/nope", "", 404, "32 lowercase hex"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]string
			resp := s.do(tt.method, tt.path, tt.body, &raw)
			if resp.StatusCode != tt.code || !strings.Contains(raw["error"], tt.errorHas) {
				t.Errorf("got %d %q, want %d with an error containing %q", resp.StatusCode, raw["error"], tt.code, tt.errorHas)
			}
		})
	}
	var health map[string]string
	if resp := s.do("GET", "/healthz", nil, &health); resp.StatusCode != 200 || health["status"] != "ok" {
		t.Errorf("healthz: %d %v", resp.StatusCode, health)
	}
}

// An endpoint that is down delays its postbacks, never the message: events keep
// advancing the status, the state shows the retrying postback's attempts and last
// error, and once the endpoint is back every postback arrives, in status order.
func TestEndpointDownDoesNotBlockEvents(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	s := setupWith(t, rcv, withShortRetries(t, rcv, append(schedule(3, "300ms"), schedule(17, "2s")...)...))
	s.postback.setDown(true)
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})

	var st workflows.State
	eventually(t, "delivered while the sent postback is retried", func() bool {
		st = s.state(id)
		return st.Status == message.StatusDelivered && len(st.Postbacks) == 3 && len(st.Postbacks[0].Attempts) >= 3 &&
			!st.Postbacks[0].NextAttemptAt.IsZero() // between two attempts
	})
	first := st.Postbacks[0]
	if first.State != workflows.PostbackDelivering || !strings.Contains(first.LastError, "503") {
		t.Errorf("sent postback %+v, want delivering with a last error naming the 503", first)
	}
	for _, p := range st.Postbacks[1:] {
		if p.State != workflows.PostbackPending || len(p.Attempts) != 0 {
			t.Errorf("postback %d (%s) is %s after %d attempts, want pending behind the first", p.Seq, p.Status, p.State, len(p.Attempts))
		}
	}
	if got := s.postback.postbacks(id); len(got) != 0 {
		t.Fatalf("the endpoint accepted %d postbacks while down", len(got))
	}

	s.postback.setDown(false)
	pbs := s.postback.waitFor(t, id, 3)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Errorf("postbacks %v after the outage, want [sent processed delivered]", got)
	}
}

// Durability: with no worker running, the API still takes the ESP's events in;
// a worker started later applies them and posts what is due.
func TestEventsWaitForAWorker(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) { c.SandboxDelay = time.Hour })
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 1)
	s.stopWorker()

	var res map[string]int
	body := `[{"dispatch_id":"` + id + `","event":"processed","event_id":"p"},{"dispatch_id":"` + id + `","event":"delivered","event_id":"d"}]`
	if resp := s.do("POST", "/v1/events/generic", body, &res); resp.StatusCode != 200 || res["accepted"] != 2 {
		t.Fatalf("events with no worker: %d %v, want 200 with 2 accepted", resp.StatusCode, res)
	}
	time.Sleep(500 * time.Millisecond)
	if got := s.postback.postbacks(id); len(got) != 1 {
		t.Fatalf("%d postbacks with no worker running, want only the first", len(got))
	}

	s.startWorker()
	pbs := s.postback.waitFor(t, id, 3)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Errorf("postbacks %v, want [sent processed delivered]", got)
	}
}
