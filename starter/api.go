// Package starter is dispatchflow's HTTP API: it starts a Message workflow per send,
// turns ESP webhooks into signals, and answers a message's state from its query.
package starter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/health"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/metrics"
	"github.com/dispatchflow/dispatchflow/netguard"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// MaxBodyBytes bounds every request body; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// MaxEventsPerRequest bounds the events of one intake request (413 beyond):
// far above what the providers batch (SendGrid's batches stay well under it).
const MaxEventsPerRequest = 1000

// Timeouts of the HTTP servers: a request's headers within ReadHeaderTimeout,
// its body within ReadTimeout, its answer within WriteTimeout (above the
// intake's resolve retry and Temporal's own deadlines); an idle keep-alive
// connection is closed after IdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// signalConcurrency bounds the signals one webhook request sends at once.
const signalConcurrency = 16

// API serves the HTTP API. Create it with New.
type API struct {
	client client.Client
	cfg    config.Config
	logger *slog.Logger
	now    func() time.Time
	recent *recentKeys
	inbox  *Inbox

	// normalizers turn POST /v1/events/{provider} bodies into events, by provider.
	normalizers map[string]intake.Normalizer
	// resolveMessageID finds the dispatch_id of an event that names only the
	// provider's message id. Nil: such events are unmatched.
	resolveMessageID func(ctx context.Context, provider, messageID string) (dispatchID string, ok bool, err error)

	// endpoints are the postback endpoints (DISPATCHFLOW_ENDPOINTS_FILE, or the
	// one of DISPATCHFLOW_POSTBACK_URL); health their switches and health.
	endpoints *postback.Set
	health    *health.Store
	// postbackHTTP sends test postbacks, like the worker's (SSRF guard included).
	postbackHTTP *retryablehttp.Client

	// keys authenticate the management routes (nil: DISPATCHFLOW_AUTH=off).
	keys *auth.Keys
	// limiter holds the rate limits: per key, and per message for admin actions.
	limiter *auth.Limiter
	// keysSeen are the keys used since start (their first use is audited).
	keysSeen seenKeys
	// idSecret keys the dispatch_ids derived from external_send_id.
	idSecret []byte
	// dataConverter decodes the request digest kept in a message's memo.
	dataConverter converter.DataConverter
	// keyring is the payload keys (nil: payloads in clear); the codec server
	// (DISPATCHFLOW_CODEC_ADDR) encodes and decodes with it.
	keyring *codec.Keyring
	// codecKeys authenticate the codec server's callers (nil:
	// DISPATCHFLOW_CODEC_AUTH=off, or no codec server).
	codecKeys *auth.Keys
	// trustedProxies may tell the client's address in X-Forwarded-For
	// (DISPATCHFLOW_TRUSTED_PROXIES).
	trustedProxies []netip.Prefix
}

// New returns the API over Temporal client c.
func New(c client.Client, cfg config.Config, logger *slog.Logger) *API {
	a := &API{client: c, cfg: cfg, logger: logger, now: time.Now, recent: newRecentKeys(100_000)}
	norms, err := intake.New(cfg.Intake(true), nil) // nil: intake's own client for SNS certificates
	if err != nil {
		// config.ValidateAPI builds the same normalizers and refuses to start on this error.
		panic(fmt.Sprintf("starter: webhook configuration (config.ValidateAPI checks it): %v", err))
	}
	a.normalizers = norms
	a.resolveMessageID = a.resolveByMessageID
	eps, err := cfg.Endpoints()
	if err != nil {
		panic(fmt.Sprintf("starter: endpoints (config.Load checks them): %v", err))
	}
	a.endpoints = eps
	if cfg.Auth != "off" {
		if a.keys, err = cfg.Keys(); err != nil || a.keys == nil {
			panic(fmt.Sprintf("starter: API keys (config.ValidateAPI checks them): %v", err))
		}
	}
	if len(cfg.IDSecret) < config.MinIDSecretLength {
		panic("starter: DISPATCHFLOW_ID_SECRET (config.ValidateAPI checks it) is missing or short")
	}
	a.idSecret = []byte(cfg.IDSecret)
	if a.dataConverter, a.keyring, err = codec.ForKeys(cfg.PayloadKeyList()); err != nil {
		panic(fmt.Sprintf("starter: DISPATCHFLOW_PAYLOAD_KEY (config.Load checks it): %v", err))
	}
	if cfg.CodecAddr != "" && cfg.CodecAuth != "off" {
		if a.codecKeys = a.keys; a.codecKeys == nil { // DISPATCHFLOW_AUTH=off: the codec's auth is its own
			if a.codecKeys, err = cfg.Keys(); err != nil || a.codecKeys == nil {
				panic(fmt.Sprintf("starter: API keys of the codec server (config.ValidateAPI checks them): %v", err))
			}
		}
	}
	a.limiter = auth.NewLimiter(maxLimiterEntries)
	a.trustedProxies, _ = netguard.ParseNetworks(cfg.TrustedProxies) // config.Load checks them
	a.health = health.New(c, cfg.TaskQueue, logger)
	a.postbackHTTP = channel.NewHTTPClient(cfg.PostbackTimeout, cfg.Guard())
	if cfg.DevInbox {
		a.inbox = &Inbox{}
	}
	return a
}

// Route is one operation of the API. Routes is the one list the router is built
// from and the OpenAPI document is checked against.
type Route struct {
	Method  string
	Pattern string // net/http ServeMux pattern path: "/v1/messages/{dispatch_id}"
	// Scope is what an API key needs to call the route. Empty: the route takes no
	// key — the ESP intake (each provider's own authentication), health and the
	// OpenAPI document.
	Scope auth.Scope
	// Intake routes face the ESPs: on DISPATCHFLOW_INTAKE_ADDR when it is set.
	Intake  bool
	Handler http.HandlerFunc
}

// Routes lists the API's operations (without /dev/inbox, a development aid).
func (a *API) Routes() []Route {
	return []Route{
		{Method: http.MethodPost, Pattern: "/v1/messages", Scope: auth.ScopeMessagesSend, Handler: a.sendMessage},
		{Method: http.MethodGet, Pattern: "/v1/messages", Scope: auth.ScopeMessagesRead, Handler: a.listMessages},
		{Method: http.MethodGet, Pattern: "/v1/messages/{dispatch_id}", Scope: auth.ScopeMessagesRead, Handler: a.getMessage},
		{Method: http.MethodPost, Pattern: "/v1/messages/{dispatch_id}/postbacks/replay", Scope: auth.ScopePostbacksReplay, Handler: a.replayPostbacks},
		{Method: http.MethodPost, Pattern: "/v1/postbacks/test", Scope: auth.ScopeEndpointsAdmin, Handler: a.testPostback},
		{Method: http.MethodGet, Pattern: "/v1/endpoints", Scope: auth.ScopeEndpointsAdmin, Handler: a.listEndpoints},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/enable", Scope: auth.ScopeEndpointsAdmin, Handler: a.enableEndpoint},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/disable", Scope: auth.ScopeEndpointsAdmin, Handler: a.disableEndpoint},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/replay", Scope: auth.ScopeEndpointsAdmin, Handler: a.replayEndpoint},
		// The providers' circuits: operational state like the endpoints' health.
		{Method: http.MethodGet, Pattern: "/v1/providers", Scope: auth.ScopeEndpointsAdmin, Handler: a.listProviders},
		// The suppression list: read with messages:read; lifting a suppression
		// sends to a complainer again, which takes suppressions:write.
		{Method: http.MethodGet, Pattern: "/v1/suppressions", Scope: auth.ScopeMessagesRead, Handler: a.listSuppressions},
		{Method: http.MethodGet, Pattern: "/v1/suppressions/{address}", Scope: auth.ScopeMessagesRead, Handler: a.getSuppression},
		{Method: http.MethodDelete, Pattern: "/v1/suppressions/{address}", Scope: auth.ScopeSuppressionsWrite, Handler: a.deleteSuppression},
		// The app that sent a message may cancel or retime its fallback; changing
		// its steps (who is reached, where) needs fallback:write as well.
		{Method: http.MethodPost, Pattern: "/v1/messages/{dispatch_id}/fallback/cancel", Scope: auth.ScopeMessagesSend, Handler: a.cancelFallback},
		{Method: http.MethodPatch, Pattern: "/v1/messages/{dispatch_id}/fallback", Scope: auth.ScopeMessagesSend, Handler: a.patchFallback},
		{Method: http.MethodPost, Pattern: "/v1/events/{provider}", Intake: true, Handler: a.postEvents},
		// Providers that cannot sign nor set a header (Sarbacane) carry their token
		// in the path; the others answer 404 there.
		{Method: http.MethodPost, Pattern: "/v1/events/{provider}/{token}", Intake: true, Handler: a.postEvents},
		{Method: http.MethodPost, Pattern: "/v1/callbacks/twilio", Intake: true, Handler: a.twilioCallback},
		{Method: http.MethodGet, Pattern: "/healthz", Handler: a.healthz},
		{Method: http.MethodGet, Pattern: "/openapi.json", Handler: a.openAPI},
	}
}

// Handler is the API's router: every route, or, with DISPATCHFLOW_INTAKE_ADDR
// set, all but the intake's (see IntakeHandler).
func (a *API) Handler() http.Handler {
	split := a.cfg.IntakeAddr != ""
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		if r.Intake && split {
			continue
		}
		a.handle(mux, r)
	}
	if a.inbox != nil {
		mux.Handle("/dev/inbox", a.inbox)
	}
	return mux
}

// IntakeHandler is the router of DISPATCHFLOW_INTAKE_ADDR: the ESP intake and
// /healthz, nothing else. Nil when the intake shares the API's listener.
func (a *API) IntakeHandler() http.Handler {
	if a.cfg.IntakeAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		if r.Intake || r.Pattern == "/healthz" {
			a.handle(mux, r)
		}
	}
	return mux
}

func (a *API) handle(mux *http.ServeMux, r Route) {
	h := r.Handler
	if r.Scope != "" {
		h = a.guard(r.Scope, h)
	}
	mux.HandleFunc(r.Method+" "+r.Pattern, h)
}

// Serve runs h on addr until ctx is done, then shuts down gracefully. name
// says which listener it is in logs and errors ("API", "intake").
func Serve(ctx context.Context, name, addr string, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout,
		IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info(name+" listening", "addr", addr)
	select {
	case err := <-errc:
		return fmt.Errorf("%s on %s: %w", name, addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// sendResponse is the answer to POST /v1/messages.
type sendResponse struct {
	DispatchID string         `json:"dispatch_id"`
	Status     message.Status `json:"status"`
}

// sendBody is the body of POST /v1/messages.
type sendBody struct {
	message.SendRequest
	Fallback *fallback.Policy `json:"fallback,omitempty"`
}

// MaxSendBytes bounds a send request (POST /v1/messages): larger ones get 413.
// The request travels in the message's workflow history, where Temporal warns
// above 256 KB per payload.
const MaxSendBytes = 256 << 10

func (a *API) sendMessage(w http.ResponseWriter, r *http.Request) {
	var body sendBody
	r.Body = http.MaxBytesReader(w, r.Body, MaxSendBytes)
	if err := decodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	req := body.SendRequest
	ws, err := a.workspace(r, req.Workspace, "workspace")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req.Workspace = ws
	if err := req.Normalize(a.cfg.From); err != nil {
		a.fail(w, r, badRequest(err.Error()))
		return
	}
	if err := a.checkFrom(ws, req.From); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.Fallback != nil {
		p := body.Fallback.WithDefaults(a.cfg.FallbackDefaults())
		if err := p.Validate("fallback", a.cfg.FallbackChannels(), a.fallbackLimits(ws)); err != nil {
			a.fail(w, r, badRequest(err.Error()))
			return
		}
		body.Fallback = &p
	}
	id := message.NewDispatchID()
	if req.ExternalSendID != "" {
		id = message.DispatchIDFor(a.idSecret, ws, req.ExternalSendID)
	}
	routes, err := a.routes(ws, req.PostbackURL)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in := workflows.MessageInput{
		DispatchID: id,
		Request:    req,
		Recipient:  req.Recipient(),
		ReceivedAt: a.now().UTC(),
		Routes:     routes,
		Policy: workflows.Policy{
			TrackingWindow:      a.cfg.TrackingWindow,
			SendRetryWindow:     a.cfg.SendRetryWindow,
			FallbackRetryWindow: a.cfg.FallbackRetryWindow,
			MaxHold:             a.cfg.PostbackMaxHold,
		},
		Fallback:      body.Fallback,
		SearchVersion: workflows.SearchVersionCurrent,
	}
	a.withFailover(&in)
	digest := a.requestDigest(req, body.Fallback)
	opts := client.StartWorkflowOptions{
		ID:        workflows.WorkflowID(id),
		TaskQueue: a.cfg.TaskQueue,
		// A dispatch_id is sent once, ever: a retried request, even after the
		// workflow completed, must not send a second email.
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// Ignored unless a worker for this task queue runs on the same client.
		EnableEagerStart: a.cfg.EagerStart,
		StaticSummary:    summary(req),
		StaticDetails:    a.details(in),
		// Set with the start: no history event of their own.
		TypedSearchAttributes: workflows.StartSearchAttributes(in, a.cfg.PrimaryESP()),
		// What a repeated external_send_id is compared with (keyed: no content
		// can be guessed from it).
		Memo: map[string]any{memoRequestDigest: digest},
	}
	_, err = a.client.ExecuteWorkflow(r.Context(), opts, workflows.MessageWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		// The same external_send_id again: the same request is answered as the
		// first time (and says so); another request under it is a conflict.
		if err := a.sameRequest(r.Context(), id, digest); err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
	case err != nil:
		a.fail(w, r, err)
		return
	default:
		a.logger.Info("message queued", "dispatch_id", id, "external_send_id", req.ExternalSendID,
			"workspace", ws, "key_id", callerOf(r).keyID())
	}
	writeJSON(w, http.StatusAccepted, sendResponse{DispatchID: id, Status: message.StatusQueued})
}

// memoRequestDigest is the memo field holding a send's requestDigest.
const memoRequestDigest = "request_digest"

// requestDigest is a keyed digest (HMAC-SHA256 under DISPATCHFLOW_ID_SECRET) of
// what a send asks for: recipient, sender, subject, bodies, campaign,
// postback_url and fallback policy. Two sends under one external_send_id must
// have the same digest (Stripe's idempotency keys).
func (a *API) requestDigest(req message.SendRequest, fb *fallback.Policy) string {
	b, _ := json.Marshal(struct {
		Request  message.SendRequest `json:"request"`
		Fallback *fallback.Policy    `json:"fallback"`
	}{req, fb})
	mac := hmac.New(sha256.New, a.idSecret)
	mac.Write([]byte("dispatchflow/request/v1\x00"))
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil))
}

// sameRequest checks that message id, already started, was started by a request
// of the same digest: else 409, and nothing is sent.
func (a *API) sameRequest(ctx context.Context, id, digest string) error {
	desc, err := a.client.DescribeWorkflowExecution(ctx, workflows.WorkflowID(id), "")
	if err != nil {
		return err
	}
	var got string
	if p := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[memoRequestDigest]; p != nil {
		if err := a.dataConverter.FromPayload(p, &got); err != nil {
			return fmt.Errorf("reading the request digest of message %s: %w", id, err)
		}
	}
	if !hmac.Equal([]byte(got), []byte(digest)) {
		return &httpError{http.StatusConflict, "external_send_id: already used by another request in this workspace " +
			"(recipient, from, subject, text, html, campaign_api_id, postback_url or fallback differ); nothing was sent"}
	}
	return nil
}

// checkFrom enforces the workspace's from_domains (DISPATCHFLOW_API_KEYS_FILE),
// when it has some: a key cannot send as another tenant's domain.
func (a *API) checkFrom(ws, from string) error {
	if a.keys == nil {
		return nil
	}
	w, _ := a.keys.Workspace(ws)
	if len(w.FromDomains) == 0 {
		return nil
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return badRequest("from: " + err.Error())
	}
	_, domain, _ := strings.Cut(addr.Address, "@")
	for _, d := range w.FromDomains {
		if strings.EqualFold(d, domain) {
			return nil
		}
	}
	return &httpError{http.StatusForbidden, fmt.Sprintf("from: domain %q is not one of workspace %s's from_domains", domain, ws)}
}

// fallbackLimits are the caps on ws's fallback policies: webhook steps may post
// to the hosts of its registered endpoints.
func (a *API) fallbackLimits(ws string) fallback.Limits {
	var hosts []string
	for _, ep := range a.endpoints.ForWorkspace(ws) {
		if u, err := url.Parse(ep.URL); err == nil {
			hosts = append(hosts, u.Host)
		}
	}
	return a.cfg.FallbackLimits(hosts)
}

// summary is the one line the Temporal UI shows for a message. No personal data:
// it is stored unencrypted.
func summary(req message.SendRequest) string {
	s := "Transactional email"
	if req.ExternalSendID != "" {
		s += " · external_send_id " + req.ExternalSendID
	}
	if req.CampaignAPIID != "" {
		s += " · campaign " + req.CampaignAPIID
	}
	return s
}

// details is the message's fixed description in the Temporal UI (markdown).
func (a *API) details(in workflows.MessageInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| | |\n|---|---|\n| dispatch_id | `%s` |\n", in.DispatchID)
	if in.Request.ExternalSendID != "" {
		fmt.Fprintf(&b, "| external_send_id | `%s` |\n", in.Request.ExternalSendID)
	}
	if in.Request.CampaignAPIID != "" {
		fmt.Fprintf(&b, "| campaign_api_id | `%s` |\n", in.Request.CampaignAPIID)
	}
	fmt.Fprintf(&b, "| ESP | %s |\n", strings.Join(a.cfg.ESPs(), " → "))
	fmt.Fprintf(&b, "| workspace | %s |\n", in.Request.Workspace)
	if len(in.Routes) > 0 {
		labels := make([]string, len(in.Routes))
		for i, r := range in.Routes {
			labels[i] = r.Label
		}
		fmt.Fprintf(&b, "| postbacks to | %s |\n", strings.Join(labels, ", "))
	} else {
		b.WriteString("| postbacks to | none |\n")
	}
	if p := in.Fallback; p != nil {
		var chans []string
		for _, st := range p.Steps {
			chans = append(chans, st.Channel)
		}
		fmt.Fprintf(&b, "| fallback | sent within %s, delivered within %s, on %v → %s |\n",
			p.SentWithin.D, p.DeliveredWithin.D, p.On, strings.Join(chans, " → "))
	}
	return b.String()
}

func (a *API) getMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dispatch_id")
	if !message.ValidDispatchID(id) {
		a.fail(w, r, notFound(fmt.Sprintf("message %q not found: a dispatch_id is 32 lowercase hex characters", id)))
		return
	}
	missing := fmt.Sprintf("message %s not found", id)
	resp, err := a.client.QueryWorkflow(r.Context(), workflows.WorkflowID(id), "", workflows.QueryState)
	if err != nil {
		a.fail(w, r, notFoundOr(err, missing))
		return
	}
	var st workflows.State
	if err := resp.Get(&st); err != nil {
		a.fail(w, r, err)
		return
	}
	if !owns(r, st.Workspace) {
		a.fail(w, r, notFound(missing)) // not 403: another workspace's message does not exist for this key
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// cancelFallback is POST /v1/messages/{dispatch_id}/fallback/cancel: the app
// reached the user another way. 409 once the message has escalated.
func (a *API) cancelFallback(w http.ResponseWriter, r *http.Request) {
	var in workflows.CancelFallbackInput
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	a.updateFallback(w, r, workflows.UpdateCancelFallback, in)
}

// patchFallback is PATCH /v1/messages/{dispatch_id}/fallback: new deadlines,
// statuses or steps for a pending policy. 409 once the message has escalated.
// New steps need fallback:write; they are bounded like a send's.
func (a *API) patchFallback(w http.ResponseWriter, r *http.Request) {
	var patch fallback.Patch
	if err := decodeJSON(w, r, &patch); err != nil {
		a.fail(w, r, err)
		return
	}
	c := callerOf(r)
	if patch.Steps != nil && c.key != nil && !c.key.Has(auth.ScopeFallbackWrite) {
		a.fail(w, r, &httpError{http.StatusForbidden, fmt.Sprintf("API key %s lacks the scope %s (needed to change steps)", c.key.ID, auth.ScopeFallbackWrite)})
		return
	}
	ws, err := a.workspace(r, "", "workspace")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := patch.Validate("fallback", a.cfg.FallbackChannels(), a.fallbackLimits(ws)); err != nil {
		a.fail(w, r, badRequest(err.Error()))
		return
	}
	a.updateFallback(w, r, workflows.UpdatePatchFallback, patch)
}

// updateFallback runs a fallback update and answers the new fallback state.
func (a *API) updateFallback(w http.ResponseWriter, r *http.Request, name string, arg any) {
	id := r.PathValue("dispatch_id")
	if err := a.ownMessage(r, id); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.limitMessage(w, r, "fallback", id, fallbackLimit) {
		return
	}
	h, err := a.client.UpdateWorkflow(r.Context(), client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(id),
		UpdateName:   name,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.FallbackState
	if err == nil {
		err = h.Get(r.Context(), &st)
	}
	if err != nil {
		a.fail(w, r, notFoundOr(err, fmt.Sprintf("message %s not found, or its tracking window is over", id)))
		return
	}
	a.audit(r, "fallback."+name, id, "state", st.State)
	if st.State == workflows.FallbackEscalated && name == workflows.UpdatePatchFallback {
		// New deadlines already past escalate at once: an explicit action, on record.
		a.audit(r, "fallback.escalate_now", id, "reason", st.Reason)
	}
	writeJSON(w, http.StatusOK, st)
}

// twilioCallback is Twilio's status callback for fallback SMS
// (StatusCallback={PUBLIC_URL}/v1/callbacks/twilio?dispatch_id=…&step=…), verified
// with X-Twilio-Signature under DISPATCHFLOW_TWILIO_AUTH_TOKEN.
func (a *API) twilioCallback(w http.ResponseWriter, r *http.Request) {
	if a.cfg.TwilioAuthToken == "" {
		a.fail(w, r, notFound("the sms channel is not configured (DISPATCHFLOW_TWILIO_ACCOUNT_SID)"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		a.fail(w, r, bodyError(err))
		return
	}
	fullURL := strings.TrimSuffix(a.cfg.PublicURL, "/") + r.URL.RequestURI()
	if !channel.VerifyTwilioSignature(a.cfg.TwilioAuthToken, fullURL, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		a.fail(w, r, &httpError{http.StatusUnauthorized, "invalid X-Twilio-Signature"})
		return
	}
	q := r.URL.Query()
	id := q.Get("dispatch_id")
	step, err := strconv.Atoi(q.Get("step"))
	if !message.ValidDispatchID(id) || err != nil || step < 1 {
		a.fail(w, r, badRequest("dispatch_id and step: a dispatch_id and a step number >= 1 are required in the query"))
		return
	}
	st := workflows.FallbackStatus{Step: step, Status: r.PostForm.Get("MessageStatus"), ProviderID: r.PostForm.Get("MessageSid")}
	if code := r.PostForm.Get("ErrorCode"); code != "" {
		st.Error = "twilio error " + code
	}
	err = a.client.SignalWorkflow(r.Context(), workflows.WorkflowID(id), "", workflows.SignalFallbackStatus, st)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		a.logger.Warn("sms status for no open message", "dispatch_id", id, "step", step, "status", st.Status)
	case err != nil:
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// eventsResponse is the answer to POST /v1/events/{provider}.
type eventsResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Unmatched  int `json:"unmatched"`
	Invalid    int `json:"invalid"`
	// pending events name a message not found yet (visibility lag, a start not
	// seen yet) while they are recent: the request is answered 503, so that the
	// provider posts them again.
	pending int
}

// retryLaterAfter is the Retry-After of a 503 for events whose message is not
// found yet: the provider's next attempt should find it (visibility lags by about
// a second; docs/esp-inbound.md).
const retryLaterAfter = 30 * time.Second

func (a *API) postEvents(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	norm, ok := a.normalizers[provider]
	if !ok || (r.PathValue("token") != "" && provider != intake.ProviderSarbacane) {
		a.fail(w, r, notFound(fmt.Sprintf("no intake for provider %q here (DISPATCHFLOW_INTAKES mounts: %s)", provider, strings.Join(a.cfg.MountedIntakes(), ", "))))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		a.fail(w, r, bodyError(err))
		return
	}
	batch, err := norm.Normalize(r, body, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if n := len(batch.Events) + len(batch.Invalid); n > MaxEventsPerRequest {
		a.fail(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%d events in one request, at most %d are accepted: send smaller batches", n, MaxEventsPerRequest)})
		return
	}
	// An event that cannot be read is logged and counted, never refused with the
	// batch: the provider would retry the whole batch for hours, then drop it all.
	for _, inv := range batch.Invalid {
		a.logger.Warn("invalid event", "provider", provider, "index", inv.Index, "reason", inv.Reason)
	}
	events, pending, err := a.resolve(r.Context(), batch.Events)
	if err != nil {
		a.failEvents(w, r, provider, err)
		return
	}
	res, err := a.signal(r.Context(), events)
	if err != nil {
		// Some events may have gone through; the ESP's retry is deduplicated.
		a.failEvents(w, r, provider, err)
		return
	}
	res.Invalid, res.pending = len(batch.Invalid), res.pending+pending
	if res.pending > 0 {
		// Nothing is lost to timing: the others went through (and are deduplicated
		// when the provider posts the batch again); these are asked for again.
		a.failEvents(w, r, provider, &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
			"%d of the events name a message not found yet; post them again (accepted %d, duplicates %d, unmatched %d, invalid %d)",
			res.pending, res.Accepted, res.Duplicates, res.Unmatched, res.Invalid)})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// failEvents answers an intake request that the provider must post again:
// where the answer would be a 5xx, the provider's own retry answer
// (intake.RetryStatus: Brevo drops a 5xx, and retries a 429) with Retry-After.
func (a *API) failEvents(w http.ResponseWriter, r *http.Request, provider string, err error) {
	if statusOf(err) < 500 {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(retryLaterAfter.Seconds())))
	if code := intake.RetryStatus(provider); code != http.StatusServiceUnavailable {
		a.logger.Warn("events to be posted again", "provider", provider, "status", code, "error", err)
		msg := "the events could not be handed over now: post them again later" // no internals
		if he := (*httpError)(nil); errors.As(err, &he) {
			msg = he.msg
		}
		err = &httpError{code, msg}
	}
	a.fail(w, r, err)
}

// recent reports whether ev happened within DISPATCHFLOW_INTAKE_RETRY_WINDOW: an
// event whose message is not found yet is then asked for again, not dropped.
func (a *API) recentEvent(ev message.Event) bool {
	at := ev.Timestamp
	if at.IsZero() {
		at = ev.ReceivedAt
	}
	return a.now().Sub(at) < a.cfg.IntakeRetryWindow
}

// resolve fills in the dispatch_id of events that name only the provider's message
// id, through resolveMessageID. Of those it cannot resolve, the recent ones are
// left out and counted pending (the provider is asked to post them again); the
// others stay without a dispatch_id and are counted unmatched.
func (a *API) resolve(ctx context.Context, events []message.Event) ([]message.Event, int, error) {
	if a.resolveMessageID == nil {
		return events, 0, nil
	}
	type key struct{ provider, messageID string }
	found := map[key]string{}
	for i := range events {
		if ev := events[i]; ev.DispatchID == "" && ev.MessageID != "" {
			found[key{ev.Provider, ev.MessageID}] = ""
		}
	}
	// Two passes at most: the misses of the first are looked up again once, after
	// resolveRetryAfter, for the whole request — visibility lags the workflow.
	for pass := 0; pass < 2; pass++ {
		missed := 0
		for k, id := range found {
			if id != "" {
				continue
			}
			resolved, ok, err := a.resolveMessageID(ctx, k.provider, k.messageID)
			if err != nil {
				return nil, 0, fmt.Errorf("finding the message of %s message id %q: %w", k.provider, k.messageID, err)
			}
			if ok {
				found[k] = resolved
			} else {
				missed++
			}
		}
		if missed == 0 || pass == 1 {
			break
		}
		select {
		case <-time.After(resolveRetryAfter):
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	out, pending := events[:0:0], 0
	for _, ev := range events {
		if ev.DispatchID == "" && ev.MessageID != "" {
			ev.DispatchID = found[key{ev.Provider, ev.MessageID}]
			if ev.DispatchID == "" && a.recentEvent(ev) {
				a.logger.Info("event for a message not found yet: the provider is asked to post it again",
					"provider", ev.Provider, "message_id", ev.MessageID, "event", ev.Type)
				pending++
				continue
			}
		}
		out = append(out, ev)
	}
	return out, pending, nil
}

// signal hands events to their workflows: in order for each message, messages in
// parallel. An event for a message that does not exist (or whose tracking window
// is over) is unmatched, not an error: ESPs retry every non-2xx for hours.
func (a *API) signal(ctx context.Context, events []message.Event) (eventsResponse, error) {
	var order []string
	byID := map[string][]message.Event{}
	for _, ev := range events {
		if _, ok := byID[ev.DispatchID]; !ok {
			order = append(order, ev.DispatchID)
		}
		byID[ev.DispatchID] = append(byID[ev.DispatchID], ev)
	}
	var (
		mu       sync.Mutex
		res      eventsResponse
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, signalConcurrency)
	)
	count := func(f func()) { mu.Lock(); f(); mu.Unlock() }
	for _, id := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string, evs []message.Event) {
			defer func() { <-sem; wg.Done() }()
			for _, ev := range evs {
				if !message.ValidDispatchID(id) {
					a.logger.Warn("unmatched event: not a dispatch_id", "dispatch_id", id, "provider", ev.Provider, "event", ev.Type)
					metrics.EventUnmatched(ev.Provider)
					count(func() { res.Unmatched++ })
					continue
				}
				// Keyed by message too: some ESPs' event ids are unique per message only.
				dedupe := id + "/" + ev.DedupeKey()
				if a.recent.seen(dedupe) {
					metrics.EventDuplicate(ev.Provider)
					count(func() { res.Duplicates++ })
					continue
				}
				err := a.client.SignalWorkflow(ctx, workflows.WorkflowID(id), "", workflows.SignalEvent, ev)
				var nf *serviceerror.NotFound
				switch {
				case errors.As(err, &nf) && a.recentEvent(ev) && !a.exists(ctx, id):
					// Not started yet, as far as this server knows: asked for again.
					a.logger.Info("event for a message not found yet: the provider is asked to post it again",
						"dispatch_id", id, "provider", ev.Provider, "event", ev.Type)
					count(func() { res.pending++ })
				case errors.As(err, &nf):
					a.logger.Warn("unmatched event: no open message", "dispatch_id", id, "provider", ev.Provider, "event", ev.Type)
					metrics.EventUnmatched(ev.Provider)
					count(func() { res.Unmatched++ })
				case err != nil:
					count(func() {
						if firstErr == nil {
							firstErr = err
						}
					})
					return
				default:
					a.recent.add(dedupe)
					metrics.EventIngested(ev.Provider, string(ev.Type))
					count(func() { res.Accepted++ })
				}
			}
		}(id, byID[id])
	}
	wg.Wait()
	return res, firstErr
}

// exists reports whether workflow id was ever started (open or closed, within the
// namespace's retention); on an error it answers true, so that the event is
// counted unmatched rather than asked for again for ever.
func (a *API) exists(ctx context.Context, id string) bool {
	_, err := a.client.DescribeWorkflowExecution(ctx, workflows.WorkflowID(id), "")
	var nf *serviceerror.NotFound
	return !errors.As(err, &nf)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, err := a.client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "temporal: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a JSON answer, never HTML: "<key>" stays readable
	_ = enc.Encode(v)
}
