package postback

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/conffile"
)

// Formats of a postback body; see Render.
const (
	FormatBraze     = "braze"
	FormatAJO       = "ajo"
	FormatSarbacane = "sarbacane"
)

// Authentication methods of an endpoint.
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthBearer = "bearer"
	AuthJWT    = "jwt"
)

// DefaultWorkspace is the workspace of a message or endpoint that names none.
const DefaultWorkspace = "default"

// DefaultTimeout bounds one delivery attempt to an endpoint without a timeout.
const DefaultTimeout = 15 * time.Second

// MaxTimeout bounds an endpoint's timeout: the Postback activity's own timeout
// leaves room for it.
const MaxTimeout = time.Minute

// Event names an endpoint subscribes to: the five Braze statuses, the two
// fallback outcomes, and engagement events.
const (
	EventSent           = "sent"
	EventProcessed      = "processed"
	EventDelivered      = "delivered"
	EventBounced        = "bounced"
	EventAborted        = "aborted"
	EventFallbackSent   = "fallback_sent"
	EventFallbackFailed = "fallback_failed"
	EventOpen           = "open"
	EventClick          = "click"
	EventDeferred       = "deferred"
	EventComplaint      = "complaint"
	EventUnsubscribe    = "unsubscribe"
)

// Events lists every event name an endpoint may subscribe to.
var Events = []string{
	EventSent, EventProcessed, EventDelivered, EventBounced, EventAborted,
	EventFallbackSent, EventFallbackFailed,
	EventOpen, EventClick, EventDeferred, EventComplaint, EventUnsubscribe,
}

// statusEvents are the default subscription: Braze's five statuses.
var statusEvents = []string{EventSent, EventProcessed, EventDelivered, EventBounced, EventAborted}

// formatEvents are the events each format can express; an endpoint may subscribe
// only to those (see docs/postbacks.md for why).
var formatEvents = map[string][]string{
	FormatBraze:     {EventSent, EventProcessed, EventDelivered, EventBounced, EventAborted, EventFallbackSent, EventFallbackFailed},
	FormatAJO:       {EventSent, EventDelivered, EventBounced, EventAborted, EventDeferred},
	FormatSarbacane: {EventDelivered, EventBounced, EventDeferred, EventOpen, EventClick},
}

// Endpoint is where postbacks go, and how: one entry of the endpoints file.
// Its credentials are Secrets, so printing or marshalling an Endpoint is safe.
type Endpoint struct {
	// ID names the endpoint in the API, logs and metrics. Required, unique.
	// Empty on an ad-hoc endpoint (a message's own postback_url, see Set.AdHoc).
	ID string `json:"id"`
	// Workspace the endpoint serves. Defaults to "default".
	Workspace string `json:"workspace,omitempty"`
	// URL receives the POSTs: an absolute http or https URL.
	URL string `json:"url"`
	// Format of the body: "braze" (default), "ajo" or "sarbacane".
	Format string `json:"format,omitempty"`
	// Auth adds an Authorization header. Defaults to none.
	Auth Auth `json:"auth,omitzero"`
	// Headers are sent with every request. They cannot replace Content-Type, the
	// webhook-* signature headers, or Authorization when Auth is set.
	Headers map[string]Secret `json:"headers,omitempty"`
	// Events the endpoint subscribes to. Defaults to the statuses its format can
	// express among sent, processed, delivered, bounced, aborted.
	Events []string `json:"events,omitempty"`
	// Secrets sign every postback (Standard Webhooks), each "whsec_" + base64 of
	// 24 to 64 random bytes. Two during a rotation: both signatures are sent.
	// None: postbacks are not signed.
	Secrets []Secret `json:"secrets,omitempty"`
	// FallbackOutcomes subscribes the endpoint to fallback_sent and fallback_failed.
	FallbackOutcomes bool `json:"fallback_outcomes,omitempty"`
	// Schedule overrides DefaultSchedule: the delays before each retry.
	Schedule Schedule `json:"schedule,omitempty"`
	// Timeout bounds one attempt. Zero: the deployment's default
	// (DISPATCHFLOW_POSTBACK_TIMEOUT, 15s).
	Timeout Duration `json:"timeout,omitzero"`
}

// Auth is an endpoint's authentication.
type Auth struct {
	// Type: none (default), basic, bearer or jwt.
	Type string `json:"type,omitempty"`
	// Username and Password, for basic.
	Username string `json:"username,omitempty"`
	Password Secret `json:"password,omitempty"`
	// Token, for bearer: sent as "Authorization: Bearer <token>".
	Token Secret `json:"token,omitempty"`
	// JWT, for jwt: a short-lived token minted per attempt, sent as a bearer token.
	JWT JWT `json:"jwt,omitzero"`
}

// JWT describes the token of jwt authentication. Claims: iss, aud, sub (when set),
// iat (the attempt's time), exp (iat + TTL) and jti (the postback's webhook-id).
type JWT struct {
	// Algorithm: HS256 or RS256.
	Algorithm string `json:"algorithm"`
	// Key is the HS256 shared secret, or the RS256 private key in PEM (PKCS #1 or
	// PKCS #8). KeyFile names a file holding it instead; LoadFile reads it into Key.
	Key     Secret `json:"key,omitempty"`
	KeyFile string `json:"key_file,omitempty"`
	// Issuer, Audience and Subject are the iss, aud and sub claims; empty ones are left out.
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`
	Subject  string `json:"subject,omitempty"`
	// TTL is exp - iat. Defaults to 5m.
	TTL Duration `json:"ttl,omitzero"`
}

// DefaultJWTTTL is the lifetime of a JWT without a ttl.
const DefaultJWTTTL = 5 * time.Minute

// String describes e without its credentials or its URL's path and query.
func (e Endpoint) String() string {
	return fmt.Sprintf("endpoint %q (workspace %s, %s, %s format)", e.ID, e.Workspace, host(e.URL), e.Format)
}

// Label names e in metrics and logs: its ID, or the host of an ad-hoc endpoint's URL.
func (e Endpoint) Label() string {
	if e.ID != "" {
		return e.ID
	}
	return host(e.URL)
}

// Subscribes reports whether e receives notifications of event (a status or
// engagement event name, see Notification.Name).
func (e Endpoint) Subscribes(event string) bool {
	return slices.Contains(e.Events, event)
}

// RetrySchedule is e's schedule, or DefaultSchedule.
func (e Endpoint) RetrySchedule() Schedule {
	if len(e.Schedule) > 0 {
		return e.Schedule
	}
	return DefaultSchedule
}

// reservedHeaders cannot be set through Headers.
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// normalize fills e's defaults and checks it, reading a JWT key file relative to
// dir. Its error names the field.
func (e *Endpoint) normalize(dir string) error {
	if e.Workspace == "" {
		e.Workspace = DefaultWorkspace
	}
	if e.Format == "" {
		e.Format = FormatBraze
	}
	if err := checkURL(e.URL); err != nil {
		return conffile.Errorf("url", "%s", err)
	}
	supported, ok := formatEvents[e.Format]
	if !ok {
		return conffile.Errorf("format", "%q is not one of braze, ajo, sarbacane", e.Format)
	}
	if len(e.Events) == 0 {
		for _, ev := range statusEvents {
			if slices.Contains(supported, ev) {
				e.Events = append(e.Events, ev)
			}
		}
	}
	if e.FallbackOutcomes {
		for _, ev := range []string{EventFallbackSent, EventFallbackFailed} {
			if !slices.Contains(e.Events, ev) {
				e.Events = append(e.Events, ev)
			}
		}
	}
	for i, ev := range e.Events {
		if !slices.Contains(Events, ev) {
			return conffile.Errorf(fmt.Sprintf("events[%d]", i), "unknown event %q (want one of %s)", ev, strings.Join(Events, ", "))
		}
		if !slices.Contains(supported, ev) {
			return conffile.Errorf(fmt.Sprintf("events[%d]", i), "format %s cannot express %q (it can: %s)", e.Format, ev, strings.Join(supported, ", "))
		}
	}
	for i, s := range e.Secrets {
		if _, err := decodeSecret(s); err != nil {
			return conffile.Errorf(fmt.Sprintf("secrets[%d]", i), "%s", err)
		}
	}
	if len(e.Schedule) > MaxScheduleSteps {
		return conffile.Errorf("schedule", "%d retry delays: at most %d", len(e.Schedule), MaxScheduleSteps)
	}
	for i, d := range e.Schedule {
		if d <= 0 {
			return conffile.Errorf(fmt.Sprintf("schedule[%d]", i), "%s must be positive", time.Duration(d))
		}
	}
	if e.Timeout < 0 || time.Duration(e.Timeout) > MaxTimeout {
		return conffile.Errorf("timeout", "%s must be positive and at most %s", time.Duration(e.Timeout), MaxTimeout)
	}
	if err := e.Auth.normalize(dir); err != nil {
		return err
	}
	for name := range e.Headers {
		canon := http.CanonicalHeaderKey(name)
		if slices.Contains(reservedHeaders, canon) || (canon == "Authorization" && e.Auth.Type != AuthNone) {
			return conffile.Errorf("headers."+name, "cannot be set here (dispatchflow sets it)")
		}
		if strings.ContainsAny(name, " :\r\n") || strings.ContainsAny(string(e.Headers[name]), "\r\n") {
			return conffile.Errorf("headers."+name, "invalid header name or value")
		}
	}
	return nil
}

func (a *Auth) normalize(dir string) error {
	if a.Type == "" {
		a.Type = AuthNone
	}
	switch a.Type {
	case AuthNone:
	case AuthBasic:
		if a.Username == "" || strings.Contains(a.Username, ":") {
			return conffile.Errorf("auth.username", "required with basic auth, without a colon")
		}
	case AuthBearer:
		if a.Token == "" {
			return conffile.Errorf("auth.token", "required with bearer auth")
		}
	case AuthJWT:
		j := &a.JWT
		if j.KeyFile != "" {
			if j.Key != "" {
				return conffile.Errorf("auth.jwt.key_file", "give key or key_file, not both")
			}
			path := j.KeyFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return conffile.Errorf("auth.jwt.key_file", "%s", err)
			}
			j.Key = Secret(b)
		}
		if j.TTL == 0 {
			j.TTL = Duration(DefaultJWTTTL)
		}
		if j.TTL < 0 {
			return conffile.Errorf("auth.jwt.ttl", "%s must be positive", time.Duration(j.TTL))
		}
		if _, _, err := j.signingKey(); err != nil {
			return err
		}
	default:
		return conffile.Errorf("auth.type", "%q is not one of none, basic, bearer, jwt", a.Type)
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be https or http")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// host is the host of rawURL: what errors and logs show of a URL, whose path and
// query may carry credentials.
func host(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		return u.Host
	}
	return "(invalid URL)"
}

// Set is the configured endpoints, in file order. A nil *Set has none.
type Set struct {
	list []Endpoint
	byID map[string]int
	// fromFile: the endpoints were registered in DISPATCHFLOW_ENDPOINTS_FILE (a
	// message's postback_url must then match one of its workspace's).
	fromFile bool
	// signing are the workspaces' own signing secrets (DISPATCHFLOW_API_KEYS_FILE):
	// they sign every postback whose endpoint has no secrets of its own.
	signing map[string][]Secret
}

// NewSet checks eps as LoadFile does (a key_file is read relative to the working
// directory) and returns them as a Set.
func NewSet(eps ...Endpoint) (*Set, error) {
	s := &Set{byID: make(map[string]int, len(eps))}
	for i, e := range eps {
		if err := s.add(e, "."); err != nil {
			return nil, fmt.Errorf("endpoints[%d]%s: %w", i, idNote(e.ID), err)
		}
	}
	return s, nil
}

func idNote(id string) string {
	if id == "" {
		return ""
	}
	return fmt.Sprintf(" (id %q)", id)
}

func (s *Set) add(e Endpoint, dir string) error {
	if e.ID == "" {
		return conffile.Errorf("id", "required")
	}
	if _, dup := s.byID[e.ID]; dup {
		return conffile.Errorf("id", "%q is used by another endpoint", e.ID)
	}
	if err := e.normalize(dir); err != nil {
		return err
	}
	s.byID[e.ID] = len(s.list)
	s.list = append(s.list, e)
	return nil
}

// Get returns the endpoint id.
func (s *Set) Get(id string) (Endpoint, bool) {
	if s == nil {
		return Endpoint{}, false
	}
	i, ok := s.byID[id]
	if !ok {
		return Endpoint{}, false
	}
	return s.signed(s.list[i]), true
}

// signed returns e signed with its workspace's secrets when it has none of its own.
func (s *Set) signed(e Endpoint) Endpoint {
	if len(e.Secrets) == 0 {
		e.Secrets = slices.Clone(s.signing[e.Workspace])
	}
	return e
}

// WithSigningSecrets returns a copy of s in which each workspace of secrets signs
// the postbacks of its endpoints without secrets, and of its ad-hoc URLs. Every
// secret must be well-formed ("whsec_" + base64 of 24 to 64 bytes).
func (s *Set) WithSigningSecrets(secrets map[string][]Secret) (*Set, error) {
	out := &Set{byID: map[string]int{}}
	if s != nil {
		out.list, out.byID, out.fromFile = slices.Clone(s.list), s.byID, s.fromFile
	}
	out.signing = make(map[string][]Secret, len(secrets))
	for ws, list := range secrets {
		for i, sec := range list {
			if _, err := decodeSecret(sec); err != nil {
				return nil, fmt.Errorf("workspace %q: signing_secrets[%d]: %w", ws, i, err)
			}
		}
		out.signing[ws] = slices.Clone(list)
	}
	return out, nil
}

// Registered reports whether the endpoints come from DISPATCHFLOW_ENDPOINTS_FILE:
// a message's postback_url must then match one of them (see Match).
func (s *Set) Registered() bool { return s != nil && s.fromFile }

// ForWorkspace returns the endpoints of workspace ws, in file order.
func (s *Set) ForWorkspace(ws string) []Endpoint {
	if s == nil {
		return nil
	}
	var out []Endpoint
	for _, e := range s.list {
		if e.Workspace == ws {
			out = append(out, s.signed(e))
		}
	}
	return out
}

// All returns every endpoint, in file order.
func (s *Set) All() []Endpoint {
	if s == nil {
		return nil
	}
	out := make([]Endpoint, len(s.list))
	for i, e := range s.list {
		out[i] = s.signed(e)
	}
	return out
}

// Len is the number of endpoints.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}

// AdHoc returns the endpoint of a message's own postback_url rawURL in workspace
// ws when no registered endpoint covers it: the defaults (braze format, the five
// statuses, no authentication, no headers), signed with the workspace's own
// signing secrets. It never carries a registered endpoint's credentials: those go
// only to the URL they were registered for. Its ID is empty: Label names it by its
// host. rawURL is not checked here (the API checks it).
func (s *Set) AdHoc(ws, rawURL string) Endpoint {
	if ws == "" {
		ws = DefaultWorkspace
	}
	e := Endpoint{Workspace: ws, URL: rawURL}
	_ = e.normalize(".") // the defaults; only the URL can be wrong
	e.URL = rawURL
	if s != nil {
		e = s.signed(e)
	}
	return e
}

// Match returns the registered endpoint of workspace ws that covers rawURL (see
// Covers), with rawURL as its URL: a message's postback_url that refines a
// registered endpoint (a path below it, its own query) gets that endpoint's
// settings and credentials.
func (s *Set) Match(ws, rawURL string) (Endpoint, bool) {
	for _, e := range s.ForWorkspace(ws) {
		if e.Covers(rawURL) {
			e.URL = rawURL
			return e, true
		}
	}
	return Endpoint{}, false
}

// Covers reports whether rawURL is e's URL or below it: the same scheme, host and
// port, and a path equal to e's or under it ("/hooks" covers "/hooks" and
// "/hooks/a", not "/hooksx" or "/a"). Userinfo is refused. Queries are free.
func (e Endpoint) Covers(rawURL string) bool {
	base, err1 := url.Parse(e.URL)
	u, err2 := url.Parse(rawURL)
	if err1 != nil || err2 != nil || u.User != nil || u.Opaque != "" {
		return false
	}
	if !strings.EqualFold(base.Scheme, u.Scheme) || !strings.EqualFold(base.Host, u.Host) {
		return false
	}
	bp, up := base.EscapedPath(), u.EscapedPath()
	if strings.Contains(up, "/../") || strings.HasSuffix(up, "/..") || strings.Contains(up, "%2e") || strings.Contains(up, "%2E") {
		return false // no climbing out of the endpoint's path
	}
	if bp == up || strings.TrimSuffix(bp, "/") == strings.TrimSuffix(up, "/") {
		return true
	}
	return strings.HasPrefix(up, strings.TrimSuffix(bp, "/")+"/")
}

// FromURL returns the endpoint of the legacy DISPATCHFLOW_POSTBACK_URL: id
// "default" in workspace "default", braze format, the five statuses, unsigned.
func FromURL(rawURL string) (Endpoint, error) {
	e := Endpoint{ID: "default", Workspace: DefaultWorkspace, URL: rawURL}
	if err := e.normalize("."); err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

// file is the endpoints file.
type file struct {
	Endpoints []json.RawMessage `json:"endpoints"`
}

// LoadFile reads the endpoints file at path: YAML (.yaml, .yml) or JSON (.json),
// {"endpoints": [...]}. Every problem is an error naming the file, the entry (index
// and id) and the field: `endpoints.yaml: endpoints[2] (id "crm"): url: must be
// https or http`. Unknown fields, duplicate ids, unknown formats and events, and
// malformed secrets or keys are errors. A JWT key_file is read relative to the
// file's directory.
func LoadFile(path string) (*Set, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if raw, err = conffile.ToJSON(raw, filepath.Ext(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f file
	if err := conffile.Strict(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Set{byID: make(map[string]int, len(f.Endpoints)), fromFile: true}
	for i, entry := range f.Endpoints {
		var peek struct {
			ID any `json:"id"`
		}
		_ = json.Unmarshal(entry, &peek)
		id, _ := peek.ID.(string)
		where := fmt.Sprintf("%s: endpoints[%d]%s", path, i, idNote(id))
		var e Endpoint
		if err := conffile.Strict(entry, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := s.add(e, filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return s, nil
}
