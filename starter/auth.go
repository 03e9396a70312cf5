package starter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Per-message limits of admin actions, on top of the key's own rate limit: a
// message's postbacks may be replayed, and its fallback updated, 5 times at once,
// then once a minute (per API process).
var (
	replayLimit   = auth.RateLimit{PerSecond: 1.0 / 60, Burst: 5}
	fallbackLimit = auth.RateLimit{PerSecond: 1.0 / 60, Burst: 5}
)

// maxLimiterEntries bounds the token buckets one API process keeps.
const maxLimiterEntries = 100_000

// caller is who makes a management request: an API key of a workspace, or,
// with DISPATCHFLOW_AUTH=off, anyone (workspace empty: every workspace).
type caller struct {
	key       *auth.Key
	workspace string
}

// keyID is the caller's key id for logs ("" with auth off). Never the key.
func (c caller) keyID() string {
	if c.key == nil {
		return ""
	}
	return c.key.ID
}

type callerKey struct{}

func contextWithCaller(r *http.Request, c caller) context.Context {
	return context.WithValue(r.Context(), callerKey{}, c)
}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// guard wraps a management route: the request needs a valid key (Authorization:
// Bearer) carrying scope, within its networks and its rate limit. With auth off,
// requests are limited per client address with auth.DefaultRateLimit.
func (a *API) guard(scope auth.Scope, h http.HandlerFunc) http.HandlerFunc {
	return a.guardWith(a.keys, scope, h)
}

// guardWith is guard with keys (nil: no key needed), for the codec server,
// whose DISPATCHFLOW_CODEC_AUTH is not DISPATCHFLOW_AUTH.
func (a *API) guardWith(keys *auth.Keys, scope auth.Scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		from := a.clientAddr(r)
		var c caller
		bucket, limit := "addr:"+from.String(), auth.DefaultRateLimit
		if keys != nil {
			token := bearerToken(r)
			k, err := keys.Authenticate(token, from, a.now())
			if err != nil {
				a.refuseKey(w, r, token, err)
				return
			}
			c = caller{key: k, workspace: k.Workspace}
			bucket, limit = "key:"+k.ID, k.Limit()
			if _, seen := a.keysSeen.LoadOrStore(k.ID, true); !seen {
				a.audit(r.WithContext(contextWithCaller(r, c)), "key.first_use", k.ID)
			}
			if !k.Has(scope) {
				a.fail(w, r, &httpError{http.StatusForbidden, fmt.Sprintf("API key %s lacks the scope %s", k.ID, scope)})
				return
			}
		}
		if ok, wait := a.limiter.Allow(bucket, limit, a.now()); !ok {
			a.tooMany(w, r, wait, "rate limit of the API key exceeded")
			return
		}
		h(w, r.WithContext(contextWithCaller(r, c)))
	}
}

// bearerToken is the token of an "Authorization: Bearer <token>" header (the
// scheme is case-insensitive, RFC 9110); "" without one.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// refuseKey answers a failed authentication: 401 with WWW-Authenticate (RFC 6750),
// or 403 for a valid key used from outside its networks.
func (a *API) refuseKey(w http.ResponseWriter, r *http.Request, token string, err error) {
	id, _ := auth.KeyID(token)
	if errors.Is(err, auth.ErrNetwork) {
		a.logger.Warn("API key used from outside its networks", "key_id", id, "addr", a.clientAddr(r).String(), "path", logPath(r))
		a.fail(w, r, &httpError{http.StatusForbidden, err.Error()})
		return
	}
	challenge := `Bearer realm="dispatchflow"`
	if token != "" {
		challenge += `, error="invalid_token"`
		a.logger.Info("API key refused", "key_id", id, "addr", a.clientAddr(r).String(), "path", logPath(r), "reason", err.Error())
	}
	w.Header().Set("WWW-Authenticate", challenge)
	a.fail(w, r, &httpError{http.StatusUnauthorized, err.Error()})
}

// tooMany answers 429 with Retry-After, in whole seconds rounded up.
func (a *API) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, what string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	a.fail(w, r, &httpError{http.StatusTooManyRequests, fmt.Sprintf("%s: retry after %d s", what, secs)})
}

// limitMessage applies a per-message limit (replayLimit, fallbackLimit) to the
// action on dispatch_id id; false: it answered 429.
func (a *API) limitMessage(w http.ResponseWriter, r *http.Request, action, id string, lim auth.RateLimit) bool {
	if ok, wait := a.limiter.Allow(action+":"+id, lim, a.now()); !ok {
		a.tooMany(w, r, wait, fmt.Sprintf("too many %s requests for message %s", action, id))
		return false
	}
	return true
}

// clientAddr is the client's address: what a key's allowed_networks check, what
// rate limits without keys are counted by, what audit lines show. It is the TCP
// peer's, unless the peer is a proxy of DISPATCHFLOW_TRUSTED_PROXIES: then the
// X-Forwarded-For hop just before the nearest trusted proxy (the rightmost
// address no trusted proxy added; the ones left of it are the client's to forge).
func (a *API) clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, _ := netip.ParseAddr(host)
	addr = addr.Unmap()
	if !a.trustedProxy(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a malformed hop: trust nothing left of it
		}
		if addr = hop.Unmap(); !a.trustedProxy(addr) {
			return addr
		}
	}
	return addr
}

func (a *API) trustedProxy(addr netip.Addr) bool {
	for _, p := range a.trustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// workspace is the workspace a request acts in: the key's. A body or query
// workspace that names another is a 403; with auth off, asked (or "default").
func (a *API) workspace(r *http.Request, asked, field string) (string, error) {
	c := callerOf(r)
	asked = strings.TrimSpace(asked)
	switch {
	case c.workspace == "" && asked == "":
		return message.DefaultWorkspace, nil
	case c.workspace == "":
		return asked, nil
	case asked != "" && asked != c.workspace:
		return "", &httpError{http.StatusForbidden, fmt.Sprintf("%s: the API key %s belongs to workspace %q, not %q", field, c.keyID(), c.workspace, asked)}
	}
	return c.workspace, nil
}

// owns reports whether the caller may see a resource of workspace ws (every
// workspace with auth off). Another workspace's resources are answered 404, as
// if they did not exist.
func owns(r *http.Request, ws string) bool {
	c := callerOf(r)
	if ws == "" {
		ws = message.DefaultWorkspace
	}
	return c.workspace == "" || c.workspace == ws
}

// ownMessage answers whether the caller's workspace owns message id, reading
// the Workspace search attribute the message was started with (Describe reads
// the workflow's own record: no visibility lag). A message of another workspace
// is the same 404 as one that does not exist.
func (a *API) ownMessage(r *http.Request, id string) error {
	missing := notFound(fmt.Sprintf("message %s not found, or its tracking window is over", id))
	if !message.ValidDispatchID(id) {
		return notFound(fmt.Sprintf("message %q not found: a dispatch_id is 32 lowercase hex characters", id))
	}
	if callerOf(r).workspace == "" {
		return nil
	}
	desc, err := a.client.DescribeWorkflowExecution(r.Context(), workflows.WorkflowID(id), "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return missing
	case err != nil:
		return err
	}
	attrs := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	if !owns(r, keyword(attrs, workflows.SearchWorkspace.GetName())) {
		return missing
	}
	return nil
}

// audit logs an admin action as one "audit" line: who (key id, workspace), what,
// on which target.
func (a *API) audit(r *http.Request, action, target string, args ...any) {
	c := callerOf(r)
	a.logger.Info("audit", append([]any{"action", action, "target", target, "key_id", c.keyID(),
		"workspace", c.workspace, "addr", a.clientAddr(r).String()}, args...)...)
}

// seenKeys remembers the keys used since start, for their first-use audit line.
type seenKeys = sync.Map
