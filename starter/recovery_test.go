package starter

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// A recovery's window and states are validated, each error naming its field;
// until defaults to now, and a later one is now; states default to failed and
// held, without duplicates.
func TestRecoveryWindow(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	a := testAPI()
	a.now = func() time.Time { return now }
	day := "2026-03-09T12:00:00Z"
	tests := []struct {
		name   string
		in     replayEndpointRequest
		field  string // the error names it; "" no error
		states []string
		since  time.Time
		until  time.Time
	}{
		{name: "defaults", in: replayEndpointRequest{Since: day},
			states: []string{"failed", "held"}, since: now.Add(-24 * time.Hour), until: now},
		{name: "until and states", in: replayEndpointRequest{Since: day, Until: "2026-03-10T00:00:00+01:00", States: []string{"held", "delivered", "held"}},
			states: []string{"held", "delivered"}, since: now.Add(-24 * time.Hour), until: now.Add(-13 * time.Hour)},
		{name: "a future until is now", in: replayEndpointRequest{Since: day, Until: "2027-01-01T00:00:00Z"},
			states: []string{"failed", "held"}, since: now.Add(-24 * time.Hour), until: now},
		{name: "since missing", in: replayEndpointRequest{}, field: "since: required"},
		{name: "since malformed", in: replayEndpointRequest{Since: "yesterday"}, field: "since:"},
		{name: "since without a zone", in: replayEndpointRequest{Since: "2026-03-09T12:00:00"}, field: "since:"},
		{name: "since in the future", in: replayEndpointRequest{Since: "2026-03-11T00:00:00Z"}, field: "since: in the future"},
		{name: "since too old", in: replayEndpointRequest{Since: "2025-11-01T00:00:00Z"}, field: "since: at most 90 days ago"},
		{name: "until malformed", in: replayEndpointRequest{Since: day, Until: "soon"}, field: "until:"},
		{name: "until before since", in: replayEndpointRequest{Since: day, Until: "2026-03-08T00:00:00Z"}, field: "until: must be after since"},
		{name: "until equal to since", in: replayEndpointRequest{Since: day, Until: day}, field: "until: must be after since"},
		{name: "unknown state", in: replayEndpointRequest{Since: day, States: []string{"held", "pending"}}, field: `states[1]: "pending"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states, since, until, err := a.recoveryWindow(tc.in)
			if tc.field != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.field) || statusOf(err) != 400 {
					t.Fatalf("got %v (status %d), want a 400 starting %q", err, statusOf(err), tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(states, tc.states) || !since.Equal(tc.since) || !until.Equal(tc.until) {
				t.Errorf("got %v [%s, %s), want %v [%s, %s)", states, since, until, tc.states, tc.since, tc.until)
			}
		})
	}
}
