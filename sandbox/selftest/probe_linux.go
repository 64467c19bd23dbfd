package selftest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probes are the attacks a probe process can run, by name. Each gets its
// parameters as KEY=VALUE words and returns a verdict built from what it
// observed: no probe assumes an outcome.
var probes = map[string]func(params) verdict{
	// Helpers, not attacks: the outside process the attacks aim at, and
	// the child that reports what a new user namespace gave it.
	"victim": probeVictim,
	"nsinfo": probeNSInfo,

	// Files.
	"read":     probeRead,
	"write":    probeWrite,
	"create":   probeCreate,
	"truncate": probeTruncate,
	"symlink":  probeSymlink,
	"hardlink": probeHardlink,
	"rename":   probeRename,
	"byhandle": probeByHandle,

	// Other processes.
	"proc":   probeProc,
	"signal": probeSignal,
	"ptrace": probePtrace,
	"vmread": probeVMRead,
	"pidfd":  probePidfd,

	// Network and host sockets.
	"tcp":    probeTCP,
	"unix":   probeUnix,
	"netifs": probeNetifs,

	// Network mode egress: what lies beyond tun0.
	"resolve":  probeResolve,
	"dial":     probeDial,
	"udp":      probeUDP,
	"dns":      probeDNS,
	"ipv6":     probeIPv6,
	"netadmin": probeNetAdmin,

	// Kernel attack surface.
	"userns":      probeUserNS,
	"syscall":     probeSyscall,
	"ia32":        probeIA32,
	"x32":         probeX32,
	"personality": probePersonality,
	"tiocsti":     probeTIOCSTI,
	"tioclinux":   probeTIOCLINUX,

	// The process's own state.
	"fds":     probeFds,
	"caps":    probeCaps,
	"nnp":     probeNNP,
	"seccomp": probeSeccompMode,
	"ids":     probeIDs,
	"groups":  probeGroups,
}

// prepareProbe restores the default action of SIGSYS. The Go runtime turns
// a SIGSYS into a panic and exit status 2; with the default action a
// seccomp SECCOMP_RET_TRAP kills the probe with SIGSYS, as
// SECCOMP_RET_KILL_PROCESS does, and the battery reads one signal for both
// (seccomp(2), "SECCOMP_RET_TRAP").
func prepareProbe() { defaultSignal(unix.SIGSYS) }

// status reads the fields of /proc/self/status.
func status() (map[string]string, error) {
	return procStatus("/proc/self/status")
}

func procStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, s.Err()
}

// filtered reports whether a seccomp filter applies to this process
// (Seccomp: 2 in /proc/self/status, proc(5)).
func filtered() bool {
	st, err := status()
	return err == nil && st["Seccomp"] == "2"
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// errName names the errno in err ("EACCES"), or returns err's text.
func errName(err error) string {
	if e := errnoOf(err); e != 0 {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// filterMechanism names a seccomp filter as what returned err when the
// errno is one a filter returns and a filter is present; otherwise it
// returns other.
func filterMechanism(err error, other string) string {
	switch errnoOf(err) {
	case unix.EPERM, unix.ENOSYS, unix.EACCES:
		if filtered() {
			return fmt.Sprintf("seccomp (%s)", errName(err))
		}
	}
	return other
}

// pathMechanism names what most likely stopped a path operation, given
// that the unsandboxed baseline, run as the same user, succeeded: Landlock
// answers EACCES (EXDEV for a rename or link it refuses), a hidden path
// does not exist, a read-only bind mount answers EROFS.
func pathMechanism(err error) string {
	switch errnoOf(err) {
	case unix.EACCES:
		return "landlock"
	case unix.ENOENT:
		return "mount hiding (path not visible)"
	case unix.EROFS:
		return "read-only mount"
	case unix.EXDEV:
		return "landlock (refer) or separate mounts"
	case unix.EPERM, unix.ENOSYS:
		return filterMechanism(err, "kernel ("+errName(err)+")")
	}
	return errName(err)
}
