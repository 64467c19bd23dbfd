package sysprobe

import (
	"errors"
	"runtime"
	"runtime/debug"
	"syscall"
)

// Syscall numbers for the probes, from arch/x86/entry/syscalls/syscall_32.tbl
// and syscall_64.tbl.
const (
	// IA32Getpid is getpid in the ia32 table.
	IA32Getpid uintptr = 20
	// X32Getpid is getpid in the x32 (and x86-64) table, without X32Bit.
	X32Getpid uintptr = 39
	// X32Bit marks an x32 call in the x86-64 syscall number
	// (__X32_SYSCALL_BIT in arch/x86/include/uapi/asm/unistd.h).
	X32Bit uintptr = 0x40000000
)

// Errno returns the errno in a value returned by [Int80], or 0 when the value
// is not in the kernel's error range [-4095, -1].
func Errno(r uintptr) syscall.Errno {
	if v := int64(r); v < 0 && v >= -4095 {
		return syscall.Errno(-v)
	}
	return 0
}

// ErrNoIA32 is what [TryInt80] returns when int $0x80 faulted: the kernel
// has no ia32 entry, so the call never reached system call entry, nor any
// seccomp filter.
var ErrNoIA32 = errors.New("int $0x80 faulted: this kernel has no ia32 system call entry")

// TryInt80 is [Int80] for a kernel that may lack the ia32 entry. It returns
// the kernel's answer, or [ErrNoIA32] when the instruction faulted. A
// seccomp filter that kills the call still kills the process with SIGSYS:
// only the fault is turned into an error, so a caller that lives to see
// ErrNoIA32 knows that no filter was involved.
//
// Without ia32 emulation the vector 0x80 is not a system call gate, and
// int $0x80 raises a general protection fault that the kernel turns into
// SIGSEGV with si_code SI_KERNEL and si_addr 0 (do_general_protection in
// arch/x86/kernel/traps.c). The Go runtime does not take that for a nil
// dereference: sigpanic in Go 1.26's runtime/signal_unix.go calls panicmem
// only for si_code 0, SEGV_MAPERR or SEGV_ACCERR, and otherwise throws
// "unexpected fault address 0x0" and exits with status 2 instead of dying
// of the signal. Before it throws it checks gp.paniconfault, which
// debug.SetPanicOnFault sets: then the fault becomes a panic with a
// runtime.Error that has an Addr method, which TryInt80 recovers. sighandler
// in the same file injects that panic into the goroutine that executed the
// instruction (the signal is synchronous, sent to the faulting thread), and
// SetPanicOnFault is per goroutine, so the thread needs no locking.
func TryInt80(nr, a1, a2, a3 uintptr) (r uintptr, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			if _, fault := v.(interface {
				runtime.Error
				Addr() uintptr
			}); !fault {
				panic(v)
			}
			r, err = 0, ErrNoIA32
		}
	}()
	return Int80(nr, a1, a2, a3), nil
}
