package suppression

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
)

// The intakes' own fixtures, the providers' documented webhook bodies, run
// through the real normalizers, then CauseOf: what a provider reports decides
// whether the address is suppressed. Each fixture's source is listed in
// intake/testdata/README.md and named above its case.
func TestCauseOfProviderEvents(t *testing.T) {
	t.Parallel()
	norms, err := intake.New(intake.Config{Mount: []string{intake.ProviderSendGrid, intake.ProviderPostmark,
		intake.ProviderMailgun, intake.ProviderSarbacane, intake.ProviderAJO}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	normalize := func(t *testing.T, provider string, body []byte) []message.Event {
		t.Helper()
		b, err := norms[provider].Normalize(httptest.NewRequest("POST", "/v1/events/"+provider, bytes.NewReader(body)), body, time.Now())
		if err != nil || len(b.Invalid) > 0 {
			t.Fatalf("%s: %v, invalid %v", provider, err, b.Invalid)
		}
		return b.Events
	}
	type want struct {
		cause Cause
		ok    bool
	}
	hard, none := want{CauseHardBounce, true}, want{}

	// Twilio SendGrid, Event Webhook Reference (the example of each event type,
	// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event)
	// plus a bounce of "type": "blocked": intake/testdata/sendgrid_events.json.
	t.Run("sendgrid", func(t *testing.T) {
		t.Parallel()
		byRaw := map[string]want{
			"bounce/bounce":     hard,
			"bounce/blocked":    none, // SendGrid's Blocks: the message or IP refused, not the mailbox
			"spamreport":        {CauseComplaint, true},
			"unsubscribe":       {CauseUnsubscribe, true},
			"group_unsubscribe": {CauseUnsubscribe, true},
			"dropped":           none, // never attempted: SendGrid's own list said no
			"deferred":          none,
			"delivered":         none,
			"open":              none,
		}
		seen := 0
		for _, e := range normalize(t, intake.ProviderSendGrid, fixture(t, "sendgrid_events.json")) {
			w, ok := byRaw[e.RawType]
			if !ok {
				continue
			}
			seen++
			if c, got := CauseOf(e.Provider, e.Type, e.RawType); c != w.cause || got != w.ok {
				t.Errorf("%s (%s): CauseOf = %q, %v; want %q, %v", e.RawType, e.Type, c, got, w.cause, w.ok)
			}
		}
		if seen < len(byRaw) {
			t.Errorf("checked %d of the %d raw types: the fixture changed", seen, len(byRaw))
		}
	})

	cases := []struct {
		name, provider, file string
		want                 want
	}{
		// Postmark, bounce webhook (https://postmarkapp.com/developer/webhooks/bounce-webhook).
		{"postmark hard bounce", intake.ProviderPostmark, "postmark_bounce.json", hard},
		// The same example with Type SoftBounce, per Postmark's bounce types
		// (https://postmarkapp.com/developer/api/bounce-api#bounce-types).
		{"postmark soft bounce", intake.ProviderPostmark, "postmark_softbounce.json", none},
		// Postmark, spam complaint webhook (https://postmarkapp.com/developer/webhooks/spam-complaint-webhook).
		{"postmark spam complaint", intake.ProviderPostmark, "postmark_spamcomplaint.json", want{CauseComplaint, true}},
		// Postmark, subscription change webhook, SuppressSending true
		// (https://postmarkapp.com/developer/webhooks/subscription-change-webhook).
		{"postmark subscription change", intake.ProviderPostmark, "postmark_subscriptionchange.json", want{CauseUnsubscribe, true}},
		// Postmark bounce of Type ManuallyDeactivated: never attempted (aborted).
		{"postmark manually deactivated", intake.ProviderPostmark, "postmark_manuallydeactivated.json", none},
		// Mailgun events documentation, "Failed (Permanent, Delayed Bounce)"
		// (https://documentation.mailgun.com/en/latest/api-events.html).
		{"mailgun permanent failure", intake.ProviderMailgun, "mailgun_failed_delayed_bounce.json", hard},
		// Mailgun Webhook Payloads, permanent failure of reason suppress-bounce:
		// Mailgun did not try (aborted), its own list holds the address
		// (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads).
		{"mailgun suppress-bounce", intake.ProviderMailgun, "mailgun_failed_suppress_bounce.json", none},
		// Mailgun, temporary failure: still trying.
		{"mailgun temporary failure", intake.ProviderMailgun, "mailgun_failed_temporary.json", none},
		// Sarbacane, Extension Webhooks manual, "Enveloppe retour" (seed 003).
		{"sarbacane hard bounce", intake.ProviderSarbacane, "sarbacane_hard_bounce.json", hard},
		{"sarbacane soft bounce", intake.ProviderSarbacane, "sarbacane_soft_bounce.json", none},
		// Adobe Journey Optimizer, feedback webhook example (code 25, Admin
		// Failure: aborted), https://experienceleague.adobe.com/en/docs/journey-optimizer/using/configuration/feedback-webhooks.
		{"ajo admin failure", intake.ProviderAJO, "ajo_bounce.json", none},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			evs := normalize(t, tt.provider, fixture(t, tt.file))
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			e := evs[0]
			if c, ok := CauseOf(e.Provider, e.Type, e.RawType); c != tt.want.cause || ok != tt.want.ok {
				t.Errorf("%s (%s %s): CauseOf = %q, %v; want %q, %v", tt.file, e.Type, e.RawType, c, ok, tt.want.cause, tt.want.ok)
			}
		})
	}

	// The AJO example with the codes of AJO's email error types
	// (https://experienceleague.adobe.com/en/docs/journey-optimizer/using/configuration/monitor-reputation/email-error-types),
	// as intake's own tests derive them.
	for code, w := range map[string]want{`"10"`: hard, `"15"`: hard, `"24"`: none, `"22"`: none} {
		t.Run("ajo code "+code, func(t *testing.T) {
			t.Parallel()
			body := bytes.Replace(fixture(t, "ajo_bounce.json"), []byte(`"25"`), []byte(code), 1)
			body = bytes.Replace(body, []byte(`"Ignored"`), []byte(`"Hard"`), 1)
			e := normalize(t, intake.ProviderAJO, body)[0]
			if c, ok := CauseOf(e.Provider, e.Type, e.RawType); c != w.cause || ok != w.ok {
				t.Errorf("code %s (%s %s): CauseOf = %q, %v; want %q, %v", code, e.Type, e.RawType, c, ok, w.cause, w.ok)
			}
		})
	}
}

// SES events arrive in signed SNS envelopes (intake's tests build them); the
// raw types are those intake's SES test asserts for the SES developer guide's
// examples (intake/testdata/ses_*.json, https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html).
func TestCauseOfSES(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"Bounce/Permanent/General":         true,
		"Bounce/Permanent/NoEmail":         true,
		"Bounce/Transient/MailboxFull":     false,
		"Bounce/Transient/General":         false,
		"Bounce/Undetermined/Undetermined": false,
	} {
		if c, ok := CauseOf("ses", message.EventBounced, raw); ok != want || (ok && c != CauseHardBounce) {
			t.Errorf("CauseOf(ses bounced %s) = %q, %v; want hard bounce %v", raw, c, ok, want)
		}
	}
	if c, ok := CauseOf("ses", message.EventComplaint, "Complaint/abuse"); !ok || c != CauseComplaint {
		t.Errorf("CauseOf(ses complaint) = %q, %v; want complaint", c, ok)
	}
}

// The providers whose intakes count soft bounces and blocks as bounced: the
// raw types their intakes build (intake/<provider>.go) from the payloads their
// documentation shows.
func TestCauseOfSoftBouncesOfOtherProviders(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		provider, raw string
		hard          bool
	}{
		// Resend webhook email.bounced, bounce.type and subType (Amazon SES's;
		// https://resend.com/docs/dashboard/webhooks/event-types, via intake/resend.go).
		{"resend", "email.bounced/Permanent/General", true},
		{"resend", "email.bounced/Transient/MailboxFull", false},
		// SparkPost bounce classification codes (support-docs
		// content/docs/deliverability/bounce-classification-codes.md).
		{"sparkpost", "bounce/10", true},
		{"sparkpost", "out_of_band/30", true},
		{"sparkpost", "bounce/21", false},
		{"sparkpost", "bounce/51", false},
		{"sparkpost", "bounce/1", false},
		// Brevo transactional webhook events hard_bounce, soft_bounce, invalid_email
		// (https://developers.brevo.com/docs/transactional-webhooks).
		{"brevo", "hard_bounce", true},
		{"brevo", "invalid_email", true},
		{"brevo", "soft_bounce", false},
		// Mandrill message events hard_bounce and soft_bounce, with the
		// bounce_description, as intake/mandrill.go reads them
		// (https://mandrill.zendesk.com/hc/en-us/articles/205582937).
		{"mandrill", "hard_bounce/bad_mailbox", true},
		{"mandrill", "soft_bounce/mailbox_full", false},
		// MailerSend webhooks activity.hard_bounced, activity.soft_bounced
		// (https://developers.mailersend.com/api/v1/webhooks.html).
		{"mailersend", "activity.hard_bounced", true},
		{"mailersend", "activity.soft_bounced", false},
		// Mailjet event API bounce, hard_bounce true or false
		// (https://dev.mailjet.com/email/guides/webhooks/).
		{"mailjet", "bounce/hard/recipient/user unknown", true},
		{"mailjet", "bounce/soft/domain/connection issue", false},
	} {
		c, ok := CauseOf(tt.provider, message.EventBounced, tt.raw)
		if ok != tt.hard || (ok && c != CauseHardBounce) {
			t.Errorf("CauseOf(%s bounced %s) = %q, %v; want hard bounce %v", tt.provider, tt.raw, c, ok, tt.hard)
		}
	}
}

// The generic format's and the sandbox's "bounced" is a hard bounce by
// definition; no other event type suppresses.
func TestCauseOfGeneric(t *testing.T) {
	t.Parallel()
	for _, et := range message.EventTypes {
		c, ok := CauseOf(intake.ProviderGeneric, et, "")
		want := map[message.EventType]Cause{message.EventBounced: CauseHardBounce,
			message.EventComplaint: CauseComplaint, message.EventUnsubscribe: CauseUnsubscribe}[et]
		if c != want || ok != (want != "") {
			t.Errorf("CauseOf(generic %s) = %q, %v; want %q", et, c, ok, want)
		}
	}
	if c, ok := CauseOf(intake.ProviderSandbox, message.EventBounced, "bounced"); !ok || c != CauseHardBounce {
		t.Errorf("CauseOf(sandbox bounced) = %q, %v; want hard bounce", c, ok)
	}
}

// CauseOf names providers by intake's names.
func TestCauseOfProviderNames(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"sendgrid", "postmark", "ses", "ajo", "resend", "sparkpost", "brevo", "mandrill", "mailersend", "mailjet"} {
		found := false
		for _, known := range intake.Providers {
			found = found || known == p
		}
		if !found {
			t.Errorf("provider %q is not one of intake.Providers", p)
		}
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "intake", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
