package netguard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		addr     string
		allow    []netip.Prefix
		wantName string // empty: allowed
	}{
		{addr: "93.184.215.14"},
		{addr: "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		{addr: "127.0.0.1", wantName: "loopback"},
		{addr: "127.8.9.10", wantName: "loopback"},
		{addr: "10.1.2.3", wantName: "private"},
		{addr: "172.16.0.1", wantName: "private"},
		{addr: "172.32.0.1"}, // just past 172.16.0.0/12
		{addr: "192.168.1.1", wantName: "private"},
		{addr: "100.64.0.1", wantName: "carrier-grade NAT"},
		{addr: "169.254.169.254", wantName: "cloud metadata"},
		{addr: "169.254.1.1", wantName: "link-local"},
		{addr: "0.0.0.0", wantName: "unspecified (this network)"},
		{addr: "224.0.0.251", wantName: "multicast"},
		{addr: "::1", wantName: "loopback"},
		{addr: "::", wantName: "unspecified"},
		{addr: "fd12:3456::1", wantName: "private (unique local)"},
		{addr: "fd00:ec2::254", wantName: "cloud metadata"},
		{addr: "fe80::1", wantName: "link-local"},
		{addr: "fe80::1%eth0", wantName: "link-local"},
		{addr: "ff02::1", wantName: "multicast"},
		// IPv4-mapped IPv6 forms are judged as their IPv4 address.
		{addr: "::ffff:127.0.0.1", wantName: "loopback"},
		{addr: "::ffff:10.0.0.1", wantName: "private"},
		{addr: "::ffff:169.254.169.254", wantName: "cloud metadata"},
		{addr: "::ffff:93.184.215.14"},
		// Allow-listed.
		{addr: "127.0.0.1", allow: loopback},
		{addr: "::1", allow: loopback},
		{addr: "::ffff:127.0.0.1", allow: loopback},
		{addr: "10.1.2.3", allow: loopback, wantName: "private"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := New(tt.allow).Check(netip.MustParseAddr(tt.addr))
			var refused *RefusedError
			switch {
			case tt.wantName == "" && err != nil:
				t.Errorf("got %v, want allowed", err)
			case tt.wantName != "" && !errors.As(err, &refused):
				t.Errorf("got %v, want refused as %s", err, tt.wantName)
			case tt.wantName != "" && (refused.Name != tt.wantName || !strings.Contains(err.Error(), Variable)):
				t.Errorf("got %q, want a %s refusal naming %s", err, tt.wantName, Variable)
			}
		})
	}
}

func TestNilGuardAllowsEverything(t *testing.T) {
	t.Parallel()
	var g *Guard
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestParseNetworks(t *testing.T) {
	t.Parallel()
	got, err := ParseNetworks([]string{"127.0.0.0/8", " ::1 ", "10.1.2.3", "10.9.8.7/16", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "::1/128", "10.1.2.3/32", "10.9.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("[%d]: got %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParseNetworks([]string{"10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
		t.Errorf("got %v, want an error naming the bad prefix", err)
	}
}

// A name is judged by the addresses it resolves to, at connection time: "localhost"
// reaches a loopback receiver only once loopback is allow-listed.
func TestDialerResolvesBeforeChecking(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	get := func(g *Guard) error {
		tr := &http.Transport{DialContext: g.Dialer().DialContext}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(New(nil)); !IsRefused(err) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("guarded: got %v, want a loopback refusal", err)
	}
	allow, _ := ParseNetworks([]string{"127.0.0.0/8", "::1/128"})
	if err := get(New(allow)); err != nil {
		t.Errorf("allow-listed: got %v, want success", err)
	}
}
