package fallback

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limits are DefaultLimits with the SMS countries and webhook hosts of these tests.
func limits() Limits {
	lim := DefaultLimits
	lim.SMSCountries = []string{"1", "33"}
	lim.WebhookHosts = []string{"Hooks.Example", "api.example:8443", "plain.example:443"}
	return lim
}

func sms(to string) Step { return Step{Channel: ChannelSMS, To: to, Text: "hi"} }

func webhook(url string) Step { return Step{Channel: ChannelWebhook, URL: url} }

// steps returns n valid steps.
func steps(n int) []Step {
	s := make([]Step, n)
	for i := range s {
		s[i] = webhook("https://hooks.example/fallback")
	}
	return s
}

func TestValidateLimits(t *testing.T) {
	t.Parallel()
	const week = 7 * 24 * time.Hour
	tests := []struct {
		name    string
		policy  Policy
		lim     *Limits // nil: limits()
		wantErr string  // the whole error; "": valid
	}{
		{name: "at most steps", policy: Policy{Steps: steps(5)}},
		{name: "under most steps", policy: Policy{Steps: steps(4)}},
		{name: "too many steps", policy: Policy{Steps: steps(6)}, wantErr: "fallback.steps: 6 steps, at most 5 are allowed"},
		{name: "thousands of steps", policy: Policy{Steps: steps(5000)}, wantErr: "fallback.steps: 5000 steps, at most 5 are allowed"},

		{name: "sent_within at minimum", policy: Policy{SentWithin: Dur(time.Minute), Steps: steps(1)}},
		{name: "sent_within over minimum", policy: Policy{SentWithin: Dur(time.Minute + time.Nanosecond), Steps: steps(1)}},
		{name: "sent_within under minimum", policy: Policy{SentWithin: Dur(time.Minute - time.Nanosecond), Steps: steps(1)},
			wantErr: "fallback.sent_within: 59.999999999s is shorter than the minimum 1m0s (0s turns the deadline off)"},
		{name: "sent_within 1ns", policy: Policy{SentWithin: Dur(time.Nanosecond), Steps: steps(1)},
			wantErr: "fallback.sent_within: 1ns is shorter than the minimum 1m0s (0s turns the deadline off)"},
		{name: "sent_within 0s", policy: Policy{SentWithin: Dur(0), Steps: steps(1)}},
		{name: "sent_within at maximum", policy: Policy{SentWithin: Dur(week), Steps: steps(1)}},
		{name: "sent_within under maximum", policy: Policy{SentWithin: Dur(week - time.Nanosecond), Steps: steps(1)}},
		{name: "sent_within over maximum", policy: Policy{SentWithin: Dur(week + time.Second), Steps: steps(1)},
			wantErr: "fallback.sent_within: 168h0m1s is longer than the maximum 168h0m0s"},
		{name: "delivered_within under minimum", policy: Policy{DeliveredWithin: Dur(10 * time.Second), Steps: steps(1)},
			wantErr: "fallback.delivered_within: 10s is shorter than the minimum 1m0s (0s turns the deadline off)"},
		{name: "delivered_within over maximum", policy: Policy{DeliveredWithin: Dur(week + time.Nanosecond), Steps: steps(1)},
			wantErr: "fallback.delivered_within: 168h0m0.000000001s is longer than the maximum 168h0m0s"},
		{name: "delivered_within bounds", policy: Policy{SentWithin: Dur(week), DeliveredWithin: Dur(time.Minute), Steps: steps(1)}},
		{name: "delivered_within 0s", policy: Policy{DeliveredWithin: Dur(0), Steps: steps(1)}},
		{name: "wait 0s", policy: Policy{Steps: []Step{{Channel: ChannelWebhook, URL: "https://hooks.example/", Wait: Dur(0)}}}},
		{name: "wait at bounds", policy: Policy{Steps: []Step{
			{Channel: ChannelWebhook, URL: "https://hooks.example/", Wait: Dur(time.Minute)},
			{Channel: ChannelWebhook, URL: "https://hooks.example/", Wait: Dur(week)},
		}}},
		{name: "wait a century", policy: Policy{Steps: []Step{{Channel: ChannelWebhook, URL: "https://hooks.example/", Wait: Dur(8760 * time.Hour)}}},
			wantErr: "fallback.steps[0].wait: 8760h0m0s is longer than the maximum 168h0m0s"},
		{name: "wait under minimum", policy: Policy{Steps: []Step{steps(1)[0], {Channel: ChannelWebhook, URL: "https://hooks.example/", Wait: Dur(time.Second)}}},
			wantErr: "fallback.steps[1].wait: 1s is shorter than the minimum 1m0s (0s makes the step final once accepted)"},

		{name: "text at maximum", policy: Policy{Steps: []Step{{Channel: ChannelSMS, To: "+33612345678", Text: strings.Repeat("é", 1600)}}}},
		{name: "text under maximum", policy: Policy{Steps: []Step{{Channel: ChannelSMS, To: "+33612345678", Text: strings.Repeat("a", 1599)}}}},
		{name: "text over maximum", policy: Policy{Steps: []Step{steps(1)[0], {Channel: ChannelSMS, To: "+33612345678", Text: strings.Repeat("é", 1601)}}},
			wantErr: "fallback.steps[1].text: 1601 characters, at most 1600 are allowed"},
		{name: "sandbox text over maximum", policy: Policy{Steps: []Step{{Channel: ChannelSandbox, To: "+33612345678", Text: strings.Repeat("a", 2000)}}},
			wantErr: "fallback.steps[0].text: 2000 characters, at most 1600 are allowed"},

		{name: "sms +1", policy: Policy{Steps: []Step{sms("+14155550123")}}},
		{name: "sms +33", policy: Policy{Steps: []Step{sms("+33612345678")}}},
		{name: "sms +44", policy: Policy{Steps: []Step{sms("+447700900123")}},
			wantErr: "fallback.steps[0].to: +44********23: calling code not allowed for sms (DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: 1, 33)"},
		{name: "sms premium +882", policy: Policy{Steps: []Step{steps(1)[0], sms("+8821234567")}},
			wantErr: "fallback.steps[1].to: +88******67: calling code not allowed for sms (DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: 1, 33)"},
		{name: "sms +34 not +3", policy: Policy{Steps: []Step{sms("+34612345678")}}, wantErr: "fallback.steps[0].to: +34*******78: calling code not allowed"},
		{name: "sms no countries", policy: Policy{Steps: []Step{sms("+33612345678")}}, lim: &DefaultLimits,
			wantErr: "fallback.steps[0].to: +33*******78: calling code not allowed for sms (DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: none)"},
		{name: "sms empty country allows nothing", policy: Policy{Steps: []Step{sms("+33612345678")}}, lim: &Limits{SMSCountries: []string{""}},
			wantErr: "fallback.steps[0].to: +33*******78: calling code not allowed for sms"},
		{name: "sms country given with +", policy: Policy{Steps: []Step{sms("+447700900123")}}, lim: &Limits{SMSCountries: []string{"+44"}}},
		{name: "sandbox not bound by countries", policy: Policy{Steps: []Step{{Channel: ChannelSandbox, To: "+447700900123", Text: "hi"}}}, lim: &DefaultLimits},

		{name: "webhook host", policy: Policy{Steps: []Step{webhook("https://hooks.example/fallback")}}},
		{name: "webhook host case", policy: Policy{Steps: []Step{webhook("http://HOOKS.example/fallback")}}},
		{name: "webhook host any port", policy: Policy{Steps: []Step{webhook("https://hooks.example:9000/fallback")}}},
		{name: "webhook host refused", policy: Policy{Steps: []Step{steps(1)[0], steps(1)[0], webhook("https://evil.example/collect")}},
			wantErr: "fallback.steps[2].url: host evil.example is not a registered endpoint host or in DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS"},
		{name: "webhook subdomain refused", policy: Policy{Steps: []Step{webhook("https://hooks.example.evil.example/")}},
			wantErr: "fallback.steps[0].url: host hooks.example.evil.example is not a registered endpoint host"},
		{name: "webhook userinfo refused", policy: Policy{Steps: []Step{webhook("https://hooks.example@evil.example/")}},
			wantErr: "fallback.steps[0].url: host evil.example is not a registered endpoint host"},
		{name: "webhook port", policy: Policy{Steps: []Step{webhook("https://API.example:8443/fallback")}}},
		{name: "webhook other port", policy: Policy{Steps: []Step{webhook("https://api.example:9443/fallback")}},
			wantErr: "fallback.steps[0].url: host api.example:9443 is not a registered endpoint host or in DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS"},
		{name: "webhook default port is not 8443", policy: Policy{Steps: []Step{webhook("https://api.example/fallback")}},
			wantErr: "fallback.steps[0].url: host api.example is not a registered endpoint host"},
		{name: "webhook https default port", policy: Policy{Steps: []Step{webhook("https://plain.example/fallback")}}},
		{name: "webhook http default port", policy: Policy{Steps: []Step{webhook("http://plain.example/fallback")}},
			wantErr: "fallback.steps[0].url: host plain.example is not a registered endpoint host"},
		{name: "webhook ipv6", policy: Policy{Steps: []Step{webhook("http://[::1]:8080/")}}, lim: &Limits{WebhookHosts: []string{"::1"}}},
		{name: "webhook ipv6 port", policy: Policy{Steps: []Step{webhook("http://[::1]:8080/")}}, lim: &Limits{WebhookHosts: []string{"[::1]:8080"}}},
		{name: "webhook no hosts", policy: Policy{Steps: []Step{webhook("https://hooks.example/")}}, lim: &DefaultLimits,
			wantErr: "fallback.steps[0].url: host hooks.example is not a registered endpoint host or in DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS"},

		{name: "zero limits cap nothing", lim: &Limits{SMSCountries: []string{"33"}, WebhookHosts: []string{"hooks.example"}}, policy: Policy{
			SentWithin: Dur(time.Nanosecond), DeliveredWithin: Dur(8760 * time.Hour),
			Steps: append(steps(100), Step{Channel: ChannelSMS, To: "+33612345678", Text: strings.Repeat("a", 100_000), Wait: Dur(8760 * time.Hour)}),
		}},
		{name: "negative still refused", lim: &Limits{}, policy: Policy{SentWithin: Dur(-time.Minute), Steps: steps(1)}, wantErr: "fallback.sent_within: -1m0s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := limits()
			if tt.lim != nil {
				lim = *tt.lim
			}
			err := tt.policy.Validate("fallback", all, lim)
			checkErr(t, err, tt.wantErr)
		})
	}
}

// checkErr fails unless err is nil (want "") or its message is want, or starts
// with want when want is a shortened message.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("got %v, want valid", err)
	case want != "" && err == nil:
		t.Fatalf("got valid, want %q", want)
	case want != "" && !strings.HasPrefix(err.Error(), want):
		t.Fatalf("got %q, want %q", err, want)
	}
}

// The country error must not put a customer's number into API answers and logs.
func TestValidateMasksPhone(t *testing.T) {
	t.Parallel()
	for _, to := range []string{"+447700900123", "+8821234567", "+33612345678", "+123456789012345"} {
		for _, lim := range []Limits{limits(), DefaultLimits, {SMSCountries: []string{"7"}}} {
			err := Policy{Steps: []Step{sms(to)}}.Validate("fallback", all, lim)
			if err == nil {
				continue
			}
			if strings.Contains(err.Error(), to) || strings.Contains(err.Error(), to[1:]) {
				t.Errorf("%s with countries %v: got %q, which shows the number", to, lim.SMSCountries, err)
			}
			if !strings.Contains(err.Error(), MaskPhone(to)) {
				t.Errorf("%s with countries %v: got %q, want the masked number %s", to, lim.SMSCountries, err, MaskPhone(to))
			}
		}
	}
}

func TestPatchLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body    string
		lim     Limits
		wantErr string
	}{
		// DefaultLimits refuse every sms and webhook step: a patch without steps does not care.
		{body: `{"sent_within": "5m"}`, lim: DefaultLimits},
		{body: `{"sent_within": "0s", "delivered_within": "0s"}`, lim: DefaultLimits},
		{body: `{"on": ["bounced"]}`, lim: DefaultLimits},
		{body: `{"delivered_within": "168h"}`, lim: DefaultLimits},
		{body: `{"sent_within": "1ns"}`, lim: DefaultLimits, wantErr: "fallback.sent_within: 1ns is shorter than the minimum 1m0s (0s turns the deadline off)"},
		{body: `{"delivered_within": "8760h"}`, lim: DefaultLimits, wantErr: "fallback.delivered_within: 8760h0m0s is longer than the maximum 168h0m0s"},
		{body: `{"steps": [{"channel": "sandbox", "to": "+447700900123", "text": "hi", "wait": "30m"}]}`, lim: DefaultLimits},
		{body: `{"steps": [{"channel": "sms", "to": "+447700900123", "text": "hi"}]}`, lim: DefaultLimits,
			wantErr: "fallback.steps[0].to: +44********23: calling code not allowed for sms (DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: none)"},
		{body: `{"steps": [{"channel": "sms", "to": "+14155550123", "text": "hi"}]}`, lim: limits()},
		{body: `{"steps": [{"channel": "webhook", "url": "https://evil.example/"}]}`, lim: limits(),
			wantErr: "fallback.steps[0].url: host evil.example is not a registered endpoint host or in DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS"},
		{body: `{"steps": [{"channel": "webhook", "url": "https://hooks.example/", "wait": "8760h"}]}`, lim: limits(),
			wantErr: "fallback.steps[0].wait: 8760h0m0s is longer than the maximum 168h0m0s"},
		{body: stepsBody(t, 5), lim: limits()},
		{body: stepsBody(t, 6), lim: limits(), wantErr: "fallback.steps: 6 steps, at most 5 are allowed"},
	}
	for _, tt := range tests {
		var pt Patch
		if err := json.Unmarshal([]byte(tt.body), &pt); err != nil {
			t.Fatalf("unmarshal %s: %v", tt.body, err)
		}
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			checkErr(t, pt.Validate("fallback", all, tt.lim), tt.wantErr)
		})
	}
}

// stepsBody is a patch body replacing the steps with n valid ones.
func stepsBody(t *testing.T, n int) string {
	t.Helper()
	raw, err := json.Marshal(map[string][]Step{"steps": steps(n)})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestParseCallingCodes(t *testing.T) {
	t.Parallel()
	got, err := ParseCallingCodes([]string{"1", "+33", " 44 ", "882", "33"})
	if want := []string{"1", "33", "44", "882"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if got, err := ParseCallingCodes(nil); err != nil || len(got) != 0 {
		t.Errorf("nil: got %q, %v; want none", got, err)
	}
	for _, bad := range []string{"", "+", "1234", "+1234", "3a", "++33", "-1", "0", "044", "٣"} {
		_, err := ParseCallingCodes([]string{"1", bad})
		if err == nil || !strings.HasPrefix(err.Error(), strconv.Quote(bad)) {
			t.Errorf("%q: got %v, want an error naming it", bad, err)
		}
	}
}
