//go:build linux

package selftest

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on Linux
// (include/linux/signal_types.h, without SA_RESTORER's libc wrapper).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// defaultSignal sets sig's action to SIG_DFL behind the Go runtime's back.
// Only a probe process, which ends right after its one attack, does this.
func defaultSignal(sig unix.Signal) {
	var sa kernelSigaction // handler 0 is SIG_DFL
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0,
		unsafe.Sizeof(sa.mask), 0, 0)
}

// ioctlByte issues an ioctl whose argument points at one byte, as TIOCSTI
// (the character to push) and TIOCLINUX (the subcode) take it
// (ioctl_tty(2), ioctl_console(2)).
func ioctlByte(fd int, req uint, b byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&b)))
	if e != 0 {
		return e
	}
	return nil
}
