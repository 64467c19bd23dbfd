package egress

import (
	"net/netip"
	"sync"
)

// Names hands out the synthetic addresses of allowed names and maps them
// back. An address, once given to a name, stays that name's for the
// session, so a connection always reaches the name the program resolved.
// Safe for concurrent use.
type Names struct {
	mu     sync.Mutex
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
	next   netip.Addr
}

// NewNames returns an empty table over SyntheticPrefix, whose first
// addresses (the network, StubAddr, SandboxAddr) are never handed out.
func NewNames() *Names {
	return &Names{
		byName: map[string]netip.Addr{},
		byAddr: map[netip.Addr]string{},
		next:   SandboxAddr.Next(),
	}
}

// MaxNames is the most names one session may be given addresses for: a
// wildcard rule matches without end, and every name is held for the
// session and looked up on the host when dialled.
const MaxNames = 4096

// Addr returns name's synthetic address, giving it one if it has none;
// false when the session has MaxNames already.
func (n *Names) Addr(name string) (netip.Addr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.byName[name]; ok {
		return a, true
	}
	if len(n.byName) >= MaxNames {
		return netip.Addr{}, false
	}
	a := n.next
	// The last address of the range is its broadcast address.
	if !SyntheticPrefix.Contains(a) || !SyntheticPrefix.Contains(a.Next()) {
		return netip.Addr{}, false
	}
	n.next = a.Next()
	n.byName[name] = a
	n.byAddr[a] = name
	return a, true
}

// Lookup returns the name a synthetic address was given to.
func (n *Names) Lookup(a netip.Addr) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	name, ok := n.byAddr[a]
	return name, ok
}
