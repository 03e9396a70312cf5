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
		{"postmark_bounce.json", want{Type: message.EventBounced, RawType: "Bounce (HardBounce)", DispatchID: seedDispatchID, MessageID: bounceMsg,
			ID: "Bounce-4323372036854775807", Reason: "Test bounce details"}},
		{"postmark_softbounce.json", want{Type: message.EventDeferred, RawType: "Bounce (SoftBounce)", DispatchID: seedDispatchID, MessageID: bounceMsg,
			ID: "Bounce-4323372036854775808", Reason: "Test bounce details"}},
		{"postmark_open.json", want{Type: message.EventOpen, RawType: "Open", DispatchID: seedDispatchID, MessageID: msg}},
		{"postmark_click.json", want{Type: message.EventClick, RawType: "Click", DispatchID: seedDispatchID, MessageID: msg,
			Timestamp: mustTime(t, "2017-10-25T15:21:11Z")}},
		{"postmark_spamcomplaint.json", want{Type: message.EventComplaint, RawType: "SpamComplaint (SpamComplaint)", DispatchID: seedDispatchID,
			MessageID: msg, ID: "SpamComplaint-42"}},
		{"postmark_subscriptionchange.json", want{Type: message.EventUnsubscribe, RawType: "SubscriptionChange (HardBounce)", MessageID: bounceMsg}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			got, err := (&Postmark{}).Normalize(post(body), body, receivedAt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d events, want 1", len(got))
			}
			checkEvent(t, 0, got[0], ProviderPostmark, tt.want)
			checkInvariants(t, ProviderPostmark, got)
		})
	}
}

// Events without an ID get a synthetic key: the same for a retry, different for
// another event of the message.
func TestPostmarkSyntheticID(t *testing.T) {
	t.Parallel()
	p := &Postmark{}
	open := fixture(t, "postmark_open.json")
	a, _ := p.Normalize(post(open), open, receivedAt)
	b, _ := p.Normalize(post(open), open, receivedAt.Add(3600e9))
	click := fixture(t, "postmark_click.json")
	c, _ := p.Normalize(post(click), click, receivedAt)
	delivery := fixture(t, "postmark_delivery.json")
	d, _ := p.Normalize(post(delivery), delivery, receivedAt)
	if a[0].ID == "" || a[0].ID != b[0].ID || a[0].ID == c[0].ID || a[0].ID == d[0].ID {
		t.Errorf("ids: open %q, its retry %q, click %q, delivery %q", a[0].ID, b[0].ID, c[0].ID, d[0].ID)
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
			events, err := p.Normalize(r, body, receivedAt)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Fatalf("got %d events, %v; want error %v", len(events), err, tt.wantErr)
			}
		})
	}
}

func TestPostmarkRefusesMalformedWith403(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"RecordType":`, `{"MessageID":"x"}`, `[]`} {
		_, err := (&Postmark{}).Normalize(post([]byte(body)), []byte(body), receivedAt)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Status != http.StatusForbidden || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want a bad request refused with 403", body, err)
		}
	}
}
