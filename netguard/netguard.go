// Package netguard keeps outbound webhooks (postbacks, fallback webhooks) from
// reaching internal networks: the server-side request forgery (SSRF) guard.
//
// The check runs in the dialer's Control hook, on the address actually being
// connected to, after DNS resolution: a name that resolves to a public address when
// the URL is checked and to 127.0.0.1 when it is dialled (DNS rebinding) is still
// refused, and so is every address of a name that resolves to several.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Variable is the configuration variable that allow-lists networks; refusals name it.
const Variable = "DISPATCHFLOW_ALLOW_NETWORKS"

// blocked are the ranges refused unless allow-listed, each with the name a refusal
// gives it. IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) are unmapped before the
// check, so they are refused as their IPv4 form.
var blocked = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// RefusedError is a connection the guard refused.
type RefusedError struct {
	Addr  netip.Addr
	Range netip.Prefix // the blocked range Addr is in
	Name  string       // what the range is: "loopback", "private", …
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s address (%s); allow it with %s", e.Addr, e.Name, e.Range, Variable)
}

// IsRefused reports whether err is, or wraps, a refusal by a Guard.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Guard refuses connections to internal addresses except those in Allow.
// The zero Guard refuses every blocked range. A nil *Guard allows everything.
type Guard struct {
	// Allow lists the networks connected to despite the guard (e.g. 127.0.0.0/8
	// for a receiver on the same host).
	Allow []netip.Prefix
}

// New returns a Guard allowing the networks in allow.
func New(allow []netip.Prefix) *Guard { return &Guard{Allow: allow} }

// ParseNetworks parses a list of CIDR prefixes ("10.1.0.0/16") or single addresses
// ("::1", taken as /32 or /128).
func ParseNetworks(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix or IP address", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix or IP address", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check returns a *RefusedError if a is in a blocked range and not allow-listed.
func (g *Guard) Check(a netip.Addr) error {
	if g == nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	for _, p := range g.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return &RefusedError{Addr: a, Range: b.prefix, Name: b.name}
		}
	}
	return nil
}

// Control is a net.Dialer Control function: it runs after name resolution, on the
// "ip:port" about to be connected to, and refuses blocked addresses.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	if g == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: cannot check address %q: %w", address, err)
	}
	return g.Check(ap.Addr())
}

// Dialer returns a dialer that refuses blocked addresses at connection time, with
// the timeouts of net/http's default transport.
func (g *Guard) Dialer() *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if g != nil {
		d.Control = g.Control
	}
	return d
}
