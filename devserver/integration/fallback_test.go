package integration

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// twilio is an httptest server speaking Twilio's Messages API: it records the
// messages it is asked to send and answers 201 queued.
type twilio struct {
	*httptest.Server
	mu   sync.Mutex
	sent []url.Values
}

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "twilio-test-token"
)

func newTwilio(t *testing.T) *twilio {
	tw := &twilio{}
	tw.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+twilioSID+"/Messages.json" || !ok || user != twilioSID || pass != twilioToken {
			t.Errorf("twilio got %s %s auth %q", r.Method, r.URL.Path, user)
			http.Error(w, `{"code": 20003, "message": "Authenticate", "status": 401}`, http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		tw.mu.Lock()
		tw.sent = append(tw.sent, r.PostForm)
		n := len(tw.sent)
		tw.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid": "SM%032d", "status": "queued", "to": %q, "from": %q, "body": %q, "error_code": null}`,
			n, r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body"))
	}))
	t.Cleanup(tw.Close)
	return tw
}

func (tw *twilio) messages() []url.Values {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return slices.Clone(tw.sent)
}

func withTwilio(tw *twilio) func(*config.Config) {
	return func(c *config.Config) {
		c.TwilioBaseURL, c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom = tw.URL, twilioSID, twilioToken, "+15005550006"
		c.SMSAllowedCountries = []string{"1", "33"}
	}
}

type sendWithFallback struct {
	message.SendRequest
	Fallback map[string]any `json:"fallback"`
}

func (s *system) sendFallback(to string, fb map[string]any) string {
	s.t.Helper()
	var out struct {
		DispatchID string `json:"dispatch_id"`
		Error      string `json:"error"`
	}
	resp := s.do("POST", "/v1/messages", sendWithFallback{
		SendRequest: message.SendRequest{To: to, Subject: "Your order", Text: "Thanks", PostbackURL: s.postback.URL},
		Fallback:    fb,
	}, &out)
	if resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("send with fallback: %d %s", resp.StatusCode, out.Error)
	}
	return out.DispatchID
}

func smsStep(wait string) map[string]any {
	return map[string]any{"channel": "sms", "to": "+33612345678", "text": "Your order #1234 is confirmed", "wait": wait}
}

// A blackhole@ message (processed, never delivered) escalates to SMS once when
// delivered_within runs out.
func TestFallbackEscalatesToSMS(t *testing.T) {
	t.Parallel()
	tw := newTwilio(t)
	s := setup(t, withTwilio(tw))
	id := s.sendFallback("blackhole@example.com", map[string]any{"delivered_within": "2s", "steps": []any{smsStep("0s")}})

	var st workflows.State
	eventually(t, "escalation", func() bool { st = s.state(id); return st.Fallback.Outcome != "" })
	fb := st.Fallback
	if fb.State != workflows.FallbackEscalated || fb.Reason != fallback.ReasonNotDelivered || fb.Outcome != workflows.OutcomeSent {
		t.Fatalf("fallback %+v, want escalated not_delivered_in_time, outcome sent", fb)
	}
	step := fb.Steps[0]
	if step.Channel != "sms" || step.Target != "+33*******78" || step.Result == nil || step.Result.Status != "queued" || !strings.HasPrefix(step.Result.ProviderID, "SM") {
		t.Errorf("step %+v, want sms to the masked number, queued with a SID", step)
	}
	if fb.Policy.Steps[0].To != "+33*******78" {
		t.Errorf("policy in the state shows %q, want the number masked", fb.Policy.Steps[0].To)
	}
	if d := deadline(fb, workflows.DeadlineSent); d.State != workflows.DeadlineCancelled {
		t.Errorf("sent_within (5m by default) %+v, want cancelled once sent", d)
	}
	if d := deadline(fb, workflows.DeadlineDelivered); d.State != workflows.DeadlineFired {
		t.Errorf("delivered_within %+v, want fired", d)
	}
	msgs := tw.messages()
	if len(msgs) != 1 || msgs[0].Get("To") != "+33612345678" || msgs[0].Get("Body") != "Your order #1234 is confirmed" ||
		!strings.HasPrefix(msgs[0].Get("StatusCallback"), s.api+"/v1/callbacks/twilio?") {
		t.Fatalf("twilio got %v, want one SMS to the real number with a status callback", msgs)
	}
}

// The deadline is a workflow timer: it fires once even when it falls due while no
// worker runs.
func TestFallbackDeadlineSurvivesWorkerRestart(t *testing.T) {
	t.Parallel()
	tw := newTwilio(t)
	s := setup(t, withTwilio(tw))
	id := s.sendFallback("blackhole@example.com", map[string]any{"delivered_within": "2s", "steps": []any{smsStep("0s")}})
	s.postback.waitFor(t, id, 2) // sent, processed
	s.stopWorker()
	time.Sleep(3 * time.Second) // the deadline falls due with nobody to run it
	if n := len(tw.messages()); n != 0 {
		t.Fatalf("%d SMS sent with no worker", n)
	}
	s.startWorker()
	eventually(t, "the SMS", func() bool { return len(tw.messages()) >= 1 })
	time.Sleep(time.Second)
	if n := len(tw.messages()); n != 1 {
		t.Errorf("%d SMS, want exactly 1", n)
	}
	if st := s.state(id); st.Fallback.State != workflows.FallbackEscalated || st.Fallback.Outcome != workflows.OutcomeSent {
		t.Errorf("fallback %+v", st.Fallback)
	}
}

// twilioSignature signs like Twilio: base64(HMAC-SHA1(token, url + sorted name+value)).
func twilioSignature(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k + form.Get(k))
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// An SMS step with a wait is confirmed by Twilio's signed status callback; the
// ladder stops there. A callback with a bad signature is refused.
func TestFallbackSMSConfirmedByStatusCallback(t *testing.T) {
	t.Parallel()
	tw := newTwilio(t)
	s := setup(t, withTwilio(tw))
	id := s.sendFallback("bounce@example.com", map[string]any{"steps": []any{smsStep("1h"),
		map[string]any{"channel": "webhook", "url": s.postback.URL + "/internal"}}})
	eventually(t, "the SMS", func() bool { return len(tw.messages()) == 1 })
	callback := tw.messages()[0].Get("StatusCallback")
	form := url.Values{"MessageSid": {"SM" + strings.Repeat("0", 31) + "1"}, "MessageStatus": {"delivered"}, "To": {"+33612345678"}}

	post := func(sig string) int {
		req, _ := http.NewRequest("POST", callback, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(twilioSignature("wrong-token", callback, form)); code != http.StatusUnauthorized {
		t.Errorf("forged callback: %d, want 401", code)
	}
	if code := post(twilioSignature(twilioToken, callback, form)); code != http.StatusNoContent {
		t.Fatalf("signed callback: %d, want 204", code)
	}
	var st workflows.State
	eventually(t, "the ladder's end", func() bool { st = s.state(id); return st.Fallback.Outcome != "" })
	if fb := st.Fallback; fb.Reason != fallback.ReasonBounced || fb.Outcome != workflows.OutcomeSent || len(fb.Steps) != 1 ||
		fb.Steps[0].State != workflows.StepConfirmed || fb.Steps[0].Result.Status != "delivered" {
		t.Errorf("fallback %+v, want bounced → step 1 confirmed by the callback, no step 2", fb)
	}
}

// ok@ is delivered before its deadline: no escalation. A bounce@ escalates at
// once, and with DISPATCHFLOW_POSTBACK_FALLBACK_OUTCOMES its outcome is posted
// back after the status postbacks.
func TestFallbackNoEscalationAndBounce(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) {
		// The variable applies to the legacy DISPATCHFLOW_POSTBACK_URL endpoint,
		// whose settings a message's own postback_url inherits (docs/postbacks.md);
		// every message here has its own, so the legacy URL receives nothing.
		c.PostbackURL, c.PostbackFallbackOutcomes = "https://legacy.example.com/unused", true
	})
	sandboxStep := map[string]any{"channel": "sandbox", "to": "+33612345678", "text": "hi"}
	ok := s.sendFallback("ok@example.com", map[string]any{"delivered_within": "2s", "steps": []any{sandboxStep}})
	bounce := s.sendFallback("bounce@example.com", map[string]any{"delivered_within": "1h", "steps": []any{sandboxStep}})

	pbs := s.postback.waitFor(t, bounce, 4)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "processed", "bounced", "fallback_sent"}) {
		t.Fatalf("bounce postbacks %v, want [sent processed bounced fallback_sent]", got)
	}
	md := pbs[3]["metadata"].(map[string]any)
	if md["fallback_reason"] != "bounced" || md["fallback_channel"] != "sandbox" || md["fallback_step"] != float64(1) {
		t.Errorf("fallback_sent metadata %v", md)
	}
	s.postback.waitFor(t, ok, 3)
	time.Sleep(2500 * time.Millisecond) // past the deadline it would have had
	st := s.state(ok)
	if st.Fallback.State != workflows.FallbackPending || deadline(st.Fallback, workflows.DeadlineDelivered).State != workflows.DeadlineCancelled || len(st.Fallback.Steps) != 0 {
		t.Errorf("ok@ fallback %+v, want pending with its deadline cancelled and no step", st.Fallback)
	}
	if got := statuses(s.postback.postbacks(ok)); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Errorf("ok@ postbacks %v", got)
	}
}

// The app changes a running message's policy through Temporal Updates.
func TestFallbackCancelAndPatch(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *config.Config) { c.SandboxDelay = time.Hour }) // sent, then silence
	step := map[string]any{"channel": "sandbox", "to": "+33612345678", "text": "hi"}
	type answer struct {
		workflows.FallbackState
		Error string `json:"error"`
	}
	call := func(method, path, body string) (int, answer) {
		var a answer
		resp := s.do(method, path, body, &a)
		return resp.StatusCode, a
	}

	// Cancel while pending: nothing escalates later.
	a := s.sendFallback("ok@example.com", map[string]any{"delivered_within": "2s", "steps": []any{step}})
	s.postback.waitFor(t, a, 1)
	code, got := call("POST", "/v1/messages/"+a+"/fallback/cancel", `{"reason": "reached by phone"}`)
	if code != 200 || got.State != workflows.FallbackCancelled || got.Policy.Steps[0].To != "+33*******78" {
		t.Fatalf("cancel: %d %+v, want 200 cancelled with the policy masked", code, got)
	}
	if code, got = call("PATCH", "/v1/messages/"+a+"/fallback", `{"delivered_within": "1h"}`); code != http.StatusConflict || !strings.Contains(got.Error, "cancelled") {
		t.Errorf("patch after cancel: %d %q, want 409", code, got.Error)
	}

	// Patch: lengthen, then shorten to the past: escalates at once; then cancel is 409.
	b := s.sendFallback("ok@example.com", map[string]any{"delivered_within": "1h", "steps": []any{step}})
	s.postback.waitFor(t, b, 1)
	if code, got = call("PATCH", "/v1/messages/"+b+"/fallback", `{"delivered_within": "2h", "steps": [{"channel": "webhook", "url": "`+s.postback.URL+`"}]}`); code != 200 ||
		got.State != workflows.FallbackPending || got.Policy.DeliveredWithin.D != 2*time.Hour || got.Policy.Steps[0].Channel != "webhook" {
		t.Fatalf("patch: %d %+v", code, got)
	}
	if code, got = call("PATCH", "/v1/messages/"+b+"/fallback", `{"delivered_within": "1ms"}`); code != 200 || got.State != workflows.FallbackEscalated {
		t.Fatalf("patch into the past: %d %+v, want escalated at once", code, got)
	}
	if code, got = call("POST", "/v1/messages/"+b+"/fallback/cancel", ``); code != http.StatusConflict || !strings.Contains(got.Error, "already escalated") {
		t.Errorf("cancel after escalation: %d %q, want 409", code, got.Error)
	}

	// Bad input and unknown messages.
	for _, tt := range []struct {
		method, path, body string
		code               int
		errHas             string
	}{
		{"PATCH", "/v1/messages/" + a + "/fallback", `{"delivered_within": "soon"}`, 400, `fallback.delivered_within: "soon" is not a duration`},
		{"PATCH", "/v1/messages/" + a + "/fallback", `{"steps": [{"channel": "pigeon"}]}`, 400, `unknown channel "pigeon"`},
		{"PATCH", "/v1/messages/" + a + "/fallback", `{}`, 400, "nothing to change"},
		{"POST", "/v1/messages/0123456789abcdef0123456789abcdef/fallback/cancel", ``, 404, "not found"},
		{"POST", "/v1/messages", `{"to": "a@example.com", "subject": "s", "text": "t", "fallback": {"steps": [{"channel": "sms", "to": "+33612345678", "text": "x"}]}}`, 400, "sms is not configured"},
		{"POST", "/v1/messages", `{"to": "a@example.com", "subject": "s", "text": "t", "fallback": {"sent_within": "5 min", "steps": []}}`, 400, `fallback.sent_within: "5 min"`},
	} {
		if code, got := call(tt.method, tt.path, tt.body); code != tt.code || !strings.Contains(got.Error, tt.errHas) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tt.method, tt.path, tt.body, code, got.Error, tt.code, tt.errHas)
		}
	}
	// A message without a policy has nothing to cancel.
	c := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, c, 1)
	if code, got := call("POST", "/v1/messages/"+c+"/fallback/cancel", ``); code != http.StatusConflict || !strings.Contains(got.Error, "no fallback policy") {
		t.Errorf("cancel without a policy: %d %q, want 409", code, got.Error)
	}
}

func deadline(fb workflows.FallbackState, name string) workflows.DeadlineRecord {
	for _, d := range fb.Deadlines {
		if d.Name == name {
			return d
		}
	}
	return workflows.DeadlineRecord{Name: name, State: "absent"}
}
