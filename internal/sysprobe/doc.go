// Package sysprobe issues system calls through the two x86-64 entry points
// that a seccomp filter sees under a different architecture or number space:
// the ia32 entry via int $0x80 ([Int80], [TryInt80]) and the x32 ABI, which
// is the x86-64 entry with bit 30 set in the syscall number ([X32Syscall]).
//
// It exists for tests. The seccomp package and the escape battery use it to
// check that a filter kills both, which they cannot check from Go otherwise:
// the syscall package only reaches the native entry.
//
// # Telling "the kernel refuses" from "the filter blocks"
//
// Without a filter the answers depend on the kernel configuration:
//
//   - ia32: [TryInt80] with [IA32Getpid] returns the caller's pid when the
//     kernel has CONFIG_IA32_EMULATION and it is not switched off on the
//     command line (ia32_emulation=0,
//     Documentation/admin-guide/kernel-parameters.txt). Without it int $0x80
//     is no system call gate: it raises a general protection fault, SIGSEGV
//     with si_code SI_KERNEL, before any system call entry, so no seccomp
//     filter sees it. Some virtual machines refuse it the same way whatever
//     the configuration says. [TryInt80] catches that fault and returns
//     [ErrNoIA32]; a bare [Int80] would end the process with the Go
//     runtime's "fatal error: fault" and exit status 2, not with SIGSEGV.
//   - x32: [X32Syscall] with [X32Getpid] returns the pid when the kernel has
//     CONFIG_X86_X32_ABI; most distribution kernels leave it out, and then the
//     call fails with ENOSYS.
//
// A seccomp filter runs at system call entry, before the kernel looks the
// number up (Documentation/userspace-api/seccomp_filter.rst), so a filter
// that kills foreign architectures kills the x32 call with SIGSYS whatever
// the configuration, and the ia32 call whenever int $0x80 reaches the
// system call entry at all. A test should therefore run each probe once
// without the filter, to learn what the kernel does, and once with it,
// expecting SIGSYS; when the unfiltered ia32 call returned [ErrNoIA32] the
// filtered one must too, and proves nothing about the filter. ENOSYS, or a
// pid, under the filter means the filter let the call through.
//
//	pid, err := sysprobe.TryInt80(sysprobe.IA32Getpid, 0, 0, 0)
//	switch {
//	case errors.Is(err, sysprobe.ErrNoIA32):
//		// no ia32 entry on this kernel: nothing can be shown
//	case pid != uintptr(os.Getpid()):
//		// a filter answered with an errno: see sysprobe.Errno(pid)
//	}
//
// On other architectures the functions exist but return ENOSYS and
// [Available] is false.
package sysprobe
