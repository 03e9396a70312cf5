package chaos

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is the customer's postback endpoint: it answers each request after a
// random delay, 500 during an outage and 204 otherwise, and records what came.
type receiver struct {
	srv      *http.Server
	url      string
	wh       *standardwebhooks.Webhook
	maxDelay time.Duration

	mu          sync.Mutex
	rnd         *rand.Rand
	outageUntil time.Time
	hooks       map[string]*hook     // webhook-id → what came under it
	arrivals    map[string][]arrival // dispatch_id → first deliveries, in order
	delivered   map[string]time.Time // dispatch_id + "/" + status → first delivery
	requests    int                  // every request
	refused     int                  // answered 500 (outage)
	badSigned   int                  // no valid signature
	unreadable  int                  // not a braze body
}

// hook is what arrived under one webhook-id.
type hook struct {
	bodies     map[[sha256.Size]byte]bool
	deliveries int // requests answered 2xx
}

// arrival is the first delivery of one webhook-id.
type arrival struct {
	webhookID, status string
	at                time.Time
}

// startReceiver serves postbacks on a loopback port, verifying their signatures
// with secret.
func startReceiver(secret string, maxDelay time.Duration, seed uint64) (*receiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{
		url: "http://" + ln.Addr().String() + "/postbacks", wh: wh, maxDelay: maxDelay,
		rnd:   rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		hooks: map[string]*hook{}, arrivals: map[string][]arrival{}, delivered: map[string]time.Time{},
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

// failFor makes the receiver answer 500 for d from now.
func (r *receiver) failFor(d time.Duration) {
	r.mu.Lock()
	r.outageUntil = time.Now().Add(d)
	r.mu.Unlock()
}

// serve answers one postback: 401 unsigned, 400 unreadable, 500 during the
// outage, else 204; each after the random delay.
func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	signed := r.wh.Verify(body, req.Header) == nil
	var pb struct {
		DispatchID string `json:"dispatch_id"`
		Status     string `json:"status"`
	}
	readable := json.Unmarshal(body, &pb) == nil && pb.DispatchID != "" && pb.Status != ""

	r.mu.Lock()
	r.requests++
	delay := time.Duration(r.rnd.Int64N(int64(r.maxDelay) + 1))
	outage := at.Before(r.outageUntil)
	r.mu.Unlock()
	time.Sleep(delay)

	code := http.StatusNoContent
	switch {
	case !signed || id == "":
		code = http.StatusUnauthorized
	case !readable:
		code = http.StatusBadRequest
	case outage:
		code = http.StatusInternalServerError
	}
	r.record(id, pb.DispatchID, pb.Status, sha256.Sum256(body), code, at)
	w.WriteHeader(code)
}

// record notes one request under webhook-id id, answered code.
func (r *receiver) record(id, dispatchID, status string, sum [sha256.Size]byte, code int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch code {
	case http.StatusUnauthorized:
		r.badSigned++
		return
	case http.StatusBadRequest:
		r.unreadable++
		return
	case http.StatusInternalServerError:
		r.refused++
	}
	h := r.hooks[id]
	if h == nil {
		h = &hook{bodies: map[[sha256.Size]byte]bool{}}
		r.hooks[id] = h
	}
	h.bodies[sum] = true
	if code/100 != 2 {
		return
	}
	h.deliveries++
	if h.deliveries == 1 {
		r.arrivals[dispatchID] = append(r.arrivals[dispatchID], arrival{webhookID: id, status: status, at: at})
		key := dispatchID + "/" + status
		if _, ok := r.delivered[key]; !ok {
			r.delivered[key] = at
		}
	}
}

// has reports whether every status of want was delivered for dispatchID.
func (r *receiver) has(dispatchID string, want []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range want {
		if _, ok := r.delivered[dispatchID+"/"+s]; !ok {
			return false
		}
	}
	return true
}

// deliveredAt is when status was first delivered for dispatchID.
func (r *receiver) deliveredAt(dispatchID, status string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.delivered[dispatchID+"/"+status]
	return t, ok
}

// received returns the first deliveries for dispatchID, in order.
func (r *receiver) received(dispatchID string) []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.arrivals[dispatchID]...)
}

// receiverStats sums up the webhook-ids.
type receiverStats struct {
	requests, refused, badSigned, unreadable int
	webhookIDs, duplicated, twoBodies        int
	twoBodiesIDs, duplicatedIDs              []string
}

func (r *receiver) stats() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := receiverStats{requests: r.requests, refused: r.refused, badSigned: r.badSigned, unreadable: r.unreadable}
	for id, h := range r.hooks {
		if h.deliveries > 0 {
			st.webhookIDs++
		}
		if h.deliveries > 1 {
			st.duplicated++
		}
		if len(h.bodies) > 1 {
			st.twoBodies++
			st.twoBodiesIDs = append(st.twoBodiesIDs, id)
		}
	}
	slices.Sort(st.twoBodiesIDs)
	return st
}
