package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// failoverEnv sets the credentials of SendGrid and Postmark.
func failoverEnv(t *testing.T) {
	t.Helper()
	t.Setenv("DISPATCHFLOW_SENDGRID_API_KEY", "SG.k")
	t.Setenv("DISPATCHFLOW_POSTMARK_SERVER_TOKEN", "pm-k")
}

// DISPATCHFLOW_ESP may name an ordered failover list: each provider in turn,
// with the failover settings' defaults, and the intakes of each mounted.
func TestLoadFailoverList(t *testing.T) {
	failoverEnv(t)
	t.Setenv("DISPATCHFLOW_ESP", "sendgrid, postmark")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.ESPs(), []string{"sendgrid", "postmark"}; !slices.Equal(got, want) {
		t.Errorf("ESPs() = %v, want %v", got, want)
	}
	if c.PrimaryESP() != "sendgrid" {
		t.Errorf("PrimaryESP() = %q, want sendgrid", c.PrimaryESP())
	}
	if c.ESPFailoverAfter != 2*time.Minute || c.ESPCircuitOpenFor != time.Minute || c.ESPCircuitFailures != 5 {
		t.Errorf("failover defaults %s, %s, %d; want 2m, 1m, 5", c.ESPFailoverAfter, c.ESPCircuitOpenFor, c.ESPCircuitFailures)
	}
	if got, want := c.MountedIntakes(), []string{"sendgrid", "postmark"}; !slices.Equal(got, want) {
		t.Errorf("MountedIntakes() = %v, want %v", got, want)
	}
}

// The intakes of a list are each provider's own, once each: the sandbox's
// two, smtp's generic and its provider's.
func TestMountedIntakesOfList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		esp, smtpProvider string
		want              []string
	}{
		{"sandbox", "", []string{"sandbox", "generic"}},
		{"smtp", "sarbacane", []string{"generic", "sarbacane"}},
		{"sendgrid,sandbox", "", []string{"sendgrid", "sandbox", "generic"}},
		{"smtp,sandbox", "sendgrid", []string{"generic", "sendgrid", "sandbox"}},
	}
	for _, tt := range tests {
		c := Config{ESP: tt.esp, SMTPProvider: tt.smtpProvider}
		if got := c.MountedIntakes(); !slices.Equal(got, tt.want) {
			t.Errorf("ESP=%s SMTP_PROVIDER=%s: MountedIntakes() = %v, want %v", tt.esp, tt.smtpProvider, got, tt.want)
		}
	}
}

// A bad list or failover setting stops the process with an error naming the
// variable (and the entry at fault).
func TestLoadFailoverNamesTheVariable(t *testing.T) {
	tests := []struct {
		name, esp  string
		env        map[string]string
		wantVar    string
		wantDetail string
	}{
		{"repeat", "sendgrid,postmark,sendgrid", nil, "DISPATCHFLOW_ESP", `"sendgrid" is listed twice`},
		{"empty entry", "sendgrid,,postmark", nil, "DISPATCHFLOW_ESP", "entry 2 is empty"},
		{"unknown entry", "sendgrid,sendmail", nil, "DISPATCHFLOW_ESP", `"sendmail" is not one of`},
		{"second's credentials", "sendgrid,mailgun", nil, "DISPATCHFLOW_MAILGUN_API_KEY", "required"},
		{"budget too short", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_FAILOVER_AFTER": "500ms"}, "DISPATCHFLOW_ESP_FAILOVER_AFTER", "from 1s"},
		{"budget over the window", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_FAILOVER_AFTER": "2h"}, "DISPATCHFLOW_ESP_FAILOVER_AFTER", "DISPATCHFLOW_SEND_RETRY_WINDOW (1h0m0s)"},
		{"open for zero", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR": "0s"}, "DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR", "from 1s to 24h"},
		{"open for too long", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR": "48h"}, "DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR", "from 1s to 24h"},
		{"threshold zero", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_CIRCUIT_FAILURES": "0"}, "DISPATCHFLOW_ESP_CIRCUIT_FAILURES", "from 1 to 1000"},
		{"threshold not a number", "sendgrid,postmark", map[string]string{"DISPATCHFLOW_ESP_CIRCUIT_FAILURES": "five"}, "ESP_CIRCUIT_FAILURES", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failoverEnv(t)
			t.Setenv("DISPATCHFLOW_ESP", tt.esp)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tt.wantVar) || !strings.Contains(err.Error(), tt.wantDetail) {
				t.Errorf("got %v, want an error naming %s (%s)", err, tt.wantVar, tt.wantDetail)
			}
		})
	}
}

// With one provider the failover settings are not used, so they are not
// checked: a short send retry window keeps working as before.
func TestLoadOneProviderIgnoresFailoverSettings(t *testing.T) {
	failoverEnv(t)
	t.Setenv("DISPATCHFLOW_ESP", "sendgrid")
	t.Setenv("DISPATCHFLOW_SEND_RETRY_WINDOW", "1m") // below the 2m failover default
	c, err := Load()
	if err != nil {
		t.Fatalf("one provider, SEND_RETRY_WINDOW=1m: %v", err)
	}
	if got := c.ESPs(); !slices.Equal(got, []string{"sendgrid"}) {
		t.Errorf("ESPs() = %v, want [sendgrid]", got)
	}
}
