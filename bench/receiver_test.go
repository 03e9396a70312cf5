package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func postback(t *testing.T, url, id, status string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"dispatch_id":"`+id+`","status":"`+status+`"}`))
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("postback answered %s, want 204", resp.Status)
	}
}

// A waiter is woken by its postback, and only by its own; a postback that came
// first is found at once; a repeated one keeps its first arrival.
func TestReceiver(t *testing.T) {
	r := newReceiver()
	srv := httptest.NewServer(r)
	defer srv.Close()
	ctx := context.Background()

	since := time.Now()
	type answer struct {
		d   time.Duration
		err error
	}
	got := make(chan answer, 1)
	go func() {
		d, err := r.wait(ctx, "d1", "processed", since)
		got <- answer{d, err}
	}()
	postback(t, srv.URL, "d1", "sent")      // another status
	postback(t, srv.URL, "d2", "processed") // another message
	select {
	case a := <-got:
		t.Fatalf("woken by another postback: %v %v", a.d, a.err)
	case <-time.After(50 * time.Millisecond):
	}
	time.Sleep(20 * time.Millisecond)
	postback(t, srv.URL, "d1", "processed")
	select {
	case a := <-got:
		if a.err != nil || a.d < 20*time.Millisecond || a.d > 10*time.Second {
			t.Errorf("wait = %s, %v; want the time from since to the postback", a.d, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by its postback")
	}

	first, err := r.wait(ctx, "d1", "sent", since)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	postback(t, srv.URL, "d1", "sent") // again: the first arrival counts
	if again, err := r.wait(ctx, "d1", "sent", since); err != nil || again != first {
		t.Errorf("after a repeated postback: %s, %v; want the first arrival, %s", again, err, first)
	}
}

func TestReceiverGivesUp(t *testing.T) {
	r := newReceiver()
	r.timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := r.wait(context.Background(), "d1", "sent", start)
	if err == nil || !strings.Contains(err.Error(), "no sent postback for d1") {
		t.Errorf("wait without a postback: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want after the 50 ms timeout", d)
	}

	r.timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start = time.Now()
	if _, err := r.wait(ctx, "d1", "sent", start); err == nil {
		t.Error("wait: no error once the context is done")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up %s after the context was done", d)
	}
}

// startReceiver serves on loopback at the URL it names.
func TestStartReceiver(t *testing.T) {
	r, err := startReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if !strings.HasPrefix(r.url, "http://127.0.0.1:") || !strings.HasSuffix(r.url, "/postbacks") {
		t.Errorf("url %q", r.url)
	}
	postback(t, r.url, "d1", "sent")
	if _, err := r.wait(context.Background(), "d1", "sent", time.Now()); err != nil {
		t.Error(err)
	}
}
