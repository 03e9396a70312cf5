package starter

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// routes resolves where the postbacks of a message in workspace ws go: its own
// postbackURL (with the workspace's settings), or every endpoint of the workspace.
func (a *API) routes(ws, postbackURL string) ([]workflows.Route, error) {
	if postbackURL != "" {
		ep := a.endpoints.Inherit(ws, postbackURL)
		if a.cfg.EndpointsFile == "" && a.cfg.PostbackFallbackOutcomes {
			ep.FallbackOutcomes = true // without a file, the variable speaks for every URL
		}
		return []workflows.Route{{URL: postbackURL, Label: ep.Label(), Events: routeEvents(ep)}}, nil
	}
	eps := a.endpoints.ForWorkspace(ws)
	if len(eps) == 0 && a.endpoints.Len() > 0 && ws != message.DefaultWorkspace {
		return nil, badRequest(fmt.Sprintf("workspace: no postback endpoint is configured for workspace %q (DISPATCHFLOW_ENDPOINTS_FILE)", ws))
	}
	out := make([]workflows.Route, 0, len(eps))
	for _, ep := range eps {
		out = append(out, workflows.Route{EndpointID: ep.ID, Label: ep.Label(), Events: routeEvents(ep)})
	}
	return out, nil
}

// routeEvents are the event names an endpoint receives: those it subscribes to,
// and the fallback outcomes when it asks for them.
func routeEvents(ep postback.Endpoint) []string {
	events := slices.Clone(ep.Events)
	if ep.FallbackOutcomes {
		for _, s := range []message.Status{message.StatusFallbackSent, message.StatusFallbackFailed} {
			if !slices.Contains(events, string(s)) {
				events = append(events, string(s))
			}
		}
	}
	return events
}

// replayPostbacks is POST /v1/messages/{dispatch_id}/postbacks/replay: the
// message's finished postbacks (all, or those of one status or endpoint) are sent
// again with fresh attempts and their original webhook-id.
func (a *API) replayPostbacks(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dispatch_id")
	if !message.ValidDispatchID(id) {
		a.fail(w, r, notFound(fmt.Sprintf("message %q not found: a dispatch_id is 32 lowercase hex characters", id)))
		return
	}
	var in workflows.ReplayInput
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	h, err := a.client.UpdateWorkflow(r.Context(), client.UpdateWorkflowOptions{
		WorkflowID: workflows.WorkflowID(id), UpdateName: workflows.UpdateReplayPostbacks,
		Args: []any{in}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		a.fail(w, r, notFoundOr(err, fmt.Sprintf("message %s not found, or its tracking window has ended", id)))
		return
	}
	var res workflows.ReplayResult
	if err := h.Get(r.Context(), &res); err != nil {
		a.fail(w, r, err)
		return
	}
	a.logger.Info("postbacks replayed", "dispatch_id", id, "replayed", res.Replayed, "status", in.Status, "endpoint", in.Endpoint)
	writeJSON(w, http.StatusAccepted, res)
}

// testPostbackRequest is the body of POST /v1/postbacks/test.
type testPostbackRequest struct {
	// EndpointID of a configured endpoint, or URL (with Workspace's settings).
	EndpointID string `json:"endpoint_id,omitempty"`
	URL        string `json:"url,omitempty"`
	Workspace  string `json:"workspace,omitempty"`
	// Status of the sample postback. Defaults to "delivered".
	Status string `json:"status,omitempty"`
}

type testPostbackResponse struct {
	Endpoint   string `json:"endpoint"`
	WebhookID  string `json:"webhook_id"`
	OK         bool   `json:"ok"`
	StatusCode int    `json:"status_code,omitempty"`
	LatencyMS  int64  `json:"latency_ms"`
	Body       string `json:"body,omitempty"`
	Error      string `json:"error,omitempty"`
}

// testPostback is POST /v1/postbacks/test, Braze's "test the postback" step: a
// signed sample postback goes to the endpoint now, once, and the answer says what
// the receiver said. 200 whatever the receiver answered; ok tells if it was 2xx.
func (a *API) testPostback(w http.ResponseWriter, r *http.Request) {
	var in testPostbackRequest
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	if in.Workspace == "" {
		in.Workspace = message.DefaultWorkspace
	}
	if in.Status == "" {
		in.Status = string(message.StatusDelivered)
	}
	var ep postback.Endpoint
	switch {
	case in.EndpointID != "" && in.URL != "":
		a.fail(w, r, badRequest("endpoint_id, url: give one, not both"))
		return
	case in.EndpointID != "":
		var ok bool
		if ep, ok = a.endpoints.Get(in.EndpointID); !ok {
			a.fail(w, r, notFound(fmt.Sprintf("endpoint %q is not configured", in.EndpointID)))
			return
		}
	case in.URL != "":
		if err := message.CheckEndpointURL(in.URL); err != nil {
			a.fail(w, r, badRequest("url: "+err.Error()))
			return
		}
		ep = a.endpoints.Inherit(in.Workspace, in.URL)
	default:
		a.fail(w, r, badRequest("endpoint_id or url: one is required"))
		return
	}
	status := message.Status(in.Status)
	if status.Rank() <= 0 {
		a.fail(w, r, badRequest(fmt.Sprintf("status: %q is not one of sent, processed, delivered, bounced, aborted", in.Status)))
		return
	}
	now := a.now().UTC()
	id := message.NewDispatchID()
	reason := ""
	if status.Final() {
		reason = "sample reason: this is a test postback"
	}
	body := message.NewPostback(message.Identity{DispatchID: id, ExternalSendID: "test-postback", CampaignAPIID: "test"},
		status, now, reason, message.SendTimes{ReceivedAt: now, EnqueuedAt: now, ExecutedAt: now, SentAt: now})
	n := postback.Notification{Postback: body, Recipient: "test@example.com", Provider: a.cfg.ESP, ReceivedAt: now, Subject: "dispatchflow test postback"}
	webhookID := "msg_test_" + id
	att := postback.Deliver(r.Context(), a.postbackHTTP, ep, n, webhookID, now)
	writeJSON(w, http.StatusOK, testPostbackResponse{
		Endpoint: ep.Label(), WebhookID: webhookID, OK: att.OK(), StatusCode: att.StatusCode,
		LatencyMS: att.Duration.Milliseconds(), Body: att.ResponseBody, Error: att.Error,
	})
}

// endpointView is one endpoint of GET /v1/endpoints: its settings without secrets,
// and its state.
type endpointView struct {
	ID        string   `json:"id"`
	Workspace string   `json:"workspace"`
	URL       string   `json:"url"`
	Format    string   `json:"format"`
	Auth      string   `json:"auth"`
	Signed    bool     `json:"signed"`
	Events    []string `json:"events"`
	workflows.EndpointState
	// StateError says why the state could not be read (the rest is then unknown).
	StateError string `json:"state_error,omitempty"`
}

func (a *API) endpointView(ctx context.Context, ep postback.Endpoint) endpointView {
	v := endpointView{ID: ep.ID, Workspace: ep.Workspace, URL: ep.URL, Format: ep.Format, Auth: ep.Auth.Type,
		Signed: len(ep.Secrets) > 0, Events: routeEvents(ep)}
	if v.Auth == "" {
		v.Auth = "none"
	}
	st, err := a.health.Get(ctx, ep.ID)
	if err != nil {
		v.StateError = err.Error()
	}
	v.EndpointState = st
	return v
}

// listEndpoints is GET /v1/endpoints: every configured endpoint with its health.
func (a *API) listEndpoints(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out := struct {
		Endpoints []endpointView `json:"endpoints"`
	}{Endpoints: []endpointView{}}
	for _, ep := range a.endpoints.All() {
		out.Endpoints = append(out.Endpoints, a.endpointView(ctx, ep))
	}
	writeJSON(w, http.StatusOK, out)
}

type switchRequest struct {
	Reason string `json:"reason,omitempty"`
}

// enableEndpoint is POST /v1/endpoints/{id}/enable. Postbacks held while the
// endpoint was disabled are sent by replaying them (POST …/postbacks/replay).
func (a *API) enableEndpoint(w http.ResponseWriter, r *http.Request) { a.switchEndpoint(w, r, true) }

// disableEndpoint is POST /v1/endpoints/{id}/disable: its postbacks are held.
func (a *API) disableEndpoint(w http.ResponseWriter, r *http.Request) { a.switchEndpoint(w, r, false) }

func (a *API) switchEndpoint(w http.ResponseWriter, r *http.Request, enable bool) {
	id := r.PathValue("id")
	ep, ok := a.endpoints.Get(id)
	if !ok {
		a.fail(w, r, notFound(fmt.Sprintf("endpoint %q is not configured", id)))
		return
	}
	var in switchRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	var err error
	if enable {
		err = a.health.Enable(r.Context(), id, in.Reason)
	} else {
		if in.Reason == "" {
			in.Reason = "disabled by an operator"
		}
		err = a.health.Disable(r.Context(), id, in.Reason)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.logger.Info("endpoint switched", "endpoint", id, "enabled", enable, "reason", in.Reason)
	// Signals are applied asynchronously: answer with the state they lead to.
	v := a.endpointView(r.Context(), ep)
	v.Enabled = enable
	if enable {
		v.DisabledReason, v.DisabledAt, v.ConsecutiveFailures = "", time.Time{}, 0
	} else if v.DisabledReason == "" {
		v.DisabledReason = in.Reason
	}
	writeJSON(w, http.StatusOK, v)
}
