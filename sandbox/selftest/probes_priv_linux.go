package selftest

import (
	"fmt"
	"os"

	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capSet parses a capability mask from /proc/self/status.
func capSet(st map[string]string, field string) uint64 {
	v, _ := strconv.ParseUint(st[field], 16, 64)
	return v
}

// hasCap reports whether cap is in the effective set.
func hasCap(cap int) bool {
	st, err := status()
	return err == nil && capSet(st, "CapEff")&(1<<uint(cap)) != 0
}

// probeCaps: any capability in the effective, permitted, inheritable or
// ambient set. The bounding set only limits what an execve could gain, and
// no_new_privs stops execve from gaining anything, so it is reported, not
// judged.
func probeCaps(params) verdict {
	st, err := status()
	if err != nil {
		return broken("read /proc/self/status: %v", err)
	}
	detail := fmt.Sprintf("CapEff %s CapPrm %s CapInh %s CapAmb %s CapBnd %s",
		st["CapEff"], st["CapPrm"], st["CapInh"], st["CapAmb"], st["CapBnd"])
	if capSet(st, "CapEff")|capSet(st, "CapPrm")|capSet(st, "CapInh")|capSet(st, "CapAmb") != 0 {
		return escaped("%s", detail)
	}
	return blocked("no capabilities", "%s", detail).
		impossible("uid %d holds no capabilities to begin with (the user namespace rows cover gaining some)", os.Getuid())
}

// probeNNP: no_new_privs must be set (prctl(2), PR_SET_NO_NEW_PRIVS).
func probeNNP(params) verdict {
	st, err := status()
	if err != nil {
		return broken("read /proc/self/status: %v", err)
	}
	if st["NoNewPrivs"] != "1" {
		return escaped("NoNewPrivs: %s: executing a setuid or file-capability program could gain privileges", st["NoNewPrivs"])
	}
	return blocked("no_new_privs", "NoNewPrivs: 1").
		impossible("the caller already runs with no_new_privs")
}

// probeSeccompMode: a seccomp filter must apply (Seccomp: 2, proc(5)).
func probeSeccompMode(params) verdict {
	st, err := status()
	if err != nil {
		return broken("read /proc/self/status: %v", err)
	}
	if st["Seccomp"] != "2" {
		return escaped("Seccomp: %s: no syscall filter", st["Seccomp"])
	}
	return blocked("seccomp filter", "Seccomp: 2, %s filter(s)", st["Seccomp_filters"]).
		impossible("the caller already runs under a seccomp filter")
}

// probeIDs: every uid and gid (real, effective, saved) must equal uid=N
// and gid=N, the ids the sandbox was asked to run the command as.
func probeIDs(ps params) verdict {
	want := ps.get("uid") + ":" + ps.get("gid")
	ru, eu, su := unix.Getresuid()
	rg, eg, sg := unix.Getresgid()
	got := fmt.Sprintf("uid %d/%d/%d gid %d/%d/%d", ru, eu, su, rg, eg, sg)
	for _, id := range []string{
		fmt.Sprint(ru) + ":" + fmt.Sprint(rg), fmt.Sprint(eu) + ":" + fmt.Sprint(eg),
		fmt.Sprint(su) + ":" + fmt.Sprint(sg),
	} {
		if id != want {
			return escaped("%s (real/effective/saved), want %s", got, want)
		}
	}
	return blocked("user mapping", "%s, as asked", got).
		impossible("the command runs as its caller (%s) when vm-run is not started as root", want)
}

// probeGroups: read path=P (token=T), a file only its group may read,
// whose group is one of the caller's supplementary groups and not the
// command's own: the command must not keep the caller's groups.
func probeGroups(ps params) verdict {
	groups, _ := unix.Getgroups()
	path := ps.get("path")
	ok, err := readToken(path, ps.get("token"))
	switch {
	case err != nil && errnoOf(err) == unix.EACCES:
		return blocked("supplementary groups dropped", "read %s: EACCES; groups %v", path, groups)
	case err != nil:
		return blocked(pathMechanism(err), "read %s: %s", path, errName(err))
	case !ok:
		return broken("read %s: the token is not in it", path)
	}
	return escaped("read %s, readable only by its group; groups here %v", path, groups)
}

// probeFds: descriptors above 2 without close-on-exec that this process
// did not open itself, that is, inherited ones. Reading token stoken=S from
// one proves it leads to the harness's secret.
func probeFds(ps params) verdict {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return broken("list /proc/self/fd: %v", err)
	}
	var leaked []string
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// Go opens everything close-on-exec, the directory being listed
		// included; a descriptor without the flag came through execve.
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		desc := fmt.Sprintf("fd %d -> %s", fd, target)
		if s := ps.get("stoken"); s != "" {
			if ok, _ := fdHoldsToken(fd, s); ok {
				desc += " (read the secret from it)"
			}
		}
		leaked = append(leaked, desc)
	}
	if len(leaked) > 0 {
		return escaped("inherited %s", strings.Join(leaked, ", "))
	}
	return blocked("descriptors closed before exec", "no descriptor above 2 was inherited")
}

// The terminal probes use fd=N (2 unless given), which the harness makes
// the slave of a pseudo-terminal in raw mode.
func ttyFd(ps params) (int, error) {
	if ps.get("fd") == "" {
		return 2, nil
	}
	return strconv.Atoi(ps.get("fd"))
}

// probeTIOCSTI: push a byte into the terminal's input queue, as if typed
// (ioctl_tty(2), TIOCSTI); anything the terminal's next reader runs would
// run outside the sandbox. The kernel allows it on the caller's
// controlling terminal only (unless dev.tty.legacy_tiocsti is 0), so a
// refused first try is followed by what a hostile program would do: start
// a session and take the inherited terminal as its controlling terminal.
func probeTIOCSTI(ps params) verdict {
	fd, err := ttyFd(ps)
	if err != nil {
		return broken("fd: %v", err)
	}
	const c = 'Q'
	err = ioctlByte(fd, unix.TIOCSTI, c)
	steps := []string{"TIOCSTI: " + errName(err)}
	mech := ""
	if errnoOf(err) == unix.EPERM {
		_, serr := unix.Setsid()
		cerr := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 0)
		steps = append(steps, "setsid: "+errName(serr), "TIOCSCTTY: "+errName(cerr))
		if cerr != nil {
			mech = "no controlling terminal (" + errName(cerr) + ")"
		} else {
			err = ioctlByte(fd, unix.TIOCSTI, c)
			steps = append(steps, "TIOCSTI on the controlling terminal: "+errName(err))
		}
	}
	if err != nil {
		v := blocked(joinMechanism(filterMechanism(err, "kernel ("+errName(err)+")"), mech), "%s", strings.Join(steps, "; "))
		if n, ok := sysctlInt("dev.tty.legacy_tiocsti"); errnoOf(err) == unix.EIO && ok && n == 0 {
			v = v.impossible("dev.tty.legacy_tiocsti is 0: the kernel refuses TIOCSTI without CAP_SYS_ADMIN")
		}
		return v
	}
	// The byte is in the input queue when the ioctl returns; read it back.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 0); n == 1 {
		b := make([]byte, 1)
		if n, _ := unix.Read(fd, b); n == 1 && b[0] == c {
			return escaped("pushed %q into the terminal's input and read it back (%s)", c, strings.Join(steps, "; "))
		}
	}
	return escaped("TIOCSTI succeeded (%s)", strings.Join(steps, "; "))
}

// probeTIOCLINUX: TIOCLINUX with TIOCL_GETSHIFTSTATE (harmless). It does
// something only on a virtual console; on the battery's pseudo-terminal an
// answer other than EPERM shows the request reached the tty layer, which is
// what a filter must prevent (ioctl_console(2)).
func probeTIOCLINUX(ps params) verdict {
	fd, err := ttyFd(ps)
	if err != nil {
		return broken("fd: %v", err)
	}
	const getShiftState = 6 // TIOCL_GETSHIFTSTATE, include/uapi/linux/tiocl.h
	err = ioctlByte(fd, unix.TIOCLINUX, getShiftState)
	if reached(err) {
		return escaped("TIOCLINUX reached the tty layer (%s)", errName(err))
	}
	return blocked(filterMechanism(err, "kernel ("+errName(err)+")"), "TIOCLINUX: %s", errName(err))
}
