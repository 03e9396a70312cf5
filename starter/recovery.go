package starter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/health"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// MaxRecoveryAge bounds how far back a recovery's since may go. Held
// postbacks keep their message open DISPATCHFLOW_POSTBACK_MAX_HOLD (30 days by
// default), failed ones the tracking window: nothing older is still open, and
// an older since is most likely a typo.
const MaxRecoveryAge = 90 * 24 * time.Hour

// recoveryStartDelay is how long a recovery waits before its first message:
// workers trust an endpoint's switch for health.CacheTTL, and a postback
// replayed before they see the endpoint enabled would be held again.
const recoveryStartDelay = health.CacheTTL + time.Second

// replayEndpointRequest is the body of POST /v1/endpoints/{id}/replay. The
// times are strings so that a malformed one is refused naming its field.
type replayEndpointRequest struct {
	Since  string   `json:"since"`
	Until  string   `json:"until,omitempty"`
	States []string `json:"states,omitempty"`
}

// recoveryResponse is the answer of POST /v1/endpoints/{id}/replay and the
// recovery of an enable with replay_held.
type recoveryResponse struct {
	// WorkflowID is the Recovery workflow's (the Temporal UI shows its
	// progress; its query "recovery" answers it).
	WorkflowID string `json:"workflow_id"`
	// Messages counts the open messages the recovery visits (from visibility,
	// a moment behind).
	Messages int64     `json:"messages"`
	States   []string  `json:"states"`
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"`
}

// replayStates are the postback states a recovery may replay.
var replayStates = []string{workflows.PostbackDelivered, workflows.PostbackFailed, workflows.PostbackHeld}

// replayEndpoint is POST /v1/endpoints/{id}/replay, Svix's "recover": every
// postback of the endpoint in the given states whose event reached
// dispatchflow in [since, until) is sent again, by each open message, in its
// order, with its webhook-id. A Recovery workflow does it, paced; the answer
// says how many open messages it visits.
func (a *API) replayEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ep, ok := a.endpoints.Get(id)
	if !ok || !owns(r, ep.Workspace) {
		a.fail(w, r, notFound(fmt.Sprintf("endpoint %q is not configured", id)))
		return
	}
	var in replayEndpointRequest
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	states, since, until, err := a.recoveryWindow(in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	st, err := a.health.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !st.Enabled {
		a.fail(w, r, &httpError{http.StatusConflict, fmt.Sprintf("endpoint %q is disabled (%s): its replayed postbacks would be held again; "+
			`enable it first (POST /v1/endpoints/%s/enable, with {"replay_held": true} to send its held postbacks)`, id, st.DisabledReason, id)})
		return
	}
	res, err := a.startRecovery(r.Context(), ep, states, since, until)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.audit(r, "endpoint.replay", id, "states", strings.Join(states, ","), "since", since, "until", until,
		"messages", res.Messages, "workflow_id", res.WorkflowID)
	writeJSON(w, http.StatusAccepted, res)
}

// recoveryWindow validates a replay request: its states (default failed and
// held), since (required, within MaxRecoveryAge, not in the future) and until
// (default now, a later one is now; after since).
func (a *API) recoveryWindow(in replayEndpointRequest) (states []string, since, until time.Time, err error) {
	now := a.now().UTC()
	if in.Since == "" {
		return nil, since, until, badRequest(`since: required (RFC 3339, e.g. "2026-01-02T15:04:05Z")`)
	}
	if since, err = time.Parse(time.RFC3339, in.Since); err != nil {
		return nil, since, until, badRequest(fmt.Sprintf("since: %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", in.Since))
	}
	if since.After(now) {
		return nil, since, until, badRequest("since: in the future")
	}
	if now.Sub(since) > MaxRecoveryAge {
		return nil, since, until, badRequest(fmt.Sprintf("since: at most %d days ago", MaxRecoveryAge/(24*time.Hour)))
	}
	until = now
	if in.Until != "" {
		if until, err = time.Parse(time.RFC3339, in.Until); err != nil {
			return nil, since, until, badRequest(fmt.Sprintf("until: %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", in.Until))
		}
		if until.After(now) {
			until = now
		}
	}
	if !since.Before(until) {
		return nil, since, until, badRequest("until: must be after since")
	}
	for i, s := range in.States {
		if !slices.Contains(replayStates, s) {
			return nil, since, until, badRequest(fmt.Sprintf("states[%d]: %q is not one of %s", i, s, strings.Join(replayStates, ", ")))
		}
		if !slices.Contains(states, s) {
			states = append(states, s)
		}
	}
	if len(states) == 0 {
		states = []string{workflows.PostbackFailed, workflows.PostbackHeld}
	}
	return states, since.UTC(), until.UTC(), nil
}

// recoveryRunning answers 409 while a recovery of endpoint id runs.
func (a *API) recoveryRunning(ctx context.Context, id string) error {
	desc, err := a.client.DescribeWorkflowExecution(ctx, workflows.RecoveryWorkflowID(id), "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return nil
	case err != nil:
		return err
	case desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return recoveryConflict(id)
	}
	return nil
}

func recoveryConflict(id string) error {
	return &httpError{http.StatusConflict, fmt.Sprintf("a recovery of endpoint %q is running (workflow %s): "+
		"wait until it ends (its query %q says how far it got)", id, workflows.RecoveryWorkflowID(id), workflows.QueryRecovery)}
}

// startRecovery counts the open messages a recovery of ep would visit and
// starts it. One recovery per endpoint at a time: its workflow ID is the
// endpoint's, reusable once the previous one closed.
func (a *API) startRecovery(ctx context.Context, ep postback.Endpoint, states []string, since, until time.Time) (recoveryResponse, error) {
	ws := ep.Workspace
	if ws == "" {
		ws = message.DefaultWorkspace
	}
	count, err := a.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: a.cfg.Temporal.Namespace, Query: workflows.RecoveryQuery(ws, ep.ID, states),
	})
	if err != nil {
		return recoveryResponse{}, fmt.Errorf("counting the messages to replay: %w", err)
	}
	in := workflows.RecoveryInput{Endpoint: ep.ID, Workspace: ws, States: states, Since: since, Until: until, Delay: recoveryStartDelay}
	summary := fmt.Sprintf("replay endpoint %s: %s postbacks", ep.ID, strings.Join(states, ", "))
	if !since.IsZero() {
		summary += fmt.Sprintf(" from %s to %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	run, err := a.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.RecoveryWorkflowID(ep.ID), TaskQueue: a.cfg.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            summary,
	}, workflows.RecoveryWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		return recoveryResponse{}, recoveryConflict(ep.ID)
	case err != nil:
		return recoveryResponse{}, err
	}
	return recoveryResponse{WorkflowID: run.GetID(), Messages: count.GetCount(), States: states, Since: since, Until: until}, nil
}
