package integration

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// Every route × every kind of caller, on the real API over a real Temporal
// server: no key, an unknown key, an expired key, another workspace's key, a key
// without the route's scope, the right key.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	epID := uniqueID("authz")
	h := newHook(t, nil)
	s := setup(t, withEndpoints(t, map[string]any{"id": epID, "url": h.URL + "/hooks"}))
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"})
	eventually(t, "3 postbacks acknowledged", func() bool { return len(h.acked(id)) == 3 })

	// A well-formed key that is in no keys file.
	unknown := "dfk_admin_" + strings.Repeat("A", 43)
	send := map[string]any{"to": "ok@example.com", "subject": "s", "text": "t", "workspace": "default"}
	type call struct {
		method, path string
		body         any
		noScope      string // a key of the same workspace without the route's scope
		right        int    // the answer to the right key
		other        int    // the answer to globex's key (every scope)
	}
	calls := []call{
		{"POST", "/v1/messages", send, "reader", 202, 403}, // the body's workspace is not globex's
		{"GET", "/v1/messages", nil, "sender", 200, 200},   // globex's own list (checked below)
		{"GET", "/v1/messages/" + id, nil, "sender", 200, 404},
		{"POST", "/v1/messages/" + id + "/postbacks/replay", nil, "reader", 202, 404},
		{"POST", "/v1/postbacks/test", map[string]any{"endpoint_id": epID}, "reader", 200, 404},
		{"GET", "/v1/endpoints", nil, "reader", 200, 200}, // globex's own: none (checked below)
		{"POST", "/v1/endpoints/" + epID + "/disable", nil, "reader", 200, 404},
		{"POST", "/v1/endpoints/" + epID + "/enable", nil, "reader", 200, 404},
		{"POST", "/v1/endpoints/" + epID + "/replay", map[string]any{"since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "reader", 202, 404},
		{"POST", "/v1/messages/" + id + "/fallback/cancel", nil, "reader", 409, 404}, // 409: it has no policy
		{"PATCH", "/v1/messages/" + id + "/fallback", map[string]any{"sent_within": "0s"}, "reader", 409, 404},
	}
	for _, c := range calls {
		name := c.method + " " + strings.Replace(c.path, id, "{id}", 1)
		for _, who := range []struct {
			key  string
			want int
		}{
			{"", 401}, {unknown, 401}, {"expired", 401}, {c.noScope, 403}, {"other", c.other}, {"admin", c.right},
		} {
			caller := s.as(who.key)
			if who.key == unknown {
				caller.key = unknown
			}
			var answer map[string]any
			resp := caller.do(c.method, c.path, c.body, &answer)
			if resp.StatusCode != who.want {
				t.Errorf("%s with key %q: %d %v, want %d", name, who.key, resp.StatusCode, answer, who.want)
				continue
			}
			switch who.want {
			case 401:
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s with key %q: WWW-Authenticate %q, want Bearer", name, who.key, got)
				}
			case 403:
				if who.key == c.noScope && !strings.Contains(str(answer["error"]), "scope") {
					t.Errorf("%s with key %q: error %q does not name the missing scope", name, who.key, answer["error"])
				}
			}
		}
	}

	// globex's list and endpoints hold nothing of default's.
	var list listPage
	eventually(t, "default's message listed for default", func() bool {
		s.do("GET", "/v1/messages?page_size=100", nil, &list)
		return slices.Contains(list.ids(), id)
	})
	s.as("other").do("GET", "/v1/messages?page_size=1000", nil, &list)
	if slices.Contains(list.ids(), id) {
		t.Errorf("globex's key lists default's message %s", id)
	}
	if resp := s.as("other").do("GET", "/v1/messages?workspace=default", nil, nil); resp.StatusCode != 403 {
		t.Errorf("globex's key listing workspace default: %d, want 403", resp.StatusCode)
	}
	var eps struct {
		Endpoints []struct{ ID string } `json:"endpoints"`
	}
	s.as("other").do("GET", "/v1/endpoints", nil, &eps)
	if len(eps.Endpoints) != 0 {
		t.Errorf("globex's key sees endpoints %v of another workspace", eps.Endpoints)
	}

	// The ESP intake takes no API key: providers authenticate themselves.
	resp := s.as("").do("POST", "/v1/events/generic", map[string]any{"dispatch_id": id, "event": "open", "event_id": "authz-open"}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("intake without an API key: %d, want 200", resp.StatusCode)
	}
}

// external_send_id is scoped to the workspace, as Stripe scopes idempotency
// keys to the account: the same id in two workspaces is two messages and two
// emails; reused with another request it is a 409 that sends nothing.
func TestIdempotencyPerWorkspace(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	ext := "order-1-" + message.NewDispatchID()[:8]
	req := message.SendRequest{To: "ok@example.com", Subject: "Your order", Text: "Thanks", ExternalSendID: ext, PostbackURL: s.postback.URL}
	a := s.send(req)
	b := s.as("other").send(req)
	if a == b {
		t.Fatalf("workspaces default and globex got the same dispatch_id %s for external_send_id %s", a, ext)
	}
	s.postback.waitFor(t, a, 3)
	s.postback.waitFor(t, b, 3)
	if n := s.sends.Load(); n != 2 {
		t.Errorf("ESP got %d sends, want 2 (one per workspace)", n)
	}
	if resp := s.as("other").do("GET", "/v1/messages/"+a, nil, nil); resp.StatusCode != 404 {
		t.Errorf("globex reading default's message: %d, want 404", resp.StatusCode)
	}

	// The same request again: the same message, nothing sent.
	var again struct {
		DispatchID string `json:"dispatch_id"`
	}
	resp := s.do("POST", "/v1/messages", req, &again)
	if resp.StatusCode != 202 || again.DispatchID != a || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same request again: %d %s replayed=%q, want 202 %s replayed=true", resp.StatusCode, again.DispatchID, resp.Header.Get("Idempotent-Replayed"), a)
	}
	// Another request under the same id: 409, nothing sent.
	for field, edit := range map[string]func(*message.SendRequest){
		"to":      func(r *message.SendRequest) { r.To = "other@example.com" },
		"subject": func(r *message.SendRequest) { r.Subject = "Your other order" },
		"text":    func(r *message.SendRequest) { r.Text = "Click here" },
	} {
		changed := req
		edit(&changed)
		var answer map[string]string
		resp := s.do("POST", "/v1/messages", changed, &answer)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(answer["error"], "external_send_id") {
			t.Errorf("reused external_send_id with another %s: %d %v, want 409 naming external_send_id", field, resp.StatusCode, answer)
		}
	}
	if n := s.sends.Load(); n != 2 {
		t.Errorf("ESP got %d sends after the repeats, want still 2", n)
	}
}

// An endpoint's credentials go only to its own URL: a send's postback_url
// elsewhere is refused, a test postback to an ad-hoc URL carries no credential
// and no signature and relays nothing of the answer; a postback_url below the
// endpoint's URL gets its settings.
func TestNoCredentialsToUnregisteredURLs(t *testing.T) {
	t.Parallel()
	crm, attacker := newHook(t, nil), newHook(t, nil)
	epSecret := newSecret(t)
	epID := uniqueID("crm")
	s := setup(t, withEndpoints(t, map[string]any{
		"id": epID, "url": crm.URL + "/hooks", "auth": map[string]any{"type": "bearer", "token": "crm-bearer-token"},
		"headers": map[string]string{"X-Api-Secret": "crm-header-secret"}, "secrets": []string{epSecret},
	}))

	var answer map[string]string
	resp := s.do("POST", "/v1/messages", message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: attacker.URL + "/x"}, &answer)
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(answer["error"], "postback_url:") {
		t.Errorf("send with an unregistered postback_url: %d %v, want 400 naming postback_url", resp.StatusCode, answer)
	}
	var test map[string]any
	resp = s.do("POST", "/v1/postbacks/test", map[string]any{"url": attacker.URL + "/x"}, &test)
	if resp.StatusCode != http.StatusOK || test["status_code"] != float64(200) {
		t.Fatalf("test postback to an ad-hoc URL: %d %v, want 200 with the receiver's status code", resp.StatusCode, test)
	}
	if _, ok := test["body"]; ok {
		t.Errorf("test postback to an ad-hoc URL relays the answer's body: %v", test)
	}
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: crm.URL + "/hooks/orders?tenant=7"})
	eventually(t, "3 postbacks at the endpoint's sub-path", func() bool { return len(crm.acked(id)) == 3 })

	for _, r := range crm.acked(id) {
		if r.Header.Get("Authorization") != "Bearer crm-bearer-token" || r.Header.Get("X-Api-Secret") != "crm-header-secret" || r.Header.Get("Webhook-Signature") == "" {
			t.Errorf("postback to the endpoint's own sub-path lacks its settings: %v", r.Header)
		}
	}
	got := attacker.requests(nil)
	if len(got) != 1 {
		t.Fatalf("the unregistered URL got %d requests, want 1 (the test postback)", len(got))
	}
	for name, values := range got[0].Header {
		for _, v := range values {
			if strings.Contains(v, "crm-") || strings.Contains(v, strings.TrimPrefix(epSecret, "whsec_")) {
				t.Errorf("the unregistered URL received the endpoint's credential in %s: %q", name, v)
			}
		}
	}
	for _, h := range []string{"Authorization", "X-Api-Secret", "Webhook-Signature"} {
		if v := got[0].Header.Get(h); v != "" {
			t.Errorf("the test postback to an ad-hoc URL carries %s: %q", h, v)
		}
	}
}

// Without an endpoints file (development), a send's own postback_url is ad hoc:
// no credentials, and signed with the workspace's own signing secret, so a
// receiver can always verify.
func TestAdHocPostbacksSignedByWorkspace(t *testing.T) {
	t.Parallel()
	h := newHook(t, nil)
	s := setup(t, nil)
	a := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: h.URL})
	b := s.as("other").send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: h.URL})
	eventually(t, "3 postbacks of each message", func() bool { return len(h.acked(a)) == 3 && len(h.acked(b)) == 3 })
	for id, ws := range map[string]string{a: "default", b: "globex"} {
		wh, err := standardwebhooks.NewWebhook(testSigningSecrets[ws])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range h.acked(id) {
			if err := wh.Verify(r.Body, r.Header); err != nil {
				t.Errorf("%s's postback %s is not signed with its workspace's secret: %v", ws, r.JSON["status"], err)
			}
		}
	}
}

// The fallback caps answer 400 naming the field, and nothing is sent.
func TestFallbackCaps(t *testing.T) {
	t.Parallel()
	tw := newTwilio(t)
	s := setup(t, func(c *config.Config) {
		withTwilio(tw)(c)
		c.FallbackMinDuration, c.FallbackMaxDuration = time.Minute, 7*24*time.Hour
		c.SMSAllowedCountries = []string{"33"}
	})
	sms := func(to, text string) map[string]any { return map[string]any{"channel": "sms", "to": to, "text": text} }
	six := []any{}
	for range 6 {
		six = append(six, sms("+33612345678", "Your code"))
	}
	for _, tc := range []struct {
		field    string
		fallback map[string]any
	}{
		{"fallback.steps", map[string]any{"steps": six}},
		{"fallback.sent_within", map[string]any{"sent_within": "1ns", "steps": []any{sms("+33612345678", "hi")}}},
		{"fallback.steps[0].wait", map[string]any{"steps": []any{map[string]any{"channel": "sms", "to": "+33612345678", "text": "hi", "wait": "8760h"}}}},
		{"fallback.steps[0].text", map[string]any{"steps": []any{sms("+33612345678", strings.Repeat("x", 1601))}}},
		{"fallback.steps[0].to", map[string]any{"steps": []any{sms("+8821234567890", "hi")}}},
		{"fallback.steps[0].url", map[string]any{"steps": []any{map[string]any{"channel": "webhook", "url": "https://attacker.example/collect"}}}},
	} {
		var answer map[string]string
		body := sendWithFallback{message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t"}, tc.fallback}
		resp := s.do("POST", "/v1/messages", body, &answer)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(answer["error"], tc.field+":") {
			t.Errorf("%s over its cap: %d %v, want 400 naming %s", tc.field, resp.StatusCode, answer, tc.field)
		}
	}
	if n := s.sends.Load(); n != 0 {
		t.Errorf("ESP got %d sends, want none", n)
	}
	if n := len(tw.messages()); n != 0 {
		t.Errorf("Twilio got %d SMS, want none", n)
	}

	// Within the caps: accepted. Changing its steps needs fallback:write.
	id := s.sendFallback("blackhole@example.com", map[string]any{"delivered_within": "1h", "steps": []any{sms("+33612345678", "hi")}})
	var answer map[string]string
	resp := s.as("sender").do("PATCH", "/v1/messages/"+id+"/fallback", map[string]any{"steps": []any{sms("+33699999999", "hi")}}, &answer)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(answer["error"], "fallback:write") {
		t.Errorf("PATCH steps without fallback:write: %d %v, want 403 naming fallback:write", resp.StatusCode, answer)
	}
	if resp := s.as("sender").do("PATCH", "/v1/messages/"+id+"/fallback", map[string]any{"delivered_within": "2h"}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("PATCH a deadline with messages:send: %d, want 200", resp.StatusCode)
	}
}

// A key over its rate limit gets 429 with Retry-After, and succeeds once it has
// waited that long.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := setup(t, nil).as("limited") // 1 request a second, burst 2
	codes := []int{}
	var retry string
	for range 3 {
		resp := s.do("GET", "/v1/messages?page_size=1", nil, nil)
		codes = append(codes, resp.StatusCode)
		retry = resp.Header.Get("Retry-After")
	}
	if !slices.Equal(codes, []int{200, 200, 429}) {
		t.Fatalf("three requests at once: %v, want [200 200 429]", codes)
	}
	secs, err := strconv.Atoi(retry)
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", retry)
	}
	time.Sleep(time.Duration(secs) * time.Second)
	if resp := s.do("GET", "/v1/messages?page_size=1", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after Retry-After: %d, want 200", resp.StatusCode)
	}
}

// Intake bounds: more events in one request than MaxEventsPerRequest is a 413.
func TestIntakeEventsBound(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	events := make([]map[string]string, 1001)
	for i := range events {
		events[i] = map[string]string{"dispatch_id": message.NewDispatchID(), "event": "open", "event_id": strconv.Itoa(i)}
	}
	raw, _ := json.Marshal(events)
	var answer map[string]string
	if resp := s.do("POST", "/v1/events/generic", raw, &answer); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(answer["error"], "1000") {
		t.Errorf("1001 events: %d %v, want 413 naming the bound", resp.StatusCode, answer)
	}
}
