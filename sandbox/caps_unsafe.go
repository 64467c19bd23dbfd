//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Capability state is per thread (capabilities(7), "Thread capability
// sets"), and the Go runtime runs the init stage on several threads, any of
// which may fork the command. psx runs each call on every thread of the
// process, so no thread keeps a capability the others dropped.

// secure bits (include/uapi/linux/securebits.h): no capabilities for uid 0
// on execve, no fix-ups on setuid, no raising ambient capabilities, each
// locked.
const securebits = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<5 | 1<<6 | 1<<7

// dropCapabilities empties the ambient, bounding, effective, permitted and
// inheritable sets and locks the secure bits so that not even uid 0 inside
// the sandbox regains any by executing a program.
//
// The bounding set is consulted only by execve (capabilities(7),
// "Transformation of capabilities during execve()"), and only the calling
// thread, locked by InitMain, ever forks the command: it is dropped on this
// thread alone, one cap at a time, which costs microseconds where a psx
// broadcast per capability costs milliseconds. Everything else is dropped on
// every thread. Call with the OS thread locked.
func dropCapabilities() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP", err)
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, securebits, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_SECUREBITS", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// setNoNewPrivs sets no_new_privs on every thread: execve can no longer grant
// privileges (setuid bits, file capabilities), and seccomp and Landlock may
// be applied without CAP_SYS_ADMIN (prctl(2), PR_SET_NO_NEW_PRIVS).
func setNoNewPrivs() error {
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
	}
	return nil
}

// allThreads runs a syscall on every thread. The unused arguments are passed
// as zero: prctl(2) rejects PR_CAP_AMBIENT with non-zero arg4 and arg5.
func allThreads(nr, a1, a2, a3 uintptr) error {
	if _, _, errno := psx.Syscall6(nr, a1, a2, a3, 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// lastCap reads the highest capability number the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse cap_last_cap: %w", err)
	}
	return n, nil
}
