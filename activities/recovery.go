package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Recovery re-sends the postbacks of many messages at once: the activity of an
// endpoint's recovery (POST /v1/endpoints/{id}/replay, or an enable with
// replay_held). It talks to Temporal, not to receivers: each message's own
// workflow sends its replayed postbacks, in order. Register one with the
// worker next to Activities.
type Recovery struct {
	// Client lists the messages and sends them the replay update.
	Client client.Client
	// Namespace is where the messages live.
	Namespace string
}

// Bounds of ReplayMessages.
const (
	// RecoveryPageSize is how many messages one visibility page holds.
	RecoveryPageSize = 100
	// DefaultRecoveryRate is how many messages per second a recovery sends the
	// replay to by default: each may post several postbacks to the receiver
	// at once, and a receiver that just came back must not be flooded.
	DefaultRecoveryRate = 10.0
	// recoveryUpdateTimeout bounds one message's update: a message that does
	// not answer within it (its worker stuck) is counted as an error.
	recoveryUpdateTimeout = 10 * time.Second
	// recoveryProgressEvery is how often the activity tells its workflow how
	// far it got (a signal: a few history events each), so that the workflow's
	// query answers live progress.
	recoveryProgressEvery = time.Minute
)

// ReplayMessagesInput is the input of ReplayMessages.
type ReplayMessagesInput struct {
	// Query is the visibility query selecting the messages (the open ones that
	// may hold matching postbacks).
	Query string `json:"query"`
	// Update is the update each message is sent and Arg its argument, as JSON
	// (the Message workflow's replay update and its ReplayInput).
	Update string          `json:"update"`
	Arg    json.RawMessage `json:"arg"`
	// Rejected is the error type of an update refused because nothing in the
	// message matched: such a message is counted skipped, not as an error.
	Rejected string `json:"rejected"`
	// PerSecond is how many messages are sent the update per second; zero or
	// less: DefaultRecoveryRate.
	PerSecond float64 `json:"per_second,omitempty"`
	// ProgressSignal, when set, is the signal the activity's workflow receives
	// its RecoveryProgress with, every recoveryProgressEvery.
	ProgressSignal string `json:"progress_signal,omitempty"`
}

// RecoveryProgress counts what a recovery did. Every message the query
// selected is counted once: reached, skipped or an error.
type RecoveryProgress struct {
	// MessagesReached had at least one postback replayed.
	MessagesReached int `json:"messages_reached"`
	// PostbacksReplayed is how many postbacks those messages queued again.
	PostbacksReplayed int `json:"postbacks_replayed"`
	// Skipped had nothing matching (delivered meanwhile, replayed already),
	// or had closed.
	Skipped int `json:"skipped"`
	// Errors could not be sent the update; LastError says why the last one.
	Errors    int    `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

// recoveryCheckpoint is ReplayMessages' heartbeat: a retried attempt resumes
// from it.
type recoveryCheckpoint struct {
	Progress RecoveryProgress `json:"progress"`
	// Page is the token of the page being worked through (nil: the first),
	// Done the messages of that page already sent the update.
	Page []byte   `json:"page,omitempty"`
	Done []string `json:"done,omitempty"`
}

// ReplayMessages pages through the messages of in.Query (RecoveryPageSize at a
// time) and sends each the replay update, in.PerSecond messages a second. It
// heartbeats its place (page token, messages of the page done, counts) after
// each message, so that an attempt retried after a crash resumes where the
// last heartbeat left it: a message may be sent the update twice across a
// crash, which the receivers' webhook-id deduplication absorbs.
//
// A message that matches nothing or has closed is skipped; one whose update
// fails otherwise is counted as an error and the recovery goes on. Only an
// unavailable Temporal, or a cancellation, ends the attempt with an error
// (retried by the workflow's policy).
func (r *Recovery) ReplayMessages(ctx context.Context, in ReplayMessagesInput) (RecoveryProgress, error) {
	var cp recoveryCheckpoint
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &cp); err != nil {
			cp = recoveryCheckpoint{}
		}
	}
	rate := in.PerSecond
	if rate <= 0 {
		rate = DefaultRecoveryRate
	}
	interval := time.Duration(float64(time.Second) / rate)
	var last time.Time
	lastProgress := time.Now()
	for {
		resp, err := r.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: r.Namespace, PageSize: RecoveryPageSize, NextPageToken: cp.Page, Query: in.Query,
		})
		if err != nil {
			return cp.Progress, fmt.Errorf("listing the messages to replay: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if slices.Contains(cp.Done, id) {
				continue
			}
			if wait := interval - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return cp.Progress, ctx.Err()
				case <-time.After(wait):
				}
			}
			last = time.Now()
			if err := r.replayOne(ctx, in, id, &cp.Progress); err != nil {
				return cp.Progress, err
			}
			cp.Done = append(cp.Done, id)
			activity.RecordHeartbeat(ctx, cp)
			if in.ProgressSignal != "" && time.Since(lastProgress) >= recoveryProgressEvery {
				lastProgress = time.Now()
				r.report(ctx, in.ProgressSignal, cp.Progress)
			}
		}
		if len(resp.GetNextPageToken()) == 0 {
			return cp.Progress, nil
		}
		cp.Page, cp.Done = resp.GetNextPageToken(), nil
		activity.RecordHeartbeat(ctx, cp)
	}
}

// replayOne sends message id the update and counts the outcome in p. It
// returns an error only when the recovery cannot go on now.
func (r *Recovery) replayOne(ctx context.Context, in ReplayMessagesInput, id string, p *RecoveryProgress) error {
	uctx, cancel := context.WithTimeout(ctx, recoveryUpdateTimeout)
	defer cancel()
	h, err := r.Client.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: in.Update, Args: []any{in.Arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res struct {
		Replayed int `json:"replayed"`
	}
	if err == nil {
		err = h.Get(uctx, &res)
	}
	var (
		appErr      *temporal.ApplicationError
		nf          *serviceerror.NotFound
		unavailable *serviceerror.Unavailable
		exhausted   *serviceerror.ResourceExhausted
	)
	switch {
	case err == nil && res.Replayed > 0:
		p.MessagesReached++
		p.PostbacksReplayed += res.Replayed
	case err == nil, errors.As(err, &appErr) && appErr.Type() == in.Rejected, errors.As(err, &nf):
		p.Skipped++
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &unavailable), errors.As(err, &exhausted):
		return fmt.Errorf("replaying message %s: %w", id, err)
	default:
		p.Errors++
		p.LastError = fmt.Sprintf("message %s: %v", id, err)
		activity.GetLogger(ctx).Warn("recovery: replay not sent", "workflow_id", id, "error", err)
	}
	return nil
}

// report signals the activity's own workflow its progress; a failure only
// delays the news.
func (r *Recovery) report(ctx context.Context, signal string, p RecoveryProgress) {
	wf := activity.GetInfo(ctx).WorkflowExecution
	if err := r.Client.SignalWorkflow(ctx, wf.ID, wf.RunID, signal, p); err != nil {
		activity.GetLogger(ctx).Warn("recovery: progress not reported", "error", err)
	}
}
