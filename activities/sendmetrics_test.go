package activities

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/metrics"
)

// Each way a Send ends is counted under its own outcome.
func TestSendOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, metrics.SendSent},
		{temporal.NewNonRetryableApplicationError("550 user unknown", ErrRefused, nil), metrics.SendRefused},
		{temporal.NewNonRetryableApplicationError("suppressed (hard bounce)", ErrSuppressed, nil), metrics.SendSuppressed},
		{temporal.NewNonRetryableApplicationError("sendgrid: circuit open", ErrCircuitOpen, nil), metrics.SendSkipped},
		{fmt.Errorf("sendgrid: %w", errors.New("503 Service Unavailable")), metrics.SendFailed},
		{temporal.NewApplicationError("other", "SomethingElse"), metrics.SendFailed},
	} {
		if got := sendOutcome(tc.err); got != tc.want {
			t.Errorf("sendOutcome(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
