//go:build linux && cgo && amd64

package seccomp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysPath returns a probe call that issues syscall nr with a path as its only
// argument.
func sysPath(nr uintptr, path string) func() string {
	return func() string {
		p, err := unix.BytePtrFromString(path)
		if err != nil {
			return err.Error()
		}
		_, _, e := unix.RawSyscall(nr, uintptr(unsafe.Pointer(p)), 0, 0)
		return errnoResult(e)
	}
}
