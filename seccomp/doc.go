// Package seccomp owns the syscall filter of the sandbox: a deny list, built
// with libseccomp (the only cgo in vm-run) and loaded by the init stage as the
// last step before it executes the command.
//
//	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
//		return err
//	}
//	if err := seccomp.Load(seccomp.Config{Allow: []string{"unix-sockets"}}); err != nil {
//		return err // the init stage reports it and exits 125
//	}
//	// fork and exec the command
//
// # What the filter does
//
// The default action is allow; the filter is a deny list of calls that would
// let the sandbox undo its namespaces, attack the kernel through rarely used
// interfaces, reach other processes, or weaken exploit mitigations. [Rules]
// lists every entry with its errno and the reason; `vm-run doctor` prints
// them and [ExportPFC] shows the filter as libseccomp generates it.
//
// Denied calls fail with an errno rather than killing the process, so that
// programs that probe for a feature carry on without it: EPERM in general,
// ENOSYS where callers fall back to an older call on ENOSYS (clone3 to clone,
// the new mount API to mount(2)), and EACCES for socket(AF_UNIX, ...).
// Arguments are matched where the kernel reads them from registers: clone(2)
// with any CLONE_NEW* flag, ioctl(2) with TIOCSTI or TIOCLINUX, personality(2)
// with anything but a few harmless values, socket(2) of AF_VSOCK, AF_ALG and
// AF_UNIX. Arguments the kernel declares int or unsigned int are compared on
// their low 32 bits, since the kernel ignores the upper half and a filter
// that compared all 64 bits could be sidestepped by setting it.
//
// # Other architectures
//
// The filter holds only the native architecture. A call made through another
// entry point kills the whole process with SIGSYS (SECCOMP_RET_KILL_PROCESS as
// the bad-arch action): on x86-64 that is the ia32 entry (int $0x80), whose
// syscall numbers differ and would slip past every rule, and the x32 ABI,
// which shares AUDIT_ARCH_X86_64 but sets bit 30 of the number. libseccomp
// sends x32 numbers to the bad-arch action in the BPF it generates; the
// pseudo code of ExportPFC does not show that check, so the tests run the
// generated BPF and probe the kernel to prove it. A kernel without ia32
// emulation faults int $0x80 before system call entry, where no filter runs;
// there the probe can show only that the call does not get through either
// way.
//
// # Groups
//
// A profile lifts parts of the list by naming [OptInGroups] in
// [Config.Allow]: "unix-sockets" allows socket(AF_UNIX, ...) (socketpair(2)
// is always allowed), "numa" allows the NUMA memory policy calls.
// [Config.Validate] checks the names without cgo.
//
// # Requirements
//
// [Load] needs libseccomp API level 3 ([APILevel]; Linux 4.14 or later) for
// TSYNC and SECCOMP_RET_KILL_PROCESS, and fails with an error wrapping
// [ErrNotSupported] otherwise. Builds without cgo or for other systems get
// stubs that return ErrNotSupported, so vm-run refuses to run rather than run
// unfiltered.
package seccomp
