package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// message is one email the check sends, and what its state must become.
type message struct {
	Name           string         // delivered, bounced, escalated
	Request        map[string]any // body of POST /v1/messages
	WantStatus     string         // final status in GET /v1/messages/{id}
	WantFallback   string         // final fallback.state ("" when there is no policy)
	ExternalSendID string
	DispatchID     string // set by send
}

// messages returns the emails the check sends: one delivered, one bounced, and
// one that bounces and escalates to the sandbox fallback channel (README:
// "Fallback"). The sandbox ESP decides by the recipient (README: "Try it").
// nonce makes the external_send_ids unique.
func messages(nonce string) []*message {
	req := func(to, name string) map[string]any {
		return map[string]any{
			"to":               to,
			"subject":          "ui-check " + name,
			"text":             "Sent by make ui-check.",
			"external_send_id": "ui-check-" + name + "-" + nonce,
			"campaign_api_id":  "ui-check",
		}
	}
	delivered := &message{Name: "delivered", Request: req("ok@example.com", "delivered"), WantStatus: "delivered"}
	bounced := &message{Name: "bounced", Request: req("bounce@example.com", "bounced"), WantStatus: "bounced"}
	escalated := &message{Name: "escalated", Request: req("bounce@example.com", "escalated"), WantStatus: "bounced", WantFallback: "escalated"}
	escalated.Request["fallback"] = map[string]any{
		"on":    []string{"bounced"},
		"steps": []map[string]any{{"channel": "sandbox", "to": fallbackPhone, "text": "Your order is on its way."}},
	}
	msgs := []*message{delivered, bounced, escalated}
	for _, m := range msgs {
		m.ExternalSendID = m.Request["external_send_id"].(string)
	}
	return msgs
}

// fallbackPhone is the escalated message's fallback target; it must never
// appear in the Temporal UI.
const fallbackPhone = "+33612345678"

// api is a client of dispatchflow's HTTP API.
type api struct {
	base   string
	key    string // sent as Authorization: Bearer
	client *retryablehttp.Client
}

func newAPI(base, key string) *api {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 3
	c.RetryWaitMin = 200 * time.Millisecond
	c.RetryWaitMax = time.Second
	c.HTTPClient.Timeout = 10 * time.Second
	return &api{base: base, key: key, client: c}
}

// send posts m and records its dispatch_id.
func (a *api) send(ctx context.Context, m *message) error {
	var out struct {
		DispatchID string `json:"dispatch_id"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/messages", m.Request, http.StatusAccepted, &out); err != nil {
		return fmt.Errorf("send the %s message: %w", m.Name, err)
	}
	if out.DispatchID == "" {
		return fmt.Errorf("send the %s message: no dispatch_id in the answer", m.Name)
	}
	m.DispatchID = out.DispatchID
	return nil
}

// state is the part of GET /v1/messages/{id} the check reads.
type state struct {
	Status   string `json:"status"`
	Fallback struct {
		State string `json:"state"`
	} `json:"fallback"`
}

// waitFinal polls GET /v1/messages/{id} until m shows its final status (and
// fallback state), or ctx ends.
func (a *api) waitFinal(ctx context.Context, m *message) error {
	var st state
	for {
		err := a.do(ctx, http.MethodGet, "/v1/messages/"+m.DispatchID, nil, http.StatusOK, &st)
		if err == nil && st.Status == m.WantStatus && (m.WantFallback == "" || st.Fallback.State == m.WantFallback) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("the %s message %s: %w", m.Name, m.DispatchID, err)
			}
			return fmt.Errorf("the %s message %s: status %q, fallback %q; want status %q, fallback %q",
				m.Name, m.DispatchID, st.Status, st.Fallback.State, m.WantStatus, m.WantFallback)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// do sends body as JSON (when not nil), checks the status code and decodes
// the answer into out.
func (a *api) do(ctx context.Context, method, path string, body any, wantCode int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != wantCode {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}
