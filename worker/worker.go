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
		return &esp.Sandbox{EventsURL: cfg.SandboxEventsURL(), Delay: cfg.SandboxDelay, HTTP: h, Logger: logger}, nil
	case "smtp":
		return &esp.SMTP{Addr: cfg.SMTPAddr, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword}, nil
	}
	return nil, fmt.Errorf("DISPATCHFLOW_ESP: unknown provider %q", cfg.ESP)
}

// NewChannels returns the fallback channels cfg makes usable.
func NewChannels(cfg config.Config) channel.Channels {
	ch := channel.Channels{
		fallback.ChannelSandbox: &channel.Sandbox{},
		fallback.ChannelWebhook: &channel.Webhook{HTTP: channel.NewHTTPClient(FallbackTimeout)},
	}
	if cfg.TwilioAccountSID != "" {
		ch[fallback.ChannelSMS] = &channel.SMS{
			BaseURL: cfg.TwilioBaseURL, AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken,
			From: cfg.TwilioFrom, HTTP: channel.NewHTTPClient(FallbackTimeout),
		}
	}
	return ch
}

// NewActivities returns the activities of cfg, handing emails to sender.
func NewActivities(cfg config.Config, sender esp.Sender) *activities.Activities {
	return &activities.Activities{
		ESP:         sender,
		HTTP:        activities.NewPostbackClient(PostbackTimeout),
		Channels:    NewChannels(cfg),
		CallbackURL: cfg.TwilioCallbackURL(),
	}
}

// New returns a worker on cfg.TaskQueue running the Message workflow and its
// activities against sender and the fallback channels of cfg.
func New(c client.Client, cfg config.Config, sender esp.Sender) worker.Worker {
	w := worker.New(c, cfg.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Message, workflow.RegisterOptions{Name: workflows.MessageWorkflow})
	w.RegisterActivity(NewActivities(cfg, sender))
	return w
}

// Run runs a worker until ctx is done, then stops it gracefully (in-flight
// activities get worker.Options' default stop timeout).
func Run(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	sender, err := NewESP(cfg, logger)
	if err != nil {
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
