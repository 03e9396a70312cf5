package intake

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

const (
	mandrillKey = "mandrill-webhook-key-it"
	// mandrillURL is the webhook URL as configured at Mandrill: what it signs,
	// whatever address the request reaches dispatchflow at behind a proxy.
	mandrillURL = "https://hooks.example.com/v1/events/mandrill"
)

// The ts of Mandrill's example batch.
var mandrillTS = time.Unix(1415267366, 0).UTC()

// The events of testdata/mandrill_events.json, in order: Mandrill's example
// batch (its "send test" events) as Snowplow's MandrillAdapterSpec captured it
// (snowplow/snowplow 3-enrich/scala-common-enrich/src/test/scala/…/adapters/registry/MandrillAdapterSpec.scala;
// also gist ramonsmits/7563502 and influxdata/telegraf
// plugins/inputs/webhooks/mandrill/testdata), then the sync event of anymail's
// test_sync_event (anymail/django-anymail tests/test_mandrill_webhooks.py;
// https://mandrill.zendesk.com/hc/en-us/articles/205583297).
var mandrillWant = []want{
	// 0: send: "message has been sent successfully".
	{Type: message.EventDelivered, RawType: "send", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa", Timestamp: mandrillTS},
	// 1: deferral: the receiving server's 451, from smtp_events.
	{Type: message.EventDeferred, RawType: "deferral", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa1",
		Reason: "451 4.3.5 Temporarily unavailable, try again later."},
	// 2: hard_bounce: diag is the reason, bounce_description the subtype.
	{Type: message.EventBounced, RawType: "hard_bounce/bad_mailbox", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa2",
		Reason: "smtp;550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces."},
	// 3: soft_bounce: Mandrill stopped trying.
	{Type: message.EventBounced, RawType: "soft_bounce/mailbox_full", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa3",
		Reason: "smtp;552 5.2.2 Over Quota"},
	// 4: open.
	{Type: message.EventOpen, RawType: "open", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa4"},
	// 5: click.
	{Type: message.EventClick, RawType: "click", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa5"},
	// 6: spam.
	{Type: message.EventComplaint, RawType: "spam", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa6"},
	// 7: unsub.
	{Type: message.EventUnsubscribe, RawType: "unsub", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa7"},
	// 8: reject: never attempted; its state is all the reason the example gives.
	{Type: message.EventAborted, RawType: "reject", DispatchID: seedDispatchID, MessageID: "exampleaaaaaaaaaaaaaaaaaaaaaaaaa8", Reason: "rejected"},
	// 9: a sync event: about an address, not a message.
	{Type: message.EventUnknown, RawType: "blacklist/add", Timestamp: receivedAt},
}

// mandrillForm is the form Mandrill posts: mandrill_events=<events>.
func mandrillForm(events []byte) url.Values {
	return url.Values{"mandrill_events": {string(events)}}
}

// mandrillRequest is a request posting events, signed with key for webhookURL.
func mandrillRequest(t *testing.T, key, webhookURL string, events []byte) (*http.Request, []byte) {
	t.Helper()
	form := mandrillForm(events)
	body := []byte(form.Encode())
	r := post(body)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		r.Header.Set(MandrillSignatureHeader, SignMandrill(key, webhookURL, form))
	}
	return r, body
}

func TestMandrill(t *testing.T) {
	t.Parallel()
	m := &Mandrill{Key: mandrillKey, URL: mandrillURL}
	r, body := mandrillRequest(t, mandrillKey, mandrillURL, fixture(t, "mandrill_events.json"))
	b, err := m.Normalize(r, body, receivedAt)
	if err != nil || len(b.Invalid) != 0 || len(b.Events) != len(mandrillWant) {
		t.Fatalf("got %d events, invalid %+v, %v; want %d events", len(b.Events), b.Invalid, err, len(mandrillWant))
	}
	for i, e := range b.Events {
		checkEvent(t, i, e, ProviderMandrill, mandrillWant[i])
	}
	checkInvariants(t, ProviderMandrill, b.Events)
}

// Through a real server: signed as documented — HMAC-SHA1 of the configured URL
// and the sorted POST parameters, base64 — the batch is read; a signature made
// with another key, for another URL (even one slash apart), or none, is refused
// and nothing is read.
func TestMandrillSignature(t *testing.T) {
	t.Parallel()
	events := fixture(t, "mandrill_events.json")
	srvURL, got := serve(t, &Mandrill{Key: mandrillKey, URL: mandrillURL})
	form := mandrillForm(events)
	for _, tt := range []struct {
		name string
		sig  string
		ok   bool
	}{
		{"valid", SignMandrill(mandrillKey, mandrillURL, form), true},
		{"another key", SignMandrill("another-key", mandrillURL, form), false},
		{"another URL", SignMandrill(mandrillKey, mandrillURL+"/", form), false},
		{"another body", SignMandrill(mandrillKey, mandrillURL, mandrillForm([]byte("[]"))), false},
		{"the generic test key, with events", SignMandrill(MandrillTestKey, mandrillURL, form), false},
		{"not base64", "%%%", false},
		{"none", "", false},
	} {
		h := http.Header{}
		if tt.sig != "" {
			h.Set(MandrillSignatureHeader, tt.sig)
		}
		n := postTo(t, srvURL+"/v1/events/mandrill", "application/x-www-form-urlencoded", []byte(form.Encode()), h, got)
		if tt.ok {
			if n.err != nil || len(n.batch.Events) != len(mandrillWant) {
				t.Errorf("%s: got %d events, %v", tt.name, len(n.batch.Events), n.err)
			}
			continue
		}
		if !errors.Is(n.err, ErrUnauthorized) || len(n.batch.Events)+len(n.batch.Invalid) > 0 {
			t.Errorf("%s: got %+v, %v; want unauthorized and nothing read", tt.name, n.batch, n.err)
		}
		if n.err != nil && strings.Contains(n.err.Error(), mandrillKey) {
			t.Errorf("%s: the error quotes the key", tt.name)
		}
	}
}

// Mandrill checks a new webhook's URL with a HEAD request, which the intake's
// POST-only route does not answer 200, then POSTs mandrill_events=[] signed with
// the generic key "test-webhook": answered, with nothing read.
func TestMandrillURLCheck(t *testing.T) {
	t.Parallel()
	m := &Mandrill{Key: mandrillKey, URL: mandrillURL}
	for _, events := range []string{"[]", " [] "} {
		r, body := mandrillRequest(t, MandrillTestKey, mandrillURL, []byte(events))
		if b, err := m.Normalize(r, body, receivedAt); err != nil || len(b.Events)+len(b.Invalid) != 0 {
			t.Errorf("%q signed with the test key: got %+v, %v; want nothing and no error", events, b, err)
		}
	}
	// The generic key is known to all: it proves nothing about events.
	r, body := mandrillRequest(t, MandrillTestKey, mandrillURL, []byte(`[{"event":"send","_id":"x","ts":1415267366}]`))
	if _, err := m.Normalize(r, body, receivedAt); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("events signed with the test key: got %v, want unauthorized", err)
	}
	// And an empty batch signed with the real key is fine too.
	r, body = mandrillRequest(t, mandrillKey, mandrillURL, []byte("[]"))
	if b, err := m.Normalize(r, body, receivedAt); err != nil || len(b.Events) != 0 {
		t.Errorf("empty batch: got %+v, %v", b, err)
	}
}

// Mandrill's signature covers no time: a captured request posted again is
// accepted, but it only repeats its events, with the same dedupe keys, which
// their messages drop as duplicates.
func TestMandrillReplayIsADuplicate(t *testing.T) {
	t.Parallel()
	m := &Mandrill{Key: mandrillKey, URL: mandrillURL}
	r, body := mandrillRequest(t, mandrillKey, mandrillURL, fixture(t, "mandrill_events.json"))
	first, err := m.Normalize(r, body, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.Normalize(r, body, receivedAt.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key := func(e message.Event) string { return e.DedupeKey() }
	var a, b []string
	for i := range first.Events {
		a, b = append(a, key(first.Events[i])), append(b, key(again.Events[i]))
	}
	if !slices.Equal(a, b) {
		t.Errorf("a replay's dedupe keys differ: %v, then %v", a, b)
	}
	ids := map[string]bool{}
	for _, id := range a {
		if ids[id] {
			t.Errorf("two events of the batch share the dedupe key %q", id)
		}
		ids[id] = true
	}
}

// What is not Mandrill's form is a 400 (Mandrill retries failed batches whatever
// the answer), saying what is missing and quoting nothing.
func TestMandrillRefusesNotItsFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"JSON", `[{"event":"send"}]`, "mandrill_events: is required"},
		{"no parameter", `a=1&b=2`, "mandrill_events: is required"},
		{"not a form", `mandrill_events=%zzSECRET`, "not a form-encoded body (mandrill_events=<JSON array>)"},
		{"not JSON", `mandrill_events=SECRET`, "mandrill_events: not a JSON array"},
		{"an object", `mandrill_events=%7B%7D`, "mandrill_events: not a JSON array"},
		{"null", `mandrill_events=null`, "mandrill_events: not a JSON array"},
		{"truncated", `mandrill_events=%5B%7B%22event%22`, "mandrill_events: not a JSON array"},
		{"twice", `mandrill_events=%5B%5D&mandrill_events=%5B%5D`, "mandrill_events: given more than once"},
	} {
		got, err := (&Mandrill{}).Normalize(post([]byte(tt.body)), []byte(tt.body), receivedAt)
		var refused *RefusedError
		if !errors.Is(err, ErrBadRequest) || errors.As(err, &refused) || len(got.Events)+len(got.Invalid) > 0 ||
			!strings.HasSuffix(err.Error(), tt.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: got %+v, %v; want a bad request ending %q", tt.name, got, err, tt.want)
		}
	}
}

// An event that cannot be read is set aside, named by its field and index, never
// quoted; the others of the batch are read. Metadata Mandrill writes as an empty
// array is no dispatch_id, not an error.
func TestMandrillInvalidEvent(t *testing.T) {
	t.Parallel()
	els := elements(t, fixture(t, "mandrill_events.json"))
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no event", map[string]any{"event": nil}, "event: is required"},
		{"ts a string", map[string]any{"ts": "SECRET"}, "ts: a JSON string where a number is expected"},
		{"ts negative", map[string]any{"ts": -1}, "ts: not a Unix time"},
		{"msg a string", map[string]any{"msg": "SECRET"}, "msg: a JSON string where an object is expected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			broken := edit(t, els[2], tt.fields)
			events := []byte("[" + string(els[0]) + "," + string(broken) + "," + string(els[1]) + "]")
			r, body := mandrillRequest(t, "", "", events)
			b, err := (&Mandrill{}).Normalize(r, body, receivedAt)
			if err != nil || len(b.Events) != 2 || len(b.Invalid) != 1 || b.Invalid[0].Index != 1 || b.Invalid[0].Reason != tt.want {
				t.Fatalf("got %+v, %v; want 2 events and event 1 invalid: %q", b, err, tt.want)
			}
			if strings.Contains(b.Invalid[0].Reason, "SECRET") {
				t.Errorf("the reason %q quotes the payload", b.Invalid[0].Reason)
			}
		})
	}
	send := map[string]any{"event": "send", "_id": "abc", "ts": 1461095246, "msg": map[string]any{"_id": "abc", "metadata": []any{}}}
	events := edit(t, []byte(`{}`), send)
	r, body := mandrillRequest(t, "", "", []byte("["+string(events)+"]"))
	b, err := (&Mandrill{}).Normalize(r, body, receivedAt)
	if err != nil || len(b.Events) != 1 || b.Events[0].DispatchID != "" || b.Events[0].MessageID != "abc" {
		t.Errorf("metadata []: got %+v, %v; want the event, found by its _id", b, err)
	}
}

func TestCheckMandrillURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key, url string
		ok       bool
	}{
		{"", "", true},
		{"k", mandrillURL, true},
		{"", mandrillURL, true},
		{"k", "", false},
		{"k", "/v1/events/mandrill", false},
		{"k", "ftp://hooks.example.com/x", false},
		{"k", "https://user:SECRET@:bad", false},
	} {
		err := checkMandrillURL(tt.key, tt.url)
		var ce *ConfigError
		if tt.ok != (err == nil) || (err != nil && (!errors.As(err, &ce) || ce.Field != "MandrillWebhookURL" || strings.Contains(err.Error(), "SECRET"))) {
			t.Errorf("key %q url %q: got %v, want ok %t", tt.key, tt.url, err, tt.ok)
		}
	}
}
