package main

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/profiles"
)

// This file is the network half of vm-run policy generate: from a
// session's net_connect and net_dns records (audit/net.go) it proposes the
// network section of mode egress, as the tool half proposes the tools
// section from its decisions. What the session connected to becomes an
// allow entry; what it was refused is listed at the end, commented out,
// as denied tool calls are: an entry the reviewer can move into the list
// where a missing rule was the reason, the reason alone where a rule
// would not have helped.
//
// Entries name the destination as the program asked for it: the name, by
// which vm-run dials, never the synthetic address the stub gave for it,
// and an address only for a connection to an address literal. A name
// allowed by a wildcard rule becomes that name alone: generate proposes no
// wildcard, since it saw none used.

// netUsage is what one session did with the network.
type netUsage struct {
	records int
	// allowed are the rules that allow what the session reached, by
	// host, with the ports merged.
	allowed map[string]*netHost
	// refused are the destinations the session was refused, by
	// destination ("name:port"), in the order first refused.
	refused []*netRefusal
	// names are the names the stub refused, by name, in order.
	names []*netName
	// skipped are destinations reached that no rule can name, and why.
	skipped []string
	// base is the network of the profile the generated one extends,
	// whose loopback keys mode egress must take back.
	base profiles.Network
}

// netHost is one host the session reached.
type netHost struct {
	rule  egress.Rule
	conns int
	// why notes, for the entry's comment, the rules that allowed it when
	// they differ from the entry and why it needs private: true.
	why []string
}

// netRefusal is one destination the session was refused.
type netRefusal struct {
	dest string
	// rule is the entry that would have allowed it, when the reason was
	// that no rule did; nil otherwise.
	rule    *egress.Rule
	count   int
	reasons []string
}

// netName is a name the stub answered NXDOMAIN.
type netName struct {
	name  string
	count int
	types []string
}

func (u *netUsage) empty() bool { return u == nil || u.records == 0 }

// readNetwork collects the network records of session id.
func readNetwork(path, id string) (*netUsage, error) {
	u := &netUsage{allowed: map[string]*netHost{}}
	err := scanLedger(path, func(r audit.Record) {
		if r.Session != id {
			return
		}
		switch r.Event {
		case audit.EventNetConnect:
			if c, err := audit.ReadEvent[audit.NetConnect](r); err == nil {
				u.records++
				u.connect(c)
			}
		case audit.EventNetDNS:
			if d, err := audit.ReadEvent[audit.NetDNS](r); err == nil {
				u.records++
				u.dns(d)
			}
		}
	}, nil) // readSession has reported the lines that are not records
	return u, err
}

// connect counts one net_connect record.
func (u *netUsage) connect(c audit.NetConnect) {
	dest := c.Destination()
	// A connection observe mode let through for want of a rule was used
	// like an allowed one, as a call would_deny by the default is.
	used := c.Verdict == audit.VerdictAllow || c.Verdict == audit.VerdictWouldDeny && c.Rule == ""
	if c.Proto != "tcp" {
		if !used {
			u.refuse(dest, nil, c)
		}
		return // only TCP is allowed by rules; the stub answers DNS
	}
	rule, why := destRule(c)
	if rule == nil && used {
		if s := fmt.Sprintf("%s: %s", dest, why); !slices.Contains(u.skipped, s) {
			u.skipped = append(u.skipped, s)
		}
		return
	}
	if !used {
		if c.Rule != "" || !strings.Contains(c.Reason, "no rule") {
			rule = nil // a rule named it, or none could: not for want of one
		}
		u.refuse(dest, rule, c)
		return
	}
	h := u.allowed[rule.Host]
	if h == nil {
		h = &netHost{rule: egress.Rule{Host: rule.Host}}
		u.allowed[rule.Host] = h
	}
	h.conns++
	h.rule.Ports = append(h.rule.Ports, rule.Ports...)
	if rule.Private && !h.rule.Private {
		h.rule.Private = true
		h.why = append(h.why, why)
	}
	var notes []string
	if c.Rule != "" && c.Rule != rule.String() {
		notes = append(notes, "allowed by "+c.Rule)
	}
	if c.Port == 443 && c.SNI == "" {
		// Allowed without a server name: the rule said sni: false, which
		// is no reason to turn the check off for the reviewer.
		notes = append(notes, "no SNI seen: add sni: false if the client sends none")
	}
	for _, n := range notes {
		if !slices.Contains(h.why, n) {
			h.why = append(h.why, n)
		}
	}
	if err := h.rule.Normalize(); err != nil {
		// Not reachable: each rule merged here was normalised.
		u.skipped = append(u.skipped, fmt.Sprintf("%s: %v", dest, err))
	}
}

// destRule returns the rule for exactly the destination of c: its name
// and port, or the address literal it connected to and the port. For an
// allowed connection to a name that vm-run dialled at a loopback, private
// or shared address, the rule says private: true, as the one that allowed
// it must have (why says so). It returns nil and why when c names nothing
// a rule can: a synthetic address (a program that kept an answer from an
// earlier session), a name that is not a valid host name, a wildcard.
func destRule(c audit.NetConnect) (r *egress.Rule, why string) {
	host := c.Name
	if host == "" {
		ap, err := netip.ParseAddrPort(c.Address)
		switch {
		case err != nil:
			return nil, "no name, and no address"
		case egress.SyntheticPrefix.Contains(ap.Addr().Unmap()):
			return nil, "a synthetic address, not the name it stood for"
		case strings.HasPrefix(c.Rule, egress.HostLoopback+":"):
			host = egress.HostLoopback
		default:
			host = ap.Addr().Unmap().String()
		}
	} else if strings.Contains(host, "*") {
		return nil, "a name with a \"*\" in it"
	}
	rule := egress.Rule{Host: host, Ports: []uint16{c.Port}}
	if err := rule.Normalize(); err != nil {
		return nil, err.Error()
	}
	if rule.Host != host {
		return nil, fmt.Sprintf("not a host name in canonical form (%s)", rule.Host)
	}
	// host-loopback is the host's loopback by definition: no private.
	if c.Name != "" && c.Name != egress.HostLoopback && c.Via == "" && c.Verdict != audit.VerdictDeny {
		if ap, err := netip.ParseAddrPort(c.Dialed); err == nil {
			switch cl := egress.Classify(ap.Addr()); cl {
			case egress.Loopback, egress.Private, egress.Shared:
				rule.Private = true
				why = fmt.Sprintf("private: dialled %s, %s", ap.Addr(), cl)
			}
		}
	}
	return &rule, why
}

// refuse counts a refused connection to dest.
func (u *netUsage) refuse(dest string, rule *egress.Rule, c audit.NetConnect) {
	i := slices.IndexFunc(u.refused, func(f *netRefusal) bool { return f.dest == dest })
	if i < 0 {
		u.refused = append(u.refused, &netRefusal{dest: dest, rule: rule})
		i = len(u.refused) - 1
	}
	f := u.refused[i]
	f.count += 1 + max(c.Suppressed, 0)
	if rule == nil {
		f.rule = nil // refused for another reason too: the entry would not do
	}
	if reason := cmp.Or(c.Reason, "no reason recorded"); !slices.Contains(f.reasons, reason) {
		f.reasons = append(f.reasons, reason)
	}
}

// dns counts a refused question; answered ones led to the connections
// that count.
func (u *netUsage) dns(d audit.NetDNS) {
	if d.Verdict != audit.VerdictDeny {
		return
	}
	i := slices.IndexFunc(u.names, func(n *netName) bool { return n.name == d.Name })
	if i < 0 {
		u.names = append(u.names, &netName{name: d.Name})
		i = len(u.names) - 1
	}
	n := u.names[i]
	n.count += 1 + max(d.Suppressed, 0)
	if !slices.Contains(n.types, d.Type) {
		n.types = append(n.types, d.Type)
	}
}

// rules returns the proposed allow list: one rule a host, its ports
// merged, sorted by host.
func (u *netUsage) rules() []*netHost {
	var out []*netHost
	for _, h := range u.allowed {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b *netHost) int { return strings.Compare(a.rule.Host, b.rule.Host) })
	return out
}

// allows reports whether the proposed list allows r's host and port.
func (u *netUsage) allows(r *egress.Rule) bool {
	h := u.allowed[r.Host]
	return h != nil && slices.Contains(h.rule.Ports, r.Ports[0])
}

// netSection returns the network section that allows what u used, each
// entry with a comment saying what it stands for, or nil when the
// session connected nowhere. Entries are written as package profiles
// writes them: the short form for one port and no flag.
func netSection(u *netUsage) *yaml.Node {
	if u.empty() {
		return nil
	}
	hosts := u.rules()
	if len(hosts) == 0 {
		return nil
	}
	allow := &yaml.Node{Kind: yaml.SequenceNode}
	for _, h := range hosts {
		n := ruleNode(h.rule)
		at := n // where the comment goes: the end of the entry's last line
		if n.Kind == yaml.MappingNode {
			at = n.Content[len(n.Content)-1]
		}
		at.LineComment = "# " + clean(strings.Join(append([]string{plural(uint64(h.conns), "connection", "connections")}, h.why...), "; "))
		allow.Content = append(allow.Content, n)
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("mode"), scalar("egress")}}
	// Mode egress has none of mode loopback's keys, and over extends a
	// mapping merges key by key: take back what the base sets, each
	// inherited port with a "!PORT" entry.
	if u.base.AnyPort {
		n.Content = append(n.Content, scalar("any_port"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})
	}
	for _, k := range []struct {
		key   string
		ports []uint16
	}{{"connect_tcp", u.base.ConnectTCP}, {"bind_tcp", u.base.BindTCP}} {
		if len(k.ports) == 0 {
			continue
		}
		l := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, p := range k.ports {
			l.Content = append(l.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "!" + strconv.Itoa(int(p)), Style: yaml.DoubleQuotedStyle})
		}
		n.Content = append(n.Content, scalar(k.key), l)
	}
	n.Content = append(n.Content, scalar("allow"), allow)
	return n
}

// ruleNode writes r in the short form when it has one.
func ruleNode(r egress.Rule) *yaml.Node {
	if len(r.Ports) == 1 && !r.Private && !r.NoSNI {
		return scalar(r.String())
	}
	ports := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, p := range r.Ports {
		ports.Content = append(ports.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(int(p))})
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("host"), scalar(r.Host), scalar("ports"), ports}}
	if r.Private {
		n.Content = append(n.Content, scalar("private"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	return n
}

// netHeader says, for the header, what the network section holds, and
// what the loaded profile allows beyond it.
func netHeader(line func(string, ...any), u *netUsage, extra *inForce) {
	if u.empty() {
		return
	}
	line("")
	if n := len(u.allowed); n > 0 {
		line("The network: section allows the %s the session connected to, by the", plural(uint64(n), "host", "hosts"))
		line("name the program asked for (an address only where it connected to one),")
		line("with exactly the ports it used: no wildcard, even where one allowed it.")
		if extra != nil && len(extra.netRules) > 0 {
			line("WARNING: loaded, its allow list also holds these rules, inherited (allow")
			line("lists add up over extends):")
			for _, r := range extra.netRules {
				line("  inherited network rule %s", clean(r.String()))
			}
		}
	} else {
		line("The session connected nowhere, so there is no network: section; the")
		line("network of the extended profile applies.")
	}
	line("Connections that were refused, and names that did not resolve, are listed")
	line("at the end, commented out.")
}

// netOffers writes, after the profile, what the session was refused, and
// the destinations it reached that no rule can name.
func netOffers(b *bytes.Buffer, u *netUsage) {
	if u.empty() {
		return
	}
	var entries, others []*netRefusal
	for _, f := range u.refused {
		switch {
		case f.rule != nil && u.allows(f.rule):
			// Refused, then reached: the list already holds it.
		case f.rule != nil:
			entries = append(entries, f)
		default:
			others = append(others, f)
		}
	}
	if len(entries) > 0 {
		fmt.Fprintf(b, "\n# Network destinations refused in this session for want of a rule: move an\n")
		fmt.Fprintf(b, "# entry into network.allow (mode: egress) to permit it:\n")
		for _, f := range entries {
			item, _ := yaml.Marshal(&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{ruleNode(*f.rule)}})
			note := fmt.Sprintf("%s refused: %s", plural(uint64(f.count), "connection", "connections"), strings.Join(f.reasons, "; "))
			fmt.Fprintf(b, "#   %s  # %s\n", strings.TrimSuffix(string(item), "\n"), clean(note))
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(b, "\n# Network destinations refused in this session where a rule would not help:\n")
		for _, f := range others {
			fmt.Fprintf(b, "#   %s: %s (%s)\n", clean(f.dest), clean(strings.Join(f.reasons, "; ")),
				plural(uint64(f.count), "connection", "connections"))
		}
	}
	if len(u.names) > 0 {
		fmt.Fprintf(b, "\n# Names the session asked for that no rule names (answered NXDOMAIN; no\n")
		fmt.Fprintf(b, "# connection was tried, so no port is known):\n")
		for _, n := range u.names {
			fmt.Fprintf(b, "#   %s  # %s, %s\n", clean(n.name), plural(uint64(n.count), "question", "questions"),
				clean(strings.Join(n.types, " ")))
		}
	}
	if len(u.skipped) > 0 {
		fmt.Fprintf(b, "\n# Connections the session made that no entry can name:\n")
		for _, s := range u.skipped {
			fmt.Fprintf(b, "#   %s\n", clean(s))
		}
	}
}

// netBeyond returns the rules of the loaded profile that the generated
// network section does not hold: network.allow accumulates over extends,
// so a base's rules stay in force.
func netBeyond(loaded []egress.Rule, u *netUsage) []egress.Rule {
	var out []egress.Rule
	for _, r := range loaded {
		h := u.allowed[r.Host]
		if h == nil || !slices.Equal(h.rule.Ports, r.Ports) || h.rule.Private != r.Private || h.rule.NoSNI != r.NoSNI {
			out = append(out, r)
		}
	}
	return out
}
