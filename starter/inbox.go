package starter

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Inbox is a postback endpoint for trying dispatchflow out (DISPATCHFLOW_DEV_INBOX):
// POST stores a postback, GET /dev/inbox?dispatch_id=… lists what arrived, oldest
// first. It keeps the last 1,000 postbacks in memory.
type Inbox struct {
	mu       sync.Mutex
	received []inboxEntry
}

type inboxEntry struct {
	ReceivedAt time.Time       `json:"received_at"`
	Body       json.RawMessage `json:"body"`
}

const inboxSize = 1000

func (in *Inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil || !json.Valid(body) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not JSON"})
			return
		}
		in.mu.Lock()
		in.received = append(in.received, inboxEntry{ReceivedAt: time.Now().UTC(), Body: body})
		if len(in.received) > inboxSize {
			in.received = in.received[len(in.received)-inboxSize:]
		}
		in.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		id := r.URL.Query().Get("dispatch_id")
		in.mu.Lock()
		out := []inboxEntry{}
		for _, e := range in.received {
			var p struct {
				DispatchID string `json:"dispatch_id"`
			}
			if id == "" || (json.Unmarshal(e.Body, &p) == nil && p.DispatchID == id) {
				out = append(out, e)
			}
		}
		in.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET or POST"})
	}
}
