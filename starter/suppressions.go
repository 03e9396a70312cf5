package starter

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/suppression"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// suppressionView is a suppressed address as the API shows it: its id (the
// keyed hash: the address itself is stored nowhere), the masked address, and
// the entry that suppressed it (cause, provider, dispatch_id, at). A GET adds
// the count and the latest entries; a DELETE, when and why it was lifted.
type suppressionView struct {
	ID        string `json:"id"`
	Workspace string `json:"workspace"`
	Hint      string `json:"address_hint"`
	suppression.Entry
	Since   time.Time           `json:"since,omitzero"`
	Count   int                 `json:"count,omitempty"`
	Entries []suppression.Entry `json:"entries,omitempty"`
	Lifted  *suppression.Lift   `json:"lifted,omitempty"`
}

type suppressionList struct {
	Suppressions  []suppressionView `json:"suppressions"`
	NextPageToken string            `json:"next_page_token,omitempty"`
}

// errSuppressionOff answers the suppression routes of an API without
// DISPATCHFLOW_SUPPRESSION_KEY.
var errSuppressionOff = &httpError{http.StatusServiceUnavailable,
	"no suppression list: DISPATCHFLOW_SUPPRESSION_KEY is not set (the same on the API and the workers)"}

// suppressionTarget resolves the {address} of a request to its workspace
// (the key's; with auth off, ?workspace= or default) and suppression id. The
// path takes the address, in any case, or the id the list shows: the id keeps
// the address out of URLs, which proxies log.
func (a *API) suppressionTarget(r *http.Request) (ws, id string, err error) {
	if a.cfg.SuppressionKey == "" {
		return "", "", errSuppressionOff
	}
	if ws, err = a.workspace(r, r.URL.Query().Get("workspace"), "workspace"); err != nil {
		return "", "", err
	}
	if !message.ValidWorkspace(ws) {
		return "", "", badRequest("workspace: must be 1-64 letters, digits, '-', '_' or '.'")
	}
	v := r.PathValue("address")
	if suppression.ValidID(v) {
		return ws, v, nil
	}
	addr, err := suppression.Normalize(v)
	if err != nil {
		return "", "", badRequest("address: " + err.Error() + " (an email address, or the 64-hex id of a suppression)")
	}
	return ws, suppression.ID([]byte(a.cfg.SuppressionKey), ws, addr), nil
}

// redacted is r with the address left out of its path: what a.fail logs.
func redacted(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v1/suppressions/{address}"
	return r2
}

// getSuppression is GET /v1/suppressions/{address}: a point read of the
// address's workflow (a query: no visibility lag). 404 when it is not
// suppressed in the caller's workspace (another workspace's suppression of it
// is another workflow, which this key never names).
func (a *API) getSuppression(w http.ResponseWriter, r *http.Request) {
	ws, id, err := a.suppressionTarget(r)
	if err != nil {
		a.fail(w, redacted(r), err)
		return
	}
	resp, err := a.client.QueryWorkflow(r.Context(), suppression.WorkflowID(ws, id), "", suppression.QueryState)
	if err != nil {
		a.fail(w, redacted(r), notFoundOr(err, notSuppressed(ws)))
		return
	}
	var st suppression.State
	if err := resp.Get(&st); err != nil {
		a.fail(w, redacted(r), err)
		return
	}
	if st.Lifted != nil || len(st.Entries) == 0 {
		a.fail(w, redacted(r), notFound(notSuppressed(ws)))
		return
	}
	writeJSON(w, http.StatusOK, stateView(id, st))
}

func notSuppressed(ws string) string {
	return fmt.Sprintf("address not suppressed in workspace %s", ws)
}

func stateView(id string, st suppression.State) suppressionView {
	v := suppressionView{ID: id, Workspace: st.Workspace, Hint: st.Hint, Since: st.Since.UTC(), Count: st.Count,
		Entries: st.Entries, Lifted: st.Lifted}
	if len(st.Entries) > 0 {
		v.Entry = st.Entries[0]
	}
	return v
}

// suppressionRemoveBody is the optional body of DELETE /v1/suppressions/{address}.
type suppressionRemoveBody struct {
	// Reason is the operator's, kept in the lifted suppression and the audit line.
	Reason string `json:"reason,omitempty"`
}

// deleteSuppression is DELETE /v1/suppressions/{address}: the suppression is
// lifted and its workflow completes before the answer, so a send accepted
// after the answer goes out. 404 when the address is not suppressed.
func (a *API) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	var body suppressionRemoveBody
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if len(body.Reason) > suppression.MaxNoteLength {
		a.fail(w, r, badRequest(fmt.Sprintf("reason: longer than %d bytes", suppression.MaxNoteLength)))
		return
	}
	ws, id, err := a.suppressionTarget(r)
	if err != nil {
		a.fail(w, redacted(r), err)
		return
	}
	h, err := a.client.UpdateWorkflow(r.Context(), client.UpdateWorkflowOptions{
		WorkflowID: suppression.WorkflowID(ws, id), UpdateName: suppression.UpdateRemove,
		Args: []any{suppression.RemoveInput{Reason: body.Reason}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st suppression.State
	if err == nil {
		err = h.Get(r.Context(), &st)
	}
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrSuppressionLifted:
		err = notFound(notSuppressed(ws))
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrSuppressionInvalid:
		err = badRequest(appErr.Message())
	}
	if err != nil {
		a.fail(w, redacted(r), notFoundOr(err, notSuppressed(ws)))
		return
	}
	a.audit(r, "suppression.remove", id, "suppression_workspace", ws, "reason", body.Reason)
	writeJSON(w, http.StatusOK, stateView(id, st))
}

// listSuppressions is GET /v1/suppressions: the suppressed addresses of the
// caller's workspace (with auth off, of ?workspace=, or of all), most recent
// first, from Temporal's visibility store: about a second behind. The memo
// each suppression was started with holds its first entry, so no workflow is
// queried.
func (a *API) listSuppressions(w http.ResponseWriter, r *http.Request) {
	if a.cfg.SuppressionKey == "" {
		a.fail(w, r, errSuppressionOff)
		return
	}
	q := r.URL.Query()
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", suppression.WorkflowType)
	ws := q.Get("workspace")
	if callerOf(r).workspace != "" { // a key lists its own workspace, always
		var err error
		if ws, err = a.workspace(r, ws, "workspace"); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if ws != "" {
		if !message.ValidWorkspace(ws) { // no quote can reach the query
			a.fail(w, r, badRequest("workspace: must be 1-64 letters, digits, '-', '_' or '.'"))
			return
		}
		query += fmt.Sprintf(" AND %s = '%s'", workflows.SearchWorkspace.GetName(), ws)
	}
	size := defaultPageSize
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			a.fail(w, r, badRequest(fmt.Sprintf("page_size: must be a number from 1 to %d", maxPageSize)))
			return
		}
		size = n
	}
	var token []byte
	if s := q.Get("page_token"); s != "" {
		var err error
		if token, err = base64.RawURLEncoding.DecodeString(s); err != nil {
			a.fail(w, r, badRequest("page_token: not a token this API returned"))
			return
		}
	}
	resp, err := a.client.ListWorkflow(r.Context(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: a.cfg.Temporal.Namespace, PageSize: int32(size), NextPageToken: token, Query: query,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := suppressionList{Suppressions: make([]suppressionView, 0, len(resp.GetExecutions()))}
	for _, e := range resp.GetExecutions() {
		if e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			continue // visibility lags: lifted a moment ago
		}
		wfID := e.GetExecution().GetWorkflowId()
		v := suppressionView{Workspace: keyword(e.GetSearchAttributes().GetIndexedFields(), workflows.SearchWorkspace.GetName()),
			Since: e.GetStartTime().AsTime().UTC()}
		if len(wfID) >= suppression.IDLength {
			v.ID = wfID[len(wfID)-suppression.IDLength:]
		}
		if v.Workspace == "" || suppression.WorkflowID(v.Workspace, v.ID) != wfID {
			continue // not one of ours (a workflow of this type started by hand)
		}
		var sum suppression.Summary
		if p := e.GetMemo().GetFields()[suppression.MemoSummary]; p != nil {
			if err := a.dataConverter.FromPayload(p, &sum); err != nil {
				a.logger.Warn("suppression memo unreadable", "id", v.ID, "error", err)
			}
		}
		v.Hint, v.Entry = sum.Hint, sum.Entry
		out.Suppressions = append(out.Suppressions, v)
	}
	if len(resp.GetNextPageToken()) > 0 {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(resp.GetNextPageToken())
	}
	writeJSON(w, http.StatusOK, out)
}
