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
