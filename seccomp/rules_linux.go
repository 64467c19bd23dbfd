package seccomp

import (
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// Personality values from include/uapi/linux/personality.h that change
// nothing a sandbox cares about.
const (
	perLinux32 = 0x0008    // PER_LINUX32: uname reports a 32-bit machine
	uname26    = 0x0020000 // UNAME26: uname reports 2.6.x for old binaries
)

// Rules returns the whole deny list in the order the filter is built. It
// includes the rules of every opt-in group, which Build leaves out when the
// Config allows the group, and rules for syscalls the native architecture
// lacks (vm86 on x86-64), which Build always leaves out. The result is a copy.
func Rules() []Rule {
	out := slices.Clone(rules)
	for i := range out {
		if out[i].Arg != nil {
			a := *out[i].Arg
			out[i].Arg = &a
		}
	}
	return out
}

var rules = buildRules()

func buildRules() []Rule {
	const (
		ns      = "namespaces and mounts would let the sandbox rebuild its own view of the system"
		newAPI  = "new mount API; ENOSYS makes libmount fall back to mount(2), which is denied too"
		kernel  = "kernel attack surface the sandbox has no use for"
		clock   = "sets or disciplines the system clock"
		obsol   = "obsolete or unimplemented; denied as in Docker's default profile"
		numa    = "NUMA memory policy; Docker denies it without CAP_SYS_NICE"
		cross   = "reaches into other processes"
		handles = "opens files by handle, bypassing path-based checks (the Shocker escape)"
	)
	var r []Rule
	add := func(errno unix.Errno, group, reason string, names ...string) {
		for _, n := range names {
			r = append(r, Rule{Syscall: n, Errno: errno, Group: group, Reason: reason})
		}
	}

	add(unix.EPERM, "", ns, "unshare", "setns", "mount", "umount2", "pivot_root", "chroot")
	add(unix.ENOSYS, "", newAPI, "fsopen", "fsconfig", "fsmount", "fspick",
		"open_tree", "open_tree_attr", "move_mount", "mount_setattr")

	// clone(2) takes its flags in a register, so each namespace flag gets a
	// rule of its own. CLONE_NEWTIME shares its bit with the exit signal in
	// clone(2) (only clone3 and unshare accept it, see clone(2)); a legacy
	// clone with that bit set asks for an invalid signal, so denying it costs
	// nothing.
	for _, f := range []struct {
		flag uint64
		name string
	}{
		{unix.CLONE_NEWNS, "CLONE_NEWNS"},
		{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
		{unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
		{unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
		{unix.CLONE_NEWUSER, "CLONE_NEWUSER"},
		{unix.CLONE_NEWPID, "CLONE_NEWPID"},
		{unix.CLONE_NEWNET, "CLONE_NEWNET"},
		{unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
	} {
		r = append(r, Rule{
			Syscall: "clone", Errno: unix.EPERM, Reason: ns,
			Arg: &Arg{Index: cloneFlagsArg(), Op: OpMaskedEqual,
				Mask: f.flag, Value: f.flag, Name: f.name},
		})
	}
	r = append(r, Rule{Syscall: "clone3", Errno: unix.ENOSYS,
		Reason: "flags live in memory a filter cannot read; ENOSYS makes glibc fall back to clone(2)"})

	add(unix.EPERM, "", kernel, "bpf", "perf_event_open", "userfaultfd",
		"keyctl", "add_key", "request_key",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"acct", "swapon", "swapoff", "reboot", "syslog", "quotactl", "quotactl_fd",
		"iopl", "ioperm")
	// adjtimex is denied with clock_adjtime: both reach do_adjtimex(), glibc
	// implements adjtimex(3) with clock_adjtime, and the read-only form serves
	// only NTP tooling. Setting needs CAP_SYS_TIME in the initial user
	// namespace (adjtimex(2)), which the sandbox never has; the rule keeps
	// the parser of struct timex out of reach as well.
	add(unix.EPERM, "", clock, "settimeofday", "clock_settime", "clock_adjtime", "adjtimex")
	add(unix.EPERM, "", obsol, "create_module", "get_kernel_syms", "lookup_dcookie",
		"nfsservctl", "query_module", "sysfs", "_sysctl", "uselib", "ustat",
		"vm86", "vm86old")
	add(unix.EPERM, "numa", numa, "mbind", "set_mempolicy", "get_mempolicy",
		"move_pages", "migrate_pages", "set_mempolicy_home_node")
	add(unix.EPERM, "", cross, "ptrace", "process_vm_readv", "process_vm_writev",
		"kcmp", "pidfd_getfd", "process_madvise")
	// EPERM, not a kill: libuv probes io_uring_setup and falls back to its
	// thread pool on an error.
	add(unix.EPERM, "", "io_uring bypasses syscall filtering and has a long CVE record",
		"io_uring_setup", "io_uring_enter", "io_uring_register")
	add(unix.EPERM, "", handles, "open_by_handle_at", "name_to_handle_at")

	// The ioctl request is unsigned int in the kernel (ioctl(2)), so only the
	// low 32 bits are compared: 0x100005412 is TIOCSTI as well.
	for _, c := range []struct {
		req    uint64
		name   string
		reason string
	}{
		{unix.TIOCSTI, "TIOCSTI", "pushes input into the controlling terminal (CVE-2017-5226)"},
		{unix.TIOCLINUX, "TIOCLINUX", "reads and pastes the virtual console selection"},
	} {
		r = append(r, Rule{Syscall: "ioctl", Errno: unix.EPERM, Reason: c.reason,
			Arg: &Arg{Index: 1, Op: OpMaskedEqual, Mask: 0xffffffff, Value: c.req, Name: c.name}})
	}

	// personality(2) takes unsigned int. PER_LINUX (0), PER_LINUX32 and
	// UNAME26 change what uname reports; 0xffffffff only queries. Everything
	// else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, other
	// execution domains) weakens the exploit mitigations of what the sandbox
	// executes next.
	r = append(r, Rule{Syscall: "personality", Errno: unix.EPERM,
		Reason: "flags such as ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC weaken exploit mitigations",
		Arg: &Arg{Index: 0, Op: OpBitsOutside, Mask: 0xffffffff, Value: perLinux32 | uname26,
			Name: "not PER_LINUX, PER_LINUX32, UNAME26 or the query"}})

	// The socket family is int in the kernel: compare the low 32 bits.
	for _, s := range []struct {
		family      uint64
		name, group string
		errno       unix.Errno
		reason      string
	}{
		{unix.AF_VSOCK, "AF_VSOCK", "", unix.EPERM, "talks to the hypervisor and other VMs past the empty network namespace"},
		{unix.AF_ALG, "AF_ALG", "", unix.EPERM, "kernel crypto API, a frequent source of exploitable bugs"},
		{unix.AF_UNIX, "AF_UNIX", "unix-sockets", unix.EACCES, "connecting to a pathname socket is no Landlock access right, so visible host daemons (docker.sock, D-Bus) would answer"},
	} {
		r = append(r, Rule{Syscall: "socket", Errno: s.errno, Group: s.group, Reason: s.reason,
			Arg: &Arg{Index: 0, Op: OpMaskedEqual, Mask: 0xffffffff, Value: s.family, Name: s.name}})
	}
	// Landlock's TCP port rules apply to IPPROTO_TCP sockets only; an
	// MPTCP socket (protocol 262) would bind and connect to any port
	// (Documentation/userspace-api/landlock.rst, "Network flags"). Programs
	// that ask for MPTCP fall back to TCP when the kernel refuses it.
	r = append(r, Rule{Syscall: "socket", Errno: unix.EPERM,
		Reason: "MPTCP sockets are outside Landlock's TCP port rules",
		Arg:    &Arg{Index: 2, Op: OpMaskedEqual, Mask: 0xffffffff, Value: unix.IPPROTO_MPTCP, Name: "IPPROTO_MPTCP"}})
	return r
}

// cloneFlagsArg is the position of the flags in clone(2): s390 swaps the first
// two arguments (CLONE_BACKWARDS2 in kernel/fork.c).
func cloneFlagsArg() uint {
	if runtime.GOARCH == "s390x" {
		return 1
	}
	return 0
}
