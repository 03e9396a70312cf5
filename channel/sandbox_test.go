package channel

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func TestSandbox(t *testing.T) {
	t.Parallel()
	tests := []struct {
		to        string
		want      Result
		permanent string
	}{
		{to: "+14155552345", want: Result{Channel: "sandbox", ProviderID: "sandbox-d1-fallback-0", Status: "delivered", Confirmed: true}},
		{to: "+15005550006", want: Result{Channel: "sandbox", ProviderID: "sandbox-d1-fallback-0", Status: "delivered", Confirmed: true}},
		{to: "+15005550001", permanent: "21211 The 'To' number +15005550001 is not a valid phone number."},
		{to: "+15005550004", permanent: "21610 Attempt to send to unsubscribed recipient"},
		{to: "+15005550009", permanent: "21614 'To' number is not a valid mobile number"},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			t.Parallel()
			s := &Sandbox{}
			m := Message{DispatchID: "d1", Step: 0, IdempotencyKey: "d1-fallback-0", Channel: "sandbox", To: tt.to, Text: "hello", Reason: "bounced"}
			got, err := s.Send(context.Background(), m)
			reason, permanent := IsPermanent(err)
			if tt.permanent != "" {
				if !permanent || reason != tt.permanent {
					t.Errorf("got error %v, want permanent %q", err, tt.permanent)
				}
				if n := len(s.Sent()); n != 0 {
					t.Errorf("got %d recorded, want a refused fallback not recorded", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if sent := s.Sent(); len(sent) != 1 || sent[0] != m {
				t.Errorf("got Sent() %+v, want [%+v]", sent, m)
			}
		})
	}
}

// The sandbox keeps the last 1000 fallbacks, oldest first, and Sent returns a copy.
func TestSandboxKeepsTheLast1000(t *testing.T) {
	t.Parallel()
	s := &Sandbox{}
	for i := range 1005 {
		if _, err := s.Send(context.Background(), Message{DispatchID: fmt.Sprint(i), To: "+14155552345"}); err != nil {
			t.Fatal(err)
		}
	}
	sent := s.Sent()
	if len(sent) != 1000 {
		t.Fatalf("got %d recorded, want 1000", len(sent))
	}
	if sent[0].DispatchID != "5" || sent[999].DispatchID != "1004" {
		t.Errorf("got first %s and last %s, want 5 and 1004", sent[0].DispatchID, sent[999].DispatchID)
	}
	sent[0].DispatchID = "changed"
	if got := s.Sent()[0].DispatchID; got != "5" {
		t.Errorf("got %s after changing the copy, want 5", got)
	}
}

func TestSandboxConcurrent(t *testing.T) {
	t.Parallel()
	s := &Sandbox{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, _ = s.Send(context.Background(), Message{DispatchID: fmt.Sprint(i), To: "+14155552345"})
			_ = s.Sent()
		})
	}
	wg.Wait()
	if got := len(s.Sent()); got != 50 {
		t.Errorf("got %d recorded, want 50", got)
	}
}

func TestSandboxCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Sandbox{}
	if _, err := s.Send(ctx, Message{To: "+14155552345"}); err == nil {
		t.Errorf("got no error, want the context's")
	}
}
