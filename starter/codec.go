package starter

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/auth"
)

// MaxCodecBodyBytes bounds the body of a codec request (413 beyond): the
// payloads of one event, as the Temporal UI sends them — base64 in JSON, so
// Temporal's own 2 MB limit per payload fits.
const MaxCodecBodyBytes = 4 << 20

// CodecPath is where the codec server answers: POST {CodecPath}/encode and
// {CodecPath}/decode. The Temporal UI's codec endpoint is the listener's URL
// followed by it (http://127.0.0.1:8081/codec).
const CodecPath = "/codec"

// codecAllowHeaders are the request headers the Temporal UI sends to a codec
// server: X-Namespace always; Authorization (and Authorization-Extras, which is
// ignored) with passAccessToken.
const codecAllowHeaders = "Content-Type, Authorization, X-Namespace, Authorization-Extras"

// CodecHandler is the router of DISPATCHFLOW_CODEC_ADDR: the codec server the
// Temporal Web UI (or `temporal --codec-endpoint`) calls to show payloads in
// clear. POST /codec/encode and /codec/decode take and answer
// {"payloads": [...]} (Temporal's Payloads in JSON) and encode or decode them
// with the payload keys (converter.NewPayloadCodecHTTPHandler over the keyring:
// any key of a rotation decodes). A request needs an API key with the scope
// payloads:decode, of any workspace (payloads are not per workspace), unless
// DISPATCHFLOW_CODEC_AUTH=off; X-Namespace, when sent, must be
// TEMPORAL_NAMESPACE. Browsers of DISPATCHFLOW_CODEC_CORS_ORIGINS may call it;
// a request from any other origin is refused. Nil without DISPATCHFLOW_CODEC_ADDR.
func (a *API) CodecHandler() http.Handler {
	if a.cfg.CodecAddr == "" {
		return nil
	}
	if a.keyring == nil {
		panic("starter: the codec server needs a payload key (config.ValidateAPI checks it)")
	}
	if a.codecKeys == nil && a.cfg.CodecAuth != "off" {
		panic("starter: the codec server needs API keys unless DISPATCHFLOW_CODEC_AUTH=off (config.ValidateAPI checks it)")
	}
	h := a.guardWith(a.codecKeys, auth.ScopePayloadsDecode, a.serveCodec(converter.NewPayloadCodecHTTPHandler(a.keyring)))
	mux := http.NewServeMux()
	for _, op := range []string{"encode", "decode"} {
		mux.HandleFunc(http.MethodPost+" "+CodecPath+"/"+op, h)
		mux.HandleFunc(http.MethodOptions+" "+CodecPath+"/"+op, codecPreflight)
	}
	return a.codecCORS(mux)
}

// codecCORS lets the browsers of DISPATCHFLOW_CODEC_CORS_ORIGINS read the codec
// server's answers (its errors included), with their credentials. A request
// carrying another Origin — a page of another site, which a browser may let
// post without a preflight — is refused, without CORS headers.
func (a *API) codecCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" {
			w.Header().Add("Vary", "Origin")
			if !slices.Contains(a.cfg.CodecCORSOrigins, origin) {
				a.logger.Info("codec request from an origin not allowed", "origin", origin, "addr", a.clientAddr(r).String(), "path", logPath(r))
				a.fail(w, r, &httpError{http.StatusForbidden, fmt.Sprintf("origin %s is not allowed: add it to DISPATCHFLOW_CODEC_CORS_ORIGINS", origin)})
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		next.ServeHTTP(w, r)
	})
}

// codecPreflight answers a CORS preflight (the origin was checked by codecCORS).
func codecPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "POST, OPTIONS")
	if r.Header.Get("Origin") != "" {
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", codecAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			// Chromium asks before a public page calls a private address (a UI
			// on the internet, its codec server on the operators' network).
			h.Set("Access-Control-Allow-Private-Network", "true")
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveCodec checks the namespace and the body's size, runs the SDK's codec
// handler, and answers its errors (plain text) as {"error": "..."}.
func (a *API) serveCodec(sdk http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ns := r.Header.Get("X-Namespace"); ns != "" && ns != a.cfg.Temporal.Namespace {
			a.fail(w, r, badRequest(fmt.Sprintf("X-Namespace %q: this codec server decodes namespace %q (TEMPORAL_NAMESPACE)", ns, a.cfg.Temporal.Namespace)))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCodecBodyBytes))
		if err != nil {
			a.fail(w, r, bodyError(err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &codecRecorder{header: http.Header{}, code: http.StatusOK}
		sdk.ServeHTTP(rec, r)
		if rec.code >= 400 {
			msg := strings.TrimSpace(rec.body.String())
			a.logger.Info("codec request failed", "path", logPath(r), "status", rec.code, "key_id", callerOf(r).keyID(), "error", msg)
			a.fail(w, r, &httpError{rec.code, r.URL.Path[len(CodecPath)+1:] + ": " + msg})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(rec.body.Len()))
		w.Header().Set("Cache-Control", "no-store") // payloads in clear: never cached
		w.WriteHeader(rec.code)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// codecRecorder keeps what the SDK's codec handler answers, so that its errors
// can be rewritten as JSON.
type codecRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (c *codecRecorder) Header() http.Header { return c.header }

func (c *codecRecorder) WriteHeader(code int) {
	if !c.wrote {
		c.code, c.wrote = code, true
	}
}

func (c *codecRecorder) Write(b []byte) (int, error) {
	c.wrote = true
	return c.body.Write(b)
}
