package fallback

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

var all = []string{ChannelSandbox, ChannelSMS, ChannelWebhook}

// permissive lets through the numbers and hosts of these tests, with no other
// cap: the tests here are about something else (limits_test.go tests the caps).
var permissive = Limits{SMSCountries: []string{"33"}, WebhookHosts: []string{"internal.example", "x.example"}}

func parse(t *testing.T, s string) Policy {
	t.Helper()
	var p Policy
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("unmarshal %s: %v", s, err)
	}
	return p
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, policy string
		usable       []string
		wantErr      string
	}{
		{name: "issue example", policy: `{"delivered_within": "10s", "steps": [{"channel": "sms", "to": "+33612345678", "text": "Your order #1234 is confirmed", "wait": "30m"}, {"channel": "webhook", "url": "https://internal.example/fallback"}]}`},
		{name: "bad duration", policy: `{"delivered_within": "10 minutes", "steps": [{"channel": "sandbox", "to": "+33612345678", "text": "hi"}]}`, wantErr: `fallback.delivered_within: "10 minutes" is not a duration`},
		{name: "number for a duration", policy: `{"sent_within": 300, "steps": [{"channel": "sandbox", "to": "+33612345678", "text": "hi"}]}`, wantErr: `fallback.sent_within: "300" is not a duration`},
		{name: "negative", policy: `{"sent_within": "-5m", "steps": [{"channel": "sandbox", "to": "+33612345678", "text": "hi"}]}`, wantErr: "fallback.sent_within: -5m0s is negative"},
		{name: "bad wait", policy: `{"steps": [{"channel": "sandbox", "to": "+33612345678", "text": "hi", "wait": "soon"}]}`, wantErr: `fallback.steps[0].wait: "soon"`},
		{name: "no steps", policy: `{"delivered_within": "10s"}`, wantErr: "fallback.steps: at least one step is required"},
		{name: "unknown channel", policy: `{"steps": [{"channel": "fax", "to": "+33612345678"}]}`, wantErr: `fallback.steps[0].channel: unknown channel "fax"`},
		{name: "missing channel", policy: `{"steps": [{"to": "+33612345678"}]}`, wantErr: "fallback.steps[0].channel: is required"},
		{name: "missing number", policy: `{"steps": [{"channel": "sms", "text": "hi"}]}`, wantErr: `fallback.steps[0].to: "" is not an E.164 phone number`},
		{name: "local number", policy: `{"steps": [{"channel": "sms", "to": "0612345678", "text": "hi"}]}`, wantErr: "fallback.steps[0].to"},
		{name: "missing text", policy: `{"steps": [{"channel": "sandbox", "to": "+33612345678"}]}`, wantErr: "fallback.steps[0].text: is required"},
		{name: "missing url", policy: `{"steps": [{"channel": "sandbox", "to": "+33612345678", "text": "a"}, {"channel": "webhook"}]}`, wantErr: `fallback.steps[1].url: "" is not an absolute http(s) URL`},
		{name: "on delivered", policy: `{"on": ["bounced", "delivered"], "steps": [{"channel": "webhook", "url": "http://x.example"}]}`, wantErr: `fallback.on[1]: "delivered" cannot escalate`},
		{name: "sms not configured", policy: `{"steps": [{"channel": "sms", "to": "+33612345678", "text": "hi"}]}`, usable: []string{ChannelSandbox, ChannelWebhook}, wantErr: "fallback.steps[0].channel: sms is not configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			usable := tt.usable
			if usable == nil {
				usable = all
			}
			err := parse(t, tt.policy).Validate("fallback", usable, permissive)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults{SentWithin: 5 * time.Minute, DeliveredWithin: 30 * time.Minute, On: []message.Status{message.StatusBounced, message.StatusAborted}}
	got := parse(t, `{"sent_within": "0s", "steps": [{"channel": "webhook", "url": "http://x.example"}]}`).WithDefaults(d)
	if got.SentWithin.D != 0 || !got.SentWithin.Set || got.DeliveredWithin.D != 30*time.Minute || !got.Escalates(message.StatusBounced) {
		t.Errorf("got %+v: want sent_within off (0s given), delivered_within 30m and on from the defaults", got)
	}
	if got := parse(t, `{"on": [], "steps": []}`).WithDefaults(d); got.Escalates(message.StatusBounced) {
		t.Errorf(`"on": [] given: got %v, want no status escalating`, got.On)
	}
}

// The policy survives Temporal's JSON round trip (workflow input, carried state).
func TestPolicyJSONRoundTrip(t *testing.T) {
	t.Parallel()
	p := parse(t, `{"delivered_within": "10s", "steps": [{"channel": "sms", "to": "+33612345678", "text": "t", "wait": "30m"}]}`)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back := parse(t, string(raw))
	if back.DeliveredWithin.D != 10*time.Second || back.SentWithin.Set || back.Steps[0].Wait.D != 30*time.Minute {
		t.Errorf("round trip %s gave %+v", raw, back)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	if got := MaskPhone("+33612345678"); got != "+33*******78" {
		t.Errorf("MaskPhone = %q, want +33*******78", got)
	}
	p := parse(t, `{"steps": [{"channel": "sms", "to": "+33612345678", "text": "t"}, {"channel": "webhook", "url": "http://x.example/f"}]}`)
	m := p.Masked()
	if m.Steps[0].To != "+33*******78" || p.Steps[0].To != "+33612345678" || m.Steps[1].Target() != "http://x.example/f" {
		t.Errorf("Masked: %+v (original %+v)", m.Steps, p.Steps)
	}
}

func TestPatch(t *testing.T) {
	t.Parallel()
	var pt Patch
	if err := json.Unmarshal([]byte(`{"delivered_within": "1h"}`), &pt); err != nil {
		t.Fatal(err)
	}
	p := parse(t, `{"delivered_within": "10s", "steps": [{"channel": "webhook", "url": "http://x.example"}]}`)
	if err := pt.Validate("fallback", all, permissive); err != nil {
		t.Fatal(err)
	}
	if got := pt.Apply(p); got.DeliveredWithin.D != time.Hour || len(got.Steps) != 1 {
		t.Errorf("Apply: %+v", got)
	}
	for body, want := range map[string]string{
		`{}`:                          "fallback: nothing to change",
		`{"steps": []}`:               "fallback.steps: at least one step is required",
		`{"sent_within": "x"}`:        `fallback.sent_within: "x" is not a duration`,
		`{"on": ["processed"]}`:       `fallback.on[0]: "processed" cannot escalate`,
		`{"steps": [{"channel": 1}]}`: "",
	} {
		var pt Patch
		err := json.Unmarshal([]byte(body), &pt)
		if err == nil {
			err = pt.Validate("fallback", all, permissive)
		}
		if err == nil || (want != "" && !strings.Contains(err.Error(), want)) {
			t.Errorf("patch %s: got %v, want an error containing %q", body, err, want)
		}
	}
}
