// Package config is dispatchflow's one configuration, read from the environment
// with envconfig: DISPATCHFLOW_* for dispatchflow itself, TEMPORAL_* (the names the
// Temporal CLI reads) for the cluster.
package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
)

// Prefix of dispatchflow's variables.
const Prefix = "DISPATCHFLOW"

// Config is every setting of the worker and the API. Each field names its variable.
type Config struct {
	// HTTPAddr is where the API listens. Defaults to ":8080".
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080" desc:"address the HTTP API listens on"`
	// PublicURL is the API's base URL as ESPs reach it; the sandbox posts its events
	// to {PublicURL}/v1/events/sandbox. Defaults to http://localhost:{port of HTTPAddr}.
	PublicURL string `envconfig:"PUBLIC_URL" desc:"base URL at which ESPs reach the API (default http://localhost:<HTTP_ADDR port>)"`
	// PostbackURL is the default postback endpoint; a send request's postback_url
	// overrides it. Empty: postbacks are recorded as skipped.
	PostbackURL string `envconfig:"POSTBACK_URL" desc:"default postback endpoint (a send's postback_url overrides it)"`
	// From is the sender used when a request has none. Defaults to "dispatchflow@localhost".
	From string `envconfig:"FROM" default:"dispatchflow@localhost" desc:"default From address"`
	// ESP is the provider messages are handed to: "sandbox" or "smtp". Defaults to "sandbox".
	ESP string `envconfig:"ESP" default:"sandbox" desc:"email provider: sandbox | smtp"`
	// SMTPAddr is the relay's host:port; required when ESP is "smtp".
	SMTPAddr string `envconfig:"SMTP_ADDR" desc:"SMTP relay host:port (required with ESP=smtp)"`
	// SMTPUsername and SMTPPassword enable AUTH PLAIN (over TLS, or to localhost).
	SMTPUsername string `envconfig:"SMTP_USERNAME" desc:"SMTP AUTH PLAIN user (optional)"`
	SMTPPassword string `envconfig:"SMTP_PASSWORD" desc:"SMTP AUTH PLAIN password (optional)"`
	// SandboxDelay is the sandbox ESP's delay between events. Defaults to 1s.
	SandboxDelay time.Duration `envconfig:"SANDBOX_DELAY" default:"1s" desc:"sandbox ESP: delay before each event it reports"`
	// TrackingWindow: how long a message's workflow stays open after its last status
	// change, for late events. Defaults to 72h.
	TrackingWindow time.Duration `envconfig:"TRACKING_WINDOW" default:"72h" desc:"how long a message accepts late events after its last status change"`
	// PostbackRetryWindow: how long a postback is retried. Defaults to 24h.
	PostbackRetryWindow time.Duration `envconfig:"POSTBACK_RETRY_WINDOW" default:"24h" desc:"how long a failing postback is retried"`
	// SendRetryWindow: how long transient ESP failures are retried before the
	// message is aborted. Defaults to 1h.
	SendRetryWindow time.Duration `envconfig:"SEND_RETRY_WINDOW" default:"1h" desc:"how long transient ESP failures are retried before aborting"`
	// FallbackSentWithin is the default fallback deadline for the ESP to accept a
	// message (a policy's sent_within). Defaults to 5m.
	FallbackSentWithin time.Duration `envconfig:"FALLBACK_SENT_WITHIN" default:"5m" desc:"fallback: default sent_within (0s: off)"`
	// FallbackDeliveredWithin is the default deadline for delivery after sent (a
	// policy's delivered_within). Defaults to 30m.
	FallbackDeliveredWithin time.Duration `envconfig:"FALLBACK_DELIVERED_WITHIN" default:"30m" desc:"fallback: default delivered_within (0s: off)"`
	// FallbackOn are the statuses that escalate at once by default. Defaults to bounced,aborted.
	FallbackOn []string `envconfig:"FALLBACK_ON" default:"bounced,aborted" desc:"fallback: default statuses that escalate at once"`
	// FallbackRetryWindow: how long a fallback step's transient failures are retried. Defaults to 1h.
	FallbackRetryWindow time.Duration `envconfig:"FALLBACK_RETRY_WINDOW" default:"1h" desc:"fallback: how long a step's transient failures are retried"`
	// PostbackFallbackOutcomes posts fallback_sent / fallback_failed to the postback
	// endpoint (outside Braze's five statuses: opt in). Defaults to false.
	PostbackFallbackOutcomes bool `envconfig:"POSTBACK_FALLBACK_OUTCOMES" default:"false" desc:"post fallback_sent / fallback_failed postbacks"`
	// Twilio* configure the sms fallback channel (a Twilio-compatible Messages API).
	// The channel is usable when TwilioAccountSID is set.
	TwilioBaseURL    string `envconfig:"TWILIO_BASE_URL" default:"https://api.twilio.com" desc:"sms fallback: Messages API origin"`
	TwilioAccountSID string `envconfig:"TWILIO_ACCOUNT_SID" desc:"sms fallback: account SID (enables the sms channel)"`
	TwilioAuthToken  string `envconfig:"TWILIO_AUTH_TOKEN" desc:"sms fallback: auth token (also verifies status callbacks)"`
	TwilioFrom       string `envconfig:"TWILIO_FROM" desc:"sms fallback: sender number"`
	// EagerStart asks Temporal to hand a new message's first workflow task straight
	// to a worker in the same process (dispatchflow serve), saving a round trip.
	// Without a local worker it has no effect. Defaults to true.
	EagerStart bool `envconfig:"EAGER_START" default:"true" desc:"eager workflow start when the API runs beside a worker (serve)"`
	// WorkflowCacheSize is how many open messages the worker keeps in memory (the
	// SDK's sticky cache, ≈ 60 KB each); others are replayed from their short
	// history when an event or timer wakes them. Defaults to 10000.
	WorkflowCacheSize int `envconfig:"WORKFLOW_CACHE_SIZE" default:"10000" desc:"open messages a worker keeps in memory (~60 KB each)"`
	// TaskQueue of the worker. Defaults to "dispatchflow".
	TaskQueue string `envconfig:"TASK_QUEUE" default:"dispatchflow" desc:"Temporal task queue"`
	// DevInbox mounts /dev/inbox on the API: a postback endpoint that keeps what it
	// receives, for trying dispatchflow out (make run turns it on). Defaults to false.
	DevInbox bool `envconfig:"DEV_INBOX" default:"false" desc:"serve /dev/inbox, a postback receiver for trying things out"`
	// LogLevel: debug, info, warn or error. Defaults to info.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"debug | info | warn | error"`

	Temporal Temporal `ignored:"true"`
}

// Temporal is where the cluster is, under the Temporal CLI's own variable names.
type Temporal struct {
	// Address of the frontend. Defaults to "localhost:7233".
	Address string `envconfig:"ADDRESS" default:"localhost:7233" desc:"Temporal frontend host:port"`
	// Namespace. Defaults to "default".
	Namespace string `envconfig:"NAMESPACE" default:"default" desc:"Temporal namespace"`
}

// Load reads the environment and validates it; errors name the variable.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, err
	}
	if err := envconfig.Process("TEMPORAL", &c.Temporal); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("DISPATCHFLOW_HTTP_ADDR: %q is not host:port", c.HTTPAddr)
	}
	if c.PublicURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	if err := message.CheckEndpointURL(c.PublicURL); err != nil {
		return fmt.Errorf("DISPATCHFLOW_PUBLIC_URL: %w", err)
	}
	if c.PostbackURL != "" {
		if err := message.CheckEndpointURL(c.PostbackURL); err != nil {
			return fmt.Errorf("DISPATCHFLOW_POSTBACK_URL: %w", err)
		}
	}
	switch c.ESP {
	case "sandbox":
	case "smtp":
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			return fmt.Errorf("DISPATCHFLOW_SMTP_ADDR: %q is not host:port (required with DISPATCHFLOW_ESP=smtp)", c.SMTPAddr)
		}
	default:
		return fmt.Errorf("DISPATCHFLOW_ESP: %q is not one of sandbox, smtp", c.ESP)
	}
	for name, d := range map[string]time.Duration{
		"DISPATCHFLOW_SANDBOX_DELAY":         c.SandboxDelay,
		"DISPATCHFLOW_TRACKING_WINDOW":       c.TrackingWindow,
		"DISPATCHFLOW_POSTBACK_RETRY_WINDOW": c.PostbackRetryWindow,
		"DISPATCHFLOW_SEND_RETRY_WINDOW":     c.SendRetryWindow,
	} {
		if d < 0 || (d == 0 && name != "DISPATCHFLOW_SANDBOX_DELAY") {
			return fmt.Errorf("%s: %s must be positive", name, d)
		}
	}
	for name, d := range map[string]time.Duration{
		"DISPATCHFLOW_FALLBACK_SENT_WITHIN":      c.FallbackSentWithin,
		"DISPATCHFLOW_FALLBACK_DELIVERED_WITHIN": c.FallbackDeliveredWithin,
	} {
		if d < 0 {
			return fmt.Errorf("%s: %s must not be negative", name, d)
		}
	}
	if c.FallbackRetryWindow <= 0 {
		return fmt.Errorf("DISPATCHFLOW_FALLBACK_RETRY_WINDOW: %s must be positive", c.FallbackRetryWindow)
	}
	for _, s := range c.FallbackOn {
		if !slices.Contains(fallback.EscalatingStatuses, message.Status(s)) {
			return fmt.Errorf("DISPATCHFLOW_FALLBACK_ON: %q cannot escalate (want bounced and/or aborted)", s)
		}
	}
	if c.TwilioAccountSID != "" {
		if c.TwilioAuthToken == "" || c.TwilioFrom == "" {
			return fmt.Errorf("DISPATCHFLOW_TWILIO_AUTH_TOKEN and DISPATCHFLOW_TWILIO_FROM: required with DISPATCHFLOW_TWILIO_ACCOUNT_SID")
		}
		if err := message.CheckEndpointURL(c.TwilioBaseURL); err != nil {
			return fmt.Errorf("DISPATCHFLOW_TWILIO_BASE_URL: %w", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("DISPATCHFLOW_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.WorkflowCacheSize < 1 {
		return fmt.Errorf("DISPATCHFLOW_WORKFLOW_CACHE_SIZE: %d must be at least 1", c.WorkflowCacheSize)
	}
	if c.TaskQueue == "" {
		return fmt.Errorf("DISPATCHFLOW_TASK_QUEUE: must not be empty")
	}
	if c.From != "" {
		if err := message.CheckAddress(c.From); err != nil {
			return fmt.Errorf("DISPATCHFLOW_FROM: %w", err)
		}
	}
	return nil
}

// FallbackDefaults are the policy defaults of DISPATCHFLOW_FALLBACK_*.
func (c Config) FallbackDefaults() fallback.Defaults {
	on := make([]message.Status, len(c.FallbackOn))
	for i, s := range c.FallbackOn {
		on[i] = message.Status(s)
	}
	return fallback.Defaults{SentWithin: c.FallbackSentWithin, DeliveredWithin: c.FallbackDeliveredWithin, On: on}
}

// FallbackChannels lists the fallback channels this configuration can use.
func (c Config) FallbackChannels() []string {
	ch := []string{fallback.ChannelSandbox, fallback.ChannelWebhook}
	if c.TwilioAccountSID != "" {
		ch = append(ch, fallback.ChannelSMS)
	}
	return ch
}

// TwilioCallbackURL is where Twilio reports the status of fallback SMS.
func (c Config) TwilioCallbackURL() string {
	u, _ := url.JoinPath(c.PublicURL, "/v1/callbacks/twilio")
	return u
}

// SandboxEventsURL is where the sandbox ESP posts its events.
func (c Config) SandboxEventsURL() string {
	u, _ := url.JoinPath(c.PublicURL, "/v1/events/sandbox")
	return u
}
