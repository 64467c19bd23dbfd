package egress

import (
	"fmt"
	"net/netip"
)

// Class is the kind of an IPv4 address, as far as the egress rules care:
// whether a name rule may reach it, needs private: true for it, or never
// does.
type Class int

// Address classes. The ranges are those of the IANA IPv4 Special-Purpose
// Address Registry (RFC 6890 and the RFCs it lists).
const (
	// Public is any address not in a range below.
	Public Class = iota
	// Loopback is 127.0.0.0/8 (RFC 1122 §3.2.1.3): the host itself.
	Loopback
	// Private is 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16 (RFC 1918).
	Private
	// Shared is 100.64.0.0/10, the carrier-grade NAT range (RFC 6598).
	Shared
	// LinkLocal is 169.254.0.0/16 (RFC 3927), where cloud metadata
	// services answer (169.254.169.254).
	LinkLocal
	// Multicast is 224.0.0.0/4 (RFC 5771); TCP cannot reach it.
	Multicast
	// Unspecified is 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3). Linux
	// connects a socket aimed at 0.0.0.0 to the host itself, so it is a
	// way to the host's loopback.
	Unspecified
	// Synthetic is SyntheticPrefix, 198.18.0.0/15 (RFC 2544), whose
	// addresses the stub hands out inside the sandbox.
	Synthetic
	// Reserved is 240.0.0.0/4 with the limited broadcast address
	// 255.255.255.255 (RFC 1112 §4, RFC 919), the IETF protocol
	// assignments 192.0.0.0/24 (RFC 6890), the documentation ranges
	// 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 (RFC 5737) and the
	// deprecated 6to4 relay anycast 192.88.99.0/24 (RFC 7526).
	Reserved
	// IPv6 is any IPv6 address that is not an IPv4-mapped one. IPv6 is
	// off inside the sandbox, and nothing is dialled over it.
	IPv6
)

var classNames = [...]string{
	Public:      "a public address",
	Loopback:    "a loopback address",
	Private:     "a private address",
	Shared:      "a shared (CGNAT) address",
	LinkLocal:   "a link-local address",
	Multicast:   "a multicast address",
	Unspecified: "an unspecified (this-host) address",
	Synthetic:   "an address of vm-run's synthetic range",
	Reserved:    "a reserved address",
	IPv6:        "an IPv6 address",
}

// String describes the class in words, as the ledger's reasons use it:
// "a private address".
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("Class(%d)", int(c))
	}
	return classNames[c]
}

// Ranges of the classes other than Public, IPv6 and Synthetic.
var classRanges = []struct {
	p netip.Prefix
	c Class
}{
	{netip.MustParsePrefix("0.0.0.0/8"), Unspecified},
	{netip.MustParsePrefix("127.0.0.0/8"), Loopback},
	{netip.MustParsePrefix("10.0.0.0/8"), Private},
	{netip.MustParsePrefix("172.16.0.0/12"), Private},
	{netip.MustParsePrefix("192.168.0.0/16"), Private},
	{netip.MustParsePrefix("100.64.0.0/10"), Shared},
	{netip.MustParsePrefix("169.254.0.0/16"), LinkLocal},
	{netip.MustParsePrefix("224.0.0.0/4"), Multicast},
	{netip.MustParsePrefix("240.0.0.0/4"), Reserved},
	{netip.MustParsePrefix("192.0.0.0/24"), Reserved},
	{netip.MustParsePrefix("192.0.2.0/24"), Reserved},
	{netip.MustParsePrefix("198.51.100.0/24"), Reserved},
	{netip.MustParsePrefix("203.0.113.0/24"), Reserved},
	{netip.MustParsePrefix("192.88.99.0/24"), Reserved},
}

// Classify returns the class of a. An IPv4-mapped IPv6 address
// (::ffff:10.0.0.1) is classified as the IPv4 address it carries, so that
// the mapped form is no way around a rule; any other IPv6 address, and
// the zero Addr, is IPv6.
func Classify(a netip.Addr) Class {
	a = a.Unmap()
	if !a.Is4() {
		return IPv6
	}
	if SyntheticPrefix.Contains(a) {
		return Synthetic
	}
	for _, r := range classRanges {
		if r.p.Contains(a) {
			return r.c
		}
	}
	return Public
}

// hostLoopbackAddr is the one address a HostLoopback rule reaches.
var hostLoopbackAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// Permitted reports whether rule r lets vm-run dial address a. It is the
// check every address is put to just before it is dialled: each address a
// rule's name resolves to on the host, or the address of an address
// literal or HostLoopback rule.
//
//   - A name rule reaches public addresses; with Private also loopback,
//     private (RFC 1918) and shared (RFC 6598) ones. Link-local,
//     multicast, unspecified, reserved and synthetic addresses are never
//     reached through a name: a name that resolves to 169.254.169.254 is
//     refused whatever the rule says.
//   - An address literal rule reaches exactly its address, whatever its
//     class, except an unspecified, multicast or synthetic one, which no
//     rule reaches (see [NewAllowlist]).
//   - A HostLoopback rule reaches 127.0.0.1 and nothing else.
//   - IPv6 is never reached. An IPv4-mapped address is judged as the IPv4
//     address it carries.
//
// When a is refused, reason names the address and why, in a form that
// reads after "resolves to": "10.0.0.7, a private address (the rule does
// not say private: true)". When a is permitted, reason is "".
func Permitted(a netip.Addr, r *Rule) (reason string, ok bool) {
	a = a.Unmap()
	c := Classify(a)
	if r == nil {
		return fmt.Sprintf("%s, which no rule allows", a), false
	}
	if c == IPv6 {
		return fmt.Sprintf("%s, %s (IPv6 is off)", a, c), false
	}
	switch {
	case r.Host == HostLoopback:
		if a != hostLoopbackAddr {
			return fmt.Sprintf("%s, not the host loopback address %s", a, hostLoopbackAddr), false
		}
		return "", true
	case isAddrLiteral(r.Host):
		want, _ := netip.ParseAddr(r.Host)
		if a != want.Unmap() {
			return fmt.Sprintf("%s, not the rule's address %s", a, r.Host), false
		}
		if !literalAllowed(c) {
			return fmt.Sprintf("%s, %s, which no rule reaches", a, c), false
		}
		return "", true
	}
	switch c {
	case Public:
		return "", true
	case Loopback, Private, Shared:
		if r.Private {
			return "", true
		}
		return fmt.Sprintf("%s, %s (the rule %s does not say private: true)", a, c, r), false
	case LinkLocal, Multicast, Reserved:
		return fmt.Sprintf("%s, %s (only an address rule reaches one)", a, c), false
	default:
		return fmt.Sprintf("%s, %s, which no name reaches", a, c), false
	}
}

// literalAllowed reports whether an address literal rule may name an
// address of class c. An unspecified address reaches the host itself
// (host-loopback is the rule for that), TCP cannot connect to a multicast
// one, and a synthetic one is the stub's inside the sandbox.
func literalAllowed(c Class) bool {
	return c != Unspecified && c != Multicast && c != Synthetic && c != IPv6
}

// isAddrLiteral reports whether a rule's host is an IP address.
func isAddrLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}
