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
		c.Temporal.Address != "localhost:7233" || c.Temporal.Namespace != "default" ||
		c.EndpointDisableAfter != 120*time.Hour {
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
		{"DISPATCHFLOW_ENDPOINT_DISABLE_AFTER", "-1h"},
		{"DISPATCHFLOW_ENDPOINT_DISABLE_AFTER", "5 days"},
		{"DISPATCHFLOW_LOG_LEVEL", "loud"},
		{"DISPATCHFLOW_FROM", "nobody"},
		{"DISPATCHFLOW_TASK_QUEUE", ""},
		{"DISPATCHFLOW_WORKFLOW_CACHE_SIZE", "0"},
		{"DISPATCHFLOW_LOG_FORMAT", "xml"},
		{"DISPATCHFLOW_METRICS_ADDR", "9090"},
		{"DISPATCHFLOW_ESP", "sendgrid"}, // without DISPATCHFLOW_SENDGRID_API_KEY: names the variable the ESP needs
		{"DISPATCHFLOW_INTAKE_ADDR", "8081"},
		{"DISPATCHFLOW_INTAKE_ADDR", ":8080"}, // the API's own address
		{"DISPATCHFLOW_AUTH", "maybe"},
		{"DISPATCHFLOW_API_KEYS_FILE", "/nonexistent.yaml"},
		{"DISPATCHFLOW_ID_SECRET", "short"},
		{"DISPATCHFLOW_SMS_ALLOWED_COUNTRIES", "France"},
		{"DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS", "https://hooks.example/x"},
		{"DISPATCHFLOW_FALLBACK_MIN_DURATION", "-1s"},
		{"DISPATCHFLOW_FALLBACK_SENT_WITHIN", "1s"}, // below the 1m minimum: every policy would be refused
		{"DISPATCHFLOW_CODEC_ADDR", "8081"},
		{"DISPATCHFLOW_CODEC_ADDR", ":8080"}, // the API's own listener
		{"DISPATCHFLOW_CODEC_ADDR", ":9090"}, // the metrics' listener
		{"DISPATCHFLOW_CODEC_AUTH", "maybe"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "*"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "http://localhost:8233/"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "https://*.example.com"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "localhost:8233"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "https://ui.example.com:443"},
		{"DISPATCHFLOW_CODEC_CORS_ORIGINS", "https://UI.example.com"},
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
	t.Run("sms without allowed countries", func(t *testing.T) {
		t.Setenv("DISPATCHFLOW_TWILIO_ACCOUNT_SID", "AC1")
		t.Setenv("DISPATCHFLOW_TWILIO_AUTH_TOKEN", "t")
		t.Setenv("DISPATCHFLOW_TWILIO_FROM", "+15005550006")
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DISPATCHFLOW_SMS_ALLOWED_COUNTRIES") {
			t.Errorf("got %v, want an error naming DISPATCHFLOW_SMS_ALLOWED_COUNTRIES", err)
		}
	})
	t.Run("smtp without address", func(t *testing.T) {
		t.Setenv("DISPATCHFLOW_ESP", "smtp")
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DISPATCHFLOW_SMTP_ADDR") {
			t.Errorf("got %v, want an error naming DISPATCHFLOW_SMTP_ADDR", err)
		}
	})
}

// The API refuses to start without keys (unless DISPATCHFLOW_AUTH=off says so)
// or without the dispatch_id secret, naming the variable; the worker needs neither.
func TestValidateAPI(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // "" for no error
	}{
		{"no keys file", Config{Auth: "on", IDSecret: strings.Repeat("s", 32)}, "DISPATCHFLOW_API_KEYS_FILE"},
		{"auth off", Config{Auth: "off", IDSecret: strings.Repeat("s", 32)}, ""},
		{"no id secret", Config{Auth: "off"}, "DISPATCHFLOW_ID_SECRET"},
		{"keys and secret", Config{Auth: "on", APIKeysFile: "keys.yaml", IDSecret: strings.Repeat("s", 32)}, ""},
		// The codec server: a payload key to decode with, keys to authenticate its
		// callers (DISPATCHFLOW_AUTH=off does not switch them off), or
		// DISPATCHFLOW_CODEC_AUTH=off on loopback only.
		{"codec without payload key", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: "127.0.0.1:8081", CodecAuth: "off"}, "DISPATCHFLOW_CODEC_ADDR"},
		{"codec", Config{Auth: "on", APIKeysFile: "keys.yaml", IDSecret: strings.Repeat("s", 32), CodecAddr: ":8081", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"codec during a rotation", Config{Auth: "on", APIKeysFile: "keys.yaml", IDSecret: strings.Repeat("s", 32), CodecAddr: ":8081", PayloadKeys: []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}, ""},
		{"codec without keys", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: ":8081", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, "DISPATCHFLOW_API_KEYS_FILE"},
		{"codec auth off on loopback", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: "127.0.0.1:8081", CodecAuth: "off", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"codec auth off on ::1", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: "[::1]:8081", CodecAuth: "off", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"codec auth off on localhost", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: "localhost:8081", CodecAuth: "off", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"codec auth off on every address", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: ":8081", CodecAuth: "off", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, "DISPATCHFLOW_CODEC_AUTH"},
		{"codec auth off on a public address", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecAddr: "10.0.0.5:8081", CodecAuth: "off", PayloadKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, "DISPATCHFLOW_CODEC_AUTH"},
		{"codec origin", Config{Auth: "off", IDSecret: strings.Repeat("s", 32), CodecCORSOrigins: []string{"http://localhost:8233", "https://temporal.example.com", "http://[::1]:8233"}}, ""},
	} {
		err := tt.cfg.ValidateAPI()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TLS and API keys are read under the names of Temporal's client environment
// configuration; a bad path or value stops the process naming its variable.
func TestTemporalTLSVariables(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantTLS bool
		wantErr string
	}{
		{"plaintext by default", nil, false, ""},
		{"TLS asked", map[string]string{"TEMPORAL_TLS": "true"}, true, ""},
		{"an API key turns TLS on", map[string]string{"TEMPORAL_API_KEY": "k"}, true, ""},
		{"an API key without TLS", map[string]string{"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"}, false, ""},
		{"not a boolean", map[string]string{"TEMPORAL_TLS": "maybe"}, false, "TEMPORAL_TLS:"},
		{"missing certificate", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent-key.pem"}, false, "TEMPORAL_TLS_CLIENT_CERT_PATH:"},
		{"certificate without key", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_DATA": "x"}, false, "TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH:"},
		{"CA without a certificate", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "not PEM"}, false, "TEMPORAL_TLS_SERVER_CA_CERT_PATH:"},
		{"path and data", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "x", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/x"}, false, "TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_CA_CERT_DATA:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Load()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := c.Temporal.TLSConfig()
			if (got != nil) != tt.wantTLS {
				t.Errorf("TLS %v, want %v", got != nil, tt.wantTLS)
			}
		})
	}
}

// Each API provider of DISPATCHFLOW_ESP loads with its credentials, and stops
// the process without one, or with a bad base URL, naming the variable.
func TestLoadAPIProviders(t *testing.T) {
	for _, tt := range []struct {
		esp     string
		creds   map[string]string
		baseURL string // its variable
	}{
		{"brevo", map[string]string{"DISPATCHFLOW_BREVO_API_KEY": "xkeysib-k"}, "DISPATCHFLOW_BREVO_BASE_URL"},
		{"mailjet", map[string]string{"DISPATCHFLOW_MAILJET_API_KEY": "k", "DISPATCHFLOW_MAILJET_API_SECRET": "s"}, "DISPATCHFLOW_MAILJET_BASE_URL"},
		{"sparkpost", map[string]string{"DISPATCHFLOW_SPARKPOST_API_KEY": "k"}, "DISPATCHFLOW_SPARKPOST_BASE_URL"},
		{"resend", map[string]string{"DISPATCHFLOW_RESEND_API_KEY": "re_k"}, "DISPATCHFLOW_RESEND_BASE_URL"},
	} {
		t.Run(tt.esp, func(t *testing.T) {
			t.Setenv("DISPATCHFLOW_ESP", tt.esp)
			for name := range tt.creds {
				t.Run("without "+name, func(t *testing.T) {
					for other, v := range tt.creds {
						if other != name {
							t.Setenv(other, v)
						}
					}
					if _, err := Load(); err == nil || !strings.Contains(err.Error(), name) {
						t.Errorf("got %v, want an error naming %s", err, name)
					}
				})
			}
			for name, v := range tt.creds {
				t.Setenv(name, v)
			}
			c, err := Load()
			if err != nil {
				t.Fatalf("with its credentials: %v", err)
			}
			if c.ESP != tt.esp {
				t.Errorf("ESP %q, want %q", c.ESP, tt.esp)
			}
			t.Setenv(tt.baseURL, "api.example.com")
			if _, err := Load(); err == nil || !strings.Contains(err.Error(), tt.baseURL) {
				t.Errorf("with %s=api.example.com: got %v, want an error naming it", tt.baseURL, err)
			}
		})
	}
}
