package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/suppression"
)

// Error types of the suppression list's ApplicationErrors; workflows branch on them.
const (
	// ErrSuppressed: Send found the recipient on its workspace's suppression
	// list and called no ESP; the message is aborted with the entry's reason.
	ErrSuppressed = "Suppressed"
	// ErrSuppressInvalid: the Suppress activity got an address it cannot key.
	ErrSuppressInvalid = "SuppressInvalid"
)

// suppressionCheckTimeout bounds the suppression check of a send: one point
// read, milliseconds on a healthy cluster. Past it the attempt fails (and is
// retried), so that a stuck read never takes the attempt's whole 30 s.
const suppressionCheckTimeout = 5 * time.Second

// Suppressions is the suppression list as the activities see it: the
// Suppress activity that adds an address to it, and the check Send runs
// first. Each suppressed address is a workflow (suppression.WorkflowID) whose
// memo holds its first entry, so the check is one DescribeWorkflowExecution:
// no query, no worker round trip, and no history event in the message.
// Register one with the worker next to Activities, and give Activities the
// same one.
type Suppressions struct {
	// Client starts and describes the suppressions' workflows.
	Client client.Client
	// TaskQueue is where the suppressions' workflows run.
	TaskQueue string
	// Key is DISPATCHFLOW_SUPPRESSION_KEY, keying the addresses (suppression.ID).
	// Empty: the list is off; Suppress records nothing and no send is checked.
	Key []byte
	// DataConverter decodes the memo (the worker's, encrypting payloads with
	// DISPATCHFLOW_PAYLOAD_KEY); nil: the default.
	DataConverter converter.DataConverter
}

// SuppressInput is the input of Suppress.
type SuppressInput struct {
	// Workspace owns the message, and so the list the address joins.
	Workspace string `json:"workspace"`
	// Recipient is the message's address (in its history already): it is
	// keyed here and never leaves this activity.
	Recipient string            `json:"recipient"`
	Entry     suppression.Entry `json:"entry"`
}

// SuppressResult is the output of Suppress.
type SuppressResult struct {
	// Recorded is false when the list is off (no key): nothing was recorded.
	Recorded bool `json:"recorded"`
}

// Suppress adds the recipient to its workspace's suppression list: it signals
// the address's workflow the entry, starting it if it is not running
// (SignalWithStart: atomic, so two reports at once make one workflow with two
// entries). A suppression lifted earlier (its workflow completed) starts
// afresh: the reuse policy is stated, allow-duplicate, rather than taken from
// SignalWithStart's default (the same, but easily mistaken for the message's
// reject-duplicate).
func (s *Suppressions) Suppress(ctx context.Context, in SuppressInput) (SuppressResult, error) {
	if s == nil || len(s.Key) == 0 { // nil: no list, like Activities.Suppressions
		return SuppressResult{}, nil
	}
	addr, err := suppression.Normalize(in.Recipient)
	if err != nil {
		return SuppressResult{}, temporal.NewNonRetryableApplicationError("recipient: "+err.Error(), ErrSuppressInvalid, nil)
	}
	wfID := suppression.WorkflowID(in.Workspace, suppression.ID(s.Key, in.Workspace, addr))
	hint := suppression.Hint(addr)
	_, err = s.Client.SignalWithStartWorkflow(ctx, wfID, suppression.SignalAdd, in.Entry, client.StartWorkflowOptions{
		ID:                       wfID,
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Read by the send's check and the list without a query; a payload,
		// encrypted under DISPATCHFLOW_PAYLOAD_KEY like the inputs.
		Memo:          map[string]any{suppression.MemoSummary: suppression.Summary{Hint: hint, Entry: in.Entry}},
		StaticSummary: "suppressed address · " + string(in.Entry.Cause) + " · workspace " + in.Workspace,
	}, suppression.WorkflowType, suppression.Input{Workspace: in.Workspace, Hint: hint})
	if err != nil {
		return SuppressResult{}, fmt.Errorf("suppressing the address: %w", err)
	}
	return SuppressResult{Recorded: true}, nil
}

// lookup answers what suppresses address in workspace ws, if anything: one
// point read of its workflow, which suppresses while it runs. An address that
// cannot be keyed (Send's To is checked by the API) is suppressed by nothing.
func (s *Suppressions) lookup(ctx context.Context, ws, address string) (suppression.Summary, bool, error) {
	addr, err := suppression.Normalize(address)
	if err != nil {
		return suppression.Summary{}, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, suppressionCheckTimeout)
	defer cancel()
	desc, err := s.Client.DescribeWorkflowExecution(ctx, suppression.WorkflowID(ws, suppression.ID(s.Key, ws, addr)), "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return suppression.Summary{}, false, nil
	case err != nil:
		return suppression.Summary{}, false, err
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return suppression.Summary{}, false, nil // lifted
	}
	var sum suppression.Summary
	if p := info.GetMemo().GetFields()[suppression.MemoSummary]; p != nil {
		dc := s.DataConverter
		if dc == nil {
			dc = converter.GetDefaultDataConverter()
		}
		if err := dc.FromPayload(p, &sum); err != nil {
			// Still suppressed: the workflow runs. Only the reason's details are lost.
			sum = suppression.Summary{}
		}
	}
	return sum, true, nil
}

// checkSuppressed is Send's first step: a recipient on its workspace's
// suppression list is refused (ErrSuppressed, not retried) before any ESP is
// called. A list that cannot be read fails the attempt, which Temporal
// retries: a send goes out only once the list said the address is not on it.
//
// The check and the hand-over are not atomic: a send whose check ran before
// a bounce was recorded goes out (it was not suppressed when it started).
func (a *Activities) checkSuppressed(ctx context.Context, in SendInput) error {
	s := a.Suppressions
	if s == nil || len(s.Key) == 0 || in.Workspace == "" {
		return nil
	}
	sum, found, err := s.lookup(ctx, in.Workspace, in.Email.To)
	if err != nil {
		return fmt.Errorf("checking the suppression list: %w", err)
	}
	if found {
		return temporal.NewNonRetryableApplicationError(sum.Reason(), ErrSuppressed, nil)
	}
	return nil
}
