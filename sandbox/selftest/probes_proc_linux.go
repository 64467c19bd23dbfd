package selftest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeVictim is the process outside the sandbox that the process attacks
// aim at. It runs as the sandboxed command's user, holds the secret file
// open on fd 3 and a token in its argv and environment, and lives until its
// stdin (a pipe from the harness) reaches end of file.
func probeVictim(params) verdict {
	buf := make([]byte, 64)
	for {
		if _, err := os.Stdin.Read(buf); err != nil {
			return verdict{Detail: "victim done"}
		}
	}
}

// victimState says whether pid names the victim from where the probe
// stands: its /proc/PID/cmdline carries the victim's token.
func victimState(pid int, token string) (bool, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	switch {
	case err != nil && errnoOf(err) == unix.ENOENT:
		return false, fmt.Sprintf("no process %d here", pid)
	case err != nil:
		return false, fmt.Sprintf("/proc/%d/cmdline: %s", pid, errName(err))
	case !bytes.Contains(b, []byte(token)):
		return false, fmt.Sprintf("pid %d here is another process", pid)
	}
	return true, ""
}

func pidParam(ps params) (int, error) {
	pid, err := strconv.Atoi(ps.get("pid"))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid %q: want a positive number", ps.get("pid"))
	}
	return pid, nil
}

// pidMechanism names what stopped a call aimed at a host pid: inside a new
// PID namespace the pid does not exist (ESRCH, ENOENT) or names a process
// of the sandbox (pid_namespaces(7)).
func pidMechanism(err error) string {
	switch errnoOf(err) {
	case unix.ESRCH, unix.ENOENT:
		return "PID namespace"
	}
	return filterMechanism(err, "kernel ("+errName(err)+")")
}

// probeProc: reach the victim (pid=N token=T) through /proc/PID/file for
// file=root (read secret=P with token stoken=S through its root), environ,
// mem (find its token in its stack) or exe.
func probeProc(ps params) verdict {
	pid, err := pidParam(ps)
	if err != nil {
		return broken("%v", err)
	}
	token, file := ps.get("token"), ps.get("file")
	// An unreadable cmdline proves nothing either way; try the attack.
	if ok, why := victimState(pid, token); !ok && !strings.HasPrefix(why, "/proc/") {
		return blocked("PID namespace", "%s", why)
	}
	base := fmt.Sprintf("/proc/%d/", pid)
	switch file {
	case "root":
		path := base + "root" + ps.get("secret")
		ok, err := readToken(path, ps.get("stoken"))
		if err != nil {
			return blocked(pathMechanism(err), "read %s: %s", path, errName(err))
		}
		if ok {
			return escaped("read the secret through %s", path)
		}
		return broken("read %s: the token is not in it", path)
	case "environ":
		b, err := os.ReadFile(base + "environ")
		if err != nil {
			return blocked(procMechanism(err), "read %senviron: %s", base, errName(err))
		}
		if bytes.Contains(b, []byte(token)) {
			return escaped("read the victim's environment from %senviron", base)
		}
		return broken("read %senviron: the token is not in it", base)
	case "mem":
		return readStack(pid, token)
	case "exe":
		fd, err := unix.Open(base+"exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return blocked(procMechanism(err), "open %sexe: %s", base, errName(err))
		}
		defer unix.Close(fd)
		head := make([]byte, 4)
		if n, err := unix.Pread(fd, head, 0); err != nil || n != 4 {
			return escaped("opened %sexe (reading it: %s)", base, errName(err))
		}
		return escaped("opened and read the victim's executable via %sexe (%q)", base, head)
	}
	return broken("file %q: want root, environ, mem or exe", file)
}

// procMechanism: /proc/PID files of a process one may not ptrace answer
// EACCES or EPERM (proc(5), "ptrace access mode"), which Landlock can also
// cause for its domain's outside.
func procMechanism(err error) string {
	switch errnoOf(err) {
	case unix.ENOENT, unix.ESRCH:
		return "PID namespace"
	case unix.EACCES, unix.EPERM:
		return "landlock or ptrace access check"
	}
	return errName(err)
}

// stackRange finds the victim's [stack] mapping in /proc/PID/maps.
func stackRange(pid int) (start, end uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if !strings.HasSuffix(line, "[stack]") {
			continue
		}
		lo, hi, _ := strings.Cut(strings.Fields(line)[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("parse maps line %q", line)
		}
		return start, end, nil
	}
	if err := s.Err(); err != nil {
		return 0, 0, err
	}
	return 0, 0, fmt.Errorf("no [stack] in /proc/%d/maps", pid)
}

// readStack reads the victim's stack through /proc/PID/mem; its argv and
// environment, token included, live at the top of it.
func readStack(pid int, token string) verdict {
	start, end, err := stackRange(pid)
	if err != nil {
		return blocked(procMechanism(err), "read /proc/%d/maps: %s", pid, errName(err))
	}
	path := fmt.Sprintf("/proc/%d/mem", pid)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return blocked(procMechanism(err), "open %s: %s", path, errName(err))
	}
	defer unix.Close(fd)
	buf := make([]byte, min(end-start, 8<<20))
	from := end - uint64(len(buf))
	n, err := unix.Pread(fd, buf, int64(from))
	if err != nil {
		return blocked(procMechanism(err), "read %s: %s", path, errName(err))
	}
	if bytes.Contains(buf[:n], []byte(token)) {
		return escaped("read %d bytes of the victim's stack from %s, token included", n, path)
	}
	return escaped("read %d bytes of the victim's memory from %s", n, path)
}

// probeSignal: kill(pid=N, 0), then SIGCONT (harmless to a running
// process) once /proc shows pid is the victim (token=T).
func probeSignal(ps params) verdict {
	pid, err := pidParam(ps)
	if err != nil {
		return broken("%v", err)
	}
	if err := unix.Kill(pid, 0); err != nil {
		return blocked(signalMechanism(err), "kill(%d, 0): %s", pid, errName(err))
	}
	if ok, why := victimState(pid, ps.get("token")); !ok {
		return blocked("PID namespace", "kill(%d, 0) succeeded but %s", pid, why)
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		return blocked(signalMechanism(err), "kill(%d, SIGCONT): %s", pid, errName(err))
	}
	return escaped("sent SIGCONT to the victim (pid %d)", pid)
}

// signalMechanism: a Landlock domain scoped for signals gets EPERM for
// processes outside it (landlock(7), LANDLOCK_SCOPE_SIGNAL); the baseline,
// run as the same user, shows that DAC alone would allow the signal.
func signalMechanism(err error) string {
	switch errnoOf(err) {
	case unix.ESRCH:
		return "PID namespace"
	case unix.EPERM:
		return "landlock (signal scoping)"
	}
	return errName(err)
}

// probePtrace: PTRACE_SEIZE the victim (pid=N token=T). Seizing does not
// stop it, and the tracee is detached when the probe exits.
func probePtrace(ps params) verdict {
	pid, err := pidParam(ps)
	if err != nil {
		return broken("%v", err)
	}
	// ptrace ties the tracee to the tracing thread (ptrace(2)).
	runtime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		v := blocked(pidMechanism(err), "ptrace(PTRACE_SEIZE, %d): %s", pid, errName(err))
		if scope := yamaScope(); errnoOf(err) == unix.EPERM && !filtered() && scope > 0 {
			v = v.impossible("Yama's kernel.yama.ptrace_scope is %d: no process may trace a process that is not its descendant", scope)
		}
		return v
	}
	if ok, why := victimState(pid, ps.get("token")); !ok {
		return blocked("PID namespace", "seized pid %d, but %s", pid, why)
	}
	return escaped("seized the victim (pid %d) with PTRACE_SEIZE", pid)
}

// yamaScope returns kernel.yama.ptrace_scope, or 0 without Yama
// (Documentation/admin-guide/LSM/Yama.rst).
func yamaScope() int {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// probeVMRead: process_vm_readv(2) from the victim (pid=N token=T) at
// addr=HEX for len=N bytes, the harness's view of the victim's stack top.
func probeVMRead(ps params) verdict {
	pid, err := pidParam(ps)
	if err != nil {
		return broken("%v", err)
	}
	addr, err1 := strconv.ParseUint(ps.get("addr"), 16, 64)
	size, err2 := strconv.Atoi(ps.get("len"))
	if err1 != nil || err2 != nil || size <= 0 {
		return broken("addr %q len %q: want hex address and positive length", ps.get("addr"), ps.get("len"))
	}
	buf := make([]byte, size)
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(size)
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: size}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return blocked(pidMechanism(err), "process_vm_readv(%d): %s", pid, errName(err))
	}
	if bytes.Contains(buf[:n], []byte(ps.get("token"))) {
		return escaped("read %d bytes of the victim's stack, token included", n)
	}
	return escaped("read %d bytes of process %d's memory", n, pid)
}

// probePidfd: pidfd_open(2) the victim (pid=N) and take its descriptor
// fd=N with pidfd_getfd(2); the victim holds the secret file there, so
// reading token stoken=S from the copy proves the theft.
func probePidfd(ps params) verdict {
	pid, err := pidParam(ps)
	if err != nil {
		return broken("%v", err)
	}
	target, err := strconv.Atoi(ps.get("fd"))
	if err != nil {
		return broken("fd %q: %v", ps.get("fd"), err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return blocked(pidMechanism(err), "pidfd_open(%d): %s", pid, errName(err))
	}
	defer unix.Close(pidfd)
	if ok, why := victimState(pid, ps.get("token")); !ok {
		return blocked("PID namespace", "pidfd_open(%d) succeeded but %s", pid, why)
	}
	fd, err := unix.PidfdGetfd(pidfd, target, 0)
	if err != nil {
		return blocked(pidMechanism(err), "pidfd_getfd(pid %d, fd %d): %s", pid, target, errName(err))
	}
	defer unix.Close(fd)
	ok, err := fdHoldsToken(fd, ps.get("stoken"))
	if err == nil && ok {
		return escaped("took the victim's fd %d with pidfd_getfd and read the secret from it", target)
	}
	return escaped("took the victim's fd %d with pidfd_getfd", target)
}
