//go:build linux

package sandbox

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction has room for struct sigaction as rt_sigaction(2) takes
// it on every Linux architecture (include/uapi/asm-generic/signal.h and the
// arch headers order the fields differently). Left zero, it reads the same
// on all of them: SIG_DFL, no flags, an empty mask.
type kernelSigaction [4]uint64

// restoreDefault sets sig's action back to SIG_DFL behind the Go runtime's
// back, removing the handler the runtime installed at start. os/signal
// cannot: signal.Reset keeps the runtime's own handler, and signal.Ignore
// does nothing in the kernel for the signals the runtime keeps for itself
// (sigdisable and sigignore in runtime/signal_unix.go skip those without
// _SigNotify).
func restoreDefault(sig unix.Signal) error {
	var act kernelSigaction
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(&act)), 0, 8 /* sizeof(sigset_t) in the kernel */, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("rt_sigaction", errno)
	}
	return nil
}

// sigIgn is SIG_IGN as the kernel's sa_handler holds it.
const sigIgn = 1

// resetIgnored sets every signal that is ignored (SIG_IGN) back to SIG_DFL.
// An ignored disposition survives execve(2) (signal(7)), so whatever the
// caller of vm-run ignored would be ignored by the command too: GNU make,
// for one, hands its children signals 32 and 33 ignored. The command must
// start with every signal at its default. sa_handler is the first member of
// struct sigaction on every architecture vm-run builds for (amd64 and
// arm64: include/uapi/asm-generic/signal.h, arch/x86/include/uapi/asm/
// signal.h).
func resetIgnored() error {
	for sig := unix.Signal(1); sig <= 64; sig++ {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			continue
		}
		var old kernelSigaction
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0,
			uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if errno != 0 {
			return os.NewSyscallError("rt_sigaction", errno)
		}
		if old[0] == sigIgn {
			if err := restoreDefault(sig); err != nil {
				return err
			}
		}
	}
	return nil
}
