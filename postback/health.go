package postback

import (
	"context"
	"sync"
)

// Health is what the Postback activity knows of endpoints' health. The worker's
// implementation keeps it durably in Temporal; MemoryHealth serves tests.
type Health interface {
	// Disabled reports whether endpointID is disabled, and why.
	Disabled(ctx context.Context, endpointID string) (reason string, disabled bool)
	// Disable disables endpointID (it answered 410 Gone) until an operator enables it.
	Disable(ctx context.Context, endpointID, reason string) error
	// Report records an attempt (last success, consecutive failures). It must not block.
	Report(endpointID string, a Attempt)
}

// MemoryHealth is a Health in memory, for tests and single-process tools.
// The zero value is ready to use.
type MemoryHealth struct {
	mu       sync.Mutex
	disabled map[string]string
	reports  map[string][]Attempt
}

var _ Health = (*MemoryHealth)(nil)

func (h *MemoryHealth) Disabled(_ context.Context, id string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reason, ok := h.disabled[id]
	return reason, ok
}

func (h *MemoryHealth) Disable(_ context.Context, id, reason string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.disabled == nil {
		h.disabled = make(map[string]string)
	}
	h.disabled[id] = reason
	return nil
}

// Enable enables id again.
func (h *MemoryHealth) Enable(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.disabled, id)
}

func (h *MemoryHealth) Report(id string, a Attempt) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reports == nil {
		h.reports = make(map[string][]Attempt)
	}
	h.reports[id] = append(h.reports[id], a)
}

// Reports returns the attempts reported for id, oldest first.
func (h *MemoryHealth) Reports(id string) []Attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Attempt(nil), h.reports[id]...)
}
