package channel

import (
	"context"
	"sync"
)

// sandboxKeep is how many sent fallbacks a Sandbox remembers.
const sandboxKeep = 1000

// Sandbox is the embedded default channel for `make run`. It sends nothing: it
// records the fallback in memory (the last 1000, see Sent) and confirms it at once,
// Result{Channel "sandbox", ProviderID "sandbox-"+IdempotencyKey, Status "delivered"}.
//
// Like Twilio's test credentials, some magic To numbers fail, permanently, with the
// error Twilio's test credentials answer for them, so that a user can watch the
// ladder move on to its next step:
//
//	+15005550001  21211 The 'To' number +15005550001 is not a valid phone number.
//	+15005550004  21610 Attempt to send to unsubscribed recipient
//	+15005550009  21614 'To' number is not a valid mobile number
//
// The numbers and codes are those of Twilio's test credentials
// (https://www.twilio.com/docs/iam/test-credentials#test-sms-messages); apart from
// 21211's, the texts are the titles of Twilio's error pages, not necessarily the
// API's exact wording. Any other number is delivered. A refused fallback is not
// recorded.
//
// The zero Sandbox is ready to use; it is safe for concurrent use.
type Sandbox struct {
	mu   sync.Mutex
	sent []Message // oldest first, at most sandboxKeep
}

var _ Sender = (*Sandbox)(nil)

// sandboxRefusals maps Twilio's magic test numbers to the reason they fail with.
var sandboxRefusals = map[string]string{
	"+15005550001": "21211 The 'To' number +15005550001 is not a valid phone number.",
	"+15005550004": "21610 Attempt to send to unsubscribed recipient",
	"+15005550009": "21614 'To' number is not a valid mobile number",
}

// Send records m and confirms it, or refuses it for good if m.To is a failing magic number.
func (s *Sandbox) Send(ctx context.Context, m Message) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if reason, ok := sandboxRefusals[m.To]; ok {
		return Result{}, &PermanentError{Reason: reason}
	}
	s.mu.Lock()
	if len(s.sent) == sandboxKeep {
		// Drop the oldest; copy down rather than reslice so the array does not grow.
		copy(s.sent, s.sent[1:])
		s.sent = s.sent[:sandboxKeep-1]
	}
	s.sent = append(s.sent, m)
	s.mu.Unlock()
	return Result{Channel: "sandbox", ProviderID: "sandbox-" + m.IdempotencyKey, Status: "delivered", Confirmed: true}, nil
}

// Sent returns the fallbacks recorded, oldest first: the last 1000.
func (s *Sandbox) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.sent))
	copy(out, s.sent)
	return out
}
