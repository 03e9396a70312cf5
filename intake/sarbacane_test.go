package intake

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/message"
)

func TestSarbacane(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body []byte
		want want
	}{
		{"seed delivered", fixture(t, "sarbacane_delivered.json"), want{Type: message.EventDelivered, RawType: "delivered",
			DispatchID: seedDispatchID, Timestamp: mustTime(t, "2016-08-11T10:55:56.128Z")}},
		{"seed open", fixture(t, "sarbacane_open.json"), want{Type: message.EventOpen, RawType: "open", DispatchID: seedDispatchID,
			Timestamp: mustTime(t, "2016-08-11T12:25:18.889Z")}},
		{"seed click", fixture(t, "sarbacane_click.json"), want{Type: message.EventClick, RawType: "click", DispatchID: seedDispatchID}},
		// A temporary refusal, returnCode -1 (no SMTP answer): still to be delivered.
		{"seed soft bounce", fixture(t, "sarbacane_soft_bounce.json"), want{Type: message.EventDeferred, RawType: "soft_bounce/DEFAULT_SOFTBOUNCE",
			DispatchID: seedDispatchID, Reason: "Read timed out"}},
		{"seed hard bounce", fixture(t, "sarbacane_hard_bounce.json"), want{Type: message.EventBounced, RawType: "hard_bounce/BAD_MAILBOX",
			DispatchID: seedDispatchID, Reason: "550 5.1.1 user unknown (UserSearch)"}},
		{"hard bounce, the code apart", []byte(`{"type":"hard_bounce","whId":"` + seedDispatchID + `","returnCode":550,"smtpDescription":"5.1.1 no such user","category":"BAD_MAILBOX"}`),
			want{Type: message.EventBounced, RawType: "hard_bounce/BAD_MAILBOX", DispatchID: seedDispatchID, Reason: "550 5.1.1 no such user"}},
		{"API kind SUCCESSFUL", []byte(`{"kind":"SUCCESSFUL","whId":"` + seedDispatchID + `","date":"2025-04-23T13:54:26.938Z"}`),
			want{Type: message.EventDelivered, RawType: "SUCCESSFUL", DispatchID: seedDispatchID, Timestamp: mustTime(t, "2025-04-23T13:54:26.938Z")}},
		{"API kind HIT", []byte(`{"type":"HIT","whId":"` + seedDispatchID + `"}`), want{Type: message.EventClick, RawType: "HIT", DispatchID: seedDispatchID, Timestamp: receivedAt}},
		{"API kind HARD_BOUNCE", []byte(`{"type":"HARD_BOUNCE","whId":"` + seedDispatchID + `","smtpDescription":"550 no such user"}`),
			want{Type: message.EventBounced, RawType: "HARD_BOUNCE", DispatchID: seedDispatchID, Reason: "550 no such user"}},
		{"API kind SOFT_BOUNCE", []byte(`{"type":"SOFT_BOUNCE","whId":"` + seedDispatchID + `","category":"MAILBOX_FULL"}`),
			want{Type: message.EventDeferred, RawType: "SOFT_BOUNCE/MAILBOX_FULL", DispatchID: seedDispatchID, Reason: "MAILBOX_FULL"}},
		{"API kind OPEN", []byte(`{"type":"OPEN","whId":"` + seedDispatchID + `"}`), want{Type: message.EventOpen, RawType: "OPEN", DispatchID: seedDispatchID}},
		{"API kind COMPLAINT", []byte(`{"type":"COMPLAINT","whId":"` + seedDispatchID + `"}`), want{Type: message.EventComplaint, RawType: "COMPLAINT", DispatchID: seedDispatchID}},
		{"API kind UNSUBSCRIBE", []byte(`{"type":"UNSUBSCRIBE","whId":"` + seedDispatchID + `"}`), want{Type: message.EventUnsubscribe, RawType: "UNSUBSCRIBE", DispatchID: seedDispatchID}},
		{"unknown kind", []byte(`{"type":"FORM_SUBMIT"}`), want{Type: message.EventUnknown, RawType: "FORM_SUBMIT"}},
		{"no whId column", []byte(`{"type":"open","date":"2016-08-11 T 12:25:18.889Z","campaignId":"c","sendId":"s"}`), want{Type: message.EventOpen, RawType: "open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := one(t, &Sarbacane{}, post(tt.body), tt.body)
			checkEvent(t, 0, got, ProviderSarbacane, tt.want)
			checkInvariants(t, ProviderSarbacane, []message.Event{got})
		})
	}
}

// Sarbacane calls once per open: two opens at different times are two events, a
// retry of one is the same event.
func TestSarbacaneSyntheticID(t *testing.T) {
	t.Parallel()
	s := &Sarbacane{}
	open := fixture(t, "sarbacane_open.json")
	a := one(t, s, post(open), open)
	b, _ := s.Normalize(post(open), open, receivedAt.Add(3600e9))
	later := []byte(strings.Replace(string(open), "12:25:18.889Z", "12:30:00.000Z", 1))
	c := one(t, s, post(later), later)
	if a.ID != b.Events[0].ID || a.ID == c.ID {
		t.Errorf("ids: open %q, retry %q, second open %q", a.ID, b.Events[0].ID, c.ID)
	}
}

func TestSarbacaneToken(t *testing.T) {
	t.Parallel()
	s := &Sarbacane{Token: "tok-123"}
	body := fixture(t, "sarbacane_delivered.json")
	tests := []struct {
		name, target, header string
		wantErr              bool
	}{
		{name: "path segment", target: "/v1/events/sarbacane/tok-123"},
		{name: "header", target: "/v1/events/sarbacane", header: "tok-123"},
		{name: "wrong token", target: "/v1/events/sarbacane/tok-124", wantErr: true},
		// Query strings are logged by proxies: a token there is not accepted.
		{name: "query parameter", target: "/v1/events/sarbacane?token=tok-123", wantErr: true},
		{name: "none", target: "/v1/events/sarbacane", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, tt.target, strings.NewReader(string(body)))
			if token, ok := strings.CutPrefix(r.URL.Path, "/v1/events/sarbacane/"); ok {
				r.SetPathValue("token", token) // as the API's router does
			}
			if tt.header != "" {
				r.Header.Set(SarbacaneTokenHeader, tt.header)
			}
			got, err := s.Normalize(r, body, receivedAt)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Fatalf("got %d events, %v; want error %v", len(got.Events), err, tt.wantErr)
			}
		})
	}
}

func TestSarbacaneRefuses(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"type":`, `"open"`, `[]`} {
		if _, err := (&Sarbacane{}).Normalize(post([]byte(body)), []byte(body), receivedAt); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want a bad request", body, err)
		}
	}
}

func TestSarbacaneInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no type", `{"email":"user@email.com"}`, "type: is required"},
		{"bad date", `{"type":"open","date":"yesterday"}`, "date: not a date"},
		{"type a number", `{"type":3}`, "type: a JSON number where a string is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := invalid(t, &Sarbacane{}, post([]byte(tt.body)), []byte(tt.body)); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
		})
	}
}
