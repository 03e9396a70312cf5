package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// callOptions describe one side effect run by execute.
type callOptions struct {
	// ActivityID of the regular activity; empty lets Temporal choose.
	ActivityID string
	// Summary is shown in the Temporal UI.
	Summary string
	// FirstTimeout bounds the first, local attempt. Keep it short: the workflow task
	// stays open while it runs, and events that arrive meanwhile wait for it.
	FirstTimeout time.Duration
	// Timeout bounds each later attempt.
	Timeout time.Duration
	// Retry is the durable retry policy of the later attempts.
	Retry *temporal.RetryPolicy
}

// execute runs activity fn with in, first as a single local-activity attempt (no
// server round trip: one MarkerRecorded event when it succeeds), then — if that
// attempt failed and the failure is retryable — as a regular activity under
// o.Retry, whose attempts Temporal schedules durably and shows in the UI.
// fellBack tells whether the regular activity ran.
func execute(ctx workflow.Context, fn, in, out any, o callOptions) (fellBack bool, err error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: o.FirstTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:                o.Summary,
	})
	err = workflow.ExecuteLocalActivity(lctx, fn, in).Get(lctx, out)
	if err == nil || !retryable(err) {
		return false, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID:          o.ActivityID,
		StartToCloseTimeout: o.Timeout,
		RetryPolicy:         o.Retry,
		Summary:             o.Summary + " (retrying)",
	})
	return true, workflow.ExecuteActivity(actx, fn, in).Get(actx, out)
}

func retryable(err error) bool {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return !appErr.NonRetryable()
	}
	return true
}

// retryPolicyWithin returns exponential backoff from initial, doubling up to
// maxInterval, with as many attempts as start within window. Counting attempts
// (rather than a schedule-to-close timeout) makes the final failure carry the last
// attempt's error and a known attempt count.
func retryPolicyWithin(window, initial, maxInterval time.Duration) *temporal.RetryPolicy {
	attempts, elapsed, wait := int32(1), time.Duration(0), initial
	for elapsed+wait <= window {
		elapsed += wait
		attempts++
		wait = min(wait*2, maxInterval)
	}
	return &temporal.RetryPolicy{
		InitialInterval:    initial,
		BackoffCoefficient: 2,
		MaximumInterval:    maxInterval,
		MaximumAttempts:    attempts,
	}
}
