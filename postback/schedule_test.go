package postback

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestDefaultSchedule(t *testing.T) {
	t.Parallel()
	want := []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if got := DefaultSchedule.Attempts(); got != len(want) {
		t.Fatalf("got %d attempts, want %d", got, len(want))
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	for attempts, step := range want {
		lo, hi := time.Duration(float64(step)*(1-Jitter)), time.Duration(float64(step)*(1+Jitter))
		for range 200 {
			d, ok := DefaultSchedule.Delay(attempts, rnd)
			if !ok || d < lo || d > hi {
				t.Fatalf("Delay(%d) = %s, %v; want within [%s, %s]", attempts, d, ok, lo, hi)
			}
		}
	}
	if d, ok := DefaultSchedule.Delay(len(want), rnd); ok {
		t.Errorf("Delay(%d) = %s, true; want the schedule exhausted", len(want), d)
	}
}

// The jitter spreads: draws cover most of ±20%, not one point.
func TestJitterSpreads(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	s := Schedule{Duration(100 * time.Second)}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d, _ := s.Delay(1, rnd)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 82*time.Second || hi < 118*time.Second {
		t.Errorf("1000 draws spread over [%s, %s], want about [80s, 120s]", lo, hi)
	}
}

func TestClampRetryAfter(t *testing.T) {
	t.Parallel()
	const step = 5 * time.Minute
	tests := []struct {
		hint, want time.Duration
	}{
		{0, step},                            // no hint
		{time.Second, step},                  // never sooner than the schedule
		{7 * time.Minute, 7 * time.Minute},   // honoured within bounds
		{10 * time.Minute, 10 * time.Minute}, // at the bound
		{time.Hour, 2 * step},                // never later than twice the step
	}
	for _, tt := range tests {
		if got := ClampRetryAfter(step, tt.hint); got != tt.want {
			t.Errorf("ClampRetryAfter(%s, %s) = %s, want %s", step, tt.hint, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Sun, 22 Nov 2026 10:01:30 GMT", 90 * time.Second, true},
		{"Sunday, 22-Nov-26 10:00:10 GMT", 10 * time.Second, true}, // RFC 850, obsolete but allowed
		{"Sun, 22 Nov 2026 09:00:00 GMT", 0, true},                 // in the past
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.header, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want Class
	}{
		{200, ClassSuccess}, {201, ClassSuccess}, {204, ClassSuccess}, {299, ClassSuccess},
		{100, ClassFailure}, {301, ClassFailure}, {302, ClassFailure}, {304, ClassFailure}, {307, ClassFailure},
		{400, ClassFailure}, {401, ClassFailure}, {404, ClassFailure}, {408, ClassFailure}, {429, ClassFailure},
		{410, ClassGone},
		{500, ClassFailure}, {502, ClassFailure}, {503, ClassFailure},
	}
	for _, tt := range tests {
		if got := Classify(tt.code); got != tt.want {
			t.Errorf("Classify(%d) = %s, want %s", tt.code, got, tt.want)
		}
	}
	for code, want := range map[int]bool{429: true, 503: true, 500: false, 502: false, 200: false} {
		if got := honoursRetryAfter(code); got != want {
			t.Errorf("honoursRetryAfter(%d) = %v, want %v (%s)", code, got, want, http.StatusText(code))
		}
	}
}
