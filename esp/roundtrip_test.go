package esp_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
	"github.com/dispatchflow/dispatchflow/intake"
)

// What a sender attaches comes back, in the provider's webhook format, to the
// intake of the same provider: the event names the message by its dispatch_id
// and carries the message id the receipt recorded. Each event is the provider's
// documented example with the values the provider echoes taken from the request
// the fake received.
func TestEventsFindWhatTheSendersAttached(t *testing.T) {
	t.Parallel()
	resend, err := intake.NewResend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		provider string
		fake     func(t *testing.T) *esptest.Fake
		sender   func(url string) esp.Sender
		intake   intake.Normalizer
		// event renders the provider's event of the request and receipt.
		event func(r esptest.Request, rcpt esp.Receipt) string
	}{
		{
			provider: "brevo",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Brevo(t, "k") },
			sender:   func(url string) esp.Sender { return &esp.Brevo{APIKey: "k", BaseURL: url} },
			intake:   &intake.Brevo{},
			// "Delivered" of developers.brevo.com/docs/transactional-webhooks: the
			// custom header comes back as "X-Mailin-custom", the message as
			// "message-id" (with its angle brackets, as anymail/django-anymail
			// tests/test_brevo_webhooks.py captures it).
			event: func(r esptest.Request, rcpt esp.Receipt) string {
				return fmt.Sprintf(`{"event":"delivered","email":"ann@example.com","id":26224,"date":"2024-01-02 10:00:00",`+
					`"ts":1704186000,"message-id":%q,"ts_event":1704186000,"subject":"Your order #1234",`+
					`"X-Mailin-custom":%q,"sending_ip":"185.41.28.109","ts_epoch":1704186000000,"template_id":0,"tags":[]}`,
					rcpt.MessageID, r.Extra["X-Mailin-custom"])
			},
		},
		{
			provider: "mailjet",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Mailjet(t, "k", "s") },
			sender:   func(url string) esp.Sender { return &esp.Mailjet{APIKey: "k", SecretKey: "s", BaseURL: url} },
			intake:   &intake.Mailjet{},
			// "sent" of dev.mailjet.com/email/guides/webhooks: CustomID and Payload as
			// sent, MessageID a JSON number.
			event: func(r esptest.Request, rcpt esp.Receipt) string {
				return fmt.Sprintf(`{"event":"sent","time":1704186000,"MessageID":%s,"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j",`+
					`"email":"ann@example.com","mj_campaign_id":7257,"mj_contact_id":4,"customcampaign":"","mj_message_id":"%s",`+
					`"smtp_reply":"sent (250 2.0.0 OK)","CustomID":%q,"Payload":"{\"dispatch_id\":\"%s\"}"}`,
					rcpt.MessageID, rcpt.MessageID, r.DispatchID, r.Extra["EventPayload.dispatch_id"])
			},
		},
		{
			provider: "sparkpost",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.SparkPost(t, "k") },
			sender:   func(url string) esp.Sender { return &esp.SparkPost{APIKey: "k", BaseURL: url} },
			intake:   &intake.SparkPost{},
			// A "delivery" message event of developers.sparkpost.com/api/webhooks:
			// the transmission's metadata in rcpt_meta, its id as transmission_id.
			event: func(r esptest.Request, rcpt esp.Receipt) string {
				return fmt.Sprintf(`[{"msys":{"message_event":{"type":"delivery","event_id":"92356927693813856",`+
					`"transmission_id":%q,"message_id":"000443ee14578172be22","rcpt_to":"ann@example.com",`+
					`"rcpt_meta":{"dispatch_id":%q},"timestamp":"1704186000","friendly_from":"shop@example.com"}}}]`,
					rcpt.MessageID, r.DispatchID)
			},
		},
		{
			provider: "resend",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Resend(t, "k") },
			sender:   func(url string) esp.Sender { return &esp.Resend{APIKey: "k", BaseURL: url} },
			intake:   resend,
			// "email.delivered" of resend.com/docs/webhooks/emails/delivered: the
			// tags as an object of name to value, the email as data.email_id.
			event: func(r esptest.Request, rcpt esp.Receipt) string {
				return fmt.Sprintf(`{"type":"email.delivered","created_at":"2024-01-02T10:00:00.000Z","data":{`+
					`"created_at":"2024-01-02 09:59:59.000000+00","email_id":%q,"from":"Shop <shop@example.com>",`+
					`"to":["ann@example.com"],"subject":"Your order #1234","tags":{"dispatch_id":%q}}}`,
					rcpt.MessageID, r.DispatchID)
			},
		},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			f := tc.fake(t)
			rcpt, err := tc.sender(f.URL).Send(context.Background(), testEmail)
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.Requests()
			if len(reqs) != 1 {
				t.Fatalf("provider received %d requests, want 1", len(reqs))
			}
			body := tc.event(reqs[0], rcpt)
			b, err := tc.intake.Normalize(httptest.NewRequest("POST", "/v1/events/"+tc.provider, strings.NewReader(body)), []byte(body), time.Now())
			if err != nil {
				t.Fatalf("intake: %v", err)
			}
			if len(b.Events) != 1 || len(b.Invalid) != 0 {
				t.Fatalf("intake read %d events (%+v invalid), want 1", len(b.Events), b.Invalid)
			}
			e := b.Events[0]
			if e.DispatchID != testEmail.DispatchID || e.MessageID != rcpt.MessageID {
				t.Errorf("event names dispatch_id %q, message id %q; want %s and the receipt's %q",
					e.DispatchID, e.MessageID, testEmail.DispatchID, rcpt.MessageID)
			}
		})
	}
}
