//go:build linux

package landlock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestNoLandlockReason(t *testing.T) {
	for _, tt := range []struct {
		errno syscall.Errno
		want  string
	}{
		{syscall.ENOSYS, "not built into this kernel"},
		{syscall.EOPNOTSUPP, "disabled at boot"},
		{syscall.EPERM, "seccomp filter"},
		{syscall.EFAULT, "landlock_create_ruleset: bad address"},
	} {
		if got := noLandlockReason(tt.errno); !strings.Contains(got, tt.want) {
			t.Errorf("noLandlockReason(%v) = %q, want it to contain %q", tt.errno, got, tt.want)
		}
	}
}

// TestExplain feeds explain errors shaped like go-landlock v0.11.0's
// (landlock/restrict.go, path_opt_linux.go, net_opt.go).
func TestExplain(t *testing.T) {
	for _, tt := range []struct {
		in       error
		wantCall string
		wantHint string
	}{
		{fmt.Errorf("populating ruleset for %q with access %v: open: %w", "/x", "{}", syscall.ENOENT),
			"open", "cannot be opened"},
		{fmt.Errorf("populating ruleset for %q: landlock_add_rule: inconsistent access rights: %w", "/x", syscall.EINVAL),
			"landlock_add_rule", "vm-run bug"},
		{syscall.ENOMSG, "landlock_add_rule", "granted no access right"},
		{fmt.Errorf("the maximum number of stacked rulesets is reached for the current thread: %w", syscall.E2BIG),
			"landlock_restrict_self", "16 nested Landlock domains"},
		{fmt.Errorf("BUG(go-landlock): This should not have happened: landlock_restrict_self: %w", syscall.EPERM),
			"landlock_restrict_self", "no_new_privs"},
		{fmt.Errorf("BUG(go-landlock): This should not have happened: landlock_create_ruleset: %w", syscall.EOPNOTSUPP),
			"landlock_create_ruleset", "lsm="},
	} {
		got := explain(tt.in)
		var sysErr *os.SyscallError
		if !errors.As(got, &sysErr) || sysErr.Syscall != tt.wantCall || !errors.Is(got, errors.Unwrap(sysErr)) {
			t.Errorf("explain(%q) = %v, want an *os.SyscallError for %s", tt.in, got, tt.wantCall)
			continue
		}
		if !strings.Contains(got.Error(), tt.wantHint) || !strings.Contains(got.Error(), tt.in.Error()) {
			t.Errorf("explain(%q) = %q, want the original and a hint containing %q", tt.in, got, tt.wantHint)
		}
	}
	plain := errors.New("missing kernel Landlock support. Got Landlock ABI v5, wanted {...}")
	if got := explain(plain); !errors.Is(got, plain) {
		t.Errorf("explain(%q) = %v, want it wrapped", plain, got)
	}
}
