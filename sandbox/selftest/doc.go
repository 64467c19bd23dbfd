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
// # Baselines
//
// A baseline that fails makes the battery fail ([Report.Err]), unless the
// probe showed that the attack cannot work on this system at all: a kernel
// without x32 or ia32 support, a caller without capabilities to lose. Such
// rows say "not provable here" and why.
package selftest
