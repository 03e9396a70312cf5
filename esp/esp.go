// Package esp is the seam between dispatchflow and email service providers: one
// Sender per provider hands a message over, and says whether it was accepted,
// refused for good (the message is aborted) or could not be handed over right now
// (the Send activity is retried durably by Temporal).
//
// A provider's outbound half lives here; its inbound half (the webhook format it
// posts events in) is a normalizer in package intake. Senders: Sandbox, SMTP, and
// the provider APIs SendGrid (dispatch id in custom_args), Mailgun (user variable
// v:dispatch_id), Postmark (Metadata.dispatch_id), SES (message tag
// dispatch_id), Brevo (header X-Mailin-custom: dispatch_id:<id>), Mailjet
// (CustomID), SparkPost (metadata.dispatch_id) and Resend (tag dispatch_id, and
// the dispatch id as idempotency key), each attaching Email.DispatchID where its
// events bring it back and recording the provider's message id as its events
// carry it. The API senders make one attempt per Send (NewHTTPClient): Temporal
// owns retries.
package esp

import (
	"context"
	"errors"
)

// Email is one message to hand to an ESP.
type Email struct {
	// DispatchID identifies the message; every provider must attach it so that its
	// webhook events come back with it.
	DispatchID string
	From       string
	To         string
	Subject    string
	Text       string
	HTML       string
}

// Receipt is the ESP's acceptance of a message.
type Receipt struct {
	// Provider names the ESP that accepted the message: its Sender's Name()
	// ("sandbox", "smtp", "sendgrid", "mailgun", "postmark", "ses", "brevo",
	// "mailjet", "sparkpost", "resend").
	Provider string `json:"provider"`
	// MessageID is the ESP's own id for the message, when it gives one, in the
	// form its webhook events carry it (so intake can map an event back).
	MessageID string `json:"message_id,omitempty"`
	// Response is the ESP's answer, for the timeline ("250 2.0.0 Ok: queued as 4BC…").
	Response string `json:"response,omitempty"`
}

// Sender hands messages to one ESP. Send returns a *RefusedError when the ESP will
// never take this message (invalid or suppressed address, content it cannot render);
// any other error is transient and the caller retries.
type Sender interface {
	Name() string
	Send(ctx context.Context, e Email) (Receipt, error)
}

// RefusedError is a permanent refusal: the message is aborted with Reason.
type RefusedError struct {
	// Reason is the ESP's explanation, posted back as the aborted postback's reason.
	Reason string
}

func (e *RefusedError) Error() string { return "refused by the ESP: " + e.Reason }

// IsRefused reports whether err is a permanent refusal, and its reason.
func IsRefused(err error) (string, bool) {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}
