//go:build linux

package sysprobe

import "syscall"

// Available reports whether this build can issue ia32 and x32 calls.
const Available = true

// Int80 issues the ia32 system call nr with up to three arguments through
// int $0x80. Only the low 32 bits of each value reach the kernel, so pass
// numbers, never Go pointers. The result is the kernel's 32-bit return value
// sign-extended, so a failure reads as -errno: compare it with
// uintptr(-int(errno)) or pass it to [Errno].
//
// The call does not tell the Go scheduler that it may block; use it only for
// calls that return at once. On a kernel without the ia32 entry the
// instruction faults and the Go runtime ends the process; [TryInt80] turns
// that fault into [ErrNoIA32].
//
//go:noescape
func Int80(nr, a1, a2, a3 uintptr) (r uintptr)

// X32Syscall issues the x32 system call nr: the x86-64 syscall instruction
// with X32Bit set in the number. x32 numbers of the common calls equal the
// x86-64 ones (getpid is 39 in both), see arch/x86/entry/syscalls/syscall_64.tbl.
func X32Syscall(nr, a1, a2, a3 uintptr) (r1 uintptr, errno syscall.Errno) {
	r1, _, errno = syscall.RawSyscall(nr|X32Bit, a1, a2, a3)
	return r1, errno
}
