package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestChannels(t *testing.T) {
	t.Parallel()
	sandbox := &Sandbox{}
	c := Channels{"sandbox": sandbox, "webhook": nil}
	tests := []struct {
		channel   string
		want      Result
		permanent string
	}{
		{channel: "sandbox", want: Result{Channel: "sandbox", ProviderID: "sandbox-d1-fallback-0", Status: "delivered", Confirmed: true}},
		{channel: "sms", permanent: `fallback channel "sms" is not configured`},
		{channel: "webhook", permanent: `fallback channel "webhook" is not configured`},
		{channel: "pigeon", permanent: `fallback channel "pigeon" is not configured`},
		{channel: "", permanent: `fallback channel "" is not configured`},
	}
	for _, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			t.Parallel()
			got, err := c.Send(context.Background(), Message{Channel: tt.channel, IdempotencyKey: "d1-fallback-0", To: "+14155552345"})
			reason, permanent := IsPermanent(err)
			if tt.permanent != "" {
				if !permanent || reason != tt.permanent {
					t.Errorf("got error %v, want permanent %q", err, tt.permanent)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		reason string
		ok     bool
	}{
		{name: "nil", err: nil},
		{name: "transient", err: errors.New("sms via api.twilio.com: twilio answered 503 Service Unavailable")},
		{name: "permanent", err: &PermanentError{Reason: "21211 invalid"}, reason: "21211 invalid", ok: true},
		{name: "wrapped", err: fmt.Errorf("step 2: %w", &PermanentError{Reason: "gone"}), reason: "gone", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reason, ok := IsPermanent(tt.err)
			if reason != tt.reason || ok != tt.ok {
				t.Errorf("got %q, %v, want %q, %v", reason, ok, tt.reason, tt.ok)
			}
		})
	}
	if got := (&PermanentError{Reason: "x"}).Error(); !strings.HasSuffix(got, ": x") || got != strings.ToLower(got[:1])+got[1:] {
		t.Errorf("got Error() %q, want a lowercase message ending in the reason", got)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	if want := []string{"sandbox", "sms", "webhook"}; !slices.Equal(Names, want) {
		t.Errorf("got %v, want %v", Names, want)
	}
}

func TestNewHTTPClient(t *testing.T) {
	t.Parallel()
	c := NewHTTPClient(3e9, nil)
	if c.RetryMax != 0 {
		t.Errorf("got RetryMax %d, want 0", c.RetryMax)
	}
	if c.HTTPClient.Timeout != 3e9 {
		t.Errorf("got timeout %v, want 3s", c.HTTPClient.Timeout)
	}
	if c.HTTPClient.CheckRedirect == nil || c.ErrorHandler == nil || c.Logger != nil {
		t.Errorf("got CheckRedirect set %v, ErrorHandler set %v, Logger %v, want set, set, nil",
			c.HTTPClient.CheckRedirect != nil, c.ErrorHandler != nil, c.Logger)
	}
}

// checkOutcome checks err against the expected class of failure: permanent (its
// reason contains permanent), transient (its message contains transient), or
// none. It reports whether the call succeeded as expected.
func checkOutcome(t *testing.T, err error, permanent, transient string) bool {
	t.Helper()
	reason, isPermanent := IsPermanent(err)
	switch {
	case permanent != "":
		if !isPermanent || !strings.Contains(reason, permanent) {
			t.Errorf("got error %v, want a permanent error with %q", err, permanent)
		}
		return false
	case transient != "":
		if err == nil || isPermanent || !strings.Contains(err.Error(), transient) {
			t.Errorf("got error %v, want a transient error with %q", err, transient)
		}
		return false
	case err != nil:
		t.Fatalf("got error %v, want none", err)
	}
	return true
}
