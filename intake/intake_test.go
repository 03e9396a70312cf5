package intake

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

func TestGeneric(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const id = "acf471119f7449d579e8089032003ded"
	tests := []struct {
		name        string
		body        string
		want        []message.Event
		wantInvalid []Invalid
		wantErr     string
	}{
		{
			name: "one object",
			body: `{"dispatch_id":"` + id + `","event":"bounced","timestamp":"2026-11-22T09:59:58+01:00","reason":"550 5.1.1 no such user","event_id":"e1"}`,
			want: []message.Event{{DispatchID: id, Provider: "generic", Type: message.EventBounced, ID: "e1",
				Timestamp: time.Date(2026, 11, 22, 8, 59, 58, 0, time.UTC), ReceivedAt: now, Reason: "550 5.1.1 no such user", RawType: "bounced"}},
		},
		{
			name: "array, timestamp defaults to receipt",
			body: `[{"dispatch_id":"` + id + `","event":"processed","event_id":"a"},{"dispatch_id":"` + id + `","event":"open","event_id":"b"}]`,
			want: []message.Event{
				{DispatchID: id, Provider: "generic", Type: message.EventProcessed, ID: "a", Timestamp: now, ReceivedAt: now, RawType: "processed"},
				{DispatchID: id, Provider: "generic", Type: message.EventOpen, ID: "b", Timestamp: now, ReceivedAt: now, RawType: "open"},
			},
		},
		{
			name: "array with broken events: the others are read",
			body: `[{"event":"open"},{"dispatch_id":"` + id + `","event":"open","event_id":"b"},{"dispatch_id":"` + id + `","event":"open","timestamp":"yesterday"},` +
				`{"dispatch_id":7,"event":"open"},{"dispatch_id":"` + id + `","event":"exploded"}]`,
			want: []message.Event{{DispatchID: id, Provider: "generic", Type: message.EventOpen, ID: "b", Timestamp: now, ReceivedAt: now, RawType: "open"}},
			wantInvalid: []Invalid{
				{0, "dispatch_id: is required"},
				{2, "timestamp: not an RFC 3339 time"},
				{3, "dispatch_id: a JSON number where a string is expected"},
				{4, "event: unknown event (want one of processed, delivered, bounced, aborted, deferred, open, click)"},
			},
		},
		{name: "unknown event", body: `{"dispatch_id":"` + id + `","event":"exploded"}`,
			wantInvalid: []Invalid{{0, "event: unknown event (want one of processed, delivered, bounced, aborted, deferred, open, click)"}}},
		{name: "our own sent is not an ESP event", body: `{"dispatch_id":"` + id + `","event":"sent"}`,
			wantInvalid: []Invalid{{0, "event: unknown event (want one of processed, delivered, bounced, aborted, deferred, open, click)"}}},
		{name: "missing dispatch_id", body: `{"event":"open"}`, wantInvalid: []Invalid{{0, "dispatch_id: is required"}}},
		{name: "bad timestamp", body: `{"dispatch_id":"` + id + `","event":"open","timestamp":"yesterday"}`,
			wantInvalid: []Invalid{{0, "timestamp: not an RFC 3339 time"}}},
		{name: "malformed JSON", body: `{"dispatch_id":`, wantErr: "malformed JSON"},
		{name: "malformed array", body: `[{"dispatch_id":`, wantErr: "malformed JSON"},
		{name: "neither object nor array", body: `"open"`, wantErr: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Generic{Provider: "generic"}.Normalize(nil, []byte(tt.body), now)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want a bad request containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Events, tt.want) {
				t.Errorf("events:\n got %+v\nwant %+v", got.Events, tt.want)
			}
			if !slices.Equal(got.Invalid, tt.wantInvalid) {
				t.Errorf("invalid:\n got %+v\nwant %+v", got.Invalid, tt.wantInvalid)
			}
		})
	}
}

// A reason is cut to message.MaxReasonLength, by every normalizer.
func TestGenericCutsReason(t *testing.T) {
	t.Parallel()
	body := `{"dispatch_id":"d","event":"bounced","reason":"` + strings.Repeat("x", 5000) + `"}`
	got, err := Generic{Provider: "generic"}.Normalize(nil, []byte(body), receivedAt)
	if err != nil || len(got.Events) != 1 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if r := got.Events[0].Reason; len(r) != message.MaxReasonLength || !strings.HasSuffix(r, "…") {
		t.Errorf("got a reason of %d bytes, want %d ending in …", len(r), message.MaxReasonLength)
	}
}

// Without an event_id, the same event posted twice gets the same dedupe key, and
// a different event a different one.
func TestGenericSyntheticID(t *testing.T) {
	t.Parallel()
	body := `{"dispatch_id":"d","event":"delivered","timestamp":"2026-11-22T10:00:00Z"}`
	a, err := Generic{Provider: "generic"}.Normalize(nil, []byte(body), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generic{Provider: "generic"}.Normalize(nil, []byte(body), time.Now().Add(time.Hour))
	c, _ := Generic{Provider: "generic"}.Normalize(nil, []byte(strings.Replace(body, "delivered", "open", 1)), time.Now())
	if a.Events[0].ID == "" || a.Events[0].ID != b.Events[0].ID || a.Events[0].ID == c.Events[0].ID {
		t.Errorf("synthetic ids: retry %q vs %q, other event %q", a.Events[0].ID, b.Events[0].ID, c.Events[0].ID)
	}
}
