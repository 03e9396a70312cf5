package message

import "testing"

// TestNext checks every (status, event) pair against the documented table: the pairs
// listed in want change the status, every other pair changes nothing.
func TestNext(t *testing.T) {
	t.Parallel()
	want := map[Status]map[EventType]Status{
		StatusQueued: {EventSent: StatusSent, EventAborted: StatusAborted},
		StatusSent: {
			EventProcessed: StatusProcessed, EventDelivered: StatusDelivered,
			EventOpen: StatusDelivered, EventClick: StatusDelivered,
			EventBounced: StatusBounced, EventAborted: StatusAborted,
		},
		StatusProcessed: {
			EventDelivered: StatusDelivered, EventOpen: StatusDelivered, EventClick: StatusDelivered,
			EventBounced: StatusBounced, EventAborted: StatusAborted,
		},
		StatusDelivered: {EventBounced: StatusBounced},
		StatusBounced:   {},
		StatusAborted:   {},
	}
	for _, from := range Statuses {
		for _, on := range EventTypes {
			to, changed := Next(from, on)
			wantTo, wantChanged := want[from][on]
			if !wantChanged {
				wantTo = from
			}
			if to != wantTo || changed != wantChanged {
				t.Errorf("Next(%s, %s) = %s, %v; want %s, %v", from, on, to, changed, wantTo, wantChanged)
			}
		}
	}
}

// TestNextNeverGoesBackwards holds the table to its promise for every pair.
func TestNextNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	for _, from := range Statuses {
		for _, on := range EventTypes {
			to, changed := Next(from, on)
			if changed && to.Rank() <= from.Rank() {
				t.Errorf("Next(%s, %s) = %s: rank %d does not rise above %d", from, on, to, to.Rank(), from.Rank())
			}
			if from.Final() && changed {
				t.Errorf("Next(%s, %s) changed a final status", from, on)
			}
		}
	}
}

// TestSequences replays event orders seen from real ESPs.
func TestSequences(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		events  []EventType
		want    Status
		changes int
	}{
		{"happy path", []EventType{EventSent, EventProcessed, EventDelivered}, StatusDelivered, 3},
		{"delivered before processed", []EventType{EventSent, EventDelivered, EventProcessed}, StatusDelivered, 2},
		{"open before delivered", []EventType{EventSent, EventOpen, EventDelivered}, StatusDelivered, 2},
		{"delayed bounce", []EventType{EventSent, EventProcessed, EventDelivered, EventBounced}, StatusBounced, 4},
		{"deferred then delivered", []EventType{EventSent, EventDeferred, EventDelivered}, StatusDelivered, 2},
		{"delivered after bounce is ignored", []EventType{EventSent, EventBounced, EventDelivered}, StatusBounced, 2},
		{"aborted is final", []EventType{EventAborted, EventSent, EventDelivered, EventBounced}, StatusAborted, 1},
		{"dropped by the ESP", []EventType{EventSent, EventProcessed, EventAborted, EventDelivered}, StatusAborted, 3},
		{"duplicate delivered", []EventType{EventSent, EventDelivered, EventDelivered}, StatusDelivered, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, changes := StatusQueued, 0
			for _, e := range tt.events {
				var changed bool
				if s, changed = Next(s, e); changed {
					changes++
				}
			}
			if s != tt.want || changes != tt.changes {
				t.Errorf("got %s after %d changes, want %s after %d", s, changes, tt.want, tt.changes)
			}
		})
	}
}

func TestParseEventType(t *testing.T) {
	t.Parallel()
	if got, err := ParseEventType("delivered"); err != nil || got != EventDelivered {
		t.Errorf("ParseEventType(delivered) = %q, %v", got, err)
	}
	if _, err := ParseEventType("delivred"); err == nil || err.Error() != `unknown event "delivred"` {
		t.Errorf("ParseEventType(delivred) error = %v, want unknown event", err)
	}
}
