// Package clientip turns a client address into the key that limits count
// against: the IPv4 address, or the /64 of an IPv6 one, since a single host
// or home commonly holds a whole /64 and could otherwise rotate through it.
package clientip

import (
	"net/netip"
	"strings"
)

// Key is the limit key of ip: an IPv4 address (also IPv4-mapped IPv6) as
// is, an IPv6 address as its /64 prefix ("2001:db8:1:2::/64"), anything
// unparsable as given.
func Key(ip string) string {
	if !strings.Contains(ip, ":") {
		return ip // IPv4: as is, without parsing on every request
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
