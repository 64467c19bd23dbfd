package sandbox_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/sandbox"
)

// A marker is the argument of a `sleep` that outlives any test: the host
// finds the process by it in /proc, whatever namespace it runs in.
func newMarker() string { return strconv.Itoa(3_000_000 + rand.IntN(1_000_000)) }

// markedPids returns the host pids of the processes running `sleep marker`.
func markedPids(marker string) []int {
	var pids []int
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue // gone meanwhile
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(argv) == 2 && filepath.Base(argv[0]) == "sleep" && argv[1] == marker {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(m)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// pollBound bounds the polls for processes to appear or disappear; they
// take microseconds unless something is broken.
const pollBound = 10 * time.Second

// waitGone waits for every process marked by one of markers to disappear
// and fails t if one survives the bound, killing the survivors.
func waitGone(t *testing.T, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(pollBound)
	for {
		var left []int
		for _, m := range markers {
			left = append(left, markedPids(m)...)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v of the sandbox (markers %q) are still running", left, markers)
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPresent waits for a process marked by each of markers to run.
func waitPresent(t *testing.T, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(pollBound)
	for _, m := range markers {
		for len(markedPids(m)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no process runs `sleep %s`", m)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitFor is the script that waits inside the sandbox until `sleep m` runs
// for each marker m; "slee[p]" keeps grep from finding its own arguments.
func waitFor(markers ...string) string {
	var b strings.Builder
	for _, m := range markers {
		fmt.Fprintf(&b, "until cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'slee[p] %s '; do sleep 0.01; done\n", m)
	}
	return b.String()
}

// TestRunLeavesNothing daemonizes two grandchildren (a new session, and an
// orphan re-parented to the init stage) and exits: when Run returns, neither
// may be left.
func TestRunLeavesNothing(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	daemon, orphan := newMarker(), newMarker()
	t.Cleanup(func() { waitGone(t, daemon, orphan) })
	script := fmt.Sprintf("setsid sleep %s </dev/null >/dev/null 2>&1 &\n(sleep %s </dev/null >/dev/null 2>&1 &)\n%secho up\n",
		daemon, orphan, waitFor(daemon, orphan))
	out := mustRun(t, b.sh(t, "strict", script))
	if out != "up\n" {
		t.Fatalf("the script printed %q, want %q once its grandchildren ran", out, "up\n")
	}
	waitGone(t, daemon, orphan)
}

// syncScript is a shell script that prints "ready", answers each SIGWINCH
// with "sync", prints the name of each of trapped and exits 0 on it, and
// otherwise waits for a signal; marker marks its child.
func syncScript(marker string, trapped ...string) string {
	var b strings.Builder
	b.WriteString("trap 'echo sync' WINCH\n")
	for _, s := range trapped {
		fmt.Fprintf(&b, "trap 'echo %s; exit 0' %s\n", s, s)
	}
	fmt.Fprintf(&b, "sleep %s &\necho ready\nwhile :; do wait; done\n", marker)
	return b.String()
}

// runSynced runs s, a syncScript, and calls act once the command is known
// to have set its traps: it sends SIGWINCH, which the shell ignores until
// then, until the command answers. It returns the lines the command printed
// besides "ready" and "sync".
func runSynced(t *testing.T, s *sandbox.Spec, act func(*sandbox.Process)) ([]string, sandbox.Status, error) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	all := make(chan string, 128)
	go func() {
		defer close(all)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			all <- sc.Text()
		}
		outR.Close()
	}()
	var got []string
	synced := false
	st, err := sandbox.Run(s, sandbox.Stdio{Stdout: outW}, func(p *sandbox.Process) {
		outW.Close() // the command holds its own copy: EOF if it dies
		deadline := time.Now().Add(pollBound)
		for !synced && time.Now().Before(deadline) {
			if err := p.Signal(syscall.SIGWINCH); err != nil {
				t.Errorf("Signal(SIGWINCH) = %v", err)
				return
			}
			select {
			case l, ok := <-all:
				if !ok {
					return
				}
				synced = l == "sync"
			case <-time.After(10 * time.Millisecond):
			}
		}
		if synced {
			act(p)
		} else {
			p.Signal(syscall.SIGKILL)
		}
	})
	outW.Close()
	for l := range all {
		if l != "sync" && l != "ready" {
			got = append(got, l)
		}
	}
	if !synced {
		t.Fatalf("the command never answered SIGWINCH: %v, %v, printed %q", st, err, got)
	}
	return got, st, err
}

// TestRunSignal sends every signal vm-run forwards (SIGWINCH in the
// handshake) through Process.Signal to a shell that traps it.
func TestRunSignal(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			m := newMarker()
			t.Cleanup(func() { waitGone(t, m) })
			name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
			s := b.sh(t, "strict", syncScript(m, name))
			var serr error
			got, st, err := runSynced(t, s, func(p *sandbox.Process) { serr = p.Signal(sig) })
			if serr != nil || err != nil || st != (sandbox.Status{}) || !slices.Equal(got, []string{name}) {
				t.Errorf("trap %s: Signal = %v; %v, %v, printed %q; want exit status 0, printed %q", name, serr, st, err, got, name)
			}
		})
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run("killed by "+sig.String(), func(t *testing.T) {
			t.Parallel()
			m := newMarker()
			t.Cleanup(func() { waitGone(t, m) })
			_, st, err := runSynced(t, b.sh(t, "strict", syncScript(m)), func(p *sandbox.Process) { p.Signal(sig) })
			if want := (sandbox.Status{Signal: int(sig)}); err != nil || st != want || st.ExitCode() != 128+int(sig) {
				t.Errorf("sh after Signal(%v): %v, %v; want %v, exit code %d", sig, st, err, want, 128+int(sig))
			}
			waitGone(t, m)
		})
	}
}

// TestRunSignalAtStart signals the command as soon as Run reports that it
// started, as happens when vm-run itself is signalled then (a client that
// stops a server it just started).
func TestRunSignalAtStart(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			for i := range 20 {
				// sleep dies of either signal; its argument bounds a
				// lost one.
				r := run(t, b.spec(t, "strict", "sleep", "10"), "", func(p *sandbox.Process) { p.Signal(sig) })
				if want := (sandbox.Status{Signal: int(sig)}); r.err != nil || r.st != want {
					t.Fatalf("try %d: sleep after Signal(%v) at start: %v, want %v", i, sig, r, want)
				}
			}
		})
	}
}

// TestRunForwardsSignals signals the test process itself, as a terminal or
// systemd signals vm-run: Run relays the signal to the command.
func TestRunForwardsSignals(t *testing.T) {
	// Not parallel: every running sandbox would get the signal.
	b := newBox(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1} {
		t.Run(sig.String(), func(t *testing.T) {
			m := newMarker()
			t.Cleanup(func() { waitGone(t, m) })
			name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
			got, st, err := runSynced(t, b.sh(t, "strict", syncScript(m, name)), func(*sandbox.Process) {
				syscall.Kill(os.Getpid(), sig)
			})
			if err != nil || st != (sandbox.Status{}) || !slices.Equal(got, []string{name}) {
				t.Errorf("vm-run got %s: the command %v, %v, printed %q; want exit status 0, printed %q", name, st, err, got, name)
			}
		})
	}
}

// TestParentDeath kills a vm-run parent (the test binary as parentArg0)
// while its sandbox runs: the init stage and everything in the sandbox must
// die with it.
func TestParentDeath(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	bg, daemon, cmd := newMarker(), newMarker(), newMarker()
	t.Cleanup(func() { waitGone(t, bg, daemon, cmd) })
	s := b.sh(t, "strict", fmt.Sprintf("sleep %s & setsid sleep %s & exec sleep %s", bg, daemon, cmd))
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	parent := &exec.Cmd{Path: exe, Args: []string{parentArg0}, Stdin: bytes.NewReader(spec), Stderr: &stderr}
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("the parent printed %q (%v), want %q; stderr: %s", line, err, "started\n", stderr.String())
	}
	waitPresent(t, bg, daemon, cmd)
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	waitGone(t, bg, daemon, cmd)
	if t.Failed() {
		t.Logf("the parent's stderr: %s", stderr.String())
	}
}
