package auth

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// A bucket allows its burst at once, then refuses, saying when a token comes.
func TestLimiterBurst(t *testing.T) {
	t.Parallel()
	l := NewLimiter(10)
	lim := RateLimit{PerSecond: 4, Burst: 3}
	for i := range 3 {
		if ok, _ := l.Allow("key_ci", lim, t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("key_ci", lim, t0)
	if ok || retry != 250*time.Millisecond {
		t.Errorf("after the burst: %v, retry after %s; want refused, 250ms (1/rate)", ok, retry)
	}
	// Another name has its own bucket.
	if ok, _ := l.Allow("key_other", lim, t0); !ok {
		t.Error("another name refused")
	}
	// A refusal takes no token: the wait shrinks with time only.
	ok, retry = l.Allow("key_ci", lim, t0.Add(100*time.Millisecond))
	if ok || retry != 150*time.Millisecond {
		t.Errorf("100ms later: %v, retry after %s; want refused, 150ms", ok, retry)
	}
}

// Tokens come back at the rate, up to the burst.
func TestLimiterRefill(t *testing.T) {
	t.Parallel()
	l := NewLimiter(10)
	lim := RateLimit{PerSecond: 2, Burst: 2}
	allow := func(at time.Duration) bool {
		ok, _ := l.Allow("key_ci", lim, t0.Add(at))
		return ok
	}
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, false},
		{499 * time.Millisecond, false}, // 0.998 token
		{500 * time.Millisecond, true},  // one token
		{500 * time.Millisecond, false},
		{time.Hour, true}, {time.Hour, true}, // refilled to the burst, not beyond
		{time.Hour, false},
		{time.Hour - time.Second, false}, // a clock going back earns nothing
	}
	for i, s := range steps {
		if got := allow(s.at); got != s.want {
			t.Errorf("step %d at +%s: allowed %v, want %v", i, s.at, got, s.want)
		}
	}
}

func TestLimiterSlowRate(t *testing.T) {
	t.Parallel()
	l := NewLimiter(10)
	lim := RateLimit{PerSecond: 0.5, Burst: 1}
	l.Allow("replay:abc", lim, t0)
	if ok, retry := l.Allow("replay:abc", lim, t0); ok || retry != 2*time.Second {
		t.Errorf("%v, retry after %s; want refused, 2s", ok, retry)
	}
}

// An invalid limit counts as the default one.
func TestLimiterInvalidLimit(t *testing.T) {
	t.Parallel()
	l := NewLimiter(10)
	for i := range DefaultRateLimit.Burst {
		if ok, _ := l.Allow("k", RateLimit{}, t0); !ok {
			t.Fatalf("request %d refused within the default burst", i+1)
		}
	}
	if ok, retry := l.Allow("k", RateLimit{}, t0); ok || retry != 20*time.Millisecond {
		t.Errorf("%v, retry after %s; want refused, 20ms (the default's 50/s)", ok, retry)
	}
}

// The Limiter never holds more than maxEntries buckets. Full buckets go first;
// without one, the least recently used one goes.
func TestLimiterEviction(t *testing.T) {
	t.Parallel()
	lim := RateLimit{PerSecond: 1, Burst: 2}
	l := NewLimiter(3)
	for i := range 100 {
		l.Allow(fmt.Sprintf("k%d", i), lim, t0)
		if l.Len() > 3 {
			t.Fatalf("%d buckets after %d names, want at most 3", l.Len(), i+1)
		}
	}

	// 0.1 token per second: 10 s to earn one.
	lim = RateLimit{PerSecond: 0.1, Burst: 2}
	l = NewLimiter(3)
	l.Allow("old", lim, t0)                       // 1 left
	l.Allow("busy", lim, t0.Add(time.Second))     // 1 left
	l.Allow("busy", lim, t0.Add(time.Second))     // 0 left
	l.Allow("recent", lim, t0.Add(2*time.Second)) // 1 left
	// At +2s nobody is full: the least recently used, old, goes.
	l.Allow("new", lim, t0.Add(2*time.Second))
	if _, ok := l.buckets["old"]; ok || l.Len() != 3 {
		t.Errorf("buckets %v: want old dropped, 3 left", keysOf(l))
	}
	// At +12s recent and new have refilled: they go; busy has not, and stays
	// though it is the least recently used.
	l.Allow("newer", lim, t0.Add(12*time.Second))
	if _, ok := l.buckets["busy"]; !ok || l.Len() != 2 {
		t.Errorf("buckets %v: want busy and newer", keysOf(l))
	}
	// A dropped bucket comes back full: old may burst again.
	for i := range 2 {
		if ok, _ := l.Allow("old", lim, t0.Add(12*time.Second)); !ok {
			t.Errorf("old's request %d refused after eviction", i+1)
		}
	}
}

func keysOf(l *Limiter) []string {
	var names []string
	for n := range l.buckets {
		names = append(names, n)
	}
	return names
}
