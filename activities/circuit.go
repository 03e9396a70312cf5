package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/esp"
)

// Error types of Send with a named provider (SendInput.Provider).
const (
	// ErrCircuitOpen: Send skipped its provider, whose circuit is open,
	// without calling it (SendInput.Failover); the workflow moves on to the
	// next provider. Its details are the attempts made before (an int32).
	ErrCircuitOpen = "ESPCircuitOpen"
	// ErrUnavailable: the provider failed transiently (retryable). Its
	// details are the attempt's number (an int32), so that the workflow
	// knows how many attempts a provider had.
	ErrUnavailable = "ESPUnavailable"
)

// UnavailableError is Send's transient failure of attempt with provider.
func UnavailableError(provider string, attempt int32, err error) error {
	return temporal.NewApplicationErrorWithOptions(provider+": "+err.Error(), ErrUnavailable,
		temporal.ApplicationErrorOptions{Details: []any{attempt}})
}

// Circuits keeps one circuit breaker per provider, shared by every worker
// (package circuit keeps them in Circuit workflows). Send asks it before an
// attempt and tells it how the attempt went.
type Circuits interface {
	// Allow says whether provider may be tried now: its circuit is closed, or
	// half-open and this attempt is the probe (probe true). When not, why
	// says so ("circuit open since …"). It never waits long for the state.
	Allow(ctx context.Context, provider string) (ok, probe bool, why string)
	// Record tells how an attempt went: failure is nil when the provider
	// answered (accepted, or refused the message for good), the transient
	// error otherwise; final says it was the last attempt before the message
	// moves on to another provider.
	Record(ctx context.Context, provider string, probe bool, failure error, final bool)
}

// sender returns the sender of the named provider of DISPATCHFLOW_ESP.
func (a *Activities) sender(name string) esp.Sender {
	if s, ok := a.Senders[name]; ok {
		return s
	}
	if a.ESP != nil && a.ESP.Name() == name {
		return a.ESP
	}
	return nil
}

// sendVia is Send with a named provider, DISPATCHFLOW_ESP naming several: one
// attempt with that provider, consulting and feeding its circuit.
//
// A provider that may be skipped (in.Failover) and whose circuit is open is not
// called: the attempt fails with a non-retryable ErrCircuitOpen, and the
// workflow moves on. The last provider of the list is always tried. A
// permanent refusal is ErrRefused as with one provider (never a failover);
// any other failure is a retryable ErrUnavailable naming the provider.
func (a *Activities) sendVia(ctx context.Context, in SendInput) (SendResult, error) {
	s := a.sender(in.Provider)
	if s == nil {
		// A worker configured with another list: another worker may have it.
		return SendResult{}, fmt.Errorf("%s: not configured on this worker (DISPATCHFLOW_ESP)", in.Provider)
	}
	attempt := activity.GetInfo(ctx).Attempt
	probe := false
	if a.Circuits != nil {
		ok, p, why := a.Circuits.Allow(ctx, in.Provider)
		if !ok && in.Failover {
			return SendResult{}, temporal.NewNonRetryableApplicationError(in.Provider+": "+why, ErrCircuitOpen, nil, attempt-1)
		}
		probe = p && ok
	}
	executed := a.now()
	rcpt, err := s.Send(ctx, in.Email)
	reason, refused := esp.IsRefused(err)
	if a.Circuits != nil {
		var failure error
		if err != nil && !refused {
			failure = err
		}
		a.Circuits.Record(ctx, in.Provider, probe, failure, in.FinalAttempt > 0 && attempt >= in.FinalAttempt)
	}
	switch {
	case refused:
		return SendResult{}, temporal.NewNonRetryableApplicationError(reason, ErrRefused, nil)
	case err != nil:
		return SendResult{}, UnavailableError(in.Provider, attempt, err)
	}
	return SendResult{Receipt: rcpt, ExecutedAt: executed, SentAt: a.now(), Attempt: attempt}, nil
}
