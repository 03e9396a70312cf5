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
	full := Config{
		Require:           []string{"all"},
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
	if _, err := New(Config{}, nil); err != nil {
		t.Errorf("nothing configured, nothing required: %v", err)
	}

	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string
	}{
		{"required sendgrid without key", func(c *Config) { c.Require, c.SendGridPublicKey = []string{"sendgrid"}, "" }, "SendGridPublicKey"},
		{"all required, mailgun key missing", func(c *Config) { c.MailgunSigningKey = "" }, "MailgunSigningKey"},
		{"all required, no topic", func(c *Config) { c.SESTopicARNs = nil }, "SESTopicARNs"},
		{"all required, no sarbacane token", func(c *Config) { c.SarbacaneToken = "" }, "SarbacaneToken"},
		{"all required, no AJO key", func(c *Config) { c.AJOJWTSecret = "" }, "AJOJWTSecret"},
		{"unknown provider", func(c *Config) { c.Require = []string{"sparkpost"} }, "Require"},
		{"bad SendGrid key", func(c *Config) { c.SendGridPublicKey = "bm90IGEga2V5" }, "SendGridPublicKey"},
		{"password without user", func(c *Config) { c.Require, c.PostmarkUsername = nil, "" }, "PostmarkPassword"},
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
