package esp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/dispatchflow/dispatchflow/intake"
)

// Sandbox is the embedded default ESP. It sends nothing: it accepts every message
// (or refuses it, see below) and, like a real ESP, reports what happened through
// dispatchflow's public webhook intake (POST {EventsURL}, the generic event format),
// one event every Delay. What happens is chosen by the recipient's local part, like
// Amazon SES's mailbox simulator:
//
//	bounce@…              processed, then bounced "550 5.1.1 The email account that you tried to reach does not exist"
//	abort@…, suppressed@… refused at send: aborted "User not emailable"
//	blackhole@…           processed, then nothing (never delivered)
//	silent@…              nothing at all (for load tools that post the events themselves)
//	softbounce@…          deferred, then delivered
//	anything else         processed, then delivered
//
// Events are reported from memory: a process stopped before they are posted loses
// them, as a real ESP's outage would delay them.
type Sandbox struct {
	// EventsURL is where events are posted: {DISPATCHFLOW_PUBLIC_URL}/v1/events/sandbox.
	EventsURL string
	// Delay between the send and the first event, and between events (DISPATCHFLOW_SANDBOX_DELAY).
	Delay time.Duration
	// HTTP posts the events; like a real ESP it retries a failed post.
	HTTP   *retryablehttp.Client
	Logger *slog.Logger
	// Secret signs every post the Standard Webhooks way ("whsec_…",
	// DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET), as the sandbox intake requires. Empty:
	// unsigned (an intake with verification off).
	Secret string

	wg sync.WaitGroup
}

var _ Sender = (*Sandbox)(nil)

// SandboxBounceReason is the sandbox's bounce reason, the seed's example.
const SandboxBounceReason = "550 5.1.1 The email account that you tried to reach does not exist"

// SandboxEvent is one event as the sandbox posts it: the generic intake format.
type SandboxEvent struct {
	DispatchID string `json:"dispatch_id"`
	Event      string `json:"event"`
	Timestamp  string `json:"timestamp"`
	Reason     string `json:"reason,omitempty"`
	EventID    string `json:"event_id"`
}

func (s *Sandbox) Name() string { return "sandbox" }

// Send accepts e and schedules its events.
func (s *Sandbox) Send(_ context.Context, e Email) (Receipt, error) {
	local := strings.ToLower(e.To)
	if i := strings.LastIndex(local, "<"); i >= 0 {
		local = local[i+1:]
	}
	local, _, _ = strings.Cut(local, "@")
	var script []SandboxEvent
	switch local {
	case "abort", "suppressed":
		return Receipt{}, &RefusedError{Reason: "User not emailable"}
	case "bounce":
		script = []SandboxEvent{{Event: "processed"}, {Event: "bounced", Reason: SandboxBounceReason}}
	case "blackhole":
		script = []SandboxEvent{{Event: "processed"}}
	case "silent":
		return Receipt{Provider: s.Name(), MessageID: "sandbox-" + e.DispatchID, Response: "accepted by the sandbox"}, nil
	case "softbounce":
		script = []SandboxEvent{{Event: "deferred", Reason: "421 4.7.0 Try again later"}, {Event: "delivered"}}
	default:
		script = []SandboxEvent{{Event: "processed"}, {Event: "delivered"}}
	}
	for i := range script {
		script[i].DispatchID = e.DispatchID
		script[i].EventID = "sandbox-" + e.DispatchID + "-" + script[i].Event
	}
	s.wg.Add(1)
	go s.report(script)
	return Receipt{Provider: s.Name(), MessageID: "sandbox-" + e.DispatchID, Response: "accepted by the sandbox"}, nil
}

func (s *Sandbox) report(script []SandboxEvent) {
	defer s.wg.Done()
	for _, ev := range script {
		time.Sleep(s.Delay)
		ev.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
		if err := s.post(ev); err != nil && s.Logger != nil {
			s.Logger.Error("sandbox could not report an event", "dispatch_id", ev.DispatchID, "event", ev.Event, "error", err)
		}
	}
}

func (s *Sandbox) post(ev SandboxEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, s.EventsURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.Secret != "" {
		if err := intake.SignStandard(req.Header, s.Secret, ev.EventID, time.Now(), body); err != nil {
			return fmt.Errorf("sandbox webhook secret: %w", err)
		}
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("intake answered %s", resp.Status)
	}
	return nil
}

// Wait blocks until every scheduled event has been posted (or given up).
func (s *Sandbox) Wait() { s.wg.Wait() }
