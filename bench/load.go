package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
)

// driver plays the app and its ESP against a system's HTTP API, the postbacks
// arriving at rec.
type driver struct {
	keys Keys
	rec  *receiver
	hc   *http.Client
}

func newDriver(keys Keys, rec *receiver) *driver {
	return &driver{keys: keys, rec: rec,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// lifecycle is one message's life as the app and the ESP see it.
type lifecycle struct {
	id                         string
	sent, processed, delivered time.Duration // send → sent postback; event → its postback
}

// one plays message i's life on the API at api: the send, its sent postback,
// then the ESP's processed and delivered events, each posted once the previous
// postback arrived.
func (d *driver) one(ctx context.Context, api string, i int) (lifecycle, error) {
	var l lifecycle
	t := time.Now()
	var err error
	if l.id, err = d.send(ctx, api, "Order "+strconv.Itoa(i), "Thanks"); err != nil {
		return l, err
	}
	if l.sent, err = d.rec.wait(ctx, l.id, "sent", t); err != nil {
		return l, err
	}
	for _, ev := range []string{"processed", "delivered"} {
		t := time.Now()
		if err := d.post(ctx, api+"/v1/events/generic", map[string]string{"dispatch_id": l.id, "event": ev, "event_id": l.id + "-" + ev}, nil); err != nil {
			return l, err
		}
		lat, err := d.rec.wait(ctx, l.id, ev, t)
		if err != nil {
			return l, err
		}
		if ev == "processed" {
			l.processed = lat
		} else {
			l.delivered = lat
		}
	}
	return l, nil
}

// send sends a message to silent@ (the sandbox ESP reports nothing about it) and
// returns its dispatch_id.
func (d *driver) send(ctx context.Context, api, subject, text string) (string, error) {
	var out struct {
		DispatchID string `json:"dispatch_id"`
	}
	err := d.post(ctx, api+"/v1/messages", map[string]string{"to": "silent@example.com", "subject": subject, "text": text}, &out)
	return out.DispatchID, err
}

// runClosed runs n lifecycles, c at a time, lifecycle i on apis[i % len(apis)]
// (several API processes, as a load balancer spreads requests).
func (d *driver) runClosed(ctx context.Context, apis []string, n, c int) ([]lifecycle, error) {
	var (
		mu  sync.Mutex
		out []lifecycle
	)
	err := parallel(n, c, func(i int) error {
		l, err := d.one(ctx, apis[i%len(apis)], i)
		mu.Lock()
		out = append(out, l)
		mu.Unlock()
		return err
	})
	return out, err
}

// runOpen starts n lifecycles at a fixed rate, whatever the ones before are
// doing, lifecycle i on apis[i % len(apis)].
func (d *driver) runOpen(ctx context.Context, apis []string, n int, rate float64) ([]lifecycle, error) {
	var (
		mu    sync.Mutex
		out   []lifecycle
		first error
		wg    sync.WaitGroup
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := d.one(ctx, apis[i%len(apis)], i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out = append(out, l)
		}()
	}
	wg.Wait()
	return out, first
}

// parallel calls f(1) … f(n), c calls at a time; a goroutine whose call fails
// stops, the others go on. It returns the first error.
func parallel(n, c int, f func(i int) error) error {
	var (
		next  atomic.Int64
		first atomic.Value
		wg    sync.WaitGroup
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err, _ := first.Load().(error)
	return err
}

// post posts body as JSON to url, as the app does (with the API key) or, to
// /v1/events/…, as an ESP does (signed with the intake secret), and decodes a
// 2xx answer into out (when not nil).
func (d *driver) post(ctx context.Context, url string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+d.keys.APIKey)
	if strings.Contains(url, "/v1/events/") {
		// As an ESP does: every event post signed (the intake refuses the others).
		if err := intake.SignStandard(req.Header, d.keys.Intake, "evt_"+message.NewDispatchID(), time.Now(), raw); err != nil {
			return err
		}
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
