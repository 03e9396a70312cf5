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
		{"unknown intake", map[string]string{"DISPATCHFLOW_INTAKES": "sparkpost"}, "DISPATCHFLOW_INTAKES:"},
		{"old verify list", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "all"}, "DISPATCHFLOW_WEBHOOK_VERIFY:"},
		{"bad SendGrid key", map[string]string{"DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY": "%%"}, "DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY: not base64"},
		{"bad topic", map[string]string{"DISPATCHFLOW_SES_TOPIC_ARNS": "my-topic"}, "DISPATCHFLOW_SES_TOPIC_ARNS:"},
		{"AJO without key", map[string]string{"DISPATCHFLOW_INTAKES": "ajo"},
			"DISPATCHFLOW_AJO_WEBHOOK_JWT_SECRET or DISPATCHFLOW_AJO_WEBHOOK_JWT_PUBLIC_KEY: required"},
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
