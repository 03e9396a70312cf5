package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// With DISPATCHFLOW_PAYLOAD_KEY, Temporal stores no address, subject or body —
// not in the start event, the signals, the activities or the results — while the
// API, the postbacks and the list work as without it.
func TestPayloadEncryption(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	s := setup(t, func(c *config.Config) { c.PayloadKey = key })
	const to, subject = "encrypted-ok@example.com", "Secret order #77"
	ext := "codec-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	id := s.send(message.SendRequest{To: to, Subject: subject, Text: "Thanks.", ExternalSendID: ext, PostbackURL: s.postback.URL})
	posts := s.postback.waitFor(t, id, 3) // sent, processed, delivered: activities decrypt their inputs
	if got := posts[2]["status"]; got != "delivered" {
		t.Fatalf("third postback status %v, want delivered", got)
	}
	if st := s.state(id); st.Recipient != to || st.Status != message.StatusDelivered {
		t.Fatalf("state: recipient %q status %s, want %q delivered (the query answer is decrypted)", st.Recipient, st.Status, to)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var h historypb.History
	iter := s.client.GetWorkflowHistory(ctx, id, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	raw, err := protojson.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	// Payload data is bytes, base64 in JSON: decode every one before looking.
	clear := string(raw)
	for _, m := range regexp.MustCompile(`"data":"([A-Za-z0-9+/=]*)"`).FindAllStringSubmatch(string(raw), -1) {
		b, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatalf("payload data %q: %v", m[1], err)
		}
		clear += "\n" + string(b)
	}
	if !strings.Contains(clear, id) {
		t.Fatalf("found no dispatch_id in the decoded history: the scan reads nothing")
	}
	for _, secret := range []string{to, subject, "Thanks."} {
		if strings.Contains(clear, secret) {
			t.Errorf("history holds %q in clear", secret)
		}
	}
	input := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) == 0 || string(input[0].GetMetadata()["encoding"]) != codec.Encoding {
		t.Errorf("start event input %v: want one payload with encoding %s", input, codec.Encoding)
	}

	// Search attributes are not payloads: the list still filters and reads them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, page := s.list(url.Values{"external_send_id": {ext}})
		if code == 200 && len(page.Messages) == 1 && page.Messages[0].Status == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list by external_send_id: %d %+v, want the delivered message", code, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Rotating the payload key while a message is open: the processes restart with
// DISPATCHFLOW_PAYLOAD_KEYS=new,old; the open message's old payloads still
// decrypt, its new ones are encrypted with the new key, and it carries on.
func TestPayloadKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey := base64.StdEncoding.EncodeToString([]byte("old-payload-key-0123456789abcdef"))
	newKey := base64.StdEncoding.EncodeToString([]byte("new-payload-key-0123456789abcdef"))
	s := setup(t, func(c *config.Config) { c.PayloadKey = oldKey })
	id := s.send(message.SendRequest{To: "blackhole@example.com", Subject: "Rotated", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 2) // sent, processed; then nothing: the message stays open
	s.stopWorker()

	rotated := setup(t, func(c *config.Config) { c.PayloadKeys = []string{newKey, oldKey} })
	if resp := rotated.do("POST", "/v1/events/generic", map[string]any{"dispatch_id": id, "event": "delivered", "event_id": "rot-1"}, nil); resp.StatusCode != 200 {
		t.Fatalf("event after the rotation: %d", resp.StatusCode)
	}
	if got := statuses(s.postback.waitFor(t, id, 3)); got[2] != "delivered" {
		t.Fatalf("postbacks %v, want delivered third", got)
	}
	if st := rotated.state(id); st.Status != message.StatusDelivered || st.Recipient != "blackhole@example.com" {
		t.Errorf("state after the rotation: %s %q, want delivered with its recipient", st.Status, st.Recipient)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rotated.client.GetWorkflowHistory(ctx, id, "", false, 0)
	ids := map[string]int{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := protojson.Marshal(ev)
		for _, m := range regexp.MustCompile(`"encryption-key-id":"([A-Za-z0-9+/=]*)"`).FindAllStringSubmatch(string(raw), -1) {
			b, _ := base64.StdEncoding.DecodeString(m[1])
			ids[string(b)]++
		}
	}
	for name, key := range map[string]string{"old": oldKey, "new": newKey} {
		raw, _ := codec.ParseKey(key)
		c, _ := codec.NewAES(raw)
		if ids[c.KeyID()] == 0 {
			t.Errorf("no payload of the %s key %s in the history (key ids seen: %v)", name, c.KeyID(), ids)
		}
	}
}

// The codec server, as the API serves it on DISPATCHFLOW_CODEC_ADDR: the raw
// history (read by a client without the payload key) holds only ciphertext of a
// message's input; POSTing that input to /codec/decode, as the Temporal UI does,
// answers the subject in clear — to a key with payloads:decode of any workspace,
// not to one without it.
func TestCodecServer(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString([]byte("codec-server-key-0123456789abcde"))
	const uiOrigin = "http://localhost:8233"
	s := setup(t, func(c *config.Config) { c.PayloadKey = key })
	const subject = "Codec server order #4242"
	id := s.send(message.SendRequest{To: "codec-ok@example.com", Subject: subject, Text: "Thanks.", PostbackURL: s.postback.URL})

	// The API process, with its codec server on a listener of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	codecAddr := ln.Addr().String()
	_ = ln.Close()
	cfg := s.cfg
	cfg.HTTPAddr, cfg.MetricsAddr = "127.0.0.1:0", ""
	cfg.CodecAddr, cfg.CodecCORSOrigins = codecAddr, []string{uiOrigin}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, s.client, cfg, s.logger, app.Roles{API: true}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})

	// The raw history, read without the payload key.
	raw, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: s.cfg.Temporal.Namespace,
		Logger: sdklog.NewStructuredLogger(s.logger)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	first, err := raw.GetWorkflowHistory(hctx, id, "", false, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	input := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
	if len(input.GetPayloads()) == 0 || string(input.GetPayloads()[0].GetMetadata()["encoding"]) != codec.Encoding {
		t.Fatalf("start event input %v: want a payload with encoding %s", input, codec.Encoding)
	}
	if bytes.Contains(input.GetPayloads()[0].GetData(), []byte(subject)) {
		t.Fatalf("the raw history holds the subject in clear")
	}
	body, err := protojson.Marshal(input) // {"payloads": [...]}, as the UI has it from the history
	if err != nil {
		t.Fatal(err)
	}

	post := func(key, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+codecAddr+"/codec/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", s.cfg.Temporal.Namespace)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		var resp *http.Response
		eventually(t, "the codec server listening", func() bool {
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				req.Body, _ = req.GetBody()
			}
			return err == nil
		})
		return resp
	}
	for _, name := range []string{"operator"} {
		resp := post(s.keys[name], uiOrigin)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
			t.Fatalf("decode with key %s: %d %s (CORS %q), want 200 for %s", name, resp.StatusCode, b, resp.Header.Get("Access-Control-Allow-Origin"), uiOrigin)
		}
		var dec commonpb.Payloads
		if err := protojson.Unmarshal(b, &dec); err != nil || len(dec.GetPayloads()) != 1 {
			t.Fatalf("decode with key %s: %s (%v), want one payload", name, b, err)
		}
		var in map[string]any
		if err := converter.GetDefaultDataConverter().FromPayload(dec.GetPayloads()[0], &in); err != nil {
			t.Fatalf("decoded input: %v", err)
		}
		if got, _ := json.Marshal(in); !bytes.Contains(got, []byte(`"subject":"`+subject+`"`)) {
			t.Errorf("decoded input with key %s: %s, want the subject %q in clear", name, got, subject)
		}
	}
	// "*" is every scope of a workspace, not payloads:decode, which reaches
	// across workspaces: a tenant's admin key decodes nothing.
	for name, want := range map[string]int{"": http.StatusUnauthorized, "reader": http.StatusForbidden, "admin": http.StatusForbidden} {
		resp := post(s.keys[name], "")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || bytes.Contains(b, []byte(subject)) {
			t.Errorf("decode with key %q: %d %s, want %d", name, resp.StatusCode, b, want)
		}
	}
}
