package postback

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("5m", "1h30m") in
// the endpoints file and in JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Schedule is the delays before each retry of a postback: the first attempt is
// made at once, retry i (1-based) Schedule[i-1] after the failure of attempt i.
// len(Schedule)+1 attempts in all.
type Schedule []Duration

// DefaultSchedule is Svix's: at once, then 5s, 5m, 30m, 2h, 5h, 10h, 10h — 8
// attempts over about 27.5 hours.
var DefaultSchedule = Schedule{
	Duration(5 * time.Second), Duration(5 * time.Minute), Duration(30 * time.Minute),
	Duration(2 * time.Hour), Duration(5 * time.Hour), Duration(10 * time.Hour), Duration(10 * time.Hour),
}

// Jitter is the relative spread of every delay: ±20%, as Svix.
const Jitter = 0.2

// Attempts is how many attempts s allows in all.
func (s Schedule) Attempts() int { return len(s) + 1 }

// MaxScheduleSteps bounds an endpoint's schedule: at most 20 retry delays.
const MaxScheduleSteps = 20

// Delay is the wait before the next attempt once attempts attempts were made: 0
// before the first (attempts == 0), then the schedule's step with ±Jitter drawn
// from rnd (nil: the global source). ok is false once the schedule is exhausted.
func (s Schedule) Delay(attempts int, rnd *rand.Rand) (d time.Duration, ok bool) {
	switch {
	case attempts <= 0:
		return 0, true
	case attempts > len(s):
		return 0, false
	}
	u := rand.Float64()
	if rnd != nil {
		u = rnd.Float64()
	}
	step := float64(s[attempts-1])
	return time.Duration(step * (1 - Jitter + 2*Jitter*u)), true
}

// ClampRetryAfter honours an endpoint's Retry-After hint within bounds: never
// sooner than the scheduled delay, never later than twice it (as Svix does). A
// zero hint leaves the scheduled delay.
func ClampRetryAfter(scheduled, hint time.Duration) time.Duration {
	switch {
	case hint <= scheduled:
		return scheduled
	case hint > 2*scheduled:
		return 2 * scheduled
	}
	return hint
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), relative to now. ok is false if it is absent or malformed;
// a date in the past is a zero delay.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		const max = int64(1<<63-1) / int64(time.Second)
		return time.Duration(min(secs, max)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// Class is how an attempt went, for the retry decision.
type Class string

const (
	// ClassSuccess: the endpoint answered 2xx.
	ClassSuccess Class = "success"
	// ClassFailure: any other answer (redirects included: they are not followed),
	// a network error or a timeout. Retried on the schedule.
	ClassFailure Class = "failure"
	// ClassGone: the endpoint answered 410 Gone: it asks to be disabled.
	ClassGone Class = "gone"
	// ClassInvalid: the postback can never be sent as configured — its body is over
	// MaxBody or cannot be rendered in the endpoint's format, or the address is
	// refused by the SSRF guard. Not retried.
	ClassInvalid Class = "invalid"
)

// Classify maps an HTTP status code to its class.
func Classify(code int) Class {
	switch {
	case code >= 200 && code <= 299:
		return ClassSuccess
	case code == http.StatusGone:
		return ClassGone
	}
	return ClassFailure
}

// honoursRetryAfter reports whether a Retry-After on a response with status code
// is taken into account: on 429 Too Many Requests and 503 Service Unavailable.
func honoursRetryAfter(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}
