package intake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

func TestSendGrid(t *testing.T) {
	t.Parallel()
	const msg = "14c5d75ce93" // sg_message_id up to its first '.'
	ts := time.Unix(1513299569, 0).UTC()
	wants := []want{
		{Type: message.EventProcessed, RawType: "processed", ID: "2FeCcG5VRWpck6mKqRgnDg==", Timestamp: ts},
		{Type: message.EventDeferred, RawType: "deferred", Reason: "400 try again later"},
		{Type: message.EventDelivered, RawType: "delivered"},
		{Type: message.EventOpen, RawType: "open"},
		{Type: message.EventClick, RawType: "click"},
		// reason and status together: the SMTP code, the enhanced code, the text.
		{Type: message.EventBounced, RawType: "bounce/bounce", Reason: "500 5.0.0 unknown recipient"},
		{Type: message.EventBounced, RawType: "bounce/blocked", Reason: "550 5.7.1 message rejected due to content"},
		// Dropped: never attempted, whatever the (documented) drop reason.
		{Type: message.EventAborted, RawType: "dropped", Reason: "Bounced Address"},
		{Type: message.EventComplaint, RawType: "spamreport"},
		{Type: message.EventUnsubscribe, RawType: "unsubscribe"},
		{Type: message.EventUnsubscribe, RawType: "group_unsubscribe"},
		{Type: message.EventUnknown, RawType: "group_resubscribe"},
		{Type: message.EventDelivered, RawType: "delivered", ID: "x7nvH5QBz858KGVYCM4uOB=="}, // no custom args
	}
	for i := range wants {
		wants[i].MessageID = msg
		if i < len(wants)-1 {
			wants[i].DispatchID = seedDispatchID
		}
	}
	body := fixture(t, "sendgrid_events.json")
	got, err := (&SendGrid{}).Normalize(post(body), body, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Events) != len(wants) || len(got.Invalid) != 0 {
		t.Fatalf("got %d events, invalid %+v; want %d events", len(got.Events), got.Invalid, len(wants))
	}
	for i := range got.Events {
		checkEvent(t, i, got.Events[i], ProviderSendGrid, wants[i])
	}
	checkInvariants(t, ProviderSendGrid, got.Events)
}

// One event SendGrid cannot have meant (here a timestamp sent as a string) is
// set aside; the rest of the batch is delivered, and the request succeeds, so
// that SendGrid does not retry the batch for 24 hours and then drop it whole.
func TestSendGridBatchWithOneBrokenEvent(t *testing.T) {
	t.Parallel()
	body := fixture(t, "sendgrid_batch_one_broken.json")
	got, err := (&SendGrid{}).Normalize(post(body), body, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	var types []message.EventType
	for _, e := range got.Events {
		types = append(types, e.Type)
	}
	if want := []message.EventType{message.EventProcessed, message.EventBounced, message.EventAborted}; !slices.Equal(types, want) {
		t.Errorf("got events %v, want %v", types, want)
	}
	if want := []Invalid{{Index: 1, Reason: "timestamp: a JSON string where a number is expected"}}; !slices.Equal(got.Invalid, want) {
		t.Errorf("got invalid %+v, want %+v", got.Invalid, want)
	}
	checkInvariants(t, ProviderSendGrid, got.Events)
}

func TestSendGridInvalidEvents(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, event, wantReason string }{
		{"no event name", `{"sg_event_id":"x","timestamp":1513299569}`, "event: is required"},
		{"event name not a string", `{"event":1,"timestamp":1513299569}`, "event: a JSON number where a string is expected"},
		{"timestamp out of range", `{"event":"delivered","timestamp":-5}`, "timestamp: not a Unix time"},
		{"not an object", `"delivered"`, "a JSON string, not an object"},
		{"null", `null`, "not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(`[{"event":"processed","sg_event_id":"ok","timestamp":1513299569},` + tt.event + `]`)
			got, err := (&SendGrid{}).Normalize(post(body), body, receivedAt)
			if err != nil || len(got.Events) != 1 {
				t.Fatalf("got %d events, %v; want the valid one", len(got.Events), err)
			}
			if want := []Invalid{{Index: 1, Reason: tt.wantReason}}; !slices.Equal(got.Invalid, want) {
				t.Errorf("got invalid %+v, want %+v", got.Invalid, want)
			}
		})
	}
}

func TestSendGridRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, wantErr string }{
		{"not JSON", `{"event":`, "malformed JSON"},
		{"an object, not an array", `{"event":"delivered"}`, "malformed JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := (&SendGrid{}).Normalize(post([]byte(tt.body)), []byte(tt.body), receivedAt)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want a bad request containing %q", err, tt.wantErr)
			}
		})
	}
}

func newSendGridKey(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, base64.StdEncoding.EncodeToString(der)
}

func TestSendGridSignature(t *testing.T) {
	t.Parallel()
	key, public := newSendGridKey(t)
	other, _ := newSendGridKey(t)
	sg, err := NewSendGrid(public)
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "sendgrid_events.json")
	const ts = "1513299569"
	sg.Now = func() time.Time { return time.Unix(1513299569, 0).Add(4 * time.Minute) } // within SendGridTolerance
	sign := func(k *ecdsa.PrivateKey, ts string, b []byte) string {
		s, err := SignSendGrid(k, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tamper := []byte(strings.Replace(string(body), `"dropped"`, `"delivered"`, 1))
	tests := []struct {
		name    string
		sig, ts string
		body    []byte
		wantErr bool
	}{
		{"valid", sign(key, ts, body), ts, body, false},
		{"body changed", sign(key, ts, body), ts, tamper, true},
		{"timestamp changed", sign(key, ts, body), "1513299570", body, true},
		{"other key", sign(other, ts, body), ts, body, true},
		{"no signature", "", ts, body, true},
		{"no timestamp", sign(key, ts, body), "", body, true},
		{"not base64", "%%%", ts, body, true},
		// A captured request replayed later: signed, but its timestamp is too old.
		{"timestamp 6 minutes old", sign(key, "1513299209", body), "1513299209", body, true},
		{"timestamp 6 minutes ahead", sign(key, "1513300169", body), "1513300169", body, true},
		{"timestamp not a number", sign(key, "soon", body), "soon", body, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := post(tt.body)
			if tt.sig != "" {
				r.Header.Set(SendGridSignatureHeader, tt.sig)
			}
			if tt.ts != "" {
				r.Header.Set(SendGridTimestampHeader, tt.ts)
			}
			got, err := sg.Normalize(r, tt.body, receivedAt)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthorized) || len(got.Events) != 0 {
					t.Fatalf("got %d events, error %v; want unauthorized", len(got.Events), err)
				}
				return
			}
			if err != nil || len(got.Events) != 13 {
				t.Fatalf("got %d events, error %v; want 13", len(got.Events), err)
			}
		})
	}
}

func TestNewSendGridKey(t *testing.T) {
	t.Parallel()
	rsaDER := "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMgd6AUmjzL4ymbBiWRkBLcxvdvgMmeygLjgFXQWaowWJ/qlzbwo4EhzyYQ/n7bRbqXO7p3ewp4G+5+0fJ9Qn2ECAwEAAQ=="
	for _, tt := range []struct{ name, key, wantErr string }{
		{"not base64", "!!", "not base64"},
		{"not DER", base64.StdEncoding.EncodeToString([]byte("hello")), "not a DER public key"},
		{"RSA", rsaDER, "not an ECDSA public key"},
	} {
		if _, err := NewSendGrid(tt.key); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

// ExampleSignSendGrid signs a request the way SendGrid's Signed Event Webhook does.
func ExampleSignSendGrid() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := []byte(`[{"event":"delivered","dispatch_id":"acf471119f7449d579e8089032003ded","sg_event_id":"e1","timestamp":1513299569}]`)
	now := strconv.FormatInt(time.Now().Unix(), 10) // the time of the request: older ones are replays
	sig, _ := SignSendGrid(key, now, body)
	r, _ := http.NewRequest(http.MethodPost, "http://localhost:8080/v1/events/sendgrid", strings.NewReader(string(body)))
	r.Header.Set(SendGridSignatureHeader, sig)
	r.Header.Set(SendGridTimestampHeader, now)
	batch, err := (&SendGrid{PublicKey: &key.PublicKey}).Normalize(r, body, time.Now())
	fmt.Println(len(batch.Events), batch.Events[0].Type, err)
	// Output: 1 delivered <nil>
}
