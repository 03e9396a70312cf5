package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-retryablehttp"
)

// userAgent identifies dispatchflow's fallback requests to the systems they reach.
const userAgent = "dispatchflow-fallback/1"

// Webhook sends fallbacks to the customer's own internal system: a JSON POST to
// Message.URL (see webhookBody for the fields) with headers Content-Type:
// application/json, User-Agent: dispatchflow-fallback/1 and Idempotency-Key:
// Message.IdempotencyKey.
//
// A 2xx answer confirms the step at once. A redirect is not followed and counts as
// a failure (transient, like 408, 429, 5xx and network errors); any other 4xx is a
// *PermanentError.
//
// Delivery is at-least-once: an attempt that timed out after the receiver processed
// it is retried by Temporal with the same body and the same Idempotency-Key
// ("{dispatch_id}-fallback-{step}", also in the body as idempotency_key), so the
// receiver can dedupe on it: process a key once, answer 2xx to its repeats.
type Webhook struct {
	// HTTP sends the request. It must not retry (RetryMax 0) nor follow redirects:
	// see NewHTTPClient. Nil: NewHTTPClient with a 10s timeout, refusing internal addresses.
	HTTP *retryablehttp.Client
}

var _ Sender = (*Webhook)(nil)

// webhookBody is the JSON a Webhook posts. Fields about the original email are
// omitted when unknown.
type webhookBody struct {
	DispatchID     string `json:"dispatch_id"`
	ExternalSendID string `json:"external_send_id,omitempty"`
	CampaignAPIID  string `json:"campaign_api_id,omitempty"`
	EmailStatus    string `json:"email_status,omitempty"`
	Recipient      string `json:"recipient,omitempty"`
	Subject        string `json:"subject,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Step           int    `json:"step"`
	IdempotencyKey string `json:"idempotency_key"`
}

// Send POSTs m to m.URL.
func (w *Webhook) Send(ctx context.Context, m Message) (Result, error) {
	if m.URL == "" {
		return Result{}, &PermanentError{Reason: "webhook fallback has no url"}
	}
	body, err := json.Marshal(webhookBody{
		DispatchID:     m.DispatchID,
		ExternalSendID: m.ExternalSendID,
		CampaignAPIID:  m.CampaignAPIID,
		EmailStatus:    m.EmailStatus,
		Recipient:      m.Recipient,
		Subject:        m.Subject,
		Reason:         m.Reason,
		Step:           m.Step,
		IdempotencyKey: m.IdempotencyKey,
	})
	if err != nil {
		return Result{}, &PermanentError{Reason: "encoding webhook body: " + err.Error()}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(body))
	if err != nil {
		return Result{}, &PermanentError{Reason: "webhook url: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if m.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	}
	host := Host(m.URL)
	resp, err := clientOr(w.HTTP).Do(req)
	if err != nil {
		return Result{}, RequestError("webhook to", m.URL, err)
	}
	answer := readBody(resp)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return Result{Channel: "webhook", Status: resp.Status, Confirmed: true}, nil
	case permanentStatus(resp.StatusCode):
		reason := fmt.Sprintf("webhook to %s: endpoint answered %s", host, resp.Status)
		if s := snippet(answer); s != "" {
			reason += ": " + s
		}
		return Result{}, &PermanentError{Reason: reason}
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return Result{}, fmt.Errorf("webhook to %s: endpoint answered %s (redirect to %q not followed)",
			host, resp.Status, resp.Header.Get("Location"))
	default:
		return Result{}, fmt.Errorf("webhook to %s: endpoint answered %s", host, resp.Status)
	}
}
