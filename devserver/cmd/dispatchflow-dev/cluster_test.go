package main

import "testing"

func TestShiftPort(t *testing.T) {
	for _, c := range []struct {
		addr string
		n    int
		want string
	}{{":8080", 1, ":8081"}, {"127.0.0.1:9090", 3, "127.0.0.1:9093"}, {"[::1]:8080", 0, "[::1]:8080"}} {
		if got, err := shiftPort(c.addr, c.n); err != nil || got != c.want {
			t.Errorf("shiftPort(%q, %d) = %q, %v; want %q", c.addr, c.n, got, err, c.want)
		}
	}
	for _, bad := range []string{"8080", ":0", "host:http"} {
		if _, err := shiftPort(bad, 1); err == nil {
			t.Errorf("shiftPort(%q) = nil error", bad)
		}
	}
}
