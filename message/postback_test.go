package message

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(TimestampLayout, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPostbackGolden builds the seed's five example postbacks (Braze, seed 002,
// extracted verbatim to testdata/seed) and compares them field by field.
func TestPostbackGolden(t *testing.T) {
	t.Parallel()
	id := Identity{
		DispatchID:     "acf471119f7449d579e8089032003ded",
		ExternalSendID: "34a2ceb3cf6184132f3d816e9984269a",
		CampaignAPIID:  "417220e4-5a2a-b634-7f7d-9ec891532368",
	}
	send := SendTimes{
		ReceivedAt: mustTime(t, "2020-08-31T18:58:41.000+00:00"),
		EnqueuedAt: mustTime(t, "2020-08-31T18:58:41.000+00:00"),
		ExecutedAt: mustTime(t, "2020-08-31T18:58:41.000+00:00"),
		SentAt:     mustTime(t, "2020-08-31T18:58:42.000+00:00"),
	}
	tests := []struct {
		file   string
		status Status
		at     string
		reason string
	}{
		{"sent.json", StatusSent, "2020-08-31T18:58:42.000+00:00", ""},
		{"processed.json", StatusProcessed, "2020-08-31T18:58:42.000+00:00", ""},
		{"aborted.json", StatusAborted, "2020-08-31T19:04:51.000+00:00", "User not emailable"},
		{"delivered.json", StatusDelivered, "2020-08-31T18:27:32.000+00:00", ""},
		{"bounced.json", StatusBounced, "2020-08-31T18:58:43.000+00:00", "550 5.1.1 The email account that you tried to reach does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			golden, err := os.ReadFile(filepath.Join("testdata", "seed", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(NewPostback(id, tt.status, mustTime(t, tt.at), tt.reason, send))
			if err != nil {
				t.Fatal(err)
			}
			var gotObj, wantObj map[string]any
			if err := json.Unmarshal(got, &gotObj); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(golden, &wantObj); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotObj, wantObj) {
				t.Errorf("postback\n got %s\nwant %s", got, bytes.TrimSpace(golden))
			}
			if bytes.Contains(got, []byte("null")) {
				t.Errorf("postback has a null field: %s", got)
			}
		})
	}
}

// A reason given with a status that does not carry one is dropped, and times are
// always rendered in UTC with milliseconds.
func TestPostbackOmitsWhatDoesNotApply(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CEST", 2*3600)
	p := NewPostback(Identity{DispatchID: "d"}, StatusDelivered, time.Date(2026, 5, 1, 12, 0, 0, 123456789, paris), "ignored", SendTimes{})
	got, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dispatch_id":"d","status":"delivered","metadata":{"delivered_at":"2026-05-01T10:00:00.123+00:00"}}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDispatchIDs(t *testing.T) {
	t.Parallel()
	a, b := NewDispatchID(), NewDispatchID()
	if !ValidDispatchID(a) || a == b {
		t.Errorf("NewDispatchID gave %q and %q; want two distinct 32-hex ids", a, b)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	got := DispatchIDFor(secret, "acme", "order-1234")
	if again := DispatchIDFor(secret, "acme", "order-1234"); got != again || !ValidDispatchID(got) {
		t.Errorf("DispatchIDFor is not a stable dispatch id: %q, %q", got, again)
	}
	for name, other := range map[string]string{
		"another external_send_id": DispatchIDFor(secret, "acme", "order-1235"),
		"another workspace":        DispatchIDFor(secret, "globex", "order-1234"),
		"another secret":           DispatchIDFor([]byte("another secret, as long as the first"), "acme", "order-1234"),
		// The separator keeps ("ac", "me\x00order") and ("acme", "order") apart.
		"a shifted boundary": DispatchIDFor(secret, "acm", "e\x00order-1234"),
	} {
		if other == got {
			t.Errorf("%s gives the same dispatch_id %s", name, got)
		}
	}
	for _, bad := range []string{"", "ACF471119F7449D579E8089032003DED", "acf471119f7449d579e8089032003de", "../etc/passwd"} {
		if ValidDispatchID(bad) {
			t.Errorf("ValidDispatchID(%q) = true", bad)
		}
	}
}

func TestSendRequestNormalize(t *testing.T) {
	t.Parallel()
	ok := SendRequest{To: "Ann <ann@example.com>", Subject: "Hi", Text: "hello"}
	tests := []struct {
		name  string
		edit  func(*SendRequest)
		from  string
		field string
	}{
		{"valid", func(*SendRequest) {}, "shop@example.com", ""},
		{"missing to", func(r *SendRequest) { r.To = "" }, "shop@example.com", "to"},
		{"bad to", func(r *SendRequest) { r.To = "not an address" }, "shop@example.com", "to"},
		{"no from anywhere", func(*SendRequest) {}, "", "from"},
		{"missing subject", func(r *SendRequest) { r.Subject = " " }, "shop@example.com", "subject"},
		{"multi-line subject", func(r *SendRequest) { r.Subject = "a\r\nBcc: x@example.com" }, "shop@example.com", "subject"},
		{"no body", func(r *SendRequest) { r.Text = "" }, "shop@example.com", "text"},
		{"bad postback url", func(r *SendRequest) { r.PostbackURL = "ftp://example.com" }, "shop@example.com", "postback_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ok
			tt.edit(&r)
			err := r.Normalize(tt.from)
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.field != "" && (err == nil || !asFieldError(err, &fe) || fe.Field != tt.field):
				t.Fatalf("got error %v, want one naming %q", err, tt.field)
			}
		})
	}
	r := ok
	if err := r.Normalize("shop@example.com"); err != nil || r.From != "shop@example.com" || r.Recipient() != "ann@example.com" {
		t.Errorf("got from %q recipient %q err %v", r.From, r.Recipient(), err)
	}
}

func asFieldError(err error, fe **FieldError) bool {
	v, ok := err.(*FieldError)
	*fe = v
	return ok
}
