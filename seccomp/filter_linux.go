//go:build linux && cgo

package seccomp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// minAPI is the libseccomp API level Load needs: level 2 brings TSYNC and
// level 3 SECCOMP_RET_KILL_PROCESS, the bad-arch action (seccomp_api_get(3);
// Linux 4.14).
const minAPI = 3

// Build returns the filter for c, not yet loaded: default action allow, the
// rules of [Rules] that c does not lift, bad-arch action kill-process, and
// the no_new_privs and TSYNC attributes set. Rules for syscalls the native
// architecture lacks are left out. An unknown group in c.Allow is an error
// wrapping [ErrUnknownGroup]. The caller releases the filter.
func Build(c Config) (*libseccomp.ScmpFilter, error) {
	return build(c, nil)
}

// build is Build with the errno of rule i replaced by errnoOf(i) when
// errnoOf is not nil; tests use it to learn which rule answered a call.
func build(c Config, errnoOf func(i int) syscall.Errno) (*libseccomp.ScmpFilter, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// NewFilter also asks for TSYNC; libseccomp-golang has no separate
	// setter. Load checks the API level that makes the request stick.
	f, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("create seccomp filter: %w", err)
	}
	if err := configure(f, c, errnoOf); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

func configure(f *libseccomp.ScmpFilter, c Config, errnoOf func(int) syscall.Errno) error {
	// Only the native architecture is in the filter, so ia32 calls through
	// int $0x80 take this action; so do x32 calls, see the package doc.
	if err := f.SetBadArchAction(libseccomp.ActKillProcess); err != nil {
		return fmt.Errorf("set seccomp bad-arch action: %w", err)
	}
	if err := f.SetNoNewPrivsBit(true); err != nil {
		return fmt.Errorf("set seccomp no_new_privs attribute: %w", err)
	}
	for i, r := range rules {
		if c.allows(r.Group) {
			continue
		}
		nr, present, err := resolve(r.Syscall)
		if err != nil {
			return err
		}
		if !present {
			continue
		}
		errno := r.Errno
		if errnoOf != nil {
			errno = errnoOf(i)
		}
		if err := addRule(f, nr, libseccomp.ActErrno.SetReturnCode(int16(errno)), r.Arg); err != nil {
			return fmt.Errorf("add seccomp rule %q: %w", r.String(), err)
		}
	}
	return nil
}

// unifiedNumbers holds the syscalls from 424 on that the rules name. From
// pidfd_send_signal (424) on, every architecture but alpha and the mips ABIs
// (which add an offset) uses the same number (scripts/syscall.tbl in the
// kernel tree), so a libseccomp older than the syscall still gets a rule.
var unifiedNumbers = map[string]int{
	"io_uring_setup":          425,
	"io_uring_enter":          426,
	"io_uring_register":       427,
	"open_tree":               428,
	"move_mount":              429,
	"fsopen":                  430,
	"fsconfig":                431,
	"fsmount":                 432,
	"fspick":                  433,
	"clone3":                  435,
	"pidfd_getfd":             438,
	"process_madvise":         440,
	"mount_setattr":           442,
	"quotactl_fd":             443,
	"set_mempolicy_home_node": 450,
	"open_tree_attr":          467,
}

// resolve returns the native number of a syscall and whether the native
// architecture has it. libseccomp answers a negative pseudo-number for a
// syscall another architecture has (vm86 on x86-64); a name it does not know
// at all is an error unless unifiedNumbers has it, so that an old libseccomp
// cannot silently drop a rule.
func resolve(name string) (libseccomp.ScmpSyscall, bool, error) {
	nr, err := libseccomp.GetSyscallFromName(name)
	if err == nil {
		return nr, nr >= 0, nil
	}
	if n, ok := unifiedNumbers[name]; ok && !strings.HasPrefix(runtime.GOARCH, "mips") {
		return libseccomp.ScmpSyscall(n), true, nil
	}
	return 0, false, fmt.Errorf("resolve syscall %q: libseccomp %s does not know it: %w",
		name, LibraryVersion(), err)
}

// addRule adds one libseccomp rule per term of arg, or one unconditional rule
// when arg is nil.
func addRule(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, arg *Arg) error {
	if arg == nil {
		return f.AddRule(nr, act)
	}
	for _, t := range arg.terms() {
		// For SCMP_CMP_MASKED_EQ the first operand is the mask and the
		// second the value (seccomp_rule_add(3)); the Go doc comment of
		// MakeCondition says otherwise, the C library decides.
		cond, err := libseccomp.MakeCondition(arg.Index, libseccomp.CompareMaskedEqual, t.mask, t.value)
		if err != nil {
			return err
		}
		if err := f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{cond}); err != nil {
			return err
		}
	}
	return nil
}

// Load builds the filter for c and installs it on every thread of the
// calling process (TSYNC), so the Go runtime's other threads are covered
// too. The caller has set no_new_privs already; libseccomp sets it again on
// the calling thread right before seccomp(2), in the same cgo call, and TSYNC
// copies it to the other threads (kernel/seccomp.c, seccomp_sync_threads),
// so no thread needs to be locked. After Load the process can still create
// threads, fork, exec, wait and signal. The filter cannot be removed.
func Load(c Config) error {
	return load(c, nil)
}

func load(c Config, errnoOf func(int) syscall.Errno) error {
	api, err := APILevel()
	if err != nil {
		return fmt.Errorf("%w: read libseccomp API level: %w", ErrNotSupported, err)
	}
	if api < minAPI {
		return fmt.Errorf("%w: libseccomp %s with this kernel offers API level %d, "+
			"need %d (TSYNC and SECCOMP_RET_KILL_PROCESS, Linux 4.14)",
			ErrNotSupported, LibraryVersion(), api, minAPI)
	}
	f, err := build(c, errnoOf)
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return fmt.Errorf("load seccomp filter: %w", loadError(err))
	}
	return nil
}

// loadError says what the seccomp(2) errors mean for the caller
// (seccomp(2), ERRORS).
func loadError(err error) error {
	sysErr := &os.SyscallError{Syscall: "seccomp", Err: err}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return sysErr
	}
	switch errno {
	case syscall.EACCES:
		return fmt.Errorf("no_new_privs is not set and the caller lacks CAP_SYS_ADMIN: %w", sysErr)
	case syscall.ESRCH:
		return fmt.Errorf("another thread has a seccomp filter this one lacks, so TSYNC cannot synchronise: %w", sysErr)
	case syscall.EINVAL:
		return fmt.Errorf("kernel rejected the filter or a flag: %w", sysErr)
	}
	return sysErr
}

// ExportPFC writes the filter for c as libseccomp's pseudo filter code, after
// a comment header naming the library, the allowed groups, and the x32 check
// that libseccomp emits in BPF but not in the pseudo code.
func ExportPFC(c Config, w io.Writer) error {
	f, err := Build(c)
	if err != nil {
		return err
	}
	defer f.Release()
	api, err := APILevel()
	if err != nil {
		return fmt.Errorf("read libseccomp API level: %w", err)
	}
	groups := "none"
	if len(c.Allow) > 0 {
		groups = strings.Join(c.Allow, ", ")
	}
	header := fmt.Sprintf("# vm-run seccomp filter: libseccomp %s, API level %d, allowed groups: %s\n",
		LibraryVersion(), api, groups)
	if runtime.GOARCH == "amd64" {
		// libseccomp's BPF for x86_64 compares the number with
		// 0x40000000 right after the arch check; TestForeignArchitecturesKilled
		// runs that BPF and TestProbes the kernel.
		header += "# x32 calls (nr & 0x40000000, nr != -1) take the invalid architecture action;\n" +
			"# libseccomp checks this in BPF right after the arch test, not shown below.\n"
	}
	if _, err := io.WriteString(w, header); err != nil {
		return fmt.Errorf("write seccomp PFC header: %w", err)
	}
	if err := export(f.ExportPFC, w); err != nil {
		return fmt.Errorf("export seccomp PFC: %w", err)
	}
	return nil
}

// export runs a libseccomp export function, which writes to a file
// descriptor, and copies what it writes to w through a pipe.
func export(fn func(*os.File) error, w io.Writer) error {
	r, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create pipe: %w", err)
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, r)
		if err != nil {
			// Keep draining so that libseccomp does not block on a full
			// pipe after w failed.
			_, _ = io.Copy(io.Discard, r)
		}
		r.Close()
		copied <- err
	}()
	err = fn(pw)
	pw.Close()
	if cerr := <-copied; err == nil {
		err = cerr
	}
	return err
}

// APILevel returns the libseccomp API level for this library and kernel,
// see seccomp_api_get(3). Load needs 3 or more.
func APILevel() (uint, error) {
	return libseccomp.GetAPI()
}

// LibraryVersion returns the version of the libseccomp library linked in,
// e.g. "2.5.4".
func LibraryVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}
