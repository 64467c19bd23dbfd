//go:build linux

package landlock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Detect asks the kernel for its Landlock ABI version and fixed errata. It
// never fails: a kernel without Landlock gives ABI 0 and a Reason.
func Detect() Support {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		return Support{Reason: noLandlockReason(err)}
	}
	errata, err := ll.LandlockGetErrata()
	if err != nil {
		// Kernels older than the errata query reject the flag with
		// EINVAL (landlock_create_ruleset(2)). Reading that as "no
		// erratum fixed" can only make features unavailable, never
		// claim a fix the kernel lacks.
		errata = 0
	}
	return Support{ABI: abi, Errata: errata}
}

// noLandlockReason says why landlock_create_ruleset(2) cannot even report
// the ABI version, and what the user can do about it.
func noLandlockReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSYS):
		return "Landlock is not built into this kernel (CONFIG_SECURITY_LANDLOCK is off); " +
			"use a kernel built with it"
	case errors.Is(err, syscall.EOPNOTSUPP):
		return "Landlock is built into this kernel but disabled at boot; " +
			"add \"landlock\" to the lsm= kernel parameter"
	case errors.Is(err, syscall.EPERM):
		return "landlock_create_ruleset is denied, likely by a container's seccomp filter; " +
			"run vm-run outside it or allow the landlock_* system calls"
	default:
		return fmt.Sprintf("landlock_create_ruleset: %v", err)
	}
}

// Restrict enforces r on every thread of the calling process and on all
// processes it starts afterwards. It cannot be undone. It first runs
// [Rules.Check] against [Detect]: a required feature the kernel lacks
// stops it with a *MissingFeatureError before anything is enforced, unless
// r.BestEffort is set, in which case it enforces everything the kernel
// supports and nothing else. With BestEffort on a kernel without Landlock
// it returns nil having restricted nothing; callers print Check's warnings.
//
// Restrict also sets no_new_privs on every thread, which Landlock needs
// from an unprivileged caller (landlock_restrict_self(2)).
//
// # Threads and signals
//
// Below ABI 8 every thread ends up in a Landlock domain of its own, because
// go-landlock enforces the ruleset thread by thread and each
// landlock_restrict_self(2) call creates a new domain. With signal scoping
// (ABI 6), a process may signal only processes in its own domain or one
// nested in it, so a child is reachable by kill(2) only from the OS thread
// that forked it. A caller that signals its children calls Restrict, starts
// them and signals them from one goroutine locked with
// [runtime.LockOSThread]. From ABI 8 on all threads share one domain.
func (r Rules) Restrict() error {
	s := Detect()
	if _, err := r.Check(s); err != nil {
		return err
	}
	abi := s.EnforcedABI()
	if abi == 0 {
		// Check passed, so either nothing is required or the
		// profile said best_effort.
		return nil
	}
	cfg, rules, err := r.plan(abi)
	if err != nil {
		return err
	}
	// Not cfg.BestEffort(): cfg is already what this kernel enforces,
	// and go-landlock's best effort would silently enforce nothing if
	// its view of the kernel ever differed from ours.
	if err := cfg.Restrict(rules...); err != nil {
		return explain(err)
	}
	return nil
}

// explain turns a go-landlock error into one that names the failed system
// call as an *os.SyscallError and says what the user can do. go-landlock
// v0.11.0 returns the errno wrapped in text that names the call (for
// example "landlock_add_rule: ..."), so the call is read from that text.
func explain(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("apply landlock rules: %w", err)
	}
	call := syscallName(err.Error(), errno)
	return fmt.Errorf("apply landlock rules: %w: %s (%v)",
		&os.SyscallError{Syscall: call, Err: errno}, hint(call, errno), err)
}

// syscallName finds the failed call in go-landlock's message text.
func syscallName(msg string, errno syscall.Errno) string {
	for _, c := range []struct{ marker, call string }{
		{"open:", "open"},
		{"landlock_create_ruleset", "landlock_create_ruleset"},
		{"landlock_add_rule", "landlock_add_rule"},
		{"landlock_restrict_self", "landlock_restrict_self"},
		{"PR_SET_NO_NEW_PRIVS", "prctl"},
		// The stacking limit message does not name its call.
		{"stacked rulesets", "landlock_restrict_self"},
	} {
		if strings.Contains(msg, c.marker) {
			return c.call
		}
	}
	// Only port rules come back as a bare errno.
	return "landlock_add_rule"
}

// hint says what the user can do about errno from call; the errno meanings
// are those of landlock_create_ruleset(2), landlock_add_rule(2) and
// landlock_restrict_self(2).
func hint(call string, errno syscall.Errno) string {
	switch errno {
	case syscall.E2BIG:
		return "the process is already in 16 nested Landlock domains, the kernel's limit; " +
			"run vm-run from outside the other Landlock sandboxes"
	case syscall.EPERM:
		return "the thread has neither no_new_privs nor CAP_SYS_ADMIN, or a seccomp filter " +
			"(a container's?) denies Landlock; run vm-run outside that filter"
	case syscall.EINVAL:
		return "the kernel rejected an access right, flag or directory right on a file; " +
			"this is a vm-run bug, please report it with the output of `vm-run doctor`"
	case syscall.ENOMSG:
		return "a rule granted no access right; this is a vm-run bug, please report it"
	case syscall.EOPNOTSUPP:
		return "Landlock is disabled at boot; add \"landlock\" to the lsm= kernel parameter"
	case syscall.ENOSYS:
		return "this kernel has no Landlock; use one built with CONFIG_SECURITY_LANDLOCK " +
			"or set best_effort: true in the profile"
	}
	if call == "open" {
		return "a path in the profile cannot be opened; check that it exists and is reachable"
	}
	return "unexpected error from the kernel"
}
