package starter

import "sync"

// recentKeys remembers the dedupe keys of events recently signalled by this
// process, so that an ESP's retry of a batch is answered as duplicates without a
// round trip to Temporal. It is an optimisation and a courtesy to the ESP, not the
// guarantee: each workflow deduplicates its own events. Two generations of at most
// size keys each: when the current one fills up, the older one is dropped.
type recentKeys struct {
	mu        sync.Mutex
	size      int
	cur, prev map[string]struct{}
}

func newRecentKeys(size int) *recentKeys {
	return &recentKeys{size: size, cur: map[string]struct{}{}, prev: map[string]struct{}{}}
}

func (r *recentKeys) seen(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, inCur := r.cur[key]
	_, inPrev := r.prev[key]
	return inCur || inPrev
}

func (r *recentKeys) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) >= r.size {
		r.prev, r.cur = r.cur, make(map[string]struct{}, r.size)
	}
	r.cur[key] = struct{}{}
}
