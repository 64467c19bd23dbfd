package sandbox_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/sandbox"
)

// The command may signal PID 1 of its namespace, the init stage, which
// must neither crash nor pass the signal on: pid_namespaces(7) lets it
// through whenever PID 1 has a handler, and the Go runtime has one for
// every signal.

// TestInitSurvivesSignals has a shell send PID 1 each signal that ends a Go
// program by default, or that vm-run's parent forwards, and exit 7: the
// status must be the shell's own, with nothing on stderr (no Go crash dump).
// The shell lingers before it exits so that a signal PID 1 wrongly relayed
// back would reach it first; the pass does not depend on the pause.
func TestInitSurvivesSignals(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	for _, name := range []string{"SEGV", "BUS", "FPE", "ILL", "ABRT", "TRAP", "QUIT", "SYS",
		"TERM", "INT", "HUP", "USR1", "PIPE"} {
		t.Run("SIG"+name, func(t *testing.T) {
			t.Parallel()
			script := fmt.Sprintf("kill -%s 1; sleep 0.5; exit 7", name)
			r := run(t, b.sh(t, "strict", script), "", nil)
			if r.err != nil || r.st != (sandbox.Status{Code: 7}) || r.stderr != "" {
				t.Errorf("sh -c %q: %v; want exit status 7 and nothing on stderr", script, r)
			}
		})
	}
}

// TestInitDropsHostSignals signals the init stage itself from the host,
// past the parent: the signal is dropped, not relayed, while the parent's
// own relay still works.
func TestInitDropsHostSignals(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	m := newMarker()
	t.Cleanup(func() { waitGone(t, m) })
	got, st, err := runSynced(t, b.sh(t, "strict", syncScript(m, "USR1")), func(p *sandbox.Process) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGSEGV} {
			if err := syscall.Kill(p.Pid, sig); err != nil {
				t.Errorf("kill(init, %v) = %v", sig, err)
			}
		}
		if err := p.Signal(syscall.SIGUSR1); err != nil {
			t.Errorf("Signal(SIGUSR1) = %v", err)
		}
	})
	if err != nil || st != (sandbox.Status{}) || !slices.Equal(got, []string{"USR1"}) {
		t.Errorf("after SIGTERM, SIGINT, SIGSEGV to init and SIGUSR1 relayed: %v, %v, printed %q; want exit status 0, printed %q",
			st, err, got, "USR1")
	}
}

// TestSignalAfterEnd signals a sandbox that has ended.
func TestSignalAfterEnd(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	var p *sandbox.Process
	r := run(t, b.sh(t, "strict", "exit 0"), "", func(q *sandbox.Process) { p = q })
	if r.err != nil || p == nil {
		t.Fatalf("run: %v", r)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := p.Signal(sig); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("Signal(%v) after the end = %v, want %v", sig, err, os.ErrProcessDone)
		}
	}
	if err := p.Signal(syscall.Signal(65)); err == nil {
		t.Errorf("Signal(65) = nil, want an error")
	}
}

// TestInitSurvivesEverySignal has the probe send PID 1 every signal but
// SIGKILL and SIGSTOP, by kill(2) and by pidfd_send_signal(2) with si_code
// SI_QUEUE, which the Go runtime does not count as sent by a user: it takes
// a SIGSEGV so coded for a fault of its own.
func TestInitSurvivesEverySignal(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	for _, mode := range []string{"kill", "queue"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := run(t, b.probe(t, "strict", "signal-init", mode), "", nil)
			if r.err != nil || r.st != (sandbox.Status{Code: 7}) || r.stderr != "" {
				t.Errorf("probe signal-init %s: %v; want exit status 7 and nothing on stderr", mode, r)
			}
		})
	}
}

// signalInit is the "signal-init" probe: it sends PID 1 every signal it
// can, by kill(2) for mode "kill", by pidfd_send_signal(2) with si_code
// SI_QUEUE for mode "queue", reports failures on stderr and exits 7.
func signalInit(mode string) int {
	pidfd, err := unix.PidfdOpen(1, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pidfd_open(1): %v\n", err)
		return 2
	}
	defer unix.Close(pidfd)
	for sig := unix.Signal(1); sig <= 64; sig++ {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			continue
		}
		switch mode {
		case "kill":
			err = unix.Kill(1, sig)
		case "queue":
			info := unix.Siginfo{Signo: int32(sig), Code: -1 /* SI_QUEUE */}
			err = unix.PidfdSendSignal(pidfd, sig, &info, 0)
		default:
			fmt.Fprintf(os.Stderr, "signal-init: unknown mode %q\n", mode)
			return 2
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s signal %d to PID 1: %v\n", mode, sig, err)
		}
	}
	return 7
}

// TestCommandSignalDefaults checks that the command starts with every
// signal at its default action, whatever PID 1 does with them: ignored
// dispositions survive execve(2) (signal(7)), and a command that inherited
// one could not be stopped by it.
func TestCommandSignalDefaults(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	t.Run("status", func(t *testing.T) {
		t.Parallel()
		out := mustRun(t, b.spec(t, "strict", "cat", "/proc/self/status"))
		for _, field := range []string{"SigIgn", "SigBlk"} {
			if got := statusField(out, field); got != "0000000000000000" {
				t.Errorf("the command's %s: %q, want no signal", field, got)
			}
		}
	})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGSEGV, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGSTKFLT} {
		// By number: dash knows no SIGSTKFLT by name.
		script := fmt.Sprintf("trap - %d; kill -%d $$; exit 3", sig, sig)
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			t.Parallel()
			r := run(t, b.sh(t, "strict", script), "", nil)
			if want := (sandbox.Status{Signal: int(sig)}); r.err != nil || r.st != want {
				t.Errorf("sh -c %q: %v; want %v", script, r, want)
			}
		})
	}
}

// statusField returns the value of field in the text of /proc/PID/status.
func statusField(status, field string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
