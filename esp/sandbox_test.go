package esp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// The sandbox's script, as posted to a real HTTP intake.
func TestSandbox(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got = map[string][]SandboxEvent{}
	)
	intake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev SandboxEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("sandbox posted a body that is not an event: %v", err)
		}
		mu.Lock()
		got[ev.DispatchID] = append(got[ev.DispatchID], ev)
		mu.Unlock()
	}))
	defer intake.Close()
	h := retryablehttp.NewClient()
	h.Logger = nil
	s := &Sandbox{EventsURL: intake.URL, Delay: 5 * time.Millisecond, HTTP: h}

	tests := []struct {
		to      string
		events  []string
		reason  string
		refused bool
	}{
		{to: "ok@example.com", events: []string{"processed", "delivered"}},
		{to: "Ann <bounce@example.com>", events: []string{"processed", "bounced"}, reason: SandboxBounceReason},
		{to: "blackhole@example.com", events: []string{"processed"}},
		{to: "silent@example.com"},
		{to: "softbounce@example.com", events: []string{"deferred", "delivered"}},
		{to: "abort@example.com", refused: true},
		{to: "SUPPRESSED@example.com", refused: true},
	}
	for i, tt := range tests {
		id := string(rune('a'+i)) + "0000000000000000000000000000000"
		rcpt, err := s.Send(context.Background(), Email{DispatchID: id, To: tt.to})
		reason, refused := IsRefused(err)
		if refused != tt.refused || (refused && reason != "User not emailable") {
			t.Errorf("%s: got error %v, want refused=%v", tt.to, err, tt.refused)
		}
		if !refused && (rcpt.Provider != "sandbox" || rcpt.MessageID == "") {
			t.Errorf("%s: receipt %+v", tt.to, rcpt)
		}
		tests[i].to = id
	}
	s.Wait()
	for _, tt := range tests {
		evs := got[tt.to]
		var names []string
		for _, ev := range evs {
			names = append(names, ev.Event)
			if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil || ev.EventID == "" {
				t.Errorf("event %+v lacks a timestamp or an id", ev)
			}
		}
		if !slices.Equal(names, tt.events) {
			t.Errorf("%s: posted %v, want %v", tt.to, names, tt.events)
		}
		if tt.reason != "" && evs[len(evs)-1].Reason != tt.reason {
			t.Errorf("bounce reason %q, want %q", evs[len(evs)-1].Reason, tt.reason)
		}
	}
}
