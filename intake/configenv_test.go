package intake_test

import (
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/config"
)

// config.Load refuses to start on a webhook setting intake.New refuses, naming
// the variable.
func TestConfigLoadNamesWebhookVariables(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"nothing required", nil, ""},
		{"mailgun required without key", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "mailgun"},
			"DISPATCHFLOW_MAILGUN_WEBHOOK_SIGNING_KEY: required"},
		{"mailgun required with key", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "mailgun", "DISPATCHFLOW_MAILGUN_WEBHOOK_SIGNING_KEY": "k"}, ""},
		{"all required", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "all"}, "DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY: required"},
		{"unknown provider", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "sparkpost"}, "DISPATCHFLOW_WEBHOOK_VERIFY:"},
		{"bad SendGrid key", map[string]string{"DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY": "%%"}, "DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY: not base64"},
		{"bad topic", map[string]string{"DISPATCHFLOW_SES_TOPIC_ARNS": "my-topic"}, "DISPATCHFLOW_SES_TOPIC_ARNS:"},
		{"AJO required", map[string]string{"DISPATCHFLOW_WEBHOOK_VERIFY": "ajo"},
			"DISPATCHFLOW_AJO_WEBHOOK_JWT_SECRET or DISPATCHFLOW_AJO_WEBHOOK_JWT_PUBLIC_KEY: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := config.Load()
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
