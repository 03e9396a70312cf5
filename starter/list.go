package starter

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// List page sizes of GET /v1/messages.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// listItem is one message of GET /v1/messages, read from its search attributes.
type listItem struct {
	DispatchID     string    `json:"dispatch_id"`
	Status         string    `json:"status"`
	ExternalSendID string    `json:"external_send_id,omitempty"`
	CampaignAPIID  string    `json:"campaign_api_id,omitempty"`
	Workspace      string    `json:"workspace,omitempty"`
	ESP            string    `json:"esp,omitempty"`
	FallbackState  string    `json:"fallback_state,omitempty"`
	StartedAt      time.Time `json:"started_at"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
}

type listResponse struct {
	Messages      []listItem `json:"messages"`
	NextPageToken string     `json:"next_page_token,omitempty"`
}

// listFilters are the query parameters of GET /v1/messages and the search
// attribute each one matches.
var listFilters = []struct {
	param string
	attr  string
}{
	{"status", workflows.SearchDispatchStatus.GetName()},
	{"external_send_id", workflows.SearchExternalSendID.GetName()},
	{"campaign_api_id", workflows.SearchCampaignAPIID.GetName()},
	{"workspace", workflows.SearchWorkspace.GetName()},
}

// listMessages answers GET /v1/messages from Temporal visibility: open messages
// first, then the most recently closed, filtered by the search attributes each message keeps current. Visibility is
// eventually consistent: a message appears, and shows a new status, a moment
// (usually well under a second) after the change.
func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	get := q.Get
	if callerOf(r).workspace != "" { // a key lists its own workspace, always
		ws, err := a.workspace(r, q.Get("workspace"), "workspace")
		if err != nil {
			a.fail(w, r, err)
			return
		}
		get = func(k string) string {
			if k == "workspace" {
				return ws
			}
			return q.Get(k)
		}
	}
	query, err := listQuery(get)
	if err != nil {
		a.fail(w, r, err)
		return
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
	out := listResponse{Messages: make([]listItem, 0, len(resp.GetExecutions()))}
	for _, e := range resp.GetExecutions() {
		attrs := e.GetSearchAttributes().GetIndexedFields()
		item := listItem{
			DispatchID:     e.GetExecution().GetWorkflowId(),
			Status:         keyword(attrs, workflows.SearchDispatchStatus.GetName()),
			ExternalSendID: keyword(attrs, workflows.SearchExternalSendID.GetName()),
			CampaignAPIID:  keyword(attrs, workflows.SearchCampaignAPIID.GetName()),
			Workspace:      keyword(attrs, workflows.SearchWorkspace.GetName()),
			ESP:            keyword(attrs, workflows.SearchEspProvider.GetName()),
			FallbackState:  keyword(attrs, workflows.SearchFallbackState.GetName()),
			StartedAt:      e.GetStartTime().AsTime().UTC(),
		}
		if ct := e.GetCloseTime(); ct != nil {
			item.ClosedAt = ct.AsTime().UTC()
		}
		out.Messages = append(out.Messages, item)
	}
	if len(resp.GetNextPageToken()) > 0 {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(resp.GetNextPageToken())
	}
	writeJSON(w, http.StatusOK, out)
}

// listQuery builds the visibility query of the list's filters. Values are quoted;
// a value holding a quote or a backslash is refused rather than escaped, so no
// filter can change the query's meaning.
func listQuery(get func(string) string) (string, error) {
	clauses := []string{fmt.Sprintf("WorkflowType = '%s'", workflows.MessageWorkflow)}
	for _, f := range listFilters {
		v := get(f.param)
		if v == "" {
			continue
		}
		if f.param == "status" && message.Status(v).Rank() < 0 {
			return "", badRequest(fmt.Sprintf("status: unknown status %q", v))
		}
		if f.param == "status" && workflows.VisibleStatus(message.Status(v)) != message.Status(v) {
			return "", badRequest(fmt.Sprintf("status: %s is listed as %s (the list reads visibility, which keeps %s until the outcome); filter by status=%s",
				v, workflows.VisibleStatus(message.Status(v)), workflows.VisibleStatus(message.Status(v)), workflows.VisibleStatus(message.Status(v))))
		}
		if strings.ContainsAny(v, `'"\`) || len(v) > 256 {
			return "", badRequest(f.param + `: must be at most 256 characters without quotes or backslashes`)
		}
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", f.attr, v))
	}
	// No ORDER BY: SQL visibility stores (SQLite, PostgreSQL, MySQL) refuse it;
	// every store lists open executions first, then by close time, newest first.
	return strings.Join(clauses, " AND "), nil
}

func keyword(attrs map[string]*commonpb.Payload, name string) string {
	p, ok := attrs[name]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// resolveByMessageID finds the message an ESP event names only by the provider's
// message id, through the EspMessageId search attribute the workflow sets when the
// ESP accepts the message. Visibility lags a moment behind the workflow: resolve
// looks the misses of a whole request up once more after resolveRetryAfter.
// resolveRetryAfter is the wait before a request's missed message ids are looked up again.
const resolveRetryAfter = time.Second

func (a *API) resolveByMessageID(ctx context.Context, provider, messageID string) (string, bool, error) {
	if messageID == "" || strings.ContainsAny(messageID+provider, `'"\`) || len(messageID) > 512 {
		return "", false, nil
	}
	resp, err := a.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: a.cfg.Temporal.Namespace, PageSize: 1,
		Query: fmt.Sprintf("WorkflowType = '%s' AND %s = '%s' AND %s = '%s'", workflows.MessageWorkflow,
			workflows.SearchEspProvider.GetName(), provider, workflows.SearchEspMessageID.GetName(), messageID),
	})
	if err != nil {
		return "", false, err
	}
	if len(resp.GetExecutions()) == 0 {
		return "", false, nil
	}
	return resp.GetExecutions()[0].GetExecution().GetWorkflowId(), true, nil
}
