package starter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
)

const uiOrigin = "http://localhost:8233"

var (
	codecNewKey = bytes.Repeat([]byte{7}, 32)
	codecOldKey = bytes.Repeat([]byte{3}, 32)
)

// codecAPI is an API whose codec server decodes with the keys new, old, for
// the UI at uiOrigin, and the keys it authenticates by name.
func codecAPI(t *testing.T, edit func(*config.Config)) (http.Handler, map[string]string) {
	t.Helper()
	a, keys := keyedAPI(t, func(c *config.Config) {
		c.PayloadKeys = []string{base64.StdEncoding.EncodeToString(codecNewKey), base64.StdEncoding.EncodeToString(codecOldKey)}
		c.CodecAddr = "127.0.0.1:8081"
		c.CodecCORSOrigins = []string{uiOrigin}
		c.Temporal.Namespace = "default"
		if edit != nil {
			edit(c)
		}
	}, map[string][]auth.Scope{
		"operator": {auth.ScopePayloadsDecode},
		"admin":    {auth.ScopeAll},
		"reader":   {auth.ScopeMessagesRead},
		"slow":     {auth.ScopePayloadsDecode}, // keyedAPI: 0.5 per second, burst 1
	})
	h := a.CodecHandler()
	if h == nil {
		t.Fatal("no codec handler with DISPATCHFLOW_CODEC_ADDR set")
	}
	return h, keys
}

// payloadsJSON is a body of /codec/*: {"payloads": [...]}, as the UI sends it.
func payloadsJSON(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := json.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type codecCall struct {
	method, path, key, origin, namespace string
	body                                 []byte
}

func (c codecCall) do(h http.Handler) *httptest.ResponseRecorder {
	if c.method == "" {
		c.method = http.MethodPost
	}
	r := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
	r.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		r.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.origin != "" {
		r.Header.Set("Origin", c.origin)
	}
	if c.namespace != "" {
		r.Header.Set("X-Namespace", c.namespace)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decodePayloads(t *testing.T, w *httptest.ResponseRecorder) []*commonpb.Payload {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s, want 200", w.Code, w.Body)
	}
	var out commonpb.Payloads
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %s: %v", w.Body, err)
	}
	return out.Payloads
}

// What /codec/encode answers is ciphertext of the newest key, which
// /codec/decode turns back into the value; a payload of the older key of the
// rotation decodes too; a payload not encrypted passes unchanged.
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	h, keys := codecAPI(t, nil)
	const subject = "Your order #1234 has shipped"
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"subject": subject})
	if err != nil {
		t.Fatal(err)
	}
	w := codecCall{path: "/codec/encode", key: keys["operator"], origin: uiOrigin, namespace: "default", body: payloadsJSON(t, plain)}.do(h)
	enc := decodePayloads(t, w)
	if len(enc) != 1 || string(enc[0].GetMetadata()[converter.MetadataEncoding]) != codec.Encoding || bytes.Contains(enc[0].GetData(), []byte("order")) {
		t.Fatalf("encode answered %v: want one encrypted payload", enc)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != uiOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, uiOrigin)
	}
	newAES, _ := codec.NewAES(codecNewKey)
	if got := string(enc[0].GetMetadata()[codec.MetadataKeyID]); got != newAES.KeyID() {
		t.Errorf("encoded with key %s, want the newest, %s", got, newAES.KeyID())
	}

	oldAES, _ := codec.NewAES(codecOldKey)
	old, err := oldAES.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if w := (codecCall{path: "/codec/decode", key: keys["admin"], origin: uiOrigin, body: payloadsJSON(t, enc[0])}).do(h); w.Code != http.StatusForbidden {
		t.Errorf("a * key: %d, want 403: payloads:decode is granted by name only", w.Code)
	}
	for name, key := range map[string]string{"payloads:decode": keys["operator"]} {
		w = codecCall{path: "/codec/decode", key: key, origin: uiOrigin, body: payloadsJSON(t, enc[0], old[0], plain)}.do(h)
		dec := decodePayloads(t, w)
		if len(dec) != 3 {
			t.Fatalf("key %s: decode answered %d payloads, want 3", name, len(dec))
		}
		for i, p := range dec {
			var v map[string]string
			if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil || v["subject"] != subject {
				t.Errorf("key %s: payload %d decoded to %v (%v), want the subject in clear", name, i, v, err)
			}
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", w.Header().Get("Cache-Control"))
		}
	}

	// A payload of a key no longer in the ring: a JSON error naming its id.
	gone, _ := codec.NewAES(bytes.Repeat([]byte{9}, 32))
	lost, _ := gone.Encode([]*commonpb.Payload{plain})
	w = codecCall{path: "/codec/decode", key: keys["operator"], body: payloadsJSON(t, lost[0])}.do(h)
	if w.Code != http.StatusBadRequest || !strings.Contains(jsonError(t, w), gone.KeyID()) {
		t.Errorf("a payload of an unknown key: %d %s, want 400 naming key %s", w.Code, w.Body, gone.KeyID())
	}
}

// jsonError is the "error" of a JSON error answer.
func jsonError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("error answer of Content-Type %q, want application/json: %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Errorf("error answer %q: want {\"error\": ...}", w.Body)
	}
	return e.Error
}

// The UI's origin gets its preflight answered, and CORS headers on every
// answer (errors included, so that the UI can read them); another origin gets
// neither, and its requests are refused.
func TestCodecCORS(t *testing.T) {
	t.Parallel()
	h, keys := codecAPI(t, nil)
	w := codecCall{method: http.MethodOptions, path: "/codec/decode", origin: uiOrigin}.do(h)
	hd := w.Header()
	if w.Code != http.StatusNoContent || hd.Get("Access-Control-Allow-Origin") != uiOrigin ||
		hd.Get("Access-Control-Allow-Credentials") != "true" || hd.Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight of the UI's origin: %d %v", w.Code, hd)
	}
	for _, name := range []string{"Content-Type", "Authorization", "X-Namespace"} {
		if !strings.Contains(hd.Get("Access-Control-Allow-Headers"), name) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", hd.Get("Access-Control-Allow-Headers"), name)
		}
	}
	if !strings.Contains(strings.Join(hd.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %v, want Origin", hd.Values("Vary"))
	}
	if hd.Get("Access-Control-Allow-Private-Network") != "" {
		t.Errorf("Access-Control-Allow-Private-Network %q unasked", hd.Get("Access-Control-Allow-Private-Network"))
	}
	r := httptest.NewRequest(http.MethodOptions, "/codec/decode", nil)
	r.Header.Set("Origin", uiOrigin)
	r.Header.Set("Access-Control-Request-Private-Network", "true")
	pw := httptest.NewRecorder()
	h.ServeHTTP(pw, r)
	if pw.Code != http.StatusNoContent || pw.Header().Get("Access-Control-Allow-Private-Network") != "true" {
		t.Errorf("private network preflight: %d %v, want 204 allowing it", pw.Code, pw.Header())
	}

	for _, origin := range []string{"https://evil.example", "http://localhost:8234", "null"} {
		for _, c := range []codecCall{
			{method: http.MethodOptions, path: "/codec/decode", origin: origin},
			{path: "/codec/decode", origin: origin, key: keys["operator"], body: payloadsJSON(t)},
		} {
			w := c.do(h)
			if w.Code != http.StatusForbidden || !strings.Contains(jsonError(t, w), "DISPATCHFLOW_CODEC_CORS_ORIGINS") {
				t.Errorf("%s from %s: %d %s, want 403", c.method, origin, w.Code, w.Body)
			}
			for name := range w.Header() {
				if strings.HasPrefix(name, "Access-Control-") {
					t.Errorf("%s from %s: answered %s", c.method, origin, name)
				}
			}
		}
	}

	// A refusal to the UI's origin is readable by the UI.
	w = codecCall{path: "/codec/decode", origin: uiOrigin, body: payloadsJSON(t)}.do(h)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Errorf("401 to the UI's origin: %d %v, want 401 with its CORS headers", w.Code, w.Header())
	}
	// The Temporal CLI sends no Origin: no CORS headers, no refusal.
	w = codecCall{path: "/codec/decode", key: keys["operator"], body: payloadsJSON(t)}.do(h)
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("without Origin: %d %v", w.Code, w.Header())
	}
}

// The codec server takes a key with payloads:decode (401 without one, 403
// without the scope, 429 over its rate limit), the configured namespace only,
// bodies up to MaxCodecBodyBytes, and POST /codec/{encode,decode} only.
func TestCodecRefusals(t *testing.T) {
	t.Parallel()
	h, keys := codecAPI(t, nil)
	body := payloadsJSON(t)
	for _, tc := range []struct {
		name string
		call codecCall
		code int
		has  string
	}{
		{"no key", codecCall{path: "/codec/decode", body: body}, 401, "missing API key"},
		{"unknown key", codecCall{path: "/codec/decode", key: "dfk_nobody_" + strings.Repeat("x", 43), body: body}, 401, "invalid API key"},
		{"without the scope", codecCall{path: "/codec/decode", key: keys["reader"], body: body}, 403, "lacks the scope payloads:decode"},
		{"encode without the scope", codecCall{path: "/codec/encode", key: keys["reader"], body: body}, 403, "payloads:decode"},
		{"another namespace", codecCall{path: "/codec/decode", key: keys["operator"], namespace: "billing", body: body}, 400, `X-Namespace "billing"`},
		{"malformed body", codecCall{path: "/codec/decode", key: keys["operator"], body: []byte("{not json")}, 400, "decode: "},
		{"body too large", codecCall{path: "/codec/decode", key: keys["operator"], body: bytes.Repeat([]byte(" "), MaxCodecBodyBytes+1)}, 413, "larger than"},
		{"rate limit: first", codecCall{path: "/codec/decode", key: keys["slow"], body: body}, 200, ""},
		{"rate limit: second", codecCall{path: "/codec/decode", key: keys["slow"], body: body}, 429, "rate limit"},
	} {
		w := tc.call.do(h)
		if w.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.code)
			continue
		}
		if tc.code != 200 && !strings.Contains(jsonError(t, w), tc.has) {
			t.Errorf("%s: %s, want an error naming %q", tc.name, w.Body, tc.has)
		}
		if tc.code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, w.Header().Get("WWW-Authenticate"))
		}
		if tc.code == 429 && w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", tc.name)
		}
	}
	for _, c := range []codecCall{
		{method: http.MethodGet, path: "/codec/decode", key: keys["operator"]},
		{path: "/codec/download", key: keys["operator"], body: body},
		{path: "/decode", key: keys["operator"], body: body},
		{path: "/codec/x/decode", key: keys["operator"], body: body},
	} {
		if w := c.do(h); w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 404 or 405", c.method, c.path, w.Code)
		}
	}
}

// DISPATCHFLOW_CODEC_AUTH=off (make run): no key needed; and without
// DISPATCHFLOW_CODEC_ADDR there is no codec server at all.
func TestCodecAuthOff(t *testing.T) {
	t.Parallel()
	h, _ := codecAPI(t, func(c *config.Config) { c.CodecAuth = "off" })
	if w := (codecCall{path: "/codec/decode", origin: uiOrigin, body: payloadsJSON(t)}).do(h); w.Code != http.StatusOK {
		t.Errorf("auth off, no key: %d %s, want 200", w.Code, w.Body)
	}
	a, _ := keyedAPI(t, nil, map[string][]auth.Scope{"admin": {auth.ScopeAll}})
	if a.CodecHandler() != nil {
		t.Error("a codec handler without DISPATCHFLOW_CODEC_ADDR")
	}
}
