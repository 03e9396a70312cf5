package auth

import (
	"math"
	"sync"
	"time"
)

// Limiter holds token buckets by name (a key id, or "replay:<dispatch_id>"), at
// most maxEntries of them, so that many names cannot exhaust memory. When it is
// full, a new name first drops every bucket that has refilled completely: such a
// bucket is the same as a new one, so dropping it loses nothing. When none has,
// it drops the least recently used bucket, whose name may then burst again.
// A Limiter is safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time // of the last refill, and the last use
	lim    RateLimit // of the last use
}

// NewLimiter returns a Limiter of at most maxEntries buckets (1 when less).
func NewLimiter(maxEntries int) *Limiter {
	return &Limiter{max: max(maxEntries, 1), buckets: make(map[string]*bucket)}
}

// Allow takes one token from name's bucket, created full (lim.Burst tokens) the
// first time, and refilled at lim.PerSecond since. With no token left it returns
// false and how long until one is available (more than zero; rounding it to
// whole seconds for Retry-After is the caller's business). lim may change between
// calls: a key file reloaded with a new limit. An invalid lim (per_second <= 0 or
// burst < 1) counts as DefaultRateLimit.
func (l *Limiter) Allow(name string, lim RateLimit, now time.Time) (ok bool, retryAfter time.Duration) {
	if !(lim.PerSecond > 0) || lim.Burst < 1 {
		lim = DefaultRateLimit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[name]
	if !found {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: float64(lim.Burst), last: now}
		l.buckets[name] = b
	}
	b.lim = lim
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / lim.PerSecond * float64(time.Second)))
	return false, max(wait, time.Nanosecond)
}

// refill adds the tokens earned since b.last, up to the burst. A clock that went
// back earns nothing.
func (b *bucket) refill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += elapsed.Seconds() * b.lim.PerSecond
		b.last = now
	}
	b.tokens = min(b.tokens, float64(b.lim.Burst))
}

// full reports whether b will have refilled completely at now.
func (b *bucket) full(now time.Time) bool {
	tokens := b.tokens
	if elapsed := now.Sub(b.last); elapsed > 0 {
		tokens += elapsed.Seconds() * b.lim.PerSecond
	}
	return tokens >= float64(b.lim.Burst)
}

// evict makes room for one bucket: it drops every full bucket, or else the least
// recently used one. It costs one pass over the buckets, and runs only when the
// Limiter is full.
func (l *Limiter) evict(now time.Time) {
	var oldest *bucket
	var oldestName string
	dropped := false
	for name, b := range l.buckets {
		if b.full(now) {
			delete(l.buckets, name)
			dropped = true
			continue
		}
		if oldest == nil || b.last.Before(oldest.last) {
			oldest, oldestName = b, name
		}
	}
	if !dropped {
		delete(l.buckets, oldestName)
	}
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
