package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/netns"
	"github.com/vm-run/vm-run/seccomp"
)

// InitMain is the init stage: PID 1 of the sandbox's namespaces. It reads
// the spec, builds the sandbox in the order the kernel requires, starts the
// command and reaps until the command ends. It never returns.
//
// Order: parent-death signal, spec, namespace check, loopback, mounts,
// hostname, rlimits, close fds, drop capabilities, no_new_privs, Landlock,
// seccomp (last: everything before it may use any syscall), fork+exec.
func InitMain() {
	// The parent-death signal and the per-thread steps below must happen
	// on the thread that stays; psx covers the other threads.
	runtime.LockOSThread()
	status := os.NewFile(statusFd, "status")
	unix.CloseOnExec(statusFd)
	report := json.NewEncoder(status)
	fail := func(e *SetupError) {
		report.Encode(message{Error: e})
		os.Exit(ExitSetup)
	}
	// Die with the parent. Set before reading the spec; the spec pipe's
	// write end stays open in the parent, so a hang-up on it after this
	// point means the parent died before the signal was armed.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fail(setupErr("parent-death signal", os.NewSyscallError("prctl", err), ""))
	}
	s, err := readSpec()
	if err != nil {
		fail(setupErr("read spec", err, ""))
	}
	os.Clearenv()
	if parentGone() {
		os.Exit(ExitSetup)
	}
	if err := build(s); err != nil {
		var se *SetupError
		if errors.As(err, &se) {
			fail(se)
		}
		fail(setupErr("sandbox", err, ""))
	}
	// Catch the forwarded signals before the command exists: one sent as
	// soon as it starts must reach it, not end PID 1 by Go's default
	// handling.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{unix.SIGCHLD}, forwarded...)...)
	pid, err := startCommand(s)
	if err != nil {
		var se *SetupError
		errors.As(err, &se)
		fail(se)
	}
	report.Encode(message{Started: pid})
	st := reap(pid, sigs)
	report.Encode(message{Exit: &st})
	// Returning from PID 1 makes the kernel kill every process left in the
	// PID namespace, daemonized grandchildren included
	// (pid_namespaces(7)).
	os.Exit(0)
}

func readSpec() (*Spec, error) {
	f := os.NewFile(specFd, "spec")
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &s, nil
}

// parentGone reports whether the parent closed (by dying) the spec pipe.
func parentGone() bool {
	fds := []unix.PollFd{{Fd: specFd, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	gone := err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0
	unix.Close(specFd)
	return gone
}

func setupErr(op string, err error, hint string) *SetupError {
	return &SetupError{Code: ExitSetup, Op: op, Msg: err.Error(), Hint: hint}
}

// build turns the init stage's process into the sandbox.
func build(s *Spec) error {
	id, err := netns.ID()
	if err != nil {
		return setupErr("network namespace", err, "")
	}
	if id == s.HostNetNS {
		return setupErr("network namespace", errors.New("still in the host's network namespace"), "")
	}
	if s.Loopback {
		if err := netns.LoopbackUp(); err != nil {
			return setupErr("loopback", err, "")
		}
	}
	if err := setupMounts(s); err != nil {
		hint := "vm-run needs to mount tmpfs, proc and overlays in its own user namespace; see `vm-run doctor`"
		if errors.Is(err, unix.EACCES) {
			hint = fmt.Sprintf("the sandbox runs as uid %d, which cannot reach that path; make it and its parent directories searchable for that uid (as root, vm-run runs commands as nobody unless --user says otherwise)", s.UID)
		}
		return setupErr("mounts", err, hint)
	}
	// Not dumpable from here on: the command (same uid) cannot open
	// /proc/1/mem or /proc/1/environ of its reaper, nor ptrace it, without
	// CAP_SYS_PTRACE (proc(5), ptrace(2) "Ptrace access mode checking").
	// Not earlier: the mounts above reach the descriptors they opened
	// through /proc/self/fd, which a non-dumpable process cannot traverse
	// once its owner becomes the user namespace's unmapped root.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return setupErr("dumpable", os.NewSyscallError("prctl", err), "")
	}
	if err := setHostname(); err != nil {
		return setupErr("hostname", err, "")
	}
	for _, r := range s.Rlimits {
		lim := unix.Rlimit{Cur: r.Value, Max: r.Value}
		if err := unix.Setrlimit(r.Resource, &lim); err != nil {
			return setupErr("limits", fmt.Errorf("%s = %d: %w", r.Name, r.Value, err),
				"a limit cannot be raised above the caller's hard limit (ulimit -H)")
		}
	}
	// Mark every descriptor above 2 close-on-exec, the status pipe and
	// anything the caller leaked to vm-run included: none reaches the
	// command (close_range(2), CLOSE_RANGE_CLOEXEC).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return setupErr("close descriptors", os.NewSyscallError("close_range", err), "")
	}
	if err := dropCapabilities(); err != nil {
		return setupErr("drop capabilities", err, "")
	}
	if err := setNoNewPrivs(); err != nil {
		return setupErr("no_new_privs", err, "")
	}
	warnings, err := s.Landlock.Check(landlock.Detect())
	if err != nil {
		return setupErr("landlock", err, "run `vm-run doctor`; a profile may say best_effort: true to run without the missing feature")
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "vm-run: warning: landlock: %s\n", w)
	}
	if err := s.Landlock.Restrict(); err != nil {
		return setupErr("landlock", err, "")
	}
	return nil
}

// startCommand resolves the command as the sandbox sees it, loads the seccomp
// filter and starts the command. The filter is loaded last and applies to
// every thread (TSYNC), the one that forks included.
func startCommand(s *Spec) (int, error) {
	path, err := lookPath(s.Path, s.Env)
	if err != nil {
		return 0, err
	}
	// A missing working directory would come back from ForkExec as ENOENT,
	// indistinguishable from a missing program.
	if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
		msg := fmt.Sprintf("working directory %q is not a directory", s.Dir)
		if err != nil {
			msg = fmt.Sprintf("working directory: %v", err)
		}
		return 0, &SetupError{Code: ExitSetup, Op: "workspace", Msg: msg,
			Hint: "the workspace must exist and be reachable under the profile's rules"}
	}
	if err := seccomp.LoadProgram(s.SeccompBPF); err != nil {
		return 0, setupErr("seccomp", err, "")
	}
	pid, err := syscall.ForkExec(path, s.Args, &syscall.ProcAttr{
		Dir:   s.Dir,
		Env:   s.Env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return 0, execError(s.Path, err)
	}
	return pid, nil
}

// lookPath finds name in the PATH of the command's environment, as the
// command's own shell would.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	var unreadable []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrPermission) && !slices.Contains(unreadable, dir) {
				unreadable = append(unreadable, dir)
			}
			continue
		}
		if st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	// As a shell does: not found anywhere it could look is "not found",
	// even when some PATH directories could not be searched.
	hint := "check the name, or give its path; the sandbox's PATH is the profile's"
	if len(unreadable) > 0 {
		hint = fmt.Sprintf("the sandbox cannot search %s; add the command's directory to the profile's filesystem.exec", strings.Join(unreadable, ", "))
	}
	return "", &SetupError{Code: ExitNotFound, Op: "exec",
		Msg:  fmt.Sprintf("%q: command not found", name),
		Hint: hint}
}

func execError(name string, err error) *SetupError {
	switch {
	case errors.Is(err, unix.ENOENT):
		return &SetupError{Code: ExitNotFound, Op: "exec", Msg: fmt.Sprintf("%q: no such file or directory", name),
			Hint: "a script's interpreter (#!) must exist inside the sandbox too"}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return &SetupError{Code: ExitNotExecutable, Op: "exec", Msg: fmt.Sprintf("%q: permission denied", name),
			Hint: "the profile must list the program's directory under filesystem.exec"}
	default:
		return &SetupError{Code: ExitNotExecutable, Op: "exec", Msg: fmt.Sprintf("%q: %v", name, err)}
	}
}

// reap forwards signals to the command and reaps every child until the
// command itself exits. Orphans re-parented to PID 1 are reaped on the way.
func reap(pid int, sigs <-chan os.Signal) Status {
	for {
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || got <= 0 {
				break
			}
			if got == pid {
				if ws.Signaled() {
					return Status{Signal: int(ws.Signal())}
				}
				return Status{Code: ws.ExitStatus()}
			}
		}
		sig := <-sigs
		if sig != unix.SIGCHLD {
			unix.Kill(pid, sig.(unix.Signal))
		}
	}
}
