package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// receiver is the postback endpoint: it notes when each (dispatch_id, status)
// first arrived and answers 204 at once.
type receiver struct {
	srv     *http.Server
	url     string        // where the systems post: http://127.0.0.1:port/postbacks
	timeout time.Duration // how long wait waits for a postback

	mu   sync.Mutex
	cond *sync.Cond
	got  map[string]time.Time // dispatch_id + "/" + status → first arrival
}

func newReceiver() *receiver {
	r := &receiver{got: map[string]time.Time{}, timeout: 60 * time.Second}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// startReceiver serves postbacks on a loopback port.
func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("postback receiver: %w", err)
	}
	r := newReceiver()
	r.url = "http://" + ln.Addr().String() + "/postbacks"
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() {
	if r != nil && r.srv != nil {
		_ = r.srv.Close()
	}
}

// ServeHTTP records one postback and answers 204.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	var p struct {
		DispatchID string `json:"dispatch_id"`
		Status     string `json:"status"`
	}
	_ = json.NewDecoder(req.Body).Decode(&p)
	w.WriteHeader(http.StatusNoContent)
	r.mu.Lock()
	if _, dup := r.got[p.DispatchID+"/"+p.Status]; !dup {
		r.got[p.DispatchID+"/"+p.Status] = now
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// wait returns how long after since the postback (id, status) arrived, waiting
// for it at most r.timeout.
func (r *receiver) wait(ctx context.Context, id, status string, since time.Time) (time.Duration, error) {
	deadline := time.Now().Add(r.timeout)
	wake := func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() }
	stop := context.AfterFunc(ctx, wake)
	defer stop()
	timer := time.AfterFunc(time.Until(deadline), wake)
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if t, ok := r.got[id+"/"+status]; ok {
			return t.Sub(since), nil
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("no %s postback for %s within %.0fs", status, id, r.timeout.Seconds())
		}
		r.cond.Wait()
	}
}
