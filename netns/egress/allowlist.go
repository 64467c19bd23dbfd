package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Allowlist is the [Policy] of a profile's network.allow: a name resolves
// when a rule names it, a connection goes ahead when a rule names its
// destination and port. Lookups cost a map access per label of the name,
// whatever the number of rules. An Allowlist is never modified after
// [NewAllowlist] and is safe for concurrent use.
type Allowlist struct {
	rules []Rule
	// exact, wild and addrs map a rule's host (a name; the name under
	// "*."; an address) to the indices of the rules that name it, in
	// profile order. loopback holds the indices of HostLoopback rules.
	exact    map[string][]int
	wild     map[string][]int
	addrs    map[netip.Addr][]int
	loopback []int
}

// NewAllowlist returns the policy of rules, which it normalises (see
// [Rule.Normalize]) in a copy of its own. Where several rules match, the
// first in the list decides, so that the rule the ledger names is the
// first one a reader of the profile finds. It refuses a rule it cannot
// normalise, and an address literal that no connection could use: an
// unspecified address (0.0.0.0/8, which Linux connects to the host
// itself; host-loopback is the rule for that), a multicast one, or one of
// SyntheticPrefix (the stub's own addresses inside the sandbox).
func NewAllowlist(rules []Rule) (*Allowlist, error) {
	a := &Allowlist{
		rules: make([]Rule, len(rules)),
		exact: map[string][]int{},
		wild:  map[string][]int{},
		addrs: map[netip.Addr][]int{},
	}
	for i, r := range rules {
		r.Ports = slices.Clone(r.Ports)
		if err := r.Normalize(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		a.rules[i] = r
		switch {
		case r.Host == HostLoopback:
			a.loopback = append(a.loopback, i)
		case isAddrLiteral(r.Host):
			ip := netip.MustParseAddr(r.Host)
			if c := Classify(ip); !literalAllowed(c) {
				return nil, fmt.Errorf("rule %d: %s is %s, which no connection can be allowed to", i+1, r.Host, c)
			}
			a.addrs[ip] = append(a.addrs[ip], i)
		case strings.HasPrefix(r.Host, "*."):
			k := strings.TrimPrefix(r.Host, "*.")
			a.wild[k] = append(a.wild[k], i)
		default:
			a.exact[r.Host] = append(a.exact[r.Host], i)
		}
	}
	return a, nil
}

// Rules returns the normalised rules, in profile order. The caller must
// not modify them.
func (a *Allowlist) Rules() []Rule { return a.rules }

// Name implements [Policy]. An exact rule matches its own name; a
// wildcard "*.slack.com" matches a.slack.com and a.b.slack.com but never
// slack.com. Address literal rules never match a name, and nor does a
// name that is not normalised or that holds a "*". HostLoopback rules
// match the name HostLoopback, and only it: inside the sandbox 127.0.0.1
// is the sandbox's own loopback, so the host's is reached by that name
// ("http://host-loopback:8080/"), which the stub answers with a
// synthetic address like any other.
func (a *Allowlist) Name(name string) (*Rule, bool) {
	i := a.first(name, func(*Rule) bool { return true })
	if i < 0 {
		return nil, false
	}
	return &a.rules[i], true
}

// Connect implements [Policy]. With a name, the first rule that names it
// and lists port allows; without, the first address literal rule for addr
// and port, or, for 127.0.0.1, the first HostLoopback rule for port.
func (a *Allowlist) Connect(name string, addr netip.Addr, port uint16) (*Rule, string) {
	hasPort := func(r *Rule) bool { _, ok := slices.BinarySearch(r.Ports, port); return ok }
	if name != "" {
		if i := a.first(name, hasPort); i >= 0 {
			return &a.rules[i], ""
		}
		if i := a.first(name, func(*Rule) bool { return true }); i >= 0 {
			return nil, fmt.Sprintf("no rule allows %s:%d; its rules allow ports %s", name, port, a.ports(name))
		}
		return nil, fmt.Sprintf("no rule allows %s:%d", name, port)
	}
	addr = addr.Unmap()
	best := -1
	for _, i := range a.addrs[addr] {
		if hasPort(&a.rules[i]) {
			best = i
			break
		}
	}
	if addr == hostLoopbackAddr {
		for _, i := range a.loopback {
			if hasPort(&a.rules[i]) {
				if best < 0 || i < best {
					best = i
				}
				break
			}
		}
	}
	if best >= 0 {
		return &a.rules[best], ""
	}
	dest := netip.AddrPortFrom(addr, port)
	if SyntheticPrefix.Contains(addr) {
		return nil, fmt.Sprintf("%s is a synthetic address the stub never gave out", dest)
	}
	return nil, fmt.Sprintf("%s is an address literal no rule lists", dest)
}

// first returns the index of the first rule that names name (exactly or
// by a wildcard) and satisfies ok, or -1.
func (a *Allowlist) first(name string, ok func(*Rule) bool) int {
	if name == "" || strings.Contains(name, "*") || isAddrLiteral(name) {
		return -1
	}
	best := -1
	consider := func(idx []int) {
		for _, i := range idx {
			if best >= 0 && i >= best {
				return
			}
			if ok(&a.rules[i]) {
				best = i
				return
			}
		}
	}
	if name == HostLoopback {
		// The host's loopback, by the name the sandbox reaches it by:
		// its own 127.0.0.1 is its own.
		consider(a.loopback)
		return best
	}
	consider(a.exact[name])
	// Walk the proper suffixes: a.b.slack.com tries b.slack.com, then
	// slack.com, then com, each against the wildcards' domains.
	for rest := name; ; {
		dot := strings.IndexByte(rest, '.')
		if dot < 0 {
			break
		}
		rest = rest[dot+1:]
		consider(a.wild[rest])
	}
	return best
}

// ports lists the ports the rules naming name allow, for a refusal's
// reason: "443" or "443, 8443".
func (a *Allowlist) ports(name string) string {
	var ps []uint16
	a.first(name, func(r *Rule) bool {
		ps = append(ps, r.Ports...)
		return false
	})
	slices.Sort(ps)
	ps = slices.Compact(ps)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}
