package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dispatchflow/dispatchflow/intake"
)

// apiClient calls dispatchflow's HTTP API as a well-behaved client and ESP do:
// every non-2xx answer and every connection error is retried with backoff. With
// several API processes it spreads its calls over them and retries a failed
// call on the next one, as a load balancer in front of them does.
type apiClient struct {
	bases        []string // http://127.0.0.1:port, one per API process
	next         atomic.Uint64
	key          string // API key of the management routes
	intakeSecret string // signs generic events
	retryFor     time.Duration
	hc           *http.Client
	retries      atomic.Int64 // attempts that were not answered 2xx
}

func newAPIClient(bases []string, key, intakeSecret string, retryFor time.Duration) *apiClient {
	return &apiClient{bases: bases, key: key, intakeSecret: intakeSecret, retryFor: retryFor,
		hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// call sends method path with body (nil: none) until it is answered 2xx, for at
// most c.retryFor, and decodes the answer into out (when not nil). A non-empty
// webhookID signs each attempt with the intake secret (Standard Webhooks), the
// same webhook-id on every attempt as ESPs do.
func (c *apiClient) call(ctx context.Context, method, path string, body []byte, webhookID string, out any) error {
	deadline := time.Now().Add(c.retryFor)
	backoff := 100 * time.Millisecond
	first := c.next.Add(1)
	for attempt := uint64(0); ; attempt++ {
		base := c.bases[(first+attempt)%uint64(len(c.bases))]
		code, answer, err := c.once(ctx, base, method, path, body, webhookID)
		if err == nil && code/100 == 2 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(answer, out); err != nil {
				return fmt.Errorf("%s %s: answer %q: %w", method, path, answer, err)
			}
			return nil
		}
		if err == nil {
			err = fmt.Errorf("answered %d %s", code, bytes.TrimSpace(answer))
		}
		c.retries.Add(1)
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("%s %s: no 2xx answer within %s: last: %w", method, path, c.retryFor, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w (last: %w)", method, path, ctx.Err(), err)
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// once makes one attempt and returns the status code and body of the answer.
func (c *apiClient) once(ctx context.Context, base, method, path string, body []byte, webhookID string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if webhookID != "" {
		if err := intake.SignStandard(req.Header, c.intakeSecret, webhookID, time.Now(), body); err != nil {
			return 0, nil, fmt.Errorf("signing the event: %w", err)
		}
	} else {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

// jitter spreads d by ±25%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}
