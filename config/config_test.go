package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.ESP != "sandbox" || c.TrackingWindow != 72*time.Hour ||
		c.PostbackTimeout != 15*time.Second || c.SandboxDelay != time.Second || c.TaskQueue != "dispatchflow" ||
		c.Temporal.Address != "localhost:7233" || c.Temporal.Namespace != "default" {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if got, want := c.SandboxEventsURL(), "http://localhost:8080/v1/events/sandbox"; got != want {
		t.Errorf("SandboxEventsURL() = %q, want %q", got, want)
	}
}

// Every bad value stops the process with an error naming its variable.
func TestLoadNamesTheVariable(t *testing.T) {
	tests := []struct{ env, value string }{
		{"DISPATCHFLOW_HTTP_ADDR", "8080"},
		{"DISPATCHFLOW_PUBLIC_URL", "localhost:8080"},
		{"DISPATCHFLOW_POSTBACK_URL", "not a url"},
		{"DISPATCHFLOW_ESP", "sendmail"},
		{"DISPATCHFLOW_SANDBOX_DELAY", "soon"},
		{"DISPATCHFLOW_TRACKING_WINDOW", "0s"},
		{"DISPATCHFLOW_POSTBACK_TIMEOUT", "0s"},
		{"DISPATCHFLOW_ALLOW_NETWORKS", "10.0.0.0/33"},
		{"DISPATCHFLOW_ENDPOINTS_FILE", "/nonexistent.yaml"},
		{"DISPATCHFLOW_SEND_RETRY_WINDOW", "3 days"},
		{"DISPATCHFLOW_LOG_LEVEL", "loud"},
		{"DISPATCHFLOW_FROM", "nobody"},
		{"DISPATCHFLOW_TASK_QUEUE", ""},
		{"DISPATCHFLOW_WORKFLOW_CACHE_SIZE", "0"},
		{"DISPATCHFLOW_LOG_FORMAT", "xml"},
		{"DISPATCHFLOW_METRICS_ADDR", "9090"},
		{"DISPATCHFLOW_ESP", "sendgrid"}, // without DISPATCHFLOW_SENDGRID_API_KEY: names the variable the ESP needs
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tt.env) {
				t.Errorf("Load() with %s=%q: got %v, want an error naming %s", tt.env, tt.value, err, tt.env)
			}
		})
	}
	t.Run("smtp without address", func(t *testing.T) {
		t.Setenv("DISPATCHFLOW_ESP", "smtp")
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DISPATCHFLOW_SMTP_ADDR") {
			t.Errorf("got %v, want an error naming DISPATCHFLOW_SMTP_ADDR", err)
		}
	})
}
