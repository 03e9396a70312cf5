package intake_test

import (
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/config"
)

// config.Load refuses a malformed webhook setting and ValidateAPI (the API's
// start) a mounted intake without its credential, naming the variable; the
// worker, which mounts no intake, needs none.
func TestConfigNamesWebhookVariables(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // of Load, or else of ValidateAPI
	}{
		{"sandbox with its secret", map[string]string{"DISPATCHFLOW_INTAKES": "sandbox",
			"DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"sandbox without its secret", map[string]string{"DISPATCHFLOW_INTAKES": "sandbox"}, "DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET: required"},
		{"the ESP's own intake by default", map[string]string{"DISPATCHFLOW_ESP": "mailgun", "DISPATCHFLOW_MAILGUN_API_KEY": "k",
			"DISPATCHFLOW_MAILGUN_DOMAIN": "mg.example.com"}, "DISPATCHFLOW_MAILGUN_WEBHOOK_SIGNING_KEY: required"},
		{"mailgun with its key", map[string]string{"DISPATCHFLOW_INTAKES": "mailgun", "DISPATCHFLOW_MAILGUN_WEBHOOK_SIGNING_KEY": "k"}, ""},
		{"verification off", map[string]string{"DISPATCHFLOW_INTAKES": "mailgun,sendgrid", "DISPATCHFLOW_WEBHOOK_VERIFY": "off"}, ""},
		{"generic without intake secrets", map[string]string{"DISPATCHFLOW_INTAKES": "generic"}, "DISPATCHFLOW_API_KEYS_FILE (workspaces[].intake_secrets): required"},
		{"ses without topics", map[string]string{"DISPATCHFLOW_INTAKES": "ses"}, "DISPATCHFLOW_SES_TOPIC_ARNS: required"},
		{"unknown intake", map[string]string{"DISPATCHFLOW_INTAKES": "socketlabs"}, "DISPATCHFLOW_INTAKES:"},
		{"old verify list", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "all"}, "DISPATCHFLOW_WEBHOOK_VERIFY:"},
		{"bad SendGrid key", map[string]string{"DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY": "%%"}, "DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY: not base64"},
		{"bad topic", map[string]string{"DISPATCHFLOW_SES_TOPIC_ARNS": "my-topic"}, "DISPATCHFLOW_SES_TOPIC_ARNS:"},
		{"AJO without key", map[string]string{"DISPATCHFLOW_INTAKES": "ajo"},
			"DISPATCHFLOW_AJO_WEBHOOK_JWT_SECRET or DISPATCHFLOW_AJO_WEBHOOK_JWT_PUBLIC_KEY: required"},
		{"resend without its secret", map[string]string{"DISPATCHFLOW_INTAKES": "resend"}, "DISPATCHFLOW_RESEND_WEBHOOK_SECRET: required"},
		{"resend, the ESP's own intake", map[string]string{"DISPATCHFLOW_ESP": "resend", "DISPATCHFLOW_RESEND_API_KEY": "re_it"},
			"DISPATCHFLOW_RESEND_WEBHOOK_SECRET: required"},
		{"resend with its secret", map[string]string{"DISPATCHFLOW_INTAKES": "resend",
			"DISPATCHFLOW_RESEND_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, ""},
		{"bad Resend secret", map[string]string{"DISPATCHFLOW_RESEND_WEBHOOK_SECRET": "re_not_a_whsec"},
			"DISPATCHFLOW_RESEND_WEBHOOK_SECRET: not a Svix signing secret"},
		{"mailersend without its secret", map[string]string{"DISPATCHFLOW_INTAKES": "mailersend"},
			"DISPATCHFLOW_MAILERSEND_WEBHOOK_SIGNING_SECRET: required"},
		{"postal without its key", map[string]string{"DISPATCHFLOW_INTAKES": "postal"}, "DISPATCHFLOW_POSTAL_WEBHOOK_PUBLIC_KEY: required"},
		{"bad Postal key", map[string]string{"DISPATCHFLOW_POSTAL_WEBHOOK_PUBLIC_KEY": "p=%%"}, "DISPATCHFLOW_POSTAL_WEBHOOK_PUBLIC_KEY: not base64"},
		{"negative Postal max age", map[string]string{"DISPATCHFLOW_POSTAL_WEBHOOK_MAX_AGE": "-1m"}, "DISPATCHFLOW_POSTAL_WEBHOOK_MAX_AGE:"},
		{"brevo without credentials", map[string]string{"DISPATCHFLOW_INTAKES": "brevo"}, "DISPATCHFLOW_BREVO_WEBHOOK_USERNAME: required"},
		{"brevo without its password", map[string]string{"DISPATCHFLOW_INTAKES": "brevo", "DISPATCHFLOW_BREVO_WEBHOOK_USERNAME": "u"},
			"DISPATCHFLOW_BREVO_WEBHOOK_PASSWORD:"},
		{"brevo with its credentials", map[string]string{"DISPATCHFLOW_INTAKES": "brevo", "DISPATCHFLOW_BREVO_WEBHOOK_USERNAME": "u",
			"DISPATCHFLOW_BREVO_WEBHOOK_PASSWORD": "p"}, ""},
		{"mailjet without credentials", map[string]string{"DISPATCHFLOW_INTAKES": "mailjet"}, "DISPATCHFLOW_MAILJET_WEBHOOK_USERNAME: required"},
		{"sparkpost, the relay's provider", map[string]string{"DISPATCHFLOW_ESP": "smtp", "DISPATCHFLOW_SMTP_ADDR": "relay:25",
			"DISPATCHFLOW_SMTP_PROVIDER": "sparkpost", "DISPATCHFLOW_SPARKPOST_WEBHOOK_USERNAME": "u"}, "DISPATCHFLOW_SPARKPOST_WEBHOOK_PASSWORD:"},
		{"mandrill without its key", map[string]string{"DISPATCHFLOW_INTAKES": "mandrill"}, "DISPATCHFLOW_MANDRILL_WEBHOOK_KEY: required"},
		{"mandrill with its key, URL from the public URL", map[string]string{"DISPATCHFLOW_INTAKES": "mandrill",
			"DISPATCHFLOW_MANDRILL_WEBHOOK_KEY": "k", "DISPATCHFLOW_PUBLIC_URL": "https://hooks.example.com"}, ""},
		{"mandrill with its key, URL by default", map[string]string{"DISPATCHFLOW_INTAKES": "mandrill", "DISPATCHFLOW_MANDRILL_WEBHOOK_KEY": "k"}, ""},
		{"bad Mandrill URL", map[string]string{"DISPATCHFLOW_MANDRILL_WEBHOOK_URL": "hooks.example.com/v1/events/mandrill"},
			"DISPATCHFLOW_MANDRILL_WEBHOOK_URL: not an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DISPATCHFLOW_AUTH", "off")
			t.Setenv("DISPATCHFLOW_ID_SECRET", strings.Repeat("s", 32))
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load()
			if err == nil {
				err = cfg.ValidateAPI()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error starting %q", err, tt.wantErr)
			}
		})
	}
}
