// Package worker wires dispatchflow's Temporal worker: the Message workflow and
// its activities, with the ESP chosen by configuration.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/circuit"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/health"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/suppression"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// PostbackTimeout bounds one postback attempt; FallbackTimeout one fallback send.
const (
	PostbackTimeout = 15 * time.Second
	FallbackTimeout = 20 * time.Second
)

// NewESP returns the Sender of the (first) provider of cfg.ESP.
func NewESP(cfg config.Config, logger *slog.Logger) (esp.Sender, error) {
	return NewSender(cfg.PrimaryESP(), cfg, logger)
}

// NewSender returns the Sender of the provider name (a DISPATCHFLOW_ESP value)
// with its settings in cfg: every sender is built here, whichever provider
// the configuration picks.
func NewSender(name string, cfg config.Config, logger *slog.Logger) (esp.Sender, error) {
	switch name {
	case "sandbox":
		h := retryablehttp.NewClient()
		h.RetryMax = 5
		h.Logger = nil
		return &esp.Sandbox{EventsURL: cfg.SandboxEventsURL(), Delay: cfg.SandboxDelay, HTTP: h, Logger: logger,
			Secret: cfg.SandboxWebhookSecret}, nil
	case "smtp":
		return &esp.SMTP{Addr: cfg.SMTPAddr, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, Provider: cfg.SMTPProvider}, nil
	case "sendgrid":
		return &esp.SendGrid{APIKey: cfg.SendGridAPIKey, BaseURL: cfg.SendGridBaseURL, HTTP: esp.NewHTTPClient(esp.APITimeout)}, nil
	case "mailgun":
		return &esp.Mailgun{APIKey: cfg.MailgunAPIKey, Domain: cfg.MailgunDomain, BaseURL: cfg.MailgunBaseURL, HTTP: esp.NewHTTPClient(esp.APITimeout)}, nil
	case "postmark":
		return &esp.Postmark{
			ServerToken: cfg.PostmarkServerToken, BaseURL: cfg.PostmarkBaseURL, MessageStream: cfg.PostmarkMessageStream,
			HTTP: esp.NewHTTPClient(esp.APITimeout),
		}, nil
	case "ses":
		return &esp.SES{
			Region: cfg.SESRegion, AccessKeyID: cfg.SESAccessKeyID, SecretAccessKey: cfg.SESSecretAccessKey,
			SessionToken: cfg.SESSessionToken, ConfigurationSet: cfg.SESConfigurationSet, BaseURL: cfg.SESBaseURL,
			HTTP: esp.NewHTTPClient(esp.APITimeout),
		}, nil
	case "brevo":
		return &esp.Brevo{APIKey: cfg.BrevoAPIKey, BaseURL: cfg.BrevoBaseURL, HTTP: esp.NewHTTPClient(esp.APITimeout)}, nil
	case "mailjet":
		return &esp.Mailjet{
			APIKey: cfg.MailjetAPIKey, SecretKey: cfg.MailjetAPISecret, BaseURL: cfg.MailjetBaseURL,
			HTTP: esp.NewHTTPClient(esp.APITimeout),
		}, nil
	case "sparkpost":
		return &esp.SparkPost{APIKey: cfg.SparkPostAPIKey, BaseURL: cfg.SparkPostBaseURL, HTTP: esp.NewHTTPClient(esp.APITimeout)}, nil
	case "resend":
		return &esp.Resend{APIKey: cfg.ResendAPIKey, BaseURL: cfg.ResendBaseURL, HTTP: esp.NewHTTPClient(esp.APITimeout)}, nil
	}
	return nil, fmt.Errorf("DISPATCHFLOW_ESP: unknown provider %q", name)
}

// withFailover gives acts every provider of a failover list (cfg.ESP naming
// several: sender is the first's) and their circuits. With one provider it
// changes nothing: the Send activity takes the same path as before failover.
func withFailover(c client.Client, cfg config.Config, sender esp.Sender, acts *activities.Activities) {
	names := cfg.ESPs()
	if len(names) < 2 {
		return
	}
	acts.Senders = map[string]esp.Sender{names[0]: sender}
	for _, name := range names[1:] {
		s, err := NewSender(name, cfg, slog.Default())
		if err != nil {
			// config.Load checks every name of the list and refuses to start on this error.
			panic(fmt.Sprintf("worker: DISPATCHFLOW_ESP (config.Load checks it): %v", err))
		}
		acts.Senders[name] = s
	}
	cs := circuit.New(c, cfg.TaskQueue, slog.Default())
	cs.OpenFor, cs.Threshold = cfg.ESPCircuitOpenFor, cfg.ESPCircuitFailures
	acts.Circuits = cs
}

// NewChannels returns the fallback channels cfg makes usable.
func NewChannels(cfg config.Config) channel.Channels {
	ch := channel.Channels{
		fallback.ChannelSandbox: &channel.Sandbox{},
		fallback.ChannelWebhook: &channel.Webhook{HTTP: channel.NewHTTPClient(FallbackTimeout, cfg.Guard())},
	}
	if cfg.TwilioAccountSID != "" {
		ch[fallback.ChannelSMS] = &channel.SMS{
			BaseURL: cfg.TwilioBaseURL, AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken,
			From: cfg.TwilioFrom, HTTP: channel.NewHTTPClient(FallbackTimeout, cfg.Guard()),
		}
	}
	return ch
}

// NewActivities returns the activities of cfg, handing emails to sender; h keeps
// the endpoints' switches and health (nil: every endpoint counts as enabled).
func NewActivities(cfg config.Config, sender esp.Sender, h postback.Health) *activities.Activities {
	eps, err := cfg.Endpoints()
	if err != nil {
		// config.Load reads the same file and refuses to start on this error.
		panic(fmt.Sprintf("worker: endpoints (config.Load checks them): %v", err))
	}
	return &activities.Activities{
		ESP:             sender,
		HTTP:            activities.NewPostbackClient(cfg.PostbackTimeout, cfg.Guard()),
		Endpoints:       eps,
		Health:          h,
		PostbackTimeout: cfg.PostbackTimeout,
		Channels:        NewChannels(cfg),
		CallbackURL:     cfg.TwilioCallbackURL(),
	}
}

// NewSuppressions returns the suppression list of cfg (keyed with
// DISPATCHFLOW_SUPPRESSION_KEY; without it, off: nothing is recorded nor checked).
func NewSuppressions(c client.Client, cfg config.Config) *activities.Suppressions {
	dc, _, err := codec.ForKeys(cfg.PayloadKeyList())
	if err != nil {
		// config.Load checks the payload keys and refuses to start on this error.
		panic(fmt.Sprintf("worker: DISPATCHFLOW_PAYLOAD_KEY (config.Load checks it): %v", err))
	}
	s := &activities.Suppressions{Client: c, TaskQueue: cfg.TaskQueue, DataConverter: dc}
	if cfg.SuppressionKey != "" {
		s.Key = []byte(cfg.SuppressionKey)
	}
	return s
}

// New returns a worker on cfg.TaskQueue running the Message, Endpoint,
// Recovery, Suppression and Circuit workflows and their activities against
// sender (the first provider of cfg.ESP; the others of a failover list are
// built from cfg) and the fallback channels of cfg. Starting it also starts
// sending the endpoints' health reports, stopping it sends the last ones.
func New(c client.Client, cfg config.Config, sender esp.Sender) worker.Worker {
	w := worker.New(c, cfg.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Message, workflow.RegisterOptions{Name: workflows.MessageWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Endpoint, workflow.RegisterOptions{Name: workflows.EndpointWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Recovery, workflow.RegisterOptions{Name: workflows.RecoveryWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Suppression, workflow.RegisterOptions{Name: suppression.WorkflowType})
	h := health.New(c, cfg.TaskQueue, slog.Default())
	h.DisableAfter = cfg.EndpointDisableAfter
	acts := NewActivities(cfg, sender, h)
	acts.Suppressions = NewSuppressions(c, cfg)
	w.RegisterWorkflowWithOptions(workflows.Circuit, workflow.RegisterOptions{Name: workflows.CircuitWorkflow})
	withFailover(c, cfg, sender, acts)
	w.RegisterActivity(acts)
	w.RegisterActivity(acts.Suppressions)
	w.RegisterActivity(&activities.Recovery{Client: c, Namespace: cfg.Temporal.Namespace})
	return &withHealth{Worker: w, health: h}
}

// withHealth runs the health store's report loop for as long as its worker runs.
type withHealth struct {
	worker.Worker
	health *health.Store
	stop   context.CancelFunc
	done   chan struct{}
}

func (w *withHealth) Start() error {
	if err := w.Worker.Start(); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	w.stop, w.done = stop, make(chan struct{})
	go func() {
		defer close(w.done)
		w.health.Run(ctx)
	}()
	return nil
}

func (w *withHealth) Run(interruptCh <-chan any) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-interruptCh
	w.Stop()
	return nil
}

func (w *withHealth) Stop() {
	w.Worker.Stop()
	if w.stop != nil {
		w.stop()
		<-w.done
	}
}

// Run runs a worker until ctx is done, then stops it gracefully (in-flight
// activities get worker.Options' default stop timeout).
func Run(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	sender, err := NewESP(cfg, logger)
	if err != nil {
		return err
	}
	if err := workflows.CheckSearchAttributes(ctx, c, cfg.Temporal.Namespace); err != nil {
		return err
	}
	// Process-wide, and only before the first worker starts.
	worker.SetStickyWorkflowCacheSize(cfg.WorkflowCacheSize)
	w := New(c, cfg, sender)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	logger.Info("worker started", "task_queue", cfg.TaskQueue, "esp", cfg.ESP)
	if cfg.SuppressionKey == "" {
		logger.Warn("DISPATCHFLOW_SUPPRESSION_KEY is not set: no suppression list; hard bounces, complaints and unsubscribes do not stop later sends to the address")
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
