package sysprobe

import "syscall"

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
