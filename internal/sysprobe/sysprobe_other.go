//go:build !(linux && amd64)

package sysprobe

import "syscall"

// Available reports whether this build can issue ia32 and x32 calls.
const Available = false

// Int80 returns -ENOSYS: there is no ia32 entry on this platform, so
// [TryInt80] never returns [ErrNoIA32] here.
func Int80(nr, a1, a2, a3 uintptr) (r uintptr) {
	return ^uintptr(syscall.ENOSYS) + 1
}

// X32Syscall returns ENOSYS: there is no x32 ABI on this platform.
func X32Syscall(nr, a1, a2, a3 uintptr) (r1 uintptr, errno syscall.Errno) {
	return 0, syscall.ENOSYS
}
