package intake

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	_, sendgridKey := newSendGridKey(t)
	secret := "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	full := Config{
		Mount: Providers, Verify: true,
		GenericSecrets: map[string][]string{"shop": {secret}}, SandboxSecret: secret,
		SendGridPublicKey: sendgridKey, MailgunSigningKey: "k", PostmarkUsername: "u", PostmarkPassword: "p",
		SESTopicARNs: []string{testTopic}, SarbacaneToken: "t", AJOJWTSecret: "s",
	}
	norms, err := New(full, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ajo", "generic", "mailgun", "postmark", "sandbox", "sarbacane", "sendgrid", "ses"}
	if got := slices.Sorted(maps.Keys(norms)); !slices.Equal(got, want) {
		t.Errorf("got providers %v, want %v", got, want)
	}
	// Only what is mounted is served.
	norms, err = New(Config{Mount: []string{ProviderSendGrid}, Verify: true, SendGridPublicKey: sendgridKey}, nil)
	if err != nil || len(norms) != 1 || norms[ProviderSendGrid] == nil {
		t.Errorf("sendgrid alone: %v, %v; want only sendgrid", slices.Sorted(maps.Keys(norms)), err)
	}
	// Verification off: a mounted intake without credentials opens.
	if _, err := New(Config{Mount: Providers}, nil); err != nil {
		t.Errorf("verification off, nothing configured: %v", err)
	}

	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string
	}{
		{"sendgrid without key", func(c *Config) { c.SendGridPublicKey = "" }, "SendGridPublicKey"},
		{"mailgun key missing", func(c *Config) { c.MailgunSigningKey = "" }, "MailgunSigningKey"},
		{"ses without a topic", func(c *Config) { c.SESTopicARNs = nil }, "SESTopicARNs"},
		{"no sarbacane token", func(c *Config) { c.SarbacaneToken = "" }, "SarbacaneToken"},
		{"no AJO key", func(c *Config) { c.AJOJWTSecret = "" }, "AJOJWTSecret"},
		{"generic without intake secrets", func(c *Config) { c.GenericSecrets = nil }, "GenericSecrets"},
		{"sandbox without its secret", func(c *Config) { c.SandboxSecret = "" }, "SandboxSecret"},
		{"bad generic secret", func(c *Config) { c.GenericSecrets = map[string][]string{"shop": {"whsec_%%"}} }, "GenericSecrets"},
		{"unknown provider", func(c *Config) { c.Mount = []string{"sparkpost"} }, "Mount"},
		{"bad SendGrid key", func(c *Config) { c.SendGridPublicKey = "bm90IGEga2V5" }, "SendGridPublicKey"},
		{"password without user", func(c *Config) { c.Verify, c.PostmarkUsername = false, "" }, "PostmarkPassword"},
		{"bad topic", func(c *Config) { c.SESTopicARNs = []string{"arn:aws:sqs:us-east-1:123456789012:q"} }, "SESTopicARNs"},
		{"bad host pattern", func(c *Config) { c.SNSHostPattern = "(" }, "SNSHostPattern"},
		{"bad AJO key", func(c *Config) { c.AJOJWTPublicKey = "not PEM" }, "AJOJWTPublicKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := full
			tt.edit(&c)
			_, err := New(c, nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Fatalf("got %v, want an error about %s", err, tt.wantField)
			}
		})
	}
}
