//go:build linux && cgo

package seccomp

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxInstructions is BPF_MAXINSNS (include/uapi/linux/bpf_common.h).
const maxInstructions = 4096

// LoadProgram installs a program from [Program] on every thread of the
// calling process (SECCOMP_FILTER_FLAG_TSYNC), as the filter libseccomp
// would load for the same Config. The caller has set no_new_privs.
func LoadProgram(prog []byte) error {
	n := len(prog) / 8
	if n == 0 || len(prog)%8 != 0 || n > maxInstructions {
		return fmt.Errorf("load seccomp filter: %d bytes is not a program of 1 to %d instructions", len(prog), maxInstructions)
	}
	// The kernel copies the program during the call (seccomp_prepare_filter
	// in kernel/seccomp.c); prog need not outlive it.
	fprog := unix.SockFprog{Len: uint16(n), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("load seccomp filter: %w", loadError(errno))
	}
	if r != 0 {
		// With TSYNC, a positive return names a thread that could not be
		// synchronised (seccomp(2), SECCOMP_FILTER_FLAG_TSYNC).
		return &os.SyscallError{Syscall: "seccomp", Err: fmt.Errorf("thread %d could not take the filter", r)}
	}
	return nil
}
