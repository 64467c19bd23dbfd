// Package selftest is the escape battery behind `vm-run selftest --profile
// P`: a set of attacks a hostile MCP server would try, each run once
// without the sandbox, to prove it works on this machine, and once inside
// the sandbox the profile describes, where it must be blocked.
//
//	rep, err := selftest.Run(ctx, selftest.Options{ProfileName: "strict"})
//	if err != nil {
//		return err // the battery could not run at all
//	}
//	rep.WriteTable(os.Stdout)
//	if rep.Escaped() {
//		// an attack got out
//	}
//	return rep.Err() // escapes, or attacks the battery could not prove
//
// # Probes
//
// Each attack is a probe: vm-run itself executed with argv[0] [ProbeArg0]
// and the probe's name and KEY=VALUE parameters, which main hands to
// [ProbeMain]. A probe does one thing and prints one JSON line: whether it
// escaped, what it saw (errno values included) and, when it was stopped,
// the mechanism it could observe stopping it. A probe killed by seccomp
// prints nothing; [Run] reads SIGSYS from its exit status. Probes never
// assume an outcome: an escape needs evidence, usually a random token read
// back from the host fixture it attacked.
//
// # Fixtures
//
// [Run] creates the targets on the host: a workspace, a secret file in a
// directory no rule grants, a secret under a directory the profile hides,
// a second workspace in the host's /tmp (which the sandbox's private /tmp
// covers), a loopback TCP listener, abstract and pathname unix socket
// listeners, a pseudo-terminal, descriptors leaked without close-on-exec
// and a victim process outside the sandbox. The files go in the caller's
// home, in /var/lib for root, or in a temp dir, whichever the profile
// neither grants nor hides first, and are removed at the end.
//
// When vm-run runs as root the sandboxed command runs as nobody, so the
// fixtures belong to nobody and the baseline runs as nobody too: file
// modes and ptrace rules then allow every attack, and only the sandbox can
// make the difference. The vm-run binary must be executable by that user.
//
// # Network mode egress
//
// A profile in network mode egress gets the attacks on what lies beyond
// the sandbox's tun0, and each sandbox of the battery gets its own stack
// (package netns/stack, started as `vm-run run` starts it, through
// sandbox.EgressConfig), recording into memory and closed when the probe
// has ended. Unless the profile names a resolver of its own, the battery
// makes its DNS fixture on the host's loopback the profile's
// network.resolver for the run, and counts what it is asked.
//
// The attacks: resolve a name no rule lists (NXDOMAIN, and the host-side
// resolver never asked); reach the host's loopback listener by the name
// host-loopback (unless a rule lists its port) and by guessing synthetic
// addresses the stub never handed out; reach 169.254.169.254:80 and
// 10.0.0.1:80 (ECONNREFUSED at once, never a hang); send UDP, unicast
// and multicast; ask DNS of a server other than the stub (8.8.8.8:53, UDP
// and TCP); use IPv6 (no address, no route, no connection); create a TUN
// device or add an address or a route (EPERM: no CAP_NET_ADMIN). Each
// probe lists what it saw refused by the stack (verdict.Refused), and the
// row fails ("error", "unrecorded: ...") unless the stack recorded a
// denial of each: nothing may be refused unrecorded.
//
// The existing attacks are judged for the mode: 127.0.0.1 inside is the
// sandbox's own loopback, so the host's listener stays out of reach; and
// "network interfaces other than lo" accepts tun0, and only tun0, when it
// is a TUN device holding the sandbox's address with the route leaving
// from it, since its far end is vm-run's stack, whose allowlist the
// egress attacks test.
//
// Baselines differ with what stands in the way. Attacks that only the
// allowlist stops run their baseline in the same sandbox with a stack
// that allows everything and connects every connection to the battery's
// own loopback listener ("escapes without the allowlist"): the probe
// reads the listener's token through tun0, so the path works and the
// allowlist alone makes the difference. The UDP, DNS and IPv6 attacks
// run unsandboxed against the battery's loopback fixtures: nothing is
// ever sent off the host to prove them. The attack on the network
// configuration runs its baseline unsandboxed, in a user and network
// namespace of its own where it holds CAP_NET_ADMIN, as the init stage
// does before it drops it; it never touches the host's network.
//
// # Baselines
//
// A baseline that fails makes the battery fail ([Report.Err]), unless the
// probe showed that the attack cannot work on this system at all: a kernel
// without x32 or ia32 support, a caller without capabilities to lose. Such
// rows say "not provable here" and why.
package selftest
