package integration

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// maxStateBytes is the documented bound of a message's state with one endpoint
// (docs/postbacks.md, "What is bounded").
const maxStateBytes = 256 << 10

// slowHook is a postback endpoint that answers after delay (503 while down),
// and remembers every body per webhook-id.
type slowHook struct {
	*httptest.Server
	delay time.Duration
	mu    sync.Mutex
	down  bool
	// bodies are the sha256 of the bodies per webhook-id, one per request;
	// ok counts the 2xx answers per webhook-id.
	bodies map[string][][32]byte
	ok     map[string]int
	status map[string]string // webhook-id → status or event posted
}

func newSlowHook(t *testing.T, delay time.Duration) *slowHook {
	h := &slowHook{delay: delay, bodies: map[string][][32]byte{}, ok: map[string]int{}, status: map[string]string{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(h.delay)
		id := r.Header.Get("webhook-id")
		var p struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(body, &p)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.bodies[id] = append(h.bodies[id], sha256.Sum256(body))
		h.status[id] = p.Status
		if h.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ok[id]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *slowHook) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// delivered counts the webhook-ids answered 2xx, and says whether any was
// answered 2xx more than once or came with two different bodies.
func (h *slowHook) delivered() (n int, twice, twoBodies []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, c := range h.ok {
		n++
		if c > 1 {
			twice = append(twice, id)
		}
	}
	for id, bs := range h.bodies {
		for _, b := range bs[1:] {
			if b != bs[0] {
				twoBodies = append(twoBodies, id)
				break
			}
		}
	}
	return n, twice, twoBodies
}

// runs lists the runs of workflow id, newest first.
func runs(t *testing.T, s *system, id string) []string {
	t.Helper()
	resp, err := s.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", id),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range resp.GetExecutions() {
		out = append(out, e.GetExecution().GetRunId())
	}
	return out
}

// failedTasks counts the failed workflow tasks of one run, by cause.
func failedTasks(t *testing.T, s *system, id, runID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	iter := s.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a != nil {
			out[a.GetCause().String()]++
		}
	}
	return out
}

// The storm of the issue: one message, 20,000 engagement events with maximal
// strings through the generic intake, while its endpoint is down and its sent
// postback waits to retry; then a status change. Every batch is accepted, the
// runs continue as new (carrying the retry), the state stays under its bound,
// GET answers, the status postback after the storm arrives, and no workflow
// task fails but for the server's own way of handing over signals that race a
// continue-as-new (UnhandledCommand).
func TestStorm(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("storm: 20,000 events")
	}
	hook := newSlowHook(t, 0)
	hook.setDown(true)
	ep := uniqueID("storm")
	s := setup(t, withEndpoints(t, map[string]any{"id": ep, "url": hook.URL, "schedule": schedule(20, "4s")}))
	id := s.send(message.SendRequest{To: "silent@example.com", Subject: "storm", Text: "t"})
	eventually(t, "the sent postback retrying", func() bool {
		st := s.state(id)
		return len(st.Postbacks) == 1 && st.Postbacks[0].AttemptCount >= 1
	})

	const total, batch, posters = 20_000, 100, 4
	reason := strings.Repeat("r", message.MaxReasonLength)
	batches := make(chan int, total/batch)
	for b := range total / batch {
		batches <- b
	}
	close(batches)
	var wg sync.WaitGroup
	start := time.Now()
	for range posters {
		wg.Go(func() {
			for b := range batches {
				evs := make([]map[string]any, batch)
				for i := range evs {
					evs[i] = map[string]any{"dispatch_id": id, "event": "open", "reason": reason,
						"event_id": fmt.Sprintf("open-%d-%s", b*batch+i, strings.Repeat("i", message.MaxIDLength))}
				}
				for {
					resp := s.do("POST", "/v1/events/generic", evs, nil)
					if resp.StatusCode == http.StatusOK {
						break
					}
					t.Logf("batch %d answered %d: retried, as an ESP does", b, resp.StatusCode)
					time.Sleep(time.Second)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d events posted in %s", total, time.Since(start).Round(time.Millisecond))

	hook.setDown(false)
	bounce := map[string]any{"dispatch_id": id, "event": "bounced", "event_id": "bounce-1", "reason": reason}
	if resp := s.do("POST", "/v1/events/generic", bounce, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bounce after the storm: %d", resp.StatusCode)
	}
	var st workflows.State
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st = s.state(id)
		// sent, delivered (an open proves it), bounced.
		if st.Status == message.StatusBounced && len(st.Postbacks) == 3 && st.Postbacks[2].State == workflows.PostbackDelivered {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range st.Postbacks {
				t.Logf("postback %d %s: %s, %d attempts, next %s, error %q", p.Seq, p.Status, p.State, p.AttemptCount, p.NextAttemptAt, p.LastError)
			}
			t.Fatalf("bounced postback not delivered after the storm: status %s, %d postbacks", st.Status, len(st.Postbacks))
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, _ := json.Marshal(st)
	t.Logf("state: %d bytes, %d events kept, %d folded, %d duplicates", len(raw), len(st.Events), st.FoldedEvents, st.DuplicateEvents)
	if len(raw) > maxStateBytes {
		t.Errorf("state of %d bytes, want at most %d", len(raw), maxStateBytes)
	}
	opens := 0
	for _, c := range st.EventCounts {
		if c.Type == message.EventOpen {
			opens = c.Received
		}
	}
	if opens+st.DuplicateEvents < total || opens > total {
		t.Errorf("opens received %d (+%d duplicates), want %d", opens, st.DuplicateEvents, total)
	}
	if st.Postbacks[0].State != workflows.PostbackDelivered {
		t.Errorf("sent postback %s, want delivered once the endpoint was back", st.Postbacks[0].State)
	}
	n, twice, twoBodies := hook.delivered()
	if n != 3 || len(twice) > 0 || len(twoBodies) > 0 {
		t.Errorf("endpoint: %d webhook-ids delivered (twice: %v, two bodies: %v), want 3, once each, one body each", n, twice, twoBodies)
	}
	ids := runs(t, s, id)
	if len(ids) < 2 {
		t.Errorf("%d runs, want the storm to continue as new", len(ids))
	}
	for _, run := range ids {
		for cause, n := range failedTasks(t, s, id, run) {
			if cause != enumspb.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND.String() {
				t.Errorf("run %s: %d workflow tasks failed (%s)", run, n, cause)
			}
		}
	}
	t.Logf("%d runs", len(ids))
}

// A run that continues as new while a postback waits to retry carries it, and
// the next run makes the attempt when it is due, under the same webhook-id with
// the same body (recorded for the replay test: history_continue_as_new.json).
func TestContinueAsNewMidRetry(t *testing.T) {
	t.Parallel()
	hook := newSlowHook(t, 0)
	hook.setDown(true)
	ep := uniqueID("can")
	s := setup(t, withEndpoints(t, map[string]any{"id": ep, "url": hook.URL, "schedule": schedule(10, "3s")}))
	id := message.NewDispatchID()
	req := message.SendRequest{To: "silent@example.com", From: "noreply@example.com", Subject: "can", Text: "t", Workspace: "default"}
	in := workflows.MessageInput{
		DispatchID: id, Request: req, Recipient: "silent@example.com", ReceivedAt: time.Now(),
		Routes: []workflows.Route{{EndpointID: ep, Label: ep, Events: []string{"sent", "processed", "delivered", "bounced", "aborted"}}},
		Policy: workflows.Policy{TrackingWindow: 2 * time.Second, MaxRunSignals: 20},
	}
	ctx := context.Background()
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.cfg.TaskQueue,
		TypedSearchAttributes: workflows.StartSearchAttributes(in, "sandbox")}, workflows.MessageWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sent postback failing", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.bodies) == 1
	})
	for i := range 25 {
		ev := message.Event{DispatchID: id, Provider: "generic", Workspace: "default", Type: message.EventDeferred,
			ID: fmt.Sprintf("deferred-%d", i), ReceivedAt: time.Now(), Timestamp: time.Now()}
		if err := s.client.SignalWorkflow(ctx, id, "", workflows.SignalEvent, ev); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a continue-as-new", func() bool { return len(runs(t, s, id)) >= 2 })
	hook.setDown(false)
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var st workflows.State
	if err := s.client.GetWorkflow(ctx2, id, "").Get(ctx2, &st); err != nil {
		t.Fatal(err)
	}
	if st.Postbacks[0].State != workflows.PostbackDelivered || st.Status != message.StatusSent {
		t.Fatalf("final: status %s, sent postback %s, want sent and delivered", st.Status, st.Postbacks[0].State)
	}
	n, twice, twoBodies := hook.delivered()
	if n != 1 || len(twice) > 0 || len(twoBodies) > 0 {
		t.Errorf("endpoint: %d webhook-ids delivered (twice: %v, two bodies: %v), want 1, once, one body", n, twice, twoBodies)
	}
	hook.mu.Lock()
	attempts := len(hook.bodies[st.Postbacks[0].WebhookID])
	hook.mu.Unlock()
	if attempts < 2 {
		t.Errorf("the sent postback was tried %d times, want it retried across runs", attempts)
	}
	if s.sends.Load() != 1 {
		t.Errorf("%d hand-overs to the ESP, want 1", s.sends.Load())
	}
	recordRun(t, s, id, run.GetRunID(), "history_continue_as_new.json")
}

// GET /v1/messages/{id} answers while the ESP holds the hand-over: the send is
// a regular activity, so no workflow task stays open while it runs.
func TestReadsDontWaitForTheESP(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s := setup(t, nil)
	s.stopWorker()
	s.sendGate = gate
	s.startWorker()
	id := s.send(message.SendRequest{To: "silent@example.com", Subject: "slow ESP", Text: "t", PostbackURL: s.postback.URL})
	eventually(t, "the hand-over under way", func() bool { return s.sends.Load() == 1 })
	var took []time.Duration
	for range 20 {
		start := time.Now()
		st := s.state(id)
		took = append(took, time.Since(start))
		if st.Status != message.StatusQueued {
			t.Fatalf("status %s while the ESP holds the hand-over, want queued", st.Status)
		}
	}
	slices.Sort(took)
	t.Logf("GET while the ESP holds the hand-over: median %s, max %s", took[len(took)/2], took[len(took)-1])
	close(gate)
	eventually(t, "sent", func() bool { return s.state(id).Status == message.StatusSent })
}

// A receiver slower than the first attempt's budget, but within its
// endpoint's timeout, gets each postback once: the attempt is never cut while
// the receiver may still be processing it.
func TestSlowReceiverGetsEachPostbackOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow receivers: up to 14 s an answer")
	}
	for _, delay := range []time.Duration{time.Second, 4 * time.Second, 8 * time.Second, 14 * time.Second} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			hook := newSlowHook(t, delay)
			ep := uniqueID("slow")
			endpoints := withEndpoints(t, map[string]any{"id": ep, "url": hook.URL, "timeout": "20s"})
			s := setup(t, func(c *config.Config) {
				endpoints(c)
				c.TrackingWindow = 2 * time.Minute // open until the test's event, however slow the receiver
			})
			id := s.send(message.SendRequest{To: "silent@example.com", Subject: "slow receiver", Text: "t"})
			eventually(t, "the sent postback", func() bool { n, _, _ := hook.delivered(); return n == 1 })
			delivered := map[string]any{"dispatch_id": id, "event": "delivered", "event_id": "d-1"}
			if resp := s.do("POST", "/v1/events/generic", delivered, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("delivered: %d", resp.StatusCode)
			}
			deadline := time.Now().Add(delay*3 + 30*time.Second)
			for {
				if n, _, _ := hook.delivered(); n == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the delivered postback never arrived")
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(delay + time.Second) // a second delivery would be under way by now
			hook.mu.Lock()
			defer hook.mu.Unlock()
			for wid, bs := range hook.bodies {
				if len(bs) != 1 {
					t.Errorf("%s (%s) received %d times, want once", wid, hook.status[wid], len(bs))
				}
			}
		})
	}
}
