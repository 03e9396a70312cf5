package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
	"github.com/dispatchflow/dispatchflow/message"
)

// Each API provider hands the message to its fake (which checks the documented
// request shape, credentials and dispatch id): the message reaches sent with the
// provider's message id in its state; a documented refusal aborts the next one
// with the provider's reason.
func TestESPProviders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider   string
		fake       func(t *testing.T) *esptest.Fake
		configure  func(c *config.Config, url string)
		messageID  string
		refusal    esptest.Answer
		wantReason string
	}{
		{
			provider: "sendgrid",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.SendGrid(t, "SG.it") },
			configure: func(c *config.Config, url string) {
				c.SendGridAPIKey, c.SendGridBaseURL = "SG.it", url
			},
			messageID:  esptest.SendGridMessageID,
			refusal:    esptest.Answer{Status: http.StatusForbidden, Body: esptest.Fixture("sendgrid-403.json")},
			wantReason: "The from address does not match a verified Sender Identity.",
		},
		{
			provider: "mailgun",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Mailgun(t, "key-it", "mg.example.com") },
			configure: func(c *config.Config, url string) {
				c.MailgunAPIKey, c.MailgunDomain, c.MailgunBaseURL = "key-it", "mg.example.com", url
			},
			messageID:  esptest.MailgunMessageID,
			refusal:    esptest.Answer{Status: http.StatusBadRequest, Body: esptest.Fixture("mailgun-400.json")},
			wantReason: "'to' parameter is not a valid address. please check documentation",
		},
		{
			provider: "postmark",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Postmark(t, "pm-it") },
			configure: func(c *config.Config, url string) {
				c.PostmarkServerToken, c.PostmarkBaseURL, c.PostmarkMessageStream = "pm-it", url, "outbound"
			},
			messageID:  esptest.PostmarkMessageID,
			refusal:    esptest.Answer{Status: http.StatusUnprocessableEntity, Body: esptest.Fixture("postmark-422-406.json")},
			wantReason: "You tried to send to recipient(s) that have been marked as inactive.",
		},
		{
			provider: "ses",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.SES(t, "eu-west-1", "AKIAIT", "secret-it") },
			configure: func(c *config.Config, url string) {
				c.SESRegion, c.SESAccessKeyID, c.SESSecretAccessKey, c.SESConfigurationSet, c.SESBaseURL = "eu-west-1", "AKIAIT", "secret-it", "dispatchflow", url
			},
			messageID:  esptest.SESMessageID,
			refusal:    esptest.SESError(http.StatusBadRequest, "MessageRejected", "ses-400-messagerejected.json"),
			wantReason: "MessageRejected: Email address is not verified.",
		},
		{
			provider: "brevo",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Brevo(t, "xkeysib-it") },
			configure: func(c *config.Config, url string) {
				c.BrevoAPIKey, c.BrevoBaseURL = "xkeysib-it", url
			},
			messageID:  esptest.BrevoMessageID,
			refusal:    esptest.Answer{Status: http.StatusBadRequest, Body: esptest.Fixture("brevo-400.json")},
			wantReason: "Validate your sender or authenticate your domain (Brevo code invalid_parameter)",
		},
		{
			provider: "mailjet",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Mailjet(t, "mj-it", "mj-secret-it") },
			configure: func(c *config.Config, url string) {
				c.MailjetAPIKey, c.MailjetAPISecret, c.MailjetBaseURL = "mj-it", "mj-secret-it", url
			},
			messageID:  esptest.MailjetMessageID,
			refusal:    esptest.Answer{Status: http.StatusBadRequest, Body: esptest.Fixture("mailjet-400-mj0013.json")},
			wantReason: `"invalid@123.4" is an invalid email address. (Mailjet mj-0013, field To[0].Email)`,
		},
		{
			provider: "sparkpost",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.SparkPost(t, "sp-it") },
			configure: func(c *config.Config, url string) {
				c.SparkPostAPIKey, c.SparkPostBaseURL = "sp-it", url
			},
			messageID:  esptest.SparkPostTransmissionID,
			refusal:    esptest.Answer{Status: http.StatusBadRequest, Body: esptest.Fixture("sparkpost-400-7001.json")},
			wantReason: "Invalid domain: Unconfigured Sending Domain <example.com>",
		},
		{
			provider: "resend",
			fake:     func(t *testing.T) *esptest.Fake { return esptest.Resend(t, "re_it") },
			configure: func(c *config.Config, url string) {
				c.ResendAPIKey, c.ResendBaseURL = "re_it", url
			},
			messageID:  esptest.ResendEmailID,
			refusal:    esptest.Answer{Status: http.StatusForbidden, Body: esptest.Fixture("resend-403-domain.json")},
			wantReason: "The domain.com domain is not verified. Please, add and verify your domain. (Resend validation_error)",
		},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			fake := tc.fake(t)
			s := setup(t, func(c *config.Config) {
				c.ESP = tc.provider
				tc.configure(c, fake.URL)
				c.Intakes = []string{"generic"} // the sends are tested here, not the provider's webhooks
			})

			id := s.send(message.SendRequest{To: "Ann <ann@example.com>", From: "shop@example.com", Subject: "Order confirmed", Text: "Thanks", PostbackURL: s.postback.URL})
			pbs := s.postback.waitFor(t, id, 1)
			if got := statuses(pbs); !slices.Equal(got, []string{"sent"}) {
				t.Fatalf("postbacks %v, want [sent]", got)
			}
			st := s.state(id)
			if st.Status != message.StatusSent || st.ESP == nil || st.ESP.Provider != tc.provider || st.ESP.MessageID != tc.messageID {
				t.Errorf("state %s esp %+v, want sent through %s with message id %s", st.Status, st.ESP, tc.provider, tc.messageID)
			}
			if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].DispatchID != id {
				t.Errorf("%s received %+v, want one request carrying dispatch_id %s", tc.provider, reqs, id)
			}

			fake.Answer(tc.refusal)
			refused := s.send(message.SendRequest{To: "gone@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
			pbs = s.postback.waitFor(t, refused, 1)
			md, _ := pbs[0]["metadata"].(map[string]any)
			reason, _ := md["reason"].(string)
			if pbs[0]["status"] != "aborted" || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("refused message: postback %v, want aborted with a reason containing %q", pbs[0], tc.wantReason)
			}
		})
	}
}
