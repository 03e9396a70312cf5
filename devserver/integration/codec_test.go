package integration

import (
	"context"
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

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
