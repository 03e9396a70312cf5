package intake

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// seedDispatchID is the dispatch_id the fixtures carry.
const seedDispatchID = "acf471119f7449d579e8089032003ded"

var receivedAt = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/v1/events/x", strings.NewReader(string(body)))
}

// want is what a test checks of an event; empty ID and zero Timestamp are not checked.
type want struct {
	Type       message.EventType
	RawType    string
	DispatchID string
	MessageID  string
	Reason     string
	ID         string
	Timestamp  time.Time
}

func checkEvent(t *testing.T, i int, got message.Event, provider string, w want) {
	t.Helper()
	if got.Type != w.Type || got.RawType != w.RawType || got.DispatchID != w.DispatchID ||
		got.MessageID != w.MessageID || got.Reason != w.Reason || got.Provider != provider {
		t.Errorf("event %d:\n got %s %q dispatch_id=%q message_id=%q reason=%q provider=%q\nwant %s %q dispatch_id=%q message_id=%q reason=%q provider=%q",
			i, got.Type, got.RawType, got.DispatchID, got.MessageID, got.Reason, got.Provider,
			w.Type, w.RawType, w.DispatchID, w.MessageID, w.Reason, provider)
	}
	if w.ID != "" && got.ID != w.ID {
		t.Errorf("event %d: got id %q, want %q", i, got.ID, w.ID)
	}
	if got.ID == "" {
		t.Errorf("event %d: empty id", i)
	}
	if !w.Timestamp.IsZero() && !got.Timestamp.Equal(w.Timestamp) {
		t.Errorf("event %d: got timestamp %s, want %s", i, got.Timestamp, w.Timestamp)
	}
	if !got.ReceivedAt.Equal(receivedAt) {
		t.Errorf("event %d: got received_at %s, want %s", i, got.ReceivedAt, receivedAt)
	}
}

// checkInvariants is what the fuzz targets hold every normalizer to: events have a
// type dispatchflow knows (never our own "sent"), a dedupe key, a timestamp, and
// a raw type (an event comes from a named provider event, never from nothing).
func checkInvariants(t *testing.T, provider string, events []message.Event) {
	t.Helper()
	for i, e := range events {
		if !slices.Contains(message.EventTypes, e.Type) || e.Type == message.EventSent {
			t.Fatalf("event %d: type %q", i, e.Type)
		}
		if e.ID == "" || e.RawType == "" || e.Timestamp.IsZero() || e.Provider != provider {
			t.Fatalf("event %d: id %q, raw type %q, timestamp %s, provider %q", i, e.ID, e.RawType, e.Timestamp, e.Provider)
		}
	}
}

// one normalizes a request of one event and returns it, failing the test unless
// the batch holds exactly that event.
func one(t *testing.T, n Normalizer, r *http.Request, body []byte) message.Event {
	t.Helper()
	b, err := n.Normalize(r, body, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || len(b.Invalid) != 0 {
		t.Fatalf("got %d events and invalid %+v, want 1 event", len(b.Events), b.Invalid)
	}
	return b.Events[0]
}

// invalid normalizes a request of one event and returns why it is invalid, failing
// the test unless the request is accepted with that one event invalid.
func invalid(t *testing.T, n Normalizer, r *http.Request, body []byte) string {
	t.Helper()
	b, err := n.Normalize(r, body, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 0 || len(b.Invalid) != 1 || b.Invalid[0].Index != 0 || b.Invalid[0].Reason == "" {
		t.Fatalf("got %d events and invalid %+v, want one invalid event", len(b.Events), b.Invalid)
	}
	return b.Invalid[0].Reason
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
