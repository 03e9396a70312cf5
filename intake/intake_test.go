package intake

import (
	"errors"
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
		name    string
		body    string
		want    []message.Event
		wantErr string
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
		{name: "malformed JSON", body: `{"dispatch_id":`, wantErr: "malformed JSON"},
		{name: "unknown event", body: `{"dispatch_id":"` + id + `","event":"exploded"}`, wantErr: `event: unknown event "exploded"`},
		{name: "our own sent is not an ESP event", body: `{"dispatch_id":"` + id + `","event":"sent"}`, wantErr: `event: unknown event "sent"`},
		{name: "missing dispatch_id in array", body: `[{"dispatch_id":"` + id + `","event":"open"},{"event":"open"}]`, wantErr: "[1].dispatch_id: is required"},
		{name: "bad timestamp", body: `{"dispatch_id":"` + id + `","event":"open","timestamp":"yesterday"}`, wantErr: `timestamp: "yesterday" is not an RFC 3339 time`},
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
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
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
	if a[0].ID == "" || a[0].ID != b[0].ID || a[0].ID == c[0].ID {
		t.Errorf("synthetic ids: retry %q vs %q, other event %q", a[0].ID, b[0].ID, c[0].ID)
	}
}
