package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/suppression"
	"github.com/dispatchflow/dispatchflow/worker"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// suppressionAnswer is GET /v1/suppressions/{address} and DELETE's answer,
// and one item of the list.
type suppressionAnswer struct {
	ID         string              `json:"id"`
	Workspace  string              `json:"workspace"`
	Hint       string              `json:"address_hint"`
	Cause      string              `json:"cause"`
	Provider   string              `json:"provider"`
	DispatchID string              `json:"dispatch_id"`
	At         time.Time           `json:"at"`
	Since      time.Time           `json:"since"`
	Count      int                 `json:"count"`
	Entries    []suppression.Entry `json:"entries"`
	Lifted     *suppression.Lift   `json:"lifted"`
	Error      string              `json:"error"`
}

// withSuppressionKey gives the system a suppression list of its own: a key no
// other test uses, so that no other test's bounce@ is suppressed here, nor
// this one's there (the Temporal server is shared).
func withSuppressionKey(t *testing.T) func(*config.Config) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.SuppressionKey = hex.EncodeToString(raw) }
}

func (s *system) suppression(address string) (int, suppressionAnswer) {
	s.t.Helper()
	var a suppressionAnswer
	resp := s.do("GET", "/v1/suppressions/"+url.PathEscape(address), nil, &a)
	return resp.StatusCode, a
}

// waitStatus waits for message id to reach status, and returns its state.
func (s *system) waitStatus(id string, status message.Status) workflows.State {
	s.t.Helper()
	var st workflows.State
	eventually(s.t, fmt.Sprintf("message %s %s", id, status), func() bool { st = s.state(id); return st.Status == status })
	return st
}

// The suppression list end to end, on the real server with the sandbox ESP:
// a hard bounce suppresses the address for its workspace; a later send to it,
// in another case, is aborted with the reason and no ESP call, and escalates
// to the fallback; GET shows the entry; another workspace neither sees it nor
// is stopped by it; the list pages it; DELETE lifts it, and the next send
// goes out (and, bouncing, suppresses the address anew).
func TestSuppressionList(t *testing.T) {
	t.Parallel()
	s := setup(t, withSuppressionKey(t))
	const addr = "bounce@suppression.example" // the sandbox bounces it
	before := time.Now()
	first := s.send(message.SendRequest{To: addr, Subject: "first", Text: "t", PostbackURL: s.postback.URL})
	s.waitStatus(first, message.StatusBounced)

	// GET is a point read: it finds the suppression as soon as the workflow
	// recorded it (the Suppress activity runs just after the bounce applied).
	var sup suppressionAnswer
	eventually(t, "the address suppressed", func() bool {
		code, a := s.suppression("Bounce@Suppression.EXAMPLE")
		sup = a
		return code == http.StatusOK
	})
	if sup.Cause != "hard_bounce" || sup.Provider != "sandbox" || sup.DispatchID != first || sup.Workspace != "default" ||
		sup.Hint != "b***@suppression.example" || len(sup.ID) != 64 || sup.Count != 1 || len(sup.Entries) != 1 {
		t.Fatalf("suppression %+v, want a hard bounce via sandbox of %s, workspace default, hint b***@suppression.example", sup, first)
	}
	if sup.At.Before(before.Add(-time.Second)) || sup.At.After(time.Now()) || sup.Since.Before(sup.At.Add(-time.Second)) {
		t.Errorf("at %s, since %s: want the bounce's time, between the send (%s) and now", sup.At, sup.Since, before)
	}
	if code, byID := s.suppression(sup.ID); code != http.StatusOK || byID.DispatchID != first {
		t.Errorf("GET by id: %d %+v, want the same suppression", code, byID)
	}

	// A later send in another case: aborted with the reason, no ESP call,
	// escalated to the fallback its policy names.
	handed := s.sends.Load()
	second := s.sendFallback("Bob <BOUNCE@Suppression.example>", map[string]any{
		"on": []string{"aborted"}, "steps": []any{map[string]any{"channel": "sandbox", "to": "+33612345678", "text": "hi"}},
	})
	st := s.waitStatus(second, message.StatusAborted)
	wantReason := fmt.Sprintf("suppressed (hard bounce via sandbox, dispatch %s, %s)", first, sup.At.UTC().Format(time.RFC3339))
	if st.Reason != wantReason {
		t.Errorf("reason %q, want %q", st.Reason, wantReason)
	}
	if st.ESP != nil {
		t.Errorf("ESP receipt %+v, want none", st.ESP)
	}
	eventually(t, "fallback escalated", func() bool { st = s.state(second); return st.Fallback.Outcome != "" })
	if st.Fallback.State != workflows.FallbackEscalated || st.Fallback.Reason != "aborted" {
		t.Errorf("fallback %+v, want escalated on aborted", st.Fallback)
	}
	pbs := s.postback.waitFor(t, second, 1)
	if md, _ := pbs[0]["metadata"].(map[string]any); pbs[0]["status"] != "aborted" || md["reason"] != wantReason {
		t.Errorf("postback %v, want aborted with the reason", pbs[0])
	}

	// Another workspace: not suppressed there, and its send goes out.
	other := s.as("other")
	if code, a := other.suppression(addr); code != http.StatusNotFound || !strings.Contains(a.Error, "not suppressed") {
		t.Errorf("globex GET: %d %+v, want 404", code, a)
	}
	if code, _ := other.suppression(sup.ID); code != http.StatusNotFound {
		t.Errorf("globex GET of default's id: %d, want 404", code)
	}
	theirs := other.send(message.SendRequest{To: addr, Subject: "globex", Text: "t"})
	other.waitStatus(theirs, message.StatusBounced)
	if got := s.sends.Load(); got != handed+1 {
		t.Errorf("%d hand-overs since the suppression, want 1 (globex's; the suppressed send none)", got-handed)
	}

	// The list (visibility: a moment behind) shows it, for its workspace only.
	eventually(t, "the suppression listed", func() bool {
		return slices.ContainsFunc(s.suppressions(""), func(a suppressionAnswer) bool { return a.ID == sup.ID })
	})
	listed := s.suppressions("")
	i := slices.IndexFunc(listed, func(a suppressionAnswer) bool { return a.ID == sup.ID })
	if l := listed[i]; l.Cause != "hard_bounce" || l.Provider != "sandbox" || l.DispatchID != first || l.Hint != sup.Hint ||
		!l.At.Equal(sup.At) || l.Workspace != "default" {
		t.Errorf("listed %+v, want %+v", l, sup)
	}
	if slices.ContainsFunc(other.suppressions(""), func(a suppressionAnswer) bool { return a.ID == sup.ID }) {
		t.Errorf("globex's list shows default's suppression")
	}
	if resp := other.do("GET", "/v1/suppressions?workspace=default", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("globex listing default: %d, want 403", resp.StatusCode)
	}

	// Scopes: reading takes messages:read, lifting suppressions:write.
	if code, _ := s.as("reader").suppression(addr); code != http.StatusOK {
		t.Errorf("GET with messages:read: %d, want 200", code)
	}
	var refused map[string]any
	if resp := s.as("reader").do("DELETE", "/v1/suppressions/"+addr, nil, &refused); resp.StatusCode != http.StatusForbidden ||
		!strings.Contains(str(refused["error"]), "suppressions:write") {
		t.Errorf("DELETE with messages:read: %d %v, want 403 naming suppressions:write", resp.StatusCode, refused)
	}
	if code, _ := s.as("sender").suppression(addr); code != http.StatusForbidden {
		t.Errorf("GET with messages:send only: %d, want 403", code)
	}
	if code, _ := s.as("").suppression(addr); code != http.StatusUnauthorized {
		t.Errorf("GET without a key: %d, want 401", code)
	}

	// DELETE lifts it before it answers: the next send goes out.
	var lifted suppressionAnswer
	if resp := s.do("DELETE", "/v1/suppressions/"+url.PathEscape("BOUNCE@suppression.example"), map[string]any{"reason": "address fixed"}, &lifted); resp.StatusCode != http.StatusOK ||
		lifted.Lifted == nil || lifted.Lifted.Reason != "address fixed" || lifted.DispatchID != first {
		t.Fatalf("DELETE: %d %+v, want 200 lifted with the reason", resp.StatusCode, lifted)
	}
	if code, _ := s.suppression(addr); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	if resp := s.do("DELETE", "/v1/suppressions/"+addr, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE again: %d, want 404", resp.StatusCode)
	}
	handed = s.sends.Load()
	third := s.send(message.SendRequest{To: addr, Subject: "third", Text: "t"})
	s.waitStatus(third, message.StatusBounced)
	if got := s.sends.Load(); got != handed+1 {
		t.Errorf("%d hand-overs after DELETE, want 1", got-handed)
	}
	eventually(t, "suppressed anew by the new bounce", func() bool {
		code, a := s.suppression(addr)
		return code == http.StatusOK && a.DispatchID == third && a.Count == 1
	})
}

// With DISPATCHFLOW_PAYLOAD_KEY, the suppression's workflow holds nothing of
// the address in clear — its ID a keyed hash, its input and memo (the masked
// hint, the entry) ciphertext — while the check, GET and the list read it.
func TestSuppressionEncrypted(t *testing.T) {
	t.Parallel()
	payloadKey := base64.StdEncoding.EncodeToString([]byte("suppression-payload-key-32-bytes"))
	withKey := withSuppressionKey(t)
	s := setup(t, func(c *config.Config) { withKey(c); c.PayloadKey = payloadKey })
	const addr = "bounce@encrypted-suppression.example"
	first := s.send(message.SendRequest{To: addr, Subject: "one", Text: "t"})
	s.waitStatus(first, message.StatusBounced)
	var sup suppressionAnswer
	eventually(t, "the address suppressed", func() bool {
		code, a := s.suppression(addr)
		sup = a
		return code == http.StatusOK
	})
	second := s.send(message.SendRequest{To: addr, Subject: "two", Text: "t"})
	if st := s.waitStatus(second, message.StatusAborted); !strings.Contains(st.Reason, "hard bounce via sandbox, dispatch "+first) {
		t.Errorf("reason %q: want the entry, read from the encrypted memo", st.Reason)
	}
	eventually(t, "the suppression listed with its hint", func() bool {
		return slices.ContainsFunc(s.suppressions(""), func(a suppressionAnswer) bool {
			return a.ID == sup.ID && a.Hint == "b***@encrypted-suppression.example" && a.DispatchID == first
		})
	})

	// What Temporal stores, read without the payload key.
	raw, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: s.cfg.Temporal.Namespace,
		Logger: sdklog.NewStructuredLogger(s.logger)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wfID := suppression.WorkflowID("default", sup.ID)
	desc, err := raw.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		t.Fatal(err)
	}
	var h historypb.History
	for iter := raw.GetWorkflowHistory(ctx, wfID, "", false, 0); iter.HasNext(); {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	stored, _ := protojson.Marshal(&h)
	described, _ := protojson.Marshal(desc)
	for what, b := range map[string][]byte{"history": stored, "description": described} {
		for _, clear := range []string{"bounce@", "encrypted-suppression", first} {
			if bytes.Contains(b, []byte(clear)) {
				t.Errorf("the suppression's %s holds %q in clear", what, clear)
			}
		}
	}
	memo := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[suppression.MemoSummary]
	if got := string(memo.GetMetadata()["encoding"]); got != codec.Encoding {
		t.Errorf("memo encoding %q, want %s", got, codec.Encoding)
	}
}

// The list pages: page_size at a time, next_page_token until the last page,
// each suppression once.
func TestSuppressionListPages(t *testing.T) {
	t.Parallel()
	ws := "it-sup-" + message.NewDispatchID()[:8] // a workspace of this test only
	key, keysFile := workspaceKey(t, ws)
	withKey := withSuppressionKey(t)
	s := setup(t, func(c *config.Config) { withKey(c); c.APIKeysFile = keysFile })
	s.key = key
	for _, domain := range []string{"a.example", "b.example", "c.example"} {
		s.send(message.SendRequest{To: "bounce@" + domain, Subject: "s", Text: "t", Workspace: ws})
	}
	eventually(t, "3 suppressions listed", func() bool { return len(s.suppressions("")) == 3 })

	seen := map[string]bool{}
	token, pages := "", 0
	for {
		var page struct {
			Suppressions  []suppressionAnswer `json:"suppressions"`
			NextPageToken string              `json:"next_page_token"`
		}
		if resp := s.do("GET", "/v1/suppressions?page_size=2&page_token="+url.QueryEscape(token), nil, &page); resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: %d", pages, resp.StatusCode)
		}
		pages++
		if len(page.Suppressions) > 2 {
			t.Errorf("page %d holds %d, want at most 2", pages, len(page.Suppressions))
		}
		for _, a := range page.Suppressions {
			if seen[a.ID] || a.Workspace != ws || a.Cause != "hard_bounce" {
				t.Errorf("page %d: %+v, seen before %v; want each of the workspace's once", pages, a, seen[a.ID])
			}
			seen[a.ID] = true
		}
		if token = page.NextPageToken; token == "" || pages > 3 {
			break
		}
	}
	if len(seen) != 3 || pages != 2 {
		t.Errorf("%d suppressions over %d pages, want 3 over 2", len(seen), pages)
	}
}

func (s *system) suppressions(q string) []suppressionAnswer {
	s.t.Helper()
	var page struct {
		Suppressions []suppressionAnswer `json:"suppressions"`
	}
	if resp := s.do("GET", "/v1/suppressions?page_size=1000&"+q, nil, &page); resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /v1/suppressions: %d", resp.StatusCode)
	}
	return page.Suppressions
}

// Two bounces of one address at once make one suppression with both entries
// (SignalWithStart is atomic: no failure, no second workflow); then sends
// racing to the suppressed address are all aborted, none handed to the ESP.
func TestSuppressionConcurrent(t *testing.T) {
	t.Parallel()
	s := setup(t, withSuppressionKey(t))
	const addr = "silent@race.example" // the sandbox reports nothing: the test posts the events
	ids := []string{
		s.send(message.SendRequest{To: addr, Subject: "a", Text: "t"}),
		s.send(message.SendRequest{To: "Silent@Race.example", Subject: "b", Text: "t"}),
	}
	for _, id := range ids {
		s.waitStatus(id, message.StatusSent)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := map[string]any{"dispatch_id": id, "event": "bounced", "reason": "550 5.1.1 user unknown", "event_id": fmt.Sprintf("race-%d", i)}
			if resp := s.do("POST", "/v1/events/generic", ev, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("bounce of %s: %d", id, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	var sup suppressionAnswer
	eventually(t, "both bounces recorded", func() bool {
		code, a := s.suppression(addr)
		sup = a
		return code == http.StatusOK && a.Count == 2
	})
	got := []string{sup.Entries[0].DispatchID, sup.Entries[1].DispatchID}
	sort.Strings(got)
	want := slices.Clone(ids)
	sort.Strings(want)
	if !slices.Equal(got, want) || sup.Provider != "generic" {
		t.Errorf("entries %+v, want one per message, via generic", sup.Entries)
	}

	handed := s.sends.Load()
	const n = 8
	sent := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i] = s.send(message.SendRequest{To: strings.ToUpper(addr), Subject: fmt.Sprintf("race %d", i), Text: "t"})
		}()
	}
	wg.Wait()
	for _, id := range sent {
		if st := s.waitStatus(id, message.StatusAborted); !strings.HasPrefix(st.Reason, "suppressed (hard bounce via generic, dispatch ") {
			t.Errorf("message %s: reason %q, want suppressed", id, st.Reason)
		}
	}
	if got := s.sends.Load(); got != handed {
		t.Errorf("%d hand-overs to the ESP for suppressed sends, want 0", got-handed)
	}
}

// instantESP accepts every message at once: what remains of Send's time is
// the suppression check.
type instantESP struct{}

func (instantESP) Name() string { return "sandbox" }
func (instantESP) Send(context.Context, esp.Email) (esp.Receipt, error) {
	return esp.Receipt{Provider: "sandbox", MessageID: "m"}, nil
}

// BenchmarkSendSuppressionCheck measures what the suppression list adds to a
// send, on the embedded server (SQLite, in memory): the Send activity with an
// ESP that answers at once, without a list, for an address not suppressed
// (Describe answers NotFound), and for a suppressed one (Describe of a
// running workflow, its memo decoded). It reports the median and the 99th
// percentile per call besides the mean. Run it alone (the machine is shared):
//
//	cd devserver && go test -run '^$' -bench SendSuppressionCheck -benchtime 2000x ./integration/
func BenchmarkSendSuppressionCheck(b *testing.B) {
	cfg, err := config.Load()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Temporal.Address = temporalAddr
	cfg.TaskQueue = "bench-suppression"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg.SuppressionKey = hex.EncodeToString(key)
	ctx := context.Background()
	c, err := app.Dial(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sup := worker.NewSuppressions(c, cfg)
	// A suppressed address: its workflow runs (no worker needed for Describe).
	if _, err := sup.Suppress(ctx, activities.SuppressInput{Workspace: "default", Recipient: "suppressed@bench.example",
		Entry: suppression.Entry{Cause: suppression.CauseHardBounce, Provider: "sandbox", DispatchID: message.NewDispatchID(), At: time.Now()}}); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		sup  *activities.Suppressions
		to   string
		err  bool
	}{
		{"no list", nil, "ok@bench.example", false},
		{"not suppressed", sup, "ok@bench.example", false},
		{"suppressed", sup, "suppressed@bench.example", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			acts := &activities.Activities{ESP: instantESP{}, Suppressions: bc.sup}
			in := activities.SendInput{Email: esp.Email{DispatchID: "d", To: bc.to}, Workspace: "default"}
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				_, err := acts.Send(ctx, in)
				took = append(took, time.Since(start))
				if (err != nil) != bc.err {
					b.Fatalf("Send: %v, want error %v", err, bc.err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
