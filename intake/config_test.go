package intake

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	t.Parallel()
	_, postalRecord := newPostalKey(t)
	_, sendgridKey := newSendGridKey(t)
	secret := "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	full := Config{
		Mount: Providers, Verify: true,
		GenericSecrets: map[string][]string{"shop": {secret}}, SandboxSecret: secret,
		SendGridPublicKey: sendgridKey, MailgunSigningKey: "k", PostmarkUsername: "u", PostmarkPassword: "p",
		SESTopicARNs: []string{testTopic}, SarbacaneToken: "t", AJOJWTSecret: "s",
		ResendSecret: resendSecret, MailerSendSigningSecret: "m", PostalPublicKey: postalRecord,
		BrevoUsername: "bu", BrevoPassword: "bp", MailjetUsername: "mu", MailjetPassword: "mp",
		SparkPostUsername: "su", SparkPostPassword: "sp", MandrillWebhookKey: "mk", MandrillWebhookURL: "https://hooks.example.com/v1/events/mandrill",
	}
	norms, err := New(full, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ajo", "brevo", "generic", "mailersend", "mailgun", "mailjet", "mandrill", "postal", "postmark", "resend", "sandbox", "sarbacane",
		"sendgrid", "ses", "sparkpost"}
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
		{"unknown provider", func(c *Config) { c.Mount = []string{"socketlabs"} }, "Mount"},
		{"bad SendGrid key", func(c *Config) { c.SendGridPublicKey = "bm90IGEga2V5" }, "SendGridPublicKey"},
		{"password without user", func(c *Config) { c.Verify, c.PostmarkUsername = false, "" }, "PostmarkPassword"},
		{"bad topic", func(c *Config) { c.SESTopicARNs = []string{"arn:aws:sqs:us-east-1:123456789012:q"} }, "SESTopicARNs"},
		{"bad host pattern", func(c *Config) { c.SNSHostPattern = "(" }, "SNSHostPattern"},
		{"bad AJO key", func(c *Config) { c.AJOJWTPublicKey = "not PEM" }, "AJOJWTPublicKey"},
		{"no Resend secret", func(c *Config) { c.ResendSecret = "" }, "ResendSecret"},
		{"Resend secret of another form", func(c *Config) { c.ResendSecret = "re_123" }, "ResendSecret"},
		{"no MailerSend secret", func(c *Config) { c.MailerSendSigningSecret = "" }, "MailerSendSigningSecret"},
		{"no Postal key", func(c *Config) { c.PostalPublicKey = "" }, "PostalPublicKey"},
		{"bad Postal key", func(c *Config) { c.PostalPublicKey = "p=bm90IGEga2V5" }, "PostalPublicKey"},
		{"negative Postal max age", func(c *Config) { c.PostalMaxAge = -time.Minute }, "PostalMaxAge"},
		{"no Brevo user", func(c *Config) { c.BrevoUsername = "" }, "BrevoUsername"},
		{"no Brevo password", func(c *Config) { c.BrevoPassword = "" }, "BrevoPassword"},
		{"Brevo password without user", func(c *Config) { c.Verify, c.BrevoUsername = false, "" }, "BrevoPassword"},
		{"no Mailjet user", func(c *Config) { c.MailjetUsername = "" }, "MailjetUsername"},
		{"no Mailjet password", func(c *Config) { c.MailjetPassword = "" }, "MailjetPassword"},
		{"Mailjet user without password", func(c *Config) { c.Verify, c.MailjetPassword = false, "" }, "MailjetPassword"},
		{"no SparkPost user", func(c *Config) { c.SparkPostUsername = "" }, "SparkPostUsername"},
		{"no SparkPost password", func(c *Config) { c.SparkPostPassword = "" }, "SparkPostPassword"},
		{"SparkPost password without user", func(c *Config) { c.Verify, c.SparkPostUsername = false, "" }, "SparkPostPassword"},
		{"no Mandrill key", func(c *Config) { c.MandrillWebhookKey = "" }, "MandrillWebhookKey"},
		{"Mandrill key without its URL", func(c *Config) { c.MandrillWebhookURL = "" }, "MandrillWebhookURL"},
		{"Mandrill URL not absolute", func(c *Config) { c.MandrillWebhookURL = "/v1/events/mandrill" }, "MandrillWebhookURL"},
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
