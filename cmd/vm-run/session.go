package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
	"github.com/vm-run/vm-run/seccomp"
)

// session is one `vm-run run` as the ledger sees it: session_start before
// the sandbox exists, decisions while it runs, session_end after.
type session struct {
	ledger *audit.Ledger
	start  time.Time
	// profile and limits name the limits the sandbox ran under, for the
	// message when it reaches one: where to raise them.
	profile string
	limits  cgroup.Limits
	// denials reads Landlock's audit records of the domains the init
	// stage creates; nil where vm-run cannot read them.
	denials *landlock.DenialWatch
	// net is the sandbox's network in mode egress, nil in the others.
	net *egressNet
}

// network is what carries the sandbox's traffic, for
// sandbox.Pending.StartNetwork: nil unless the network mode is egress.
func (s *session) network() sandbox.Network {
	if s.net == nil {
		return nil
	}
	return s.net
}

// watchDenials starts reading Landlock's denial records for the sandbox
// whose init stage is pid, if this host logs them and vm-run may read
// them (root, audit enabled, Landlock ABI 7: see landlock.AuditStatus),
// and asks the kernel to log the command's; otherwise it does nothing,
// and `vm-run doctor` says why. Call it before the spec is sent.
func (s *session) watchDenials(pid int, spec *sandbox.Spec) {
	if os.Geteuid() != 0 || pid == 0 || landlock.Detect().ABI < 7 {
		return
	}
	if w, err := landlock.WatchDenials(pid, spec.UID); err == nil {
		s.denials = w
		spec.Landlock.LogDenials = true
	}
}

// landlockDenials collects what Landlock refused the sandbox. For a
// session that failed it first waits (at most a second) for the kernel's
// audit thread to deliver every record; for one that succeeded it takes
// what has arrived.
func (s *session) landlockDenials(failed bool) ([]audit.LandlockDenial, int) {
	if s.denials == nil {
		return nil, 0
	}
	defer s.denials.Close()
	if failed {
		s.denials.Flush(time.Second)
	}
	ds, dropped := s.denials.Denials()
	out := make([]audit.LandlockDenial, len(ds))
	for i, d := range ds {
		out[i] = audit.LandlockDenial{Blockers: d.Blockers, Object: d.Object, Count: d.Count}
	}
	return out, dropped
}

// reportDenials says what Landlock refused a session that failed, which
// the command's own error rarely names, and where to grant it.
func reportDenials(w io.Writer, ds []audit.LandlockDenial, dropped int, profile string) {
	fmt.Fprintf(w, "vm-run: Landlock refused the sandbox %s (the kernel's audit records):\n", plural(uint64(len(ds)+dropped), "access", "accesses"))
	for _, d := range ds {
		times := ""
		if d.Count > 1 {
			times = fmt.Sprintf(" (%d times)", d.Count)
		}
		// The path is the kernel's, but its bytes are whatever the
		// command named its files: escaped, never raw on a terminal.
		fmt.Fprintf(w, "vm-run:   %s %s%s\n", textsafe.Escape(d.Blockers), textsafe.Escape(d.Object), times)
	}
	if dropped > 0 {
		fmt.Fprintf(w, "vm-run:   and %s more\n", plural(uint64(dropped), "other", "others"))
	}
	fmt.Fprintf(w, "vm-run: hint: if the command needs a path, grant it in %s under filesystem.read, write or exec (`vm-run profiles show` lists what is granted); fs.execute needs exec, fs.write_file and fs.make_* need write\n", profile)
}

// openSession opens the ledger and records session_start. The sandbox does
// not start unless the record is on disk.
func openSession(l *launch, path string) (*session, error) {
	led, err := audit.Open(path, audit.Options{
		Profile:     l.profile.Name,
		ProfileHash: l.profile.Hash(),
		RedactKeys:  l.profile.Audit.Redact,
	})
	if err != nil {
		return nil, ledgerError(err, path)
	}
	keys := l.profile.Audit.Redact
	if keys == nil {
		keys = audit.DefaultRedactKeys
	}
	_, err = led.Log(context.Background(), audit.SessionStart{
		Argv:        audit.RedactArgv(l.spec.Args, keys),
		Profile:     l.profile.Name,
		ProfileHash: l.profile.Hash(),
		Workdir:     l.workspace,
		Sandbox:     summary(l.spec),
		Kernel:      kernelFeatures(),
	})
	if err != nil {
		led.Close()
		return nil, ledgerError(err, path)
	}
	where := l.profile.Source[0]
	if strings.HasPrefix(where, "builtin:") {
		where = "a profile that extends " + l.profile.Name
	}
	s := &session{ledger: led, start: time.Now(), profile: where, limits: l.spec.Cgroup}
	if l.spec.Egress != nil {
		if s.net, err = newEgressNet(l.profile.Network, led, os.Environ()); err != nil {
			led.Close()
			return nil, err
		}
	}
	return s, nil
}

// end records how the session ended and closes the ledger, and says on
// stderr which of its cgroup limits the sandbox reached. A command that
// ran but whose end cannot be recorded makes vm-run fail: the record is the
// point of running under vm-run.
func (s *session) end(st sandbox.Status, runErr error) error {
	if s.net != nil {
		s.net.close()
	}
	ev := audit.NewSessionEnd(st.ExitCode(), "", time.Since(s.start))
	if st.Signal != 0 {
		ev.Signal = unix.SignalName(unix.Signal(st.Signal))
	}
	if l := st.Limits; l.Any() {
		ev.Limits = &audit.LimitHits{OOMKills: l.OOMKills, PidsMaxHits: l.PidsMax}
		reportLimits(os.Stderr, st, s.limits, s.profile)
	}
	failed := runErr != nil || st.ExitCode() != 0
	ds, dropped := s.landlockDenials(failed)
	ev.LandlockDenials = ds
	if failed && len(ds) > 0 {
		reportDenials(os.Stderr, ds, dropped, s.profile)
	}
	var se *sandbox.SetupError
	switch {
	case errors.As(runErr, &se):
		ev.ExitStatus = se.Code
		ev.Error = se.Error()
	case runErr != nil:
		ev.ExitStatus = sandbox.ExitSetup
		ev.Error = runErr.Error()
	}
	_, err := s.ledger.Log(context.Background(), ev)
	cerr := s.ledger.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger",
			Msg:  fmt.Sprintf("the command ended (%s) but session_end could not be recorded: %v", st, err),
			Hint: "check the ledger's disk (space, permissions), then `vm-run audit verify`"}
	}
	return nil
}

// reportLimits says which cgroup limits the sandbox reached, and where to
// raise them (profile: "a profile that extends strict", or a file): a
// command the OOM killer ended must not read as a mere "signal 9", nor a
// failed fork as the command's own bug.
func reportLimits(w io.Writer, st sandbox.Status, l cgroup.Limits, profile string) {
	ev := st.Limits
	if ev.OOMKills > 0 {
		mem := cgroup.FormatBytes(l.Memory)
		if st.OOMKilled() {
			fmt.Fprintf(w, "vm-run: the command was killed by the kernel's OOM killer: the sandbox reached the profile's memory limit (%s)\n", mem)
		} else {
			fmt.Fprintf(w, "vm-run: the kernel's OOM killer killed %s in the sandbox: it reached the profile's memory limit (%s)\n", plural(ev.OOMKills, "process", "processes"), mem)
		}
		fmt.Fprintf(w, "vm-run: hint: raise limits.memory in %s, e.g. \"limits: {memory: 4GiB}\" or \"50%%\" of the host's\n", profile)
	}
	if ev.PidsMax > 0 {
		fmt.Fprintf(w, "vm-run: the sandbox reached the profile's process limit (%d processes and threads): %s failed\n", l.Pids, plural(ev.PidsMax, "fork", "forks"))
		fmt.Fprintf(w, "vm-run: hint: raise limits.pids in %s, e.g. \"limits: {pids: 2048}\"\n", profile)
	}
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func ledgerError(err error, path string) error {
	return &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger", Msg: err.Error(),
		Hint: fmt.Sprintf("nothing was started; check that %q is writable and its disk has space, or choose another with --ledger", path)}
}

// summary is what session_start says of the sandbox: the rules, not the
// environment values (they may hold secrets).
func summary(s *sandbox.Spec) map[string]any {
	names := make([]string, 0, len(s.Env))
	for _, kv := range s.Env {
		k, _, _ := cutEnv(kv)
		names = append(names, k)
	}
	return map[string]any{
		"namespaces": []string{"user", "network", "pid", "ipc", "uts", "mount", "cgroup"},
		"uid":        s.UID,
		"gid":        s.GID,
		"loopback":   s.Loopback,
		"landlock":   s.Landlock,
		"seccomp":    s.Seccomp,
		"hide":       s.Hide,
		"keep":       s.Keep,
		"overlay":    s.Overlay,
		"rlimits":    s.Rlimits,
		"cgroup":     s.Cgroup,
		"env_names":  names,
	}
}

func cutEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

func kernelFeatures() map[string]any {
	sup := landlock.Detect()
	lvl, _ := seccomp.APILevel()
	var uts unix.Utsname
	unix.Uname(&uts)
	return map[string]any{
		"release":          unix.ByteSliceToString(uts.Release[:]),
		"landlock_abi":     sup.ABI,
		"landlock_errata":  sup.Errata,
		"seccomp_api":      lvl,
		"libseccomp":       seccomp.LibraryVersion(),
		"legacy_tiocsti":   readProc("/proc/sys/dev/tty/legacy_tiocsti"),
		"max_user_namespc": readProc("/proc/sys/user/max_user_namespaces"),
	}
}
