package selftest

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/profiles"
)

// The attacks on network mode egress, run only for a profile in that
// mode. What they attack is the stack at the far end of tun0: its policy
// (the allowlist), its own rules (DNS only to the stub, no UDP, no
// address it did not hand out) and the ledger (every refusal recorded).
// A refusal must look like one (ECONNREFUSED), never a hang.

// attacksFor lists the attacks of the battery for profile p.
func attacksFor(p *profiles.Profile) []attack {
	a := battery()
	if egressMode(p) {
		a = append(a, egressBattery()...)
	}
	return a
}

// Destinations that only the allowlist stands between a sandbox and: the
// cloud metadata service (link-local, RFC 3927) and a private address
// (RFC 1918). Nothing is sent to them but through the stack, which the
// openNet baseline points at the battery's listener instead.
var (
	metadataAddr = netip.MustParseAddrPort("169.254.169.254:80")
	privateAddr  = netip.MustParseAddrPort("10.0.0.1:80")
	// mDNS's group (RFC 6762) and the discard port (RFC 863) of a private
	// address: UDP, multicast and unicast.
	multicastUDP = netip.MustParseAddrPort("224.0.0.251:5353")
	unicastUDP   = netip.MustParseAddrPort("10.0.0.1:9")
	// A public resolver: DNS past the stub.
	publicDNS = netip.MustParseAddrPort("8.8.8.8:53")
	// An address of the IPv6 documentation prefix (RFC 3849).
	docIPv6 = netip.MustParseAddrPort("[2001:db8::1]:80")
)

// syntheticGuesses are addresses of egress.SyntheticPrefix a program
// might try without asking the stub: the first ones the stub hands out
// and the last.
func syntheticGuesses() []netip.Addr {
	first := egress.SandboxAddr.Next()
	return []netip.Addr{first, first.Next(), first.Next().Next(), netip.MustParseAddr("198.19.255.254")}
}

func egressBattery() []attack {
	return []attack{
		{name: "resolve a name no rule lists", probe: "resolve", baselineIn: withoutAllowlist,
			skip: nameListed, check: checkResolve,
			args: func(e runEnv) []string { return []string{param("name", e.fx.egress.unlisted)} }},
		{name: "reach host loopback by the name host-loopback", probe: "dial", baselineIn: withoutAllowlist,
			skip: hostLoopbackListed, check: checkRefusals(""),
			args: func(e runEnv) []string {
				return []string{param("name", egress.HostLoopback), param("port", tcpPort(e)), param("token", e.fx.tokens["tcp"])}
			}},
		{name: "reach host loopback via an unissued synthetic address", probe: "dial", baselineIn: withoutAllowlist,
			skip: hostLoopbackListed, check: checkRefusals("never handed out"),
			args: func(e runEnv) []string {
				// The name first, as a program would try it; then the
				// guesses, one of which the stub gave the name in the
				// baseline.
				args := []string{param("resolve", egress.HostLoopback)}
				for _, a := range syntheticGuesses() {
					args = append(args, param("addr", netip.AddrPortFrom(a, portOf(e.fx.tcpAddr)).String()))
				}
				return append(args, param("token", e.fx.tokens["tcp"]))
			}},
		literalAttack("reach cloud metadata "+metadataAddr.String(), metadataAddr),
		literalAttack("reach a private address "+privateAddr.String(), privateAddr),
		udpAttack("send UDP to "+unicastUDP.String(), unicastUDP),
		udpAttack("send multicast UDP to "+multicastUDP.String(), multicastUDP),
		{name: "DNS to a server other than the stub", probe: "dns", check: checkRefusals(""),
			args: func(e runEnv) []string {
				server := publicDNS.String()
				if !e.sandboxed {
					server = e.fx.egress.dns.addr
				}
				return []string{param("server", server), param("name", "txt."+e.fx.egress.unlisted),
					param("token", e.fx.tokens["dns"])}
			}},
		{name: "IPv6 addresses, routes and connections", probe: "ipv6",
			args: func(e runEnv) []string {
				var args []string
				if e.fx.egress.tcp6Addr != "" {
					args = append(args, param("addr", e.fx.egress.tcp6Addr), param("token", e.fx.tokens["tcp6"]))
				}
				if e.sandboxed {
					args = append(args, param("addr", docIPv6.String()))
				}
				return args
			}},
		{name: "create a TUN device, change tun0's address or routes", probe: "netadmin",
			as: asCaller, baselineIn: inOwnNetNS,
			args: func(e runEnv) []string {
				if e.sandboxed {
					return nil
				}
				return []string{param("setup", "1")}
			}},
	}
}

// literalAttack connects to an address literal, which only an address
// rule of the allowlist could allow.
func literalAttack(name string, dst netip.AddrPort) attack {
	return attack{name: name, probe: "dial", baselineIn: withoutAllowlist, check: checkRefusals(""),
		skip: func(e runEnv) string {
			return listed(e, "", dst.Addr(), dst.Port())
		},
		args: func(e runEnv) []string {
			return []string{param("addr", dst.String()), param("token", e.fx.tokens["tcp"])}
		}}
}

// udpAttack sends a datagram to dst, which the stack must drop and
// record whatever the allowlist says: it carries no UDP but DNS to the
// stub. Unsandboxed the probe sends to the battery's UDP server instead,
// to show that UDP works here; nothing leaves the host.
func udpAttack(name string, dst netip.AddrPort) attack {
	return attack{name: name, probe: "udp", check: checkRefusals(""),
		args: func(e runEnv) []string {
			to := dst.String()
			if !e.sandboxed {
				to = e.fx.egress.udpAddr
			}
			return []string{param("addr", to), param("token", e.fx.tokens["udp"])}
		}}
}

// netifsArgs tells the interfaces probe, in network mode egress, the one
// device the sandbox is meant to have besides lo, and its address.
func netifsArgs(e runEnv) []string {
	if !egressMode(e.profile) {
		return nil
	}
	return []string{param("egress", egress.Device), param("addr", egress.SandboxAddr.String())}
}

func portOf(addr string) uint16 {
	ap, _ := netip.ParseAddrPort(addr)
	return ap.Port()
}

func tcpPort(e runEnv) string { return strconv.Itoa(int(portOf(e.fx.tcpAddr))) }

// listed returns why the profile's allowlist allows a destination, or "".
func listed(e runEnv, name string, addr netip.Addr, port uint16) string {
	al, err := egress.NewAllowlist(e.profile.Network.Allow)
	if err != nil {
		return ""
	}
	if rule, _ := al.Connect(name, addr, port); rule != nil {
		dst := name
		if dst == "" {
			dst = addr.String()
		}
		return fmt.Sprintf("the profile's rule %s allows %s:%d", rule, dst, port)
	}
	return ""
}

func hostLoopbackListed(e runEnv) string {
	return listed(e, egress.HostLoopback, netip.Addr{}, portOf(e.fx.tcpAddr))
}

func nameListed(e runEnv) string {
	al, err := egress.NewAllowlist(e.profile.Network.Allow)
	if err != nil {
		return ""
	}
	if rule, ok := al.Name(e.fx.egress.unlisted); ok {
		return fmt.Sprintf("the profile's rule %s lists %s", rule, e.fx.egress.unlisted)
	}
	return ""
}

// ownNetNS makes a baseline run start in a new user namespace, as its uid
// 0 (mapped to the caller), and a new network namespace that namespace
// owns: capabilities over that network namespace and nothing else
// (user_namespaces(7)).
func ownNetNS(attr *syscall.SysProcAttr) {
	attr.Cloneflags |= unix.CLONE_NEWUSER | unix.CLONE_NEWNET
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
}

// evidence is what the parent saw of a sandboxed run beside the probe's
// verdict.
type evidence struct {
	records []audit.Event // what the sandbox's stack recorded
	refused []string      // the probe's verdict.Refused
	fx      *fixtures
	watched bool // the profile's resolver is the battery's DNS fixture
}

// finding is the parent's judgement of a blocked run.
type finding struct {
	note     string // what the parent saw, for the row's detail
	escaped  string // the attack got out after all, and how
	missing  string // a refusal the stack did not record
	recorded bool   // every refusal the probe saw is in the records
}

// judgeEvidence amends a blocked row with the parent's finding: an
// escape the probe could not see, a refusal the ledger would lack.
func judgeEvidence(row *Row, f finding) {
	switch {
	case f.escaped != "":
		row.Got, row.Detail = GotEscaped, row.Detail+"; "+f.escaped
	case f.missing != "":
		row.Got, row.Detail = GotError, row.Detail+"; unrecorded: "+f.missing
	default:
		if f.note != "" {
			row.Detail += "; " + f.note
		}
		if f.recorded {
			row.Mechanism += ", deny recorded"
		}
	}
}

// checkRefusals requires a denial in the stack's records for everything
// the probe saw refused by the stack, and, unless reason is "", one whose
// reason contains reason.
func checkRefusals(reason string) func(runEnv, evidence) finding {
	return func(_ runEnv, ev evidence) finding {
		if len(ev.refused) == 0 {
			return finding{note: "nothing the probe tried reached the stack"}
		}
		var seen []string
		withReason := false
		for _, what := range ev.refused {
			got, ok := denial(ev.records, what)
			if !ok {
				return finding{missing: fmt.Sprintf("no denial of %s among the stack's %d records", what, len(ev.records))}
			}
			withReason = withReason || strings.Contains(got, reason)
			seen = append(seen, fmt.Sprintf("%s (%s)", what, got))
		}
		if reason != "" && !withReason {
			return finding{missing: fmt.Sprintf("no denial says %q: %s", reason, strings.Join(seen, "; "))}
		}
		return finding{note: "recorded denials: " + strings.Join(seen, "; "), recorded: true}
	}
}

// denial finds the record of a refusal the probe saw ("dns NAME", "tcp
// IP:PORT", "udp IP:PORT") and returns its reason.
func denial(records []audit.Event, what string) (string, bool) {
	kind, dst, _ := strings.Cut(what, " ")
	for _, r := range records {
		switch ev := r.(type) { // the stack records values; a pointer would do as well
		case *audit.NetDNS:
			r = *ev
		case *audit.NetConnect:
			r = *ev
		}
		switch ev := r.(type) {
		case audit.NetDNS:
			if kind == "dns" && ev.Name == dst && ev.Verdict == audit.VerdictDeny {
				return "net_dns deny " + ev.Type, true
			}
		case audit.NetConnect:
			if ev.Proto == kind && ev.Address == dst && ev.Verdict == audit.VerdictDeny {
				return "net_connect deny: " + ev.Reason, true
			}
		}
	}
	return "", false
}

// checkResolve is checkRefusals, and the battery's resolver, when it is
// the profile's, must never have been asked for the name: the stub
// forwards nothing, so DNS carries nothing out.
func checkResolve(e runEnv, ev evidence) finding {
	f := checkRefusals("")(e, ev)
	if f.missing != "" {
		return f
	}
	name := e.fx.egress.unlisted
	if !ev.watched {
		f.note += fmt.Sprintf("; the profile names its own resolver (%s), which the battery cannot watch", e.profile.Network.Resolver)
		return f
	}
	d := ev.fx.egress.dns
	if n := d.count(name); n > 0 {
		return finding{escaped: fmt.Sprintf("the host-side resolver %s was asked %d times for %s", d.addr, n, name)}
	}
	f.note += fmt.Sprintf("; the host-side resolver %s was never asked", d.addr)
	return f
}
