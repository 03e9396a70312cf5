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
// postbackURL, or every endpoint of the workspace.
//
// A registered endpoint's credentials go only to its own URL: with
// DISPATCHFLOW_ENDPOINTS_FILE, a postback_url must be covered by one of the
// workspace's endpoints (same origin, a path below its URL) and is sent with that
// endpoint's settings; without the file (development), it is ad hoc: no
// credentials, signed with the workspace's own signing secret.
func (a *API) routes(ws, postbackURL string) ([]workflows.Route, error) {
	if postbackURL != "" {
		if ep, ok := a.endpoints.Match(ws, postbackURL); ok {
			return []workflows.Route{{EndpointID: ep.ID, URL: postbackURL, Label: ep.Label(), Events: routeEvents(ep)}}, nil
		}
		if a.endpoints.Registered() {
			return nil, badRequest(fmt.Sprintf("postback_url: not below the URL of any postback endpoint of workspace %q "+
				"(register it in DISPATCHFLOW_ENDPOINTS_FILE, or leave postback_url out to use the workspace's endpoints)", ws))
		}
		ep := a.endpoints.AdHoc(ws, postbackURL)
		if a.cfg.PostbackFallbackOutcomes {
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
	var in workflows.ReplayInput
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if err := in.Validate(); err != nil {
		a.fail(w, r, badRequest(err.Error()))
		return
	}
	if err := a.ownMessage(r, id); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.limitMessage(w, r, "replay", id, replayLimit) {
		return
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
	a.audit(r, "postbacks.replay", id, "replayed", res.Replayed, "status", in.Status, "endpoint", in.Endpoint)
	writeJSON(w, http.StatusAccepted, res)
}

// testPostbackRequest is the body of POST /v1/postbacks/test.
type testPostbackRequest struct {
	// EndpointID of a configured endpoint of the key's workspace, or URL (ad hoc:
	// unsigned, without credentials).
	EndpointID string `json:"endpoint_id,omitempty"`
	URL        string `json:"url,omitempty"`
	// Workspace must be the key's (403 otherwise); it may be left out.
	Workspace string `json:"workspace,omitempty"`
	// Status of the sample postback. Defaults to "delivered".
	Status string `json:"status,omitempty"`
}

type testPostbackResponse struct {
	Endpoint   string `json:"endpoint"`
	WebhookID  string `json:"webhook_id"`
	OK         bool   `json:"ok"`
	StatusCode int    `json:"status_code,omitempty"`
	LatencyMS  int64  `json:"latency_ms"`
	// Body and Error are shown for registered endpoints only: an ad-hoc URL's
	// answer is not relayed (the API would otherwise be a proxy into any network).
	Body  string `json:"body,omitempty"`
	Error string `json:"error,omitempty"`
}

// testPostback is POST /v1/postbacks/test, Braze's "test the postback" step: a
// sample postback goes to the endpoint now, once, and the answer says what the
// receiver said. A registered endpoint gets it signed and authenticated as its
// real postbacks; an ad-hoc URL gets it unsigned and without credentials, and
// the answer shows only the status code and latency. 200 whatever the receiver
// answered; ok tells if it was 2xx.
func (a *API) testPostback(w http.ResponseWriter, r *http.Request) {
	var in testPostbackRequest
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	ws, err := a.workspace(r, in.Workspace, "workspace")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if in.Status == "" {
		in.Status = string(message.StatusDelivered)
	}
	var ep postback.Endpoint
	adHoc := false
	switch {
	case in.EndpointID != "" && in.URL != "":
		a.fail(w, r, badRequest("endpoint_id, url: give one, not both"))
		return
	case in.EndpointID != "":
		var ok bool
		if ep, ok = a.endpoints.Get(in.EndpointID); !ok || !owns(r, ep.Workspace) {
			a.fail(w, r, notFound(fmt.Sprintf("endpoint %q is not configured", in.EndpointID)))
			return
		}
	case in.URL != "":
		if err := message.CheckEndpointURL(in.URL); err != nil {
			a.fail(w, r, badRequest("url: "+err.Error()))
			return
		}
		ep, adHoc = a.endpoints.AdHoc(ws, in.URL), true
		ep.Secrets = nil // a sample signed with the workspace's secret would be a signature oracle
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
	n := postback.Notification{Postback: body, Recipient: "test@example.com", Provider: a.cfg.PrimaryESP(), ReceivedAt: now, Subject: "dispatchflow test postback"}
	webhookID := "msg_test_" + id
	att := postback.Deliver(r.Context(), a.postbackHTTP, ep, n, webhookID, now)
	a.audit(r, "postbacks.test", ep.Label(), "status_code", att.StatusCode, "ad_hoc", adHoc)
	out := testPostbackResponse{Endpoint: ep.Label(), WebhookID: webhookID, OK: att.OK(), StatusCode: att.StatusCode,
		LatencyMS: att.Duration.Milliseconds()}
	if !adHoc {
		out.Body, out.Error = att.ResponseBody, att.Error
	}
	writeJSON(w, http.StatusOK, out)
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
		if owns(r, ep.Workspace) {
			out.Endpoints = append(out.Endpoints, a.endpointView(ctx, ep))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type switchRequest struct {
	Reason string `json:"reason,omitempty"`
	// ReplayHeld (enable only) starts a recovery of the postbacks held while
	// the endpoint was disabled.
	ReplayHeld bool `json:"replay_held,omitempty"`
}

// switchResponse is the answer of enable and disable: the endpoint, and the
// recovery an enable with replay_held started.
type switchResponse struct {
	endpointView
	Recovery *recoveryResponse `json:"recovery,omitempty"`
}

// enableEndpoint is POST /v1/endpoints/{id}/enable. Postbacks held while the
// endpoint was disabled are sent by a recovery: with {"replay_held": true}, or
// POST /v1/endpoints/{id}/replay, or message by message (POST …/postbacks/replay).
func (a *API) enableEndpoint(w http.ResponseWriter, r *http.Request) { a.switchEndpoint(w, r, true) }

// disableEndpoint is POST /v1/endpoints/{id}/disable: its postbacks are held.
func (a *API) disableEndpoint(w http.ResponseWriter, r *http.Request) { a.switchEndpoint(w, r, false) }

func (a *API) switchEndpoint(w http.ResponseWriter, r *http.Request, enable bool) {
	id := r.PathValue("id")
	ep, ok := a.endpoints.Get(id)
	if !ok || !owns(r, ep.Workspace) {
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
	if in.ReplayHeld {
		if !enable {
			a.fail(w, r, badRequest("replay_held: only an enable replays held postbacks"))
			return
		}
		// Checked before the switch, so that a refused recovery changes nothing.
		if err := a.recoveryRunning(r.Context(), id); err != nil {
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
	action := "endpoint.disable"
	if enable {
		action = "endpoint.enable"
	}
	a.audit(r, action, id, "reason", in.Reason, "replay_held", in.ReplayHeld)
	var rec *recoveryResponse
	if in.ReplayHeld {
		res, err := a.startRecovery(r.Context(), ep, []string{workflows.PostbackHeld}, time.Time{}, time.Time{})
		if err != nil {
			a.fail(w, r, fmt.Errorf("endpoint %s enabled, but the replay of its held postbacks did not start: %w", id, err))
			return
		}
		a.audit(r, "endpoint.replay", id, "states", workflows.PostbackHeld, "messages", res.Messages, "workflow_id", res.WorkflowID)
		rec = &res
	}
	// Signals are applied asynchronously: answer with the state they lead to.
	v := a.endpointView(r.Context(), ep)
	v.Enabled = enable
	if enable {
		v.DisabledReason, v.DisabledAt, v.ConsecutiveFailures, v.FailingSince = "", time.Time{}, 0, time.Time{}
	} else if v.DisabledReason == "" {
		v.DisabledReason = in.Reason
	}
	writeJSON(w, http.StatusOK, switchResponse{endpointView: v, Recovery: rec})
}
