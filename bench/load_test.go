package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// fakeAPI is a system's HTTP API as the load sees it: it accepts sends and
// events when authenticated as the driver must, and posts the postbacks they
// cause to the receiver a little later.
type fakeAPI struct {
	t        *testing.T
	keys     Keys
	postback string
	sends    atomic.Int64
	mu       sync.Mutex
	events   []string // dispatch_id/event
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "Bearer "+f.keys.APIKey {
		http.Error(w, "no key", http.StatusUnauthorized)
		return
	}
	var in map[string]string
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/v1/messages":
		if in["to"] != "silent@example.com" || in["subject"] == "" || in["text"] == "" {
			http.Error(w, fmt.Sprintf("send %v", in), http.StatusUnprocessableEntity)
			return
		}
		id := fmt.Sprintf("d%d", f.sends.Add(1))
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"dispatch_id":%q}`, id)
		go f.post(id, "sent")
	case "/v1/events/generic":
		wh, _ := standardwebhooks.NewWebhook(f.keys.Intake)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "event not signed with the intake secret: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if in["event_id"] != in["dispatch_id"]+"-"+in["event"] {
			http.Error(w, fmt.Sprintf("event %v", in), http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		f.events = append(f.events, in["dispatch_id"]+"/"+in["event"])
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		go f.post(in["dispatch_id"], in["event"])
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) post(id, status string) {
	time.Sleep(2 * time.Millisecond)
	resp, err := http.Post(f.postback, "application/json", bytes.NewReader([]byte(`{"dispatch_id":"`+id+`","status":"`+status+`"}`)))
	if err != nil {
		f.t.Error(err)
		return
	}
	resp.Body.Close()
}

func newFakeAPI(t *testing.T) (*driver, *fakeAPI, string) {
	t.Helper()
	keys, err := WriteKeys(t.TempDir()+"/keys.json", "bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newReceiver()
	rec.timeout = 10 * time.Second
	recSrv := httptest.NewServer(rec)
	t.Cleanup(recSrv.Close)
	f := &fakeAPI{t: t, keys: keys, postback: recSrv.URL + "/postbacks"}
	api := httptest.NewServer(f)
	t.Cleanup(api.Close)
	return newDriver(keys, rec), f, api.URL
}

// The closed loop plays every message's whole life: send, sent postback,
// processed and delivered, each event after the previous postback.
func TestRunClosed(t *testing.T) {
	d, f, api := newFakeAPI(t)
	ls, err := d.runClosed(context.Background(), []string{api}, 12, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 12 || f.sends.Load() != 12 {
		t.Fatalf("%d lifecycles, %d sends; want 12", len(ls), f.sends.Load())
	}
	ids := map[string]bool{}
	for _, l := range ls {
		ids[l.id] = true
		if l.sent <= 0 || l.processed <= 0 || l.delivered <= 0 {
			t.Errorf("lifecycle %+v: want every latency measured", l)
		}
	}
	if len(ids) != 12 {
		t.Errorf("%d distinct dispatch_ids, want 12", len(ids))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range ids {
		p, dl := slices.Index(f.events, id+"/processed"), slices.Index(f.events, id+"/delivered")
		if p < 0 || dl < p {
			t.Errorf("%s: events %v, want processed then delivered", id, f.events)
		}
	}
}

// The open loop starts the messages at the rate given, whatever the ones before
// are doing.
func TestRunOpen(t *testing.T) {
	d, f, api := newFakeAPI(t)
	start := time.Now()
	ls, err := d.runOpen(context.Background(), []string{api}, 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 8 || f.sends.Load() != 8 {
		t.Fatalf("%d lifecycles, %d sends; want 8", len(ls), f.sends.Load())
	}
	if el := time.Since(start); el < 70*time.Millisecond {
		t.Errorf("8 messages at 100/s in %s, want 80 ms at least", el)
	}
}

// A refused request ends the run with the API's answer.
func TestRunClosedRefused(t *testing.T) {
	d, _, api := newFakeAPI(t)
	d.keys.APIKey = "wrong"
	_, err := d.runClosed(context.Background(), []string{api}, 3, 2)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("runClosed with a wrong key: %v, want the 401", err)
	}
}

func TestParallel(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	var inFlight, most atomic.Int64
	err := parallel(50, 4, func(i int) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	for i, v := range seen {
		if v != i+1 {
			t.Fatalf("calls %v, want 1 … 50 once each", seen)
		}
	}
	if len(seen) != 50 || most.Load() > 4 {
		t.Errorf("%d calls, %d at once at most; want 50, at most 4", len(seen), most.Load())
	}

	boom := errors.New("boom")
	var calls atomic.Int64
	err = parallel(100, 2, func(i int) error {
		calls.Add(1)
		if i <= 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() > 4 {
		t.Errorf("parallel with failing calls: %v after %d calls; want boom, each goroutine stopped at its failure", err, calls.Load())
	}
}
