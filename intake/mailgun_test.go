package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

func TestMailgun(t *testing.T) {
	t.Parallel()
	const msg = "20130503182626.18666.16540@sandboxbcd3ccb1a529415db665622619a61616.mailgun.org"
	const failedMsg = "20130503192659.13651.20287@sandbox.mailgun.org"
	tests := []struct {
		file string
		want want
	}{
		{"mailgun_delivered.json", want{Type: message.EventDelivered, RawType: "delivered", DispatchID: seedDispatchID,
			MessageID: msg, ID: "DACSsAdVSeGpLid7TN03WA", Timestamp: time.Unix(1529006854, 329574000).UTC()}},
		// Mailgun gave up: a delayed bounce, whose description is the bounce
		// notice's boilerplate and whose message the receiving server's answer.
		{"mailgun_failed_delayed_bounce.json", want{Type: message.EventBounced, RawType: "failed/permanent/generic", DispatchID: seedDispatchID,
			MessageID: "20221019211537.93011d31ea99c5a8@test.com", ID: "ZDMqRgjLTDi6rQcy7K60aA",
			Reason: "smtp; 550-5.1.1 The email account that you tried to reach does not exist."}},
		// Never attempted: the address is on the bounce list (code 605).
		{"mailgun_failed_suppress_bounce.json", want{Type: message.EventAborted, RawType: "failed/permanent/suppress-bounce", DispatchID: seedDispatchID,
			MessageID: failedMsg, ID: "G9Bn5sl1TC6nu79C8C0bwg", Reason: "Not delivering to previously bounced address"}},
		// Still trying.
		{"mailgun_failed_temporary.json", want{Type: message.EventDeferred, RawType: "failed/temporary/generic",
			MessageID: failedMsg, ID: "Fs7-5t81S2ygVQ9H8Kv3Xg", Reason: "452 4.2.2 The email account that you tried to reach is over quota."}},
		{"mailgun_failed_temporary_connections.json", want{Type: message.EventDeferred, RawType: "failed/temporary/generic", DispatchID: seedDispatchID,
			MessageID: "20221006142837.1618e01bf42da9fa@test.com", ID: "xYrATi63Rke8EC_s7EoJeA",
			Reason: "451 4.7.652 The mail server [xxx.xxx.xxx.xxx] has exceeded the maximum number of connections."}},
		{"mailgun_rejected.json", want{Type: message.EventAborted, RawType: "rejected", DispatchID: seedDispatchID,
			MessageID: "20130822232216.13966.79700@samples.mailgun.org", ID: "ncV2XwymRUKbPek_MIM-Gw", Reason: "Not delivering to previously bounced address"}},
		{"mailgun_opened.json", want{Type: message.EventOpen, RawType: "opened", DispatchID: seedDispatchID, MessageID: msg, ID: "Ase7i2zsRYeDXztHGENqRA"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			got := one(t, NewMailgun("", 0), post(body), body)
			checkEvent(t, 0, got, ProviderMailgun, tt.want)
			checkInvariants(t, ProviderMailgun, []message.Event{got})
		})
	}
}

// Every suppression reason is a message Mailgun never attempted, whatever the
// severity it is reported with.
func TestMailgunSuppressed(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"suppress-bounce", "suppress-complaint", "suppress-unsubscribe"} {
		for _, severity := range []string{"permanent", "temporary", ""} {
			body := editMailgun(t, fixture(t, "mailgun_failed_suppress_bounce.json"), map[string]any{"reason": reason, "severity": severity,
				"delivery-status": map[string]any{"attempt-no": 1, "message": "", "code": 605, "description": ""}})
			got := one(t, NewMailgun("", 0), post(body), body)
			if got.Type != message.EventAborted || got.Reason != reason || got.RawType != rawType("failed", severity, reason) {
				t.Errorf("%s/%s: got %s %q reason %q, want aborted with the reason", severity, reason, got.Type, got.RawType, got.Reason)
			}
		}
	}
}

// editMailgun sets fields of body's event-data.
func editMailgun(t *testing.T, body []byte, fields map[string]any) []byte {
	t.Helper()
	var p map[string]map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		p["event-data"][k] = v
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMailgunUnknownEvent(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event-data":{"event":"stored","id":"s1","timestamp":1521233195.1}}`)
	got := one(t, NewMailgun("", 0), post(body), body)
	if got.Type != message.EventUnknown || got.RawType != "stored" {
		t.Fatalf("got %+v; want one unknown event", got)
	}
}

// An event-data that cannot be read is an invalid event, answered 200: Mailgun
// would retry it for hours to no avail.
func TestMailgunInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body, want string }{
		{"no event", `{"event-data":{"id":"x"}}`, "event-data.event: is required"},
		{"timestamp a string", `{"event-data":{"event":"delivered","timestamp":"yesterday"}}`,
			"event-data.timestamp: a JSON string where a number is expected"},
		{"severity a number", `{"event-data":{"event":"failed","severity":5}}`, "event-data.severity: a JSON number where a string is expected"},
		{"not an object", `{"event-data":"delivered"}`, "event-data: a JSON string, not an object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := invalid(t, NewMailgun("", 0), post([]byte(tt.body)), []byte(tt.body)); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
		})
	}
}

// resign replaces body's signature block with one made with key at ts.
func resign(t *testing.T, body []byte, key string, ts time.Time, token string) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	sec := strconv.FormatInt(ts.Unix(), 10)
	p["signature"] = map[string]string{"timestamp": sec, "token": token, "signature": SignMailgun(key, sec, token)}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMailgunSignature(t *testing.T) {
	t.Parallel()
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	delivered := fixture(t, "mailgun_delivered.json")
	bounced := fixture(t, "mailgun_failed_suppress_bounce.json")
	tests := []struct {
		name       string
		body       []byte
		wantStatus int // 0: accepted; else 401 or the refusal's status
	}{
		{"valid", resign(t, delivered, key, now, "token-valid"), 0},
		{"documented sample, other key", delivered, http.StatusUnauthorized},
		{"wrong key", resign(t, delivered, "key-other", now, "token-wrong"), http.StatusUnauthorized},
		{"no signature", []byte(`{"event-data":{"event":"delivered","id":"x"}}`), http.StatusUnauthorized},
		{"8 hours old: Mailgun's last retry", resign(t, delivered, key, now.Add(-8*time.Hour), "token-retry"), 0},
		{"too old", resign(t, delivered, key, now.Add(-10*time.Hour), "token-old"), http.StatusNotAcceptable},
		{"from the future", resign(t, delivered, key, now.Add(time.Hour), "token-future"), http.StatusNotAcceptable},
		{"malformed", []byte(`{"signature":`), http.StatusNotAcceptable},
		{"no event-data", resign(t, []byte(`{}`), key, now, "token-empty"), http.StatusNotAcceptable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mg := &Mailgun{SigningKey: key, Now: func() time.Time { return now }}
			got, err := mg.Normalize(post(tt.body), tt.body, receivedAt)
			switch {
			case tt.wantStatus == 0:
				if err != nil || len(got.Events) != 1 {
					t.Fatalf("got %d events, %v; want 1", len(got.Events), err)
				}
			case tt.wantStatus == http.StatusUnauthorized:
				var refused *RefusedError
				if !errors.Is(err, ErrUnauthorized) || errors.As(err, &refused) || len(got.Events) != 0 {
					t.Fatalf("got %v; want a plain unauthorized error (Mailgun retries it)", err)
				}
			default:
				var refused *RefusedError
				if !errors.As(err, &refused) || refused.Status != tt.wantStatus || len(got.Events) != 0 {
					t.Fatalf("got %v; want a refusal with status %d", err, tt.wantStatus)
				}
			}
		})
	}

	t.Run("replay", func(t *testing.T) {
		t.Parallel()
		mg := &Mailgun{SigningKey: key, Now: func() time.Time { return now }}
		first := resign(t, delivered, key, now, "token-replayed")
		a, err := mg.Normalize(post(first), first, receivedAt)
		if err != nil {
			t.Fatal(err)
		}
		// Mailgun's retry: same signature, same body, same event id.
		b, err := mg.Normalize(post(first), first, receivedAt.Add(10*time.Minute))
		if err != nil || len(b.Events) != 1 || b.Events[0].ID != a.Events[0].ID {
			t.Fatalf("retry: got %+v, %v; want the same event", b, err)
		}
		// The captured signature on another body: refused.
		var p map[string]any
		_ = json.Unmarshal(bounced, &p)
		var sigBlock map[string]any
		_ = json.Unmarshal(first, &sigBlock)
		p["signature"] = sigBlock["signature"]
		forged, _ := json.Marshal(p)
		if _, err := mg.Normalize(post(forged), forged, receivedAt); !errors.Is(err, ErrUnauthorized) ||
			!strings.Contains(err.Error(), "replayed") {
			t.Fatalf("forged body with a used token: got %v, want unauthorized", err)
		}
	})
}

func TestMailgunReplayCacheIsBounded(t *testing.T) {
	t.Parallel()
	mg := &Mailgun{}
	for i := range mailgunReplayCacheSize + 10 {
		mg.remember(strconv.Itoa(i), [32]byte{1})
	}
	if len(mg.tokens) != mailgunReplayCacheSize {
		t.Fatalf("got %d tokens, want %d", len(mg.tokens), mailgunReplayCacheSize)
	}
	if _, ok := mg.tokens["0"]; ok {
		t.Error("the oldest token is still cached")
	}
	if !mg.remember(strconv.Itoa(mailgunReplayCacheSize+9), [32]byte{1}) || mg.remember(strconv.Itoa(mailgunReplayCacheSize+9), [32]byte{2}) {
		t.Error("a recent token is not remembered with its body")
	}
}
