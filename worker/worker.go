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
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/health"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// PostbackTimeout bounds one postback attempt; FallbackTimeout one fallback send.
const (
	PostbackTimeout = 15 * time.Second
	FallbackTimeout = 20 * time.Second
)

// NewESP returns the Sender configured by cfg.ESP.
func NewESP(cfg config.Config, logger *slog.Logger) (esp.Sender, error) {
	switch cfg.ESP {
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
	}
	return nil, fmt.Errorf("DISPATCHFLOW_ESP: unknown provider %q", cfg.ESP)
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

// New returns a worker on cfg.TaskQueue running the Message, Endpoint and
// Recovery workflows and their activities against sender and the fallback channels of
// cfg. Starting it also starts sending the endpoints' health reports, stopping it
// sends the last ones.
func New(c client.Client, cfg config.Config, sender esp.Sender) worker.Worker {
	w := worker.New(c, cfg.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Message, workflow.RegisterOptions{Name: workflows.MessageWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Endpoint, workflow.RegisterOptions{Name: workflows.EndpointWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Recovery, workflow.RegisterOptions{Name: workflows.RecoveryWorkflow})
	h := health.New(c, cfg.TaskQueue, slog.Default())
	h.DisableAfter = cfg.EndpointDisableAfter
	w.RegisterActivity(NewActivities(cfg, sender, h))
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
	logger.Info("worker started", "task_queue", cfg.TaskQueue, "esp", sender.Name())
	<-ctx.Done()
	w.Stop()
	return nil
}
