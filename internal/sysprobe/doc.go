// Package sysprobe issues system calls through the two x86-64 entry points
// that a seccomp filter sees under a different architecture or number space:
// the ia32 entry via int $0x80 ([Int80]) and the x32 ABI, which is the
// x86-64 entry with bit 30 set in the syscall number ([X32Syscall]).
//
// It exists for tests. The seccomp package and the escape battery use it to
// check that a filter kills both, which they cannot check from Go otherwise:
// the syscall package only reaches the native entry.
//
// # Telling "the kernel refuses" from "the filter blocks"
//
// Without a filter the answers depend on the kernel configuration:
//
//   - ia32: [Int80] with [IA32Getpid] returns the caller's pid when the kernel
//     has CONFIG_IA32_EMULATION and it is not switched off on the command
//     line (ia32_emulation=0, Documentation/admin-guide/kernel-parameters.txt).
//     When it is off, int $0x80 raises a general protection fault and the
//     process dies of SIGSEGV, not SIGSYS.
//   - x32: [X32Syscall] with [X32Getpid] returns the pid when the kernel has
//     CONFIG_X86_X32_ABI; most distribution kernels leave it out, and then the
//     call fails with ENOSYS.
//
// A seccomp filter runs before the kernel looks the number up
// (Documentation/userspace-api/seccomp_filter.rst), so a filter that kills
// foreign architectures kills both calls with SIGSYS whatever the
// configuration. A test should therefore run each probe once without the
// filter, to learn what the kernel does, and once with it, expecting SIGSYS:
// ENOSYS or SIGSEGV under the filter means the filter let the call through.
//
//	pid := sysprobe.Int80(sysprobe.IA32Getpid, 0, 0, 0)
//	if pid != uintptr(os.Getpid()) {
//		// ia32 emulation missing, or a filter answered with an errno
//	}
//
// On other architectures the functions exist but return ENOSYS and
// [Available] is false.
package sysprobe
