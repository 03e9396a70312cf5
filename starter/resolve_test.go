package starter

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// Events naming only a provider's message id get their dispatch_id; ids that
// miss are looked up once more for the whole request, not once per event; a
// recent event still missing is left out as pending (its provider is asked to
// post it again), an old one stays, unmatched.
func TestResolve(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	calls := map[string]int{}
	a := &API{resolveMessageID: func(_ context.Context, provider, id string) (string, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[provider+"/"+id]++
		switch {
		case id == "known":
			return "d-known", true, nil
		case id == "late" && calls[provider+"/"+id] == 2: // visible on the second look
			return "d-late", true, nil
		}
		return "", false, nil
	}, now: func() time.Time { return now }, cfg: config.Config{IntakeRetryWindow: 15 * time.Minute},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	events := []message.Event{
		{Provider: "postmark", MessageID: "known", Type: message.EventDelivered},
		{Provider: "postmark", MessageID: "known", Type: message.EventOpen},
		{Provider: "postmark", MessageID: "late", Type: message.EventDelivered},
		{Provider: "postmark", MessageID: "never", Type: message.EventDelivered, Timestamp: now.Add(-20 * time.Minute)},
		{Provider: "postmark", DispatchID: "d-given", MessageID: "other", Type: message.EventDelivered},
		{Provider: "postmark", MessageID: "soon", Type: message.EventDelivered, Timestamp: now.Add(-time.Minute)},
	}
	events, pending, err := a.resolve(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	if pending != 1 || len(events) != 5 {
		t.Errorf("%d pending, %d events left; want the recent miss pending, 5 left", pending, len(events))
	}
	want := []string{"d-known", "d-known", "d-late", "", "d-given"}
	for i, ev := range events {
		if ev.DispatchID != want[i] {
			t.Errorf("event %d (%s): dispatch_id %q, want %q", i, ev.MessageID, ev.DispatchID, want[i])
		}
	}
	wantCalls := map[string]int{"postmark/known": 1, "postmark/late": 2, "postmark/never": 2, "postmark/soon": 2}
	for k, n := range wantCalls {
		if calls[k] != n {
			t.Errorf("%s looked up %d times, want %d", k, calls[k], n)
		}
	}
	if len(calls) != len(wantCalls) {
		t.Errorf("looked up %v, want only %v (an event with a dispatch_id needs no lookup)", calls, wantCalls)
	}
}
