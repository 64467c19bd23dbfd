package sandbox

import (
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

// The init stage runs on the main thread, the one whose tid is PID 1: "all
// init functions are run on the startup thread", and locking it here keeps
// main, and so InitMain, on it (runtime.LockOSThread; runc's init.go does
// the same). kill(1, sig) from the command is checked against that thread
// (check_kill_permission in kernel/signal.c), and below Landlock ABI 8
// every thread has a Landlock domain of its own, which signal scoping
// compares (see landlock.Rules.Restrict): forked from any other thread, the
// command could signal PID 1 on some runs and not on others.
func init() {
	if len(os.Args) > 0 && os.Args[0] == InitArg0 {
		runtime.LockOSThread()
	}
}

// InitMain is the init stage: PID 1 of the sandbox's namespaces. It reads
// the spec, builds the sandbox in the order the kernel requires, starts the
// command and reaps until the command ends. It never returns.
//
// Order: parent-death signal, spec, namespace check, loopback, cgroup
// namespace, mounts, hostname, rlimits, close fds, drop capabilities, no_new_privs, Landlock,
// seccomp (last: everything before it may use any syscall), fork+exec.
func InitMain() {
	// The parent-death signal and the per-thread steps below must happen
	// on the thread that stays; psx covers the other threads.
	runtime.LockOSThread()
	// The channel to the parent (channel_linux.go); the command does not
	// inherit it.
	unix.CloseOnExec(chanFd)
	ch := &channel{f: os.NewFile(chanFd, "channel")}
	fail := func(e *SetupError) {
		ch.send(&chanMsg{Type: msgError, Error: e})
		os.Exit(ExitSetup)
	}
	// Die with the parent. Set before reading the spec; the parent's end
	// of the channel stays open while it lives, so a hang-up on it after
	// this point means the parent died before the signal was armed.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fail(setupErr("parent-death signal", os.NewSyscallError("prctl", err), ""))
	}
	s, err := readSpec(ch)
	if err != nil {
		fail(setupErr("read spec", err, ""))
	}
	os.Clearenv()
	if parentGone() {
		os.Exit(ExitSetup)
	}
	if err := build(ch, s); err != nil {
		var se *SetupError
		if errors.As(err, &se) {
			fail(se)
		}
		fail(setupErr("sandbox", err, ""))
	}
	// Before the command exists: it may signal PID 1 as soon as it runs,
	// before the parent even learns that it started.
	chld, err := catchSignals()
	if err != nil {
		fail(setupErr("signals", err, ""))
	}
	pid, err := startCommand(s)
	if err != nil {
		var se *SetupError
		errors.As(err, &se)
		fail(se)
	}
	ch.send(&chanMsg{Type: msgStarted, Started: pid})
	st := reap(pid, chld, relayed(ch))
	ch.send(&chanMsg{Type: msgExit, Exit: &st})
	// Returning from PID 1 makes the kernel kill every process left in the
	// PID namespace, daemonized grandchildren included
	// (pid_namespaces(7)).
	os.Exit(0)
}

// readSpec reads the spec, the parent's first message. Descriptors do not
// come with it: the trees are inherited.
func readSpec(ch *channel) (*Spec, error) {
	m, err := ch.recv()
	if err != nil {
		return nil, err
	}
	if m.Type != msgSpec || m.Spec == nil {
		return nil, fmt.Errorf("got a %q message where the spec comes", m.Type)
	}
	return m.Spec, nil
}

// parentGone reports whether the parent's end of the channel is closed
// (by its death): the kernel reports a hang-up on a stream socket whose
// peer is gone (unix_poll in net/unix/af_unix.c).
func parentGone() bool {
	fds := []unix.PollFd{{Fd: chanFd, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0
}

func setupErr(op string, err error, hint string) *SetupError {
	return &SetupError{Code: ExitSetup, Op: op, Msg: err.Error(), Hint: hint}
}

// build turns the init stage's process into the sandbox.
func build(ch *channel, s *Spec) error {
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
	if s.Egress != nil {
		if err := egressDevice(ch); err != nil {
			return err
		}
	}
	if err := enterCgroupNamespace(); err != nil {
		return setupErr("cgroup namespace", err, "")
	}
	if err := setupMounts(s); err != nil {
		hint := "vm-run needs to mount tmpfs, proc and overlays in its own user namespace; see `vm-run doctor`"
		if errors.Is(err, unix.EACCES) {
			hint = fmt.Sprintf("the sandbox runs as uid %d, which cannot reach that path; make it and its parent directories searchable for that uid (as root, vm-run runs commands as nobody unless --user says otherwise)", s.UID)
		}
		return setupErr("mounts", err, hint)
	}
	if s.Egress != nil {
		if err := bindNetFiles(s); err != nil {
			return setupErr("network", err, "")
		}
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
	// Mark every descriptor above 2 close-on-exec, the channel and
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

// The init stage is PID 1 of the sandbox's PID namespace, and the command
// may signal it. The kernel delivers a signal to a namespace's init, from
// inside the namespace or from an ancestor, only if init has a handler for
// it; only SIGKILL and SIGSTOP from an ancestor are forced
// (pid_namespaces(7)). The Go runtime has a handler for every signal, and
// by default a SIGTERM, SIGHUP or SIGINT ends the process, a SIGQUIT,
// SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP or SIGSYS makes it
// crash with a dump of its goroutines: vm-run's own failure, to the parent.
//
// So no signal reaching PID 1 is relayed to the command, whoever sent it:
// the parent sends the signals for the command on the channel, which
// only it holds (relayed), and PID 1 drops every signal but SIGCHLD.

// faultSignals are the signals the Go runtime takes for a fault of its own
// unless a process sent them with kill(2) or tgkill(2) (si_code SI_USER or
// SI_TKILL, sigFromUser in runtime/os_linux.go); sent by
// pidfd_send_signal(2) or rt_sigqueueinfo(2) with si_code SI_QUEUE they
// crash it even with a handler from os/signal (sighandler in
// runtime/signal_unix.go; they lack _SigNotify in
// runtime/sigtab_linux_generic.go).
var faultSignals = []unix.Signal{unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE,
	unix.SIGSEGV, unix.SIGSTKFLT, unix.SIGSYS}

// catchSignals makes PID 1 immune to every signal the command can send it
// and returns the channel of SIGCHLD, on which it reaps.
//
//   - faultSignals get their default action back (restoreDefault): the
//     kernel then delivers none to a namespace's init, whoever sends it
//     (SIGNAL_UNKILLABLE in sig_task_ignored, kernel/signal.c). A real
//     fault of PID 1 still kills it, by the signal instead of a Go panic:
//     for a fault it raises with the default action, the kernel lifts
//     SIGNAL_UNKILLABLE (force_sig_info_to_task).
//   - 32 to 34 stay as they are. The handlers there act only when the
//     process itself asked: glibc's for its SIGCANCEL and SIGSETXID and
//     psx's, which shares 33, want si_code SI_TKILL from their own pid;
//     the runtime's for the same per-thread system calls without cgo
//     (runPerThreadSyscall) wants a call it is running. A signal without
//     a handler the kernel drops.
//   - Every other signal but SIGKILL and SIGSTOP goes through os/signal to
//     a channel nobody reads ("Package signal will not block sending to
//     c"): the runtime hands these to os/signal whatever their si_code.
//     Not signal.Ignore: the SIG_IGN it sets would pass to the command,
//     which execve(2) keeps (signal(7)).
//
// Handled signals are reset to SIG_DFL at execve, so the command starts
// with every signal at its default action.
func catchSignals() (<-chan os.Signal, error) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	var drop []os.Signal
	for sig := unix.Signal(1); sig <= 64; sig++ {
		switch {
		case sig == unix.SIGKILL || sig == unix.SIGSTOP || sig == unix.SIGCHLD:
		case slices.Contains(faultSignals, sig):
			if err := restoreDefault(sig); err != nil {
				return nil, fmt.Errorf("restore the default action of %v: %w", sig, err)
			}
		case sig >= 32 && sig <= 34:
		default:
			drop = append(drop, sig)
		}
	}
	signal.Notify(make(chan os.Signal, 1), drop...)
	if err := resetIgnored(); err != nil {
		return nil, fmt.Errorf("reset ignored signals: %w", err)
	}
	return chld, nil
}

// relayed reads the signals for the command that the parent sends after
// the spec, until the parent closes the channel. A message it cannot read
// ends the stream: the parent never sends one; other messages are
// ignored.
func relayed(ch *channel) <-chan unix.Signal {
	c := make(chan unix.Signal, 16)
	go func() {
		for {
			m, err := ch.recv()
			if err != nil {
				return
			}
			if m.Type == msgSignal && m.Signal > 0 && m.Signal <= 64 {
				c <- unix.Signal(m.Signal)
			}
		}
	}()
	return c
}

// reap relays the parent's signals to the command and reaps every child
// until the command itself exits. Orphans re-parented to PID 1 are reaped
// on the way. No signal goes to the command once it is reaped.
func reap(pid int, chld <-chan os.Signal, relays <-chan unix.Signal) Status {
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
		select {
		case <-chld:
		case sig := <-relays:
			unix.Kill(pid, sig)
		}
	}
}
