package intake

import (
	"errors"
	"net/http"
	"testing"

	"github.com/dispatchflow/dispatchflow/message"
)

func TestPostmark(t *testing.T) {
	t.Parallel()
	const msg = "00000000-0000-0000-0000-000000000000"
	const bounceMsg = "883953f4-6105-42a2-a16a-77a8eac79483"
	tests := []struct {
		file string
		want want
	}{
		{"postmark_delivery.json", want{Type: message.EventDelivered, RawType: "Delivery", DispatchID: seedDispatchID, MessageID: msg,
			Timestamp: mustTime(t, "2019-11-05T16:33:54.9070259Z")}},
		{"postmark_bounce.json", want{Type: message.EventBounced, RawType: "Bounce/HardBounce", DispatchID: seedDispatchID, MessageID: bounceMsg,
			ID: "Bounce-4323372036854775807", Reason: "Test bounce details"}},
		// Postmark reports a soft bounce once it "ceased attempting to send": final.
		// The reason is the SMTP answer (Details), never the bounce notice (Content).
		{"postmark_softbounce.json", want{Type: message.EventBounced, RawType: "Bounce/SoftBounce", DispatchID: seedDispatchID, MessageID: bounceMsg,
			ID:     "Bounce-4323372036854775808",
			Reason: "smtp;452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to - gsmtp"}},
		// "Message delayed": still trying.
		{"postmark_transient.json", want{Type: message.EventDeferred, RawType: "Bounce/Transient", DispatchID: seedDispatchID, MessageID: bounceMsg,
			ID:     "Bounce-4323372036854775809",
			Reason: "smtp;451 4.4.1 Delivery temporarily suspended: connect to mx.example.com[192.0.2.1]:25: Connection timed out"}},
		// Suppressed addresses: never attempted. Without Details, the type's description.
		{"postmark_manuallydeactivated.json", want{Type: message.EventAborted, RawType: "Bounce/ManuallyDeactivated", DispatchID: seedDispatchID,
			MessageID: bounceMsg, ID: "Bounce-4323372036854775810", Reason: "The email was manually deactivated."}},
		{"postmark_smtpapierror.json", want{Type: message.EventAborted, RawType: "Bounce/SMTPApiError", DispatchID: seedDispatchID,
			MessageID: bounceMsg, ID: "Bounce-4323372036854775811", Reason: "An error occurred while accepting an email through the SMTP API."}},
		{"postmark_open.json", want{Type: message.EventOpen, RawType: "Open", DispatchID: seedDispatchID, MessageID: msg}},
		{"postmark_click.json", want{Type: message.EventClick, RawType: "Click", DispatchID: seedDispatchID, MessageID: msg,
			Timestamp: mustTime(t, "2017-10-25T15:21:11Z")}},
		{"postmark_spamcomplaint.json", want{Type: message.EventComplaint, RawType: "SpamComplaint/SpamComplaint", DispatchID: seedDispatchID,
			MessageID: msg, ID: "SpamComplaint-42"}},
		{"postmark_subscriptionchange.json", want{Type: message.EventUnsubscribe, RawType: "SubscriptionChange/HardBounce", MessageID: bounceMsg}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			got := one(t, &Postmark{}, post(body), body)
			checkEvent(t, 0, got, ProviderPostmark, tt.want)
			checkInvariants(t, ProviderPostmark, []message.Event{got})
		})
	}
}

// Events without an ID get a synthetic key: the same for a retry, different for
// another event of the message.
func TestPostmarkSyntheticID(t *testing.T) {
	t.Parallel()
	p := &Postmark{}
	open := fixture(t, "postmark_open.json")
	a := one(t, p, post(open), open)
	b, _ := p.Normalize(post(open), open, receivedAt.Add(3600e9))
	click := fixture(t, "postmark_click.json")
	c := one(t, p, post(click), click)
	delivery := fixture(t, "postmark_delivery.json")
	d := one(t, p, post(delivery), delivery)
	if a.ID == "" || a.ID != b.Events[0].ID || a.ID == c.ID || a.ID == d.ID {
		t.Errorf("ids: open %q, its retry %q, click %q, delivery %q", a.ID, b.Events[0].ID, c.ID, d.ID)
	}
}

func TestPostmarkAuth(t *testing.T) {
	t.Parallel()
	p := &Postmark{Username: "postmark", Password: "s3cret"}
	body := fixture(t, "postmark_delivery.json")
	tests := []struct {
		name       string
		user, pass string
		noAuth     bool
		wantErr    bool
	}{
		{name: "valid", user: "postmark", pass: "s3cret"},
		{name: "wrong password", user: "postmark", pass: "s3cret!", wantErr: true},
		{name: "wrong user", user: "admin", pass: "s3cret", wantErr: true},
		{name: "none", noAuth: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := post(body)
			if !tt.noAuth {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			got, err := p.Normalize(r, body, receivedAt)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Fatalf("got %d events, %v; want error %v", len(got.Events), err, tt.wantErr)
			}
		})
	}
}

// A body that is not a JSON object can never be read: 403 stops Postmark's retries.
func TestPostmarkRefusesMalformedWith403(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"RecordType":`, `[]`, `null`} {
		_, err := (&Postmark{}).Normalize(post([]byte(body)), []byte(body), receivedAt)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Status != http.StatusForbidden || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want a bad request refused with 403", body, err)
		}
	}
}

// An object that is no readable event is invalid, and answered 200.
func TestPostmarkInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no RecordType", `{"MessageID":"x"}`, "RecordType: is required"},
		{"bad BouncedAt", `{"RecordType":"Bounce","Type":"HardBounce","BouncedAt":"yesterday"}`, "BouncedAt: not an RFC 3339 time"},
		{"Metadata a string", `{"RecordType":"Delivery","Metadata":"dispatch"}`, "Metadata: a JSON string where an object is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := invalid(t, &Postmark{}, post([]byte(tt.body)), []byte(tt.body)); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
		})
	}
}
