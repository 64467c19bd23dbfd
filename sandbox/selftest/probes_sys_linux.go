package selftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/internal/sysprobe"
)

// surfaceCall is a system call the sandbox has no business making, issued
// with harmless bad arguments: an answer such as EFAULT, EBADF, EINVAL or
// ENOENT means the call reached its implementation in the kernel (the
// bubblewrap tests/try-syscall.c approach), EPERM or ENOSYS that something
// stood in front of it.
type surfaceCall struct {
	call func() error
	// gate names the privilege the kernel checks before it looks at the
	// arguments, if any: then an unprivileged EPERM is the kernel's own
	// and the probe retries from a new user and mount namespace, where
	// the caller holds CAP_SYS_ADMIN (may_mount() in fs/namespace.c).
	gate string
	// sysctl explains an EPERM the kernel gives for reasons of its own
	// configuration: the attack cannot work here whatever the sandbox
	// does. It returns "" when the configuration allows the call.
	sysctl func() string
}

func raw(nr uintptr, a ...uintptr) func() error {
	return func() error {
		var args [6]uintptr
		copy(args[:], a)
		_, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		if e != 0 {
			return e
		}
		return nil
	}
}

const mountGate = "CAP_SYS_ADMIN over the mount namespace"

// Constants x/sys/unix does not define: UFFD_USER_MODE_ONLY from
// include/uapi/linux/userfaultfd.h, personality flags from
// include/uapi/linux/personality.h.
const (
	uffdUserModeOnly = 1
	perLinux         = 0x0000000
	readImpliesExec  = 0x0400000
	addrNoRandomize  = 0x0040000
)

var surface = map[string]surfaceCall{
	// An empty target fails the path lookup (ENOENT) before may_mount().
	"mount": {call: func() error { return unix.Mount("none", "", "tmpfs", 0, "") }},
	// Unknown flags fail before the lookup and the privilege check.
	"umount2":    {call: func() error { return unix.Unmount("/", 0x40000000) }},
	"pivot_root": {call: func() error { return unix.PivotRoot("", "") }, gate: mountGate},
	"chroot":     {call: func() error { return unix.Chroot("") }},
	"fsopen": {call: func() error { _, err := unix.Fsopen("tmpfs", 0xff); return err },
		gate: mountGate},
	"fsmount": {call: func() error { _, err := unix.Fsmount(-1, 0xff, 0); return err },
		gate: mountGate},
	"move_mount": {call: func() error { return unix.MoveMount(-1, "", -1, "", 0x40000000) },
		gate: mountGate},
	"open_tree": {call: func() error { _, err := unix.OpenTree(-1, "", 0x40000000); return err }},
	"fspick": {call: func() error { _, err := unix.Fspick(-1, "", 0x40000000); return err },
		gate: mountGate},
	"mount_setattr": {call: func() error {
		return unix.MountSetattr(-1, "", 0x40000000, &unix.MountAttr{})
	}},
	"setns": {call: func() error { return unix.Setns(-1, 0) }},
	// A NULL params pointer: EFAULT once io_uring is enabled for the caller.
	"io_uring_setup": {call: raw(unix.SYS_IO_URING_SETUP, 1, 0), sysctl: ioUringSysctl},
	// A NULL attr with a nonzero size: EFAULT before any command runs.
	"bpf":             {call: raw(unix.SYS_BPF, unix.BPF_MAP_CREATE, 0, 64), sysctl: bpfSysctl},
	"perf_event_open": {call: raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0), sysctl: perfSysctl},
	// UFFD_USER_MODE_ONLY passes the vm.unprivileged_userfaultfd check;
	// the unknown bit 0x2 then fails with EINVAL.
	"userfaultfd":       {call: raw(unix.SYS_USERFAULTFD, uffdUserModeOnly|0x2)},
	"keyctl":            {call: func() error { _, err := unix.KeyctlInt(0x7fff, 0, 0, 0, 0); return err }},
	"add_key":           {call: func() error { _, err := unix.AddKey("", "", nil, 0); return err }},
	"request_key":       {call: func() error { _, err := unix.RequestKey("", "", "", 0); return err }},
	"name_to_handle_at": {call: raw(unix.SYS_NAME_TO_HANDLE_AT, ^uintptr(99), 0, 0, 0, 0)},
	"socket(AF_VSOCK)": {call: func() error {
		return socketCall(unix.AF_VSOCK, unix.SOCK_STREAM)
	}},
	"socket(AF_ALG)": {call: func() error {
		return socketCall(unix.AF_ALG, unix.SOCK_SEQPACKET)
	}},
}

func socketCall(family, typ int) error {
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func sysctlInt(name string) (int, bool) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return 0, false
	}
	var n int
	_, err = fmt.Sscan(string(b), &n)
	return n, err == nil
}

func ioUringSysctl() string {
	if n, ok := sysctlInt("kernel.io_uring_disabled"); ok && n > 0 && !hasCap(unix.CAP_SYS_ADMIN) {
		return fmt.Sprintf("kernel.io_uring_disabled is %d", n)
	}
	return ""
}

func bpfSysctl() string {
	if n, ok := sysctlInt("kernel.unprivileged_bpf_disabled"); ok && n > 0 && !hasCap(unix.CAP_BPF) && !hasCap(unix.CAP_SYS_ADMIN) {
		return fmt.Sprintf("kernel.unprivileged_bpf_disabled is %d and uid %d holds no CAP_BPF", n, os.Getuid())
	}
	return ""
}

func perfSysctl() string {
	if n, ok := sysctlInt("kernel.perf_event_paranoid"); ok && n > 2 && !hasCap(unix.CAP_PERFMON) && !hasCap(unix.CAP_SYS_ADMIN) {
		return fmt.Sprintf("kernel.perf_event_paranoid is %d", n)
	}
	return ""
}

// reached reports whether err shows the call got to its implementation.
func reached(err error) bool {
	switch errnoOf(err) {
	case unix.EPERM, unix.ENOSYS:
		return false
	}
	// socket(AF_UNIX) is EACCES under the filter; elsewhere EACCES is an
	// answer from the kernel.
	return !(errnoOf(err) == unix.EACCES && filtered())
}

// probeSyscall: issue the call name=N (see surface). With inns=1 the probe
// is the child that retries a privilege-gated call in a new user and mount
// namespace.
func probeSyscall(ps params) verdict {
	name := ps.get("name")
	sc, ok := surface[name]
	if !ok {
		return broken("unknown call %q", name)
	}
	err := sc.call()
	if errnoOf(err) == unix.EAFNOSUPPORT {
		return blocked("kernel (EAFNOSUPPORT)", "%s: EAFNOSUPPORT", name).
			impossible("this kernel has no such socket family")
	}
	if reached(err) {
		where := ""
		if ps.get("inns") != "" {
			where = " from a new user namespace"
		}
		return escaped("%s reached the kernel%s (%s)", name, where, errName(err))
	}
	v := blocked(filterMechanism(err, "kernel ("+errName(err)+")"), "%s: %s", name, errName(err))
	if ps.get("inns") != "" || errnoOf(err) != unix.EPERM {
		return v
	}
	if sc.gate != "" && !hasCap(unix.CAP_SYS_ADMIN) {
		if filtered() {
			v.Mechanism = fmt.Sprintf("seccomp (EPERM) or no %s", sc.gate)
		}
		child, err := inNewUserNS(unix.CLONE_NEWNS, "syscall", param("name", name), param("inns", "1"))
		if err != nil {
			v.Detail += fmt.Sprintf("; a new user namespace to retry in: %s", errName(err))
			v.Mechanism = joinMechanism(v.Mechanism, filterMechanism(err, "kernel ("+errName(err)+")"))
			return v
		}
		return child
	}
	if sc.sysctl != nil && !filtered() {
		if why := sc.sysctl(); why != "" {
			return v.impossible("%s", why)
		}
	}
	return v
}

// inNewUserNS runs a probe in a child in a new user namespace (and the
// namespaces in extra) where it is uid 0 with every capability, as any
// unprivileged process may on a kernel that allows user namespaces
// (user_namespaces(7)), and returns the child's verdict. The error is the
// clone's.
func inNewUserNS(extra uintptr, probe string, args ...string) (verdict, error) {
	return runChild(&syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | extra,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}, probe, args...)
}

// runChild runs this binary as a probe child with attr and decodes its
// verdict.
func runChild(attr *syscall.SysProcAttr, probe string, args ...string) (verdict, error) {
	self, err := os.Executable()
	if err != nil {
		return verdict{}, err
	}
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: self, Args: append([]string{ProbeArg0, probe}, args...),
		Env: []string{}, Stdout: &out, SysProcAttr: attr}
	if err := cmd.Start(); err != nil {
		return verdict{}, err
	}
	werr := cmd.Wait()
	var v verdict
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &v); err != nil {
		return broken("child probe %q: %v (no verdict: %v)", probe, werr, err), nil
	}
	return v, nil
}

// probeNSInfo reports the user namespace, uid and effective capabilities
// of the process, for the user namespace probes.
func probeNSInfo(params) verdict {
	ns, _ := os.Readlink("/proc/self/ns/user")
	st, _ := status()
	return verdict{Detail: fmt.Sprintf("%s uid %d CapEff %s", ns, os.Getuid(), st["CapEff"])}
}

// probeUserNS: create a user namespace via=clone, clone3 or unshare and
// run a child in it. Inside it the child may hold every capability, which
// opens much of the kernel that the sandbox otherwise keeps shut.
func probeUserNS(ps params) verdict {
	mine, _ := os.Readlink("/proc/self/ns/user")
	attr := &syscall.SysProcAttr{
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	via := ps.get("via")
	switch via {
	case "clone":
		attr.Cloneflags = unix.CLONE_NEWUSER
	case "clone3":
		// Go's exec calls clone3 rather than clone only for a time
		// namespace or a cgroup fd (syscall/exec_linux.go).
		if _, err := os.Stat("/proc/self/ns/time"); err != nil {
			return blocked("", "no time namespaces here: %s", errName(err)).
				impossible("this kernel has no time namespaces, which this probe needs to issue clone3")
		}
		attr.Cloneflags = unix.CLONE_NEWUSER | unix.CLONE_NEWTIME
	case "unshare":
		// The forked child unshares before it executes; maps are for
		// clone only.
		attr = &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWUSER}
	default:
		return broken("via %q: want clone, clone3 or unshare", via)
	}
	v, err := runChild(attr, "nsinfo")
	if err != nil {
		return blocked(filterMechanism(err, "kernel ("+errName(err)+")"), "%s(CLONE_NEWUSER): %s", via, errName(err))
	}
	if v.Error != "" {
		return broken("%s", v.Error)
	}
	if strings.HasPrefix(v.Detail, mine+" ") {
		return blocked("", "%s: the child is still in %s", via, mine)
	}
	return escaped("%s made a new user namespace: the child reports %s", via, v.Detail)
}

// probeIA32: getpid through int $0x80, the ia32 entry, whose syscall
// numbers a filter for x86-64 would misread. A filter should kill the probe
// with SIGSYS. Without ia32 emulation the instruction faults before system
// call entry, where no filter runs: the attack cannot work here, and the
// probe says so rather than dying of the fault (sysprobe.TryInt80).
func probeIA32(params) verdict {
	if !sysprobe.Available {
		return blocked("", "no ia32 entry on %s", runtime.GOARCH).
			impossible("there is no ia32 entry point on %s", runtime.GOARCH)
	}
	r, err := sysprobe.TryInt80(sysprobe.IA32Getpid, 0, 0, 0)
	if errors.Is(err, sysprobe.ErrNoIA32) {
		return blocked("kernel (no ia32 emulation)", "int $0x80 getpid faulted before system call entry").
			impossible("this kernel has no ia32 emulation: int $0x80 faults (CONFIG_IA32_EMULATION off, ia32_emulation=0, or a hypervisor without it)")
	}
	if e := sysprobe.Errno(r); e != 0 {
		return blocked(filterMechanism(e, "kernel ("+errName(e)+")"), "int $0x80 getpid: %s", errName(e))
	}
	if int(r) != os.Getpid() {
		return broken("int $0x80 getpid returned %d, want %d", r, os.Getpid())
	}
	return escaped("int $0x80 getpid returned the pid %d", r)
}

// probeX32: getpid through the x32 ABI (bit 30 of the number).
func probeX32(params) verdict {
	if !sysprobe.Available {
		return blocked("", "no x32 ABI on %s", runtime.GOARCH).
			impossible("there is no x32 ABI on %s", runtime.GOARCH)
	}
	r, e := sysprobe.X32Syscall(sysprobe.X32Getpid, 0, 0, 0)
	if e != 0 {
		v := blocked("kernel ("+errName(e)+")", "x32 getpid: %s", errName(e))
		if e == unix.ENOSYS {
			v = v.impossible("this kernel has no x32 ABI (CONFIG_X86_X32_ABI off, or x32 disabled): x32 calls answer ENOSYS")
		}
		return v
	}
	if int(r) != os.Getpid() {
		return broken("x32 getpid returned %d, want %d", r, os.Getpid())
	}
	return escaped("x32 getpid returned the pid %d", r)
}

// probePersonality: set READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE, which
// weaken what the process executes next (personality(2)), check with a
// query that they took, and put the old persona back.
func probePersonality(params) verdict {
	query := func() (uintptr, error) {
		r, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
	old, err := query()
	if err != nil {
		return blocked(filterMechanism(err, errName(err)), "personality query: %s", errName(err))
	}
	var got, notes []string
	mech := ""
	for _, f := range []struct {
		flag uintptr
		name string
	}{{readImpliesExec, "READ_IMPLIES_EXEC"}, {addrNoRandomize, "ADDR_NO_RANDOMIZE"}} {
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, perLinux|f.flag, 0, 0)
		if e != 0 {
			notes = append(notes, fmt.Sprintf("PER_LINUX|%s: %s", f.name, errName(e)))
			mech = joinMechanism(mech, filterMechanism(e, errName(e)))
			continue
		}
		now, err := query()
		unix.RawSyscall(unix.SYS_PERSONALITY, old, 0, 0)
		if err == nil && now&f.flag != 0 {
			got = append(got, f.name)
		} else {
			notes = append(notes, f.name+" did not stick")
		}
	}
	if len(got) > 0 {
		return escaped("set %s", strings.Join(got, " and "))
	}
	return blocked(mech, "%s", strings.Join(notes, "; "))
}
