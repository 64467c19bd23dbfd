//go:build linux && cgo && amd64

package seccomp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/vm-run/vm-run/internal/sysprobe"
	"golang.org/x/sys/unix"
)

// Personality flags from include/uapi/linux/personality.h.
const (
	addrNoRandomize = 0x0040000
	mmapPageZero    = 0x0100000
	readImpliesExec = 0x0400000
)

// Arguments that make a call fail harmlessly once it reaches the kernel.
const (
	badFD  = ^uintptr(0) // -1
	badPtr = uintptr(1)  // below vm.mmap_min_addr, never mapped: EFAULT
)

// sys returns a probe call that issues syscall nr with args.
func sys(nr uintptr, args ...uintptr) func() string {
	return func() string {
		var a [6]uintptr
		copy(a[:], args)
		_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		return errnoResult(e)
	}
}

// sysClose is sys for calls that return a file descriptor on success.
func sysClose(nr uintptr, args ...uintptr) func() string {
	return func() string {
		var a [6]uintptr
		copy(a[:], args)
		fd, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		if e == 0 {
			unix.Close(int(fd))
		}
		return errnoResult(e)
	}
}

// cloneCall issues clone(2) with flags. The probes add CLONE_SIGHAND without
// CLONE_VM, which copy_process() in kernel/fork.c rejects with EINVAL before
// it looks at namespaces, so no process or namespace is ever created.
func cloneCall(flags uintptr) func() string {
	return func() string {
		pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, flags|unix.CLONE_SIGHAND, 0, 0, 0, 0, 0)
		if e == 0 && pid == 0 {
			// Should the kernel ever accept the flags: leave at once.
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
		return errnoResult(e)
	}
}

// personalityCall sets persona and restores the old one; personality(2)
// cannot fail, so unfiltered the answer is always ok, and the change only
// ever lives in the throwaway child.
func personalityCall(persona uintptr) func() string {
	return func() string {
		old, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, persona, 0, 0)
		if e == 0 && uint32(persona) != 0xffffffff {
			unix.RawSyscall(unix.SYS_PERSONALITY, old, 0, 0)
		}
		return errnoResult(e)
	}
}

func errResult(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errnoResult(errno)
	}
	if err != nil {
		return err.Error()
	}
	return ok
}

// unshareThread starts a goroutine locked to an OS thread other than the
// caller's (probeChild locks the main goroutine) and returns a function that
// has that thread run unshare(0), a no-op the filter denies.
func unshareThread() (run func() string) {
	req := make(chan chan string)
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		close(ready)
		reply := <-req
		_, _, e := unix.RawSyscall(unix.SYS_UNSHARE, 0, 0, 0)
		reply <- errnoResult(e)
	}()
	<-ready
	return func() string {
		reply := make(chan string)
		req <- reply
		return <-reply
	}
}

// preLoadUnshare runs on a thread that existed before the filter was loaded.
var preLoadUnshare func() string

// newThreadsUnshare runs unshare(0) on 16 threads locked at once. A fresh Go
// process has fewer idle threads than that, so most of them are created now.
func newThreadsUnshare() string {
	runs := make([]func() string, 16)
	for i := range runs {
		runs[i] = unshareThread()
	}
	results := map[string]bool{}
	for _, run := range runs {
		results[run()] = true
	}
	if len(results) != 1 {
		return fmt.Sprintf("threads disagree: %v", results)
	}
	for r := range results {
		return r
	}
	return ""
}

var probes = append(baseProbes, numaAllowed(baseProbes)...)

var (
	einval   = []string{"EINVAL"}
	efault   = []string{"EFAULT"}
	ebadf    = []string{"EBADF"}
	eperm    = []string{"EPERM"}
	okOnly   = []string{ok}
	noKexec  = []string{"ENOSYS", "EINVAL"} // ENOSYS without CONFIG_KEXEC(_FILE)
	noKexecU = []string{"ENOSYS", "EPERM"}
	noMod    = []string{"ENOSYS", "EINVAL"} // ENOSYS without CONFIG_MODULES
	noModU   = []string{"ENOSYS", "EPERM"}
)

var baseProbes = []probe{
	// Namespaces and mounts.
	{name: "unshare", rule: "unshare", call: sys(unix.SYS_UNSHARE, 0), kernel: okOnly, want: "EPERM"},
	{name: "setns", rule: "setns", call: sys(unix.SYS_SETNS, badFD, 0), kernel: ebadf, want: "EPERM"},
	{name: "mount", rule: "mount", call: sys(unix.SYS_MOUNT, 0, 0, 0, 0, 0), kernel: efault, want: "EPERM"},
	{name: "umount2", rule: "umount2", call: sys(unix.SYS_UMOUNT2, badPtr, 0x80000000), kernel: einval, want: "EPERM"},
	{name: "pivot_root", rule: "pivot_root", call: sys(unix.SYS_PIVOT_ROOT, 0, 0), kernel: efault, user: eperm, want: "EPERM"},
	{name: "chroot", rule: "chroot", call: sys(unix.SYS_CHROOT, 0), kernel: efault, want: "EPERM"},
	{name: "fsopen", rule: "fsopen", call: sys(unix.SYS_FSOPEN, 0, 0xffffffff), kernel: einval, user: eperm, want: "ENOSYS"},
	{name: "fsconfig", rule: "fsconfig", call: sys(unix.SYS_FSCONFIG, badFD, 0xffff, 0, 0, 0), kernel: einval, want: "ENOSYS"},
	{name: "fsmount", rule: "fsmount", call: sys(unix.SYS_FSMOUNT, badFD, 0xffff, 0), kernel: einval, user: eperm, want: "ENOSYS"},
	{name: "fspick", rule: "fspick", call: sys(unix.SYS_FSPICK, badFD, 0, 0xffff), kernel: einval, user: eperm, want: "ENOSYS"},
	{name: "open_tree", rule: "open_tree", call: sysClose(unix.SYS_OPEN_TREE, badFD, 0, 0xffffffff), kernel: einval, want: "ENOSYS"},
	{name: "open_tree_attr", rule: "open_tree_attr", since: "Linux 6.15", call: sysClose(unix.SYS_OPEN_TREE_ATTR, badFD, 0, 0xffffffff, 0, 0), kernel: einval, want: "ENOSYS"},
	{name: "move_mount", rule: "move_mount", call: sys(unix.SYS_MOVE_MOUNT, badFD, 0, badFD, 0, 0xffffffff), kernel: einval, user: eperm, want: "ENOSYS"},
	{name: "mount_setattr", rule: "mount_setattr", since: "Linux 5.12", call: sys(unix.SYS_MOUNT_SETATTR, badFD, 0, 0, 0, 0), kernel: einval, want: "ENOSYS"},
	{name: "clone-newns", rule: "clone", argName: "CLONE_NEWNS", call: cloneCall(unix.CLONE_NEWNS), kernel: einval, want: "EPERM"},
	{name: "clone-newcgroup", rule: "clone", argName: "CLONE_NEWCGROUP", call: cloneCall(unix.CLONE_NEWCGROUP), kernel: einval, want: "EPERM"},
	{name: "clone-newuts", rule: "clone", argName: "CLONE_NEWUTS", call: cloneCall(unix.CLONE_NEWUTS), kernel: einval, want: "EPERM"},
	{name: "clone-newipc", rule: "clone", argName: "CLONE_NEWIPC", call: cloneCall(unix.CLONE_NEWIPC), kernel: einval, want: "EPERM"},
	{name: "clone-newuser", rule: "clone", argName: "CLONE_NEWUSER", call: cloneCall(unix.CLONE_NEWUSER), kernel: einval, want: "EPERM"},
	{name: "clone-newpid", rule: "clone", argName: "CLONE_NEWPID", call: cloneCall(unix.CLONE_NEWPID), kernel: einval, want: "EPERM"},
	{name: "clone-newnet", rule: "clone", argName: "CLONE_NEWNET", call: cloneCall(unix.CLONE_NEWNET), kernel: einval, want: "EPERM"},
	{name: "clone-newtime", rule: "clone", argName: "CLONE_NEWTIME", call: cloneCall(unix.CLONE_NEWTIME), kernel: einval, want: "EPERM"},
	{name: "clone-newnet-high-bits", rule: "clone", argName: "CLONE_NEWNET", call: cloneCall(1<<32 | unix.CLONE_NEWNET), kernel: einval, want: "EPERM"},
	{name: "clone-no-namespace", call: cloneCall(unix.CLONE_FILES), kernel: einval, want: kernelAnswer},
	{name: "clone3", rule: "clone3", call: sys(unix.SYS_CLONE3, 0, 0), kernel: einval, want: "ENOSYS"},

	// Kernel attack surface. None of these arguments can succeed: reboot
	// gets no magic, swapoff a path that does not exist, the clock calls an
	// unmapped pointer.
	{name: "bpf", rule: "bpf", call: sys(unix.SYS_BPF, 0xffff, 0, 0), kernel: einval, want: "EPERM"},
	{name: "perf_event_open", rule: "perf_event_open", call: sysClose(unix.SYS_PERF_EVENT_OPEN, 0, 0, badFD, badFD, 0xffffffff), kernel: einval, want: "EPERM"},
	{name: "userfaultfd", rule: "userfaultfd", call: sysClose(unix.SYS_USERFAULTFD, 1 /* UFFD_USER_MODE_ONLY */ |unix.O_RDWR), kernel: einval, want: "EPERM"},
	{name: "keyctl", rule: "keyctl", call: sys(unix.SYS_KEYCTL, 0xffff, 0, 0, 0, 0), kernel: []string{"ENOTSUP"}, want: "EPERM"},
	{name: "add_key", rule: "add_key", call: sys(unix.SYS_ADD_KEY, 0, 0, 0, 0, 0), kernel: efault, want: "EPERM"},
	{name: "request_key", rule: "request_key", call: sys(unix.SYS_REQUEST_KEY, 0, 0, 0, 0), kernel: efault, want: "EPERM"},
	{name: "kexec_load", rule: "kexec_load", call: sys(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0x8000), kernel: noKexec, user: noKexecU, want: "EPERM"},
	{name: "kexec_file_load", rule: "kexec_file_load", call: sys(unix.SYS_KEXEC_FILE_LOAD, badFD, badFD, 0, 0, 0x80000000), kernel: noKexec, user: noKexecU, want: "EPERM"},
	{name: "init_module", rule: "init_module", call: sys(unix.SYS_INIT_MODULE, 0, 0, 0), kernel: []string{"ENOSYS", "ENOEXEC"}, user: noModU, want: "EPERM"},
	{name: "finit_module", rule: "finit_module", call: sys(unix.SYS_FINIT_MODULE, badFD, 0, 0xffff), kernel: noMod, user: noModU, want: "EPERM"},
	{name: "delete_module", rule: "delete_module", call: sys(unix.SYS_DELETE_MODULE, 0, 0), kernel: []string{"ENOSYS", "EFAULT"}, user: noModU, want: "EPERM"},
	{name: "acct", rule: "acct", call: sys(unix.SYS_ACCT, badPtr), kernel: efault, user: eperm, want: "EPERM"},
	{name: "swapon", rule: "swapon", call: sys(unix.SYS_SWAPON, badPtr, 0xffffffff), kernel: einval, want: "EPERM"},
	{name: "swapoff", rule: "swapoff", call: sysPath(unix.SYS_SWAPOFF, "/nonexistent/vm-run-seccomp-probe"), kernel: []string{"ENOENT"}, user: eperm, want: "EPERM"},
	{name: "reboot", rule: "reboot", call: sys(unix.SYS_REBOOT, 0, 0, 0, 0), kernel: einval, user: eperm, want: "EPERM"},
	{name: "syslog", rule: "syslog", call: sys(unix.SYS_SYSLOG, 0xff, 0, 0), kernel: einval, user: eperm, want: "EPERM"},
	{name: "quotactl", rule: "quotactl", call: sys(unix.SYS_QUOTACTL, 0xff, 0, 0, 0), kernel: einval, want: "EPERM"},
	{name: "quotactl_fd", rule: "quotactl_fd", since: "Linux 5.14", call: sys(unix.SYS_QUOTACTL_FD, badFD, 0xff, 0, 0), kernel: ebadf, want: "EPERM"},
	// ENOSYS without CONFIG_X86_IOPL_IOPERM.
	{name: "iopl", rule: "iopl", call: sys(unix.SYS_IOPL, 4), kernel: []string{"ENOSYS", "EINVAL"}, want: "EPERM"},
	{name: "ioperm", rule: "ioperm", call: sys(unix.SYS_IOPERM, 0xffffffff, 0xffffffff, 0), kernel: []string{"ENOSYS", "EINVAL"}, want: "EPERM"},
	{name: "settimeofday", rule: "settimeofday", call: sys(unix.SYS_SETTIMEOFDAY, badPtr, 0), kernel: efault, want: "EPERM"},
	{name: "clock_settime", rule: "clock_settime", call: sys(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, badPtr), kernel: efault, want: "EPERM"},
	{name: "clock_adjtime", rule: "clock_adjtime", call: sys(unix.SYS_CLOCK_ADJTIME, unix.CLOCK_REALTIME, badPtr), kernel: efault, want: "EPERM"},
	{name: "adjtimex", rule: "adjtimex", call: sys(unix.SYS_ADJTIMEX, badPtr), kernel: efault, want: "EPERM"},

	// Obsolete calls: most are gone from the kernel (ENOSYS), which the
	// filter's EPERM tells apart.
	{name: "create_module", rule: "create_module", call: sys(unix.SYS_CREATE_MODULE), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "get_kernel_syms", rule: "get_kernel_syms", call: sys(unix.SYS_GET_KERNEL_SYMS), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "query_module", rule: "query_module", call: sys(unix.SYS_QUERY_MODULE), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "nfsservctl", rule: "nfsservctl", call: sys(unix.SYS_NFSSERVCTL), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "lookup_dcookie", rule: "lookup_dcookie", call: sys(unix.SYS_LOOKUP_DCOOKIE, 0, 0, 0), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "sysfs", rule: "sysfs", call: sys(unix.SYS_SYSFS, 99, 0, 0), kernel: []string{"EINVAL", "ENOSYS"}, want: "EPERM"},
	{name: "_sysctl", rule: "_sysctl", call: sys(unix.SYS__SYSCTL, 0), kernel: []string{"ENOSYS"}, want: "EPERM"},
	{name: "uselib", rule: "uselib", call: sys(unix.SYS_USELIB, 0), kernel: []string{"ENOSYS", "EFAULT"}, want: "EPERM"},
	{name: "ustat", rule: "ustat", call: sys(unix.SYS_USTAT, 0, 0), kernel: einval, want: "EPERM"},

	// NUMA memory policy; numaAllowed adds the same probes with the group
	// allowed.
	{name: "mbind", rule: "mbind", call: sys(unix.SYS_MBIND, 0, 0, 99, 0, 0, 0), kernel: einval, want: "EPERM"},
	{name: "set_mempolicy", rule: "set_mempolicy", call: sys(unix.SYS_SET_MEMPOLICY, 99, 0, 0), kernel: einval, want: "EPERM"},
	{name: "get_mempolicy", rule: "get_mempolicy", call: sys(unix.SYS_GET_MEMPOLICY, 0, 0, 0, 0, 0xffff), kernel: einval, want: "EPERM"},
	{name: "move_pages", rule: "move_pages", call: sys(unix.SYS_MOVE_PAGES, 0, 0, 0, 0, 0, 0xffff), kernel: einval, want: "EPERM"},
	{name: "migrate_pages", rule: "migrate_pages", call: sys(unix.SYS_MIGRATE_PAGES, 0, 2, badPtr, badPtr), kernel: efault, want: "EPERM"},
	{name: "set_mempolicy_home_node", rule: "set_mempolicy_home_node", since: "Linux 5.17", call: sys(unix.SYS_SET_MEMPOLICY_HOME_NODE, 0, 0, 0, 1), kernel: einval, want: "EPERM"},

	// Other processes.
	{name: "ptrace", rule: "ptrace", call: sys(unix.SYS_PTRACE, 0xffff, 0, 0, 0), kernel: []string{"ESRCH"}, want: "EPERM"},
	{name: "process_vm_readv", rule: "process_vm_readv", call: sys(unix.SYS_PROCESS_VM_READV, 0, 0, 0, 0, 0, 1), kernel: einval, want: "EPERM"},
	{name: "process_vm_writev", rule: "process_vm_writev", call: sys(unix.SYS_PROCESS_VM_WRITEV, 0, 0, 0, 0, 0, 1), kernel: einval, want: "EPERM"},
	{name: "kcmp", rule: "kcmp", call: func() string {
		pid := uintptr(os.Getpid())
		return sys(unix.SYS_KCMP, pid, pid, 99, 0, 0)()
	}, kernel: einval, want: "EPERM"},
	{name: "pidfd_getfd", rule: "pidfd_getfd", call: sys(unix.SYS_PIDFD_GETFD, badFD, 0, 0), kernel: ebadf, want: "EPERM"},
	{name: "process_madvise", rule: "process_madvise", since: "Linux 5.10", call: sys(unix.SYS_PROCESS_MADVISE, badFD, 0, 0, 0, 0), kernel: ebadf, want: "EPERM"},

	// io_uring: EPERM, which libuv takes as "no io_uring".
	{name: "io_uring_setup", rule: "io_uring_setup", call: sysClose(unix.SYS_IO_URING_SETUP, 0, 0), kernel: efault, want: "EPERM"},
	{name: "io_uring_enter", rule: "io_uring_enter", call: sys(unix.SYS_IO_URING_ENTER, badFD, 0, 0, 0, 0, 0), kernel: ebadf, want: "EPERM"},
	{name: "io_uring_register", rule: "io_uring_register", call: sys(unix.SYS_IO_URING_REGISTER, badFD, 0, 0, 0), kernel: []string{"EBADF", "EINVAL"} /* fd -1 takes the "blind" path since 6.13 */, want: "EPERM"},

	// File handles.
	{name: "open_by_handle_at", rule: "open_by_handle_at", call: sysClose(unix.SYS_OPEN_BY_HANDLE_AT, badFD, 0, 0), kernel: efault, want: "EPERM"},
	{name: "name_to_handle_at", rule: "name_to_handle_at", call: sys(unix.SYS_NAME_TO_HANDLE_AT, badFD, 0, 0, 0, 0), kernel: efault, want: "EPERM"},

	// ioctl requests, on a bad fd; the kernel reads the request as unsigned
	// int, so garbage in the upper half must not hide TIOCSTI.
	{name: "ioctl-tiocsti", rule: "ioctl", argName: "TIOCSTI", call: sys(unix.SYS_IOCTL, badFD, unix.TIOCSTI, 0), kernel: ebadf, want: "EPERM"},
	{name: "ioctl-tiocsti-high-bits", rule: "ioctl", argName: "TIOCSTI", call: sys(unix.SYS_IOCTL, badFD, 1<<32|unix.TIOCSTI, 0), kernel: ebadf, want: "EPERM"},
	{name: "ioctl-tioclinux", rule: "ioctl", argName: "TIOCLINUX", call: sys(unix.SYS_IOCTL, badFD, unix.TIOCLINUX, 0), kernel: ebadf, want: "EPERM"},
	{name: "ioctl-tcgets", call: sys(unix.SYS_IOCTL, badFD, unix.TCGETS, 0), kernel: ebadf, want: kernelAnswer},

	// personality(2).
	{name: "personality-addr-no-randomize", rule: "personality", call: personalityCall(addrNoRandomize), kernel: okOnly, want: "EPERM"},
	{name: "personality-read-implies-exec", rule: "personality", call: personalityCall(readImpliesExec), kernel: okOnly, want: "EPERM"},
	{name: "personality-high-bits", rule: "personality", call: personalityCall(1<<32 | addrNoRandomize), kernel: okOnly, want: "EPERM"},
	{name: "personality-linux32-and-bad", rule: "personality", call: personalityCall(perLinux32 | mmapPageZero), kernel: okOnly, want: "EPERM"},
	{name: "personality-query", call: personalityCall(0xffffffff), kernel: okOnly, want: kernelAnswer},
	{name: "personality-linux", call: personalityCall(0), kernel: okOnly, want: kernelAnswer},
	{name: "personality-linux32", call: personalityCall(perLinux32), kernel: okOnly, want: kernelAnswer},
	{name: "personality-uname26", call: personalityCall(uname26), kernel: okOnly, want: kernelAnswer},
	{name: "personality-linux32-uname26", call: personalityCall(perLinux32 | uname26), kernel: okOnly, want: kernelAnswer},

	// Socket families. Type 15 is past SOCK_MAX: __sock_create() answers
	// EINVAL before it would load a protocol module.
	{name: "socket-vsock", rule: "socket", argName: "AF_VSOCK", call: sysClose(unix.SYS_SOCKET, unix.AF_VSOCK, 15, 0), kernel: einval, want: "EPERM"},
	{name: "socket-alg", rule: "socket", argName: "AF_ALG", call: sysClose(unix.SYS_SOCKET, unix.AF_ALG, 15, 0), kernel: einval, want: "EPERM"},
	{name: "socket-mptcp", rule: "socket", argName: "IPPROTO_MPTCP", call: sysClose(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP), kernel: okOnly, want: "EPERM"},
	{name: "socket-unix", rule: "socket", argName: "AF_UNIX", call: sysClose(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0), kernel: okOnly, want: "EACCES"},
	{name: "socket-unix-high-bits", rule: "socket", argName: "AF_UNIX", call: sysClose(unix.SYS_SOCKET, 1<<32|unix.AF_UNIX, 15, 0), kernel: einval, want: "EACCES"},
	{name: "socket-unix-allowed", allow: []string{"unix-sockets"}, call: sysClose(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0), kernel: okOnly, want: kernelAnswer},
	{name: "socket-inet", call: sysClose(unix.SYS_SOCKET, unix.AF_INET, 15, 0), kernel: einval, want: kernelAnswer},
	{name: "socketpair-unix", call: func() string {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return errResult(err)
	}, kernel: okOnly, want: kernelAnswer},

	// Other architectures: the kernel may lack them (ENOSYS for x32
	// without CONFIG_X86_X32_ABI), but the filter kills before the kernel
	// looks. Without the ia32 entry int $0x80 faults before system call
	// entry, so no filter sees it: then the filtered runs must fault too.
	{name: "ia32-getpid", call: func() string {
		r, err := sysprobe.TryInt80(sysprobe.IA32Getpid, 0, 0, 0)
		if err != nil {
			return noIA32
		}
		if e := sysprobe.Errno(r); e != 0 {
			return errnoResult(e)
		}
		if r != uintptr(os.Getpid()) {
			return fmt.Sprintf("pid %d, want %d", r, os.Getpid())
		}
		return ok
	}, kernel: []string{ok, noIA32}, want: sigsys, beforeEntry: []string{noIA32}},
	{name: "x32-getpid", call: func() string {
		r, e := sysprobe.X32Syscall(sysprobe.X32Getpid, 0, 0, 0)
		if e == 0 && r != uintptr(os.Getpid()) {
			return fmt.Sprintf("pid %d, want %d", r, os.Getpid())
		}
		return errnoResult(e)
	}, kernel: []string{ok, "ENOSYS"}, want: sigsys},

	// The Go runtime under the filter: threads that existed before Load
	// (TSYNC) and threads created after it are filtered, and the process
	// can still fork, exec, wait and signal.
	{name: "tsync-thread-before-load", rule: "unshare",
		beforeLoad: func() { preLoadUnshare = unshareThread() },
		call:       func() string { return preLoadUnshare() },
		kernel:     okOnly, want: "EPERM"},
	{name: "threads-after-load", rule: "unshare", call: newThreadsUnshare, kernel: okOnly, want: "EPERM"},
	{name: "exec-true", call: func() string {
		return errResult(exec.Command("/bin/true").Run())
	}, kernel: okOnly, want: kernelAnswer},
	{name: "fork-kill-wait", call: func() string {
		cmd := exec.Command("/bin/sleep", "1000")
		if err := cmd.Start(); err != nil {
			return "start: " + errResult(err)
		}
		if err := cmd.Process.Kill(); err != nil {
			return "kill: " + errResult(err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			return fmt.Sprintf("wait: %v, want killed by SIGKILL", err)
		}
		return ok
	}, kernel: okOnly, want: kernelAnswer},
}

// numaAllowed returns the probes of rules in group "numa", changed to allow
// the group and expect the kernel's own answer.
func numaAllowed(ps []probe) []probe {
	var out []probe
	for _, p := range ps {
		for _, r := range rules {
			if r.Syscall == p.rule && r.Group == "numa" {
				p.name += "-numa-allowed"
				p.rule, p.allow, p.want = "", []string{"numa"}, kernelAnswer
				out = append(out, p)
				break
			}
		}
	}
	return out
}
