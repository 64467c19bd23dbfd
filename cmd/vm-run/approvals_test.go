//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/testkit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/sandbox"
)

// approvalSocket serves an approval socket in a private runtime directory
// of the test's, which XDG_RUNTIME_DIR names for the vm-run commands the
// test runs.
func approvalSocket(t *testing.T) *approval.Socket {
	t.Helper()
	rt := filepath.Join(t.TempDir(), "runtime")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", rt)
	s, err := approval.Listen(approval.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// asked asks q on s in the background; the answer comes on the channel.
func asked(t *testing.T, s *approval.Socket, q approval.Question) <-chan approval.Answer {
	t.Helper()
	w, err := approval.Dial(t.Context(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	ch := make(chan approval.Answer, 1)
	go func() {
		a, err := s.Ask(context.Background(), q)
		if err != nil {
			t.Errorf("Ask: %v", err)
		}
		ch <- a
	}()
	for ev := range w.Events() {
		if ev.Type == approval.EventAsked && ev.Question.ID == q.ID {
			return ch
		}
	}
	t.Fatalf("watch ended before %s was asked: %v", q.ID, w.Err())
	return nil
}

// openPTY returns a pseudo-terminal's master and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestApprovalsCLI drives the commands as a person does: list and deny
// from any shell, approve only from a terminal, with the code it shows.
func TestApprovalsCLI(t *testing.T) {
	s := approvalSocket(t)
	bin := os.Getenv("VMRUN_BIN")
	if bin == "" {
		bin = buildVMRun(t)
	}
	q := approval.Question{ID: approval.NewID(), Server: "test: probe", Kind: "tool", Name: "write_file",
		Args: map[string]any{"path": "src/\x1b[2Jmain.go"}, Rule: "ask-writes", Reason: "writes need a person"}
	answer := asked(t, s, q)

	out, err := exec.Command(bin, "approvals", "list", "--json").Output()
	var listed []listed
	if err != nil || json.Unmarshal(out, &listed) != nil || len(listed) != 1 || listed[0].Question.ID != q.ID || listed[0].PID != os.Getpid() {
		t.Fatalf("approvals list --json = %s, %v; want %s waiting in pid %d", out, err, q.ID, os.Getpid())
	}
	out, _ = exec.Command(bin, "approvals", "list").Output()
	if !strings.Contains(string(out), q.ID) || strings.Contains(string(out), "\x1b") {
		t.Fatalf("approvals list = %q, want %s listed, escapes escaped", out, q.ID)
	}

	// A tool shell: pipes, no controlling terminal.
	cmd := exec.Command(bin, "approvals", "approve", q.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err = cmd.CombinedOutput()
	if code := exitCodeOf(err); code != sandbox.ExitSetup || !strings.Contains(string(out), "vm-run: error: approving needs a terminal") ||
		!strings.Contains(string(out), "vm-run: hint: ") {
		t.Fatalf("approve without a terminal = exit %d\n%s\nwant %d and the error with a hint", code, out, sandbox.ExitSetup)
	}

	// A person at a terminal: reads the code, types it.
	master, slave := openPTY(t)
	tty, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	cmd = exec.Command(bin, "approvals", "approve", q.ID)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	shown := readUntil(t, master, "press Enter")
	_, code, ok := strings.Cut(shown, "type the code ")
	if !ok || len(code) < 6 {
		t.Fatalf("the terminal showed %q, want the code", shown)
	}
	code = code[:6]
	if strings.Contains(shown, "\x1b[2J") {
		t.Fatalf("the terminal showed a raw escape sequence of the arguments: %q", shown)
	}
	fmt.Fprintf(master, "%s\n", strings.ToLower(code))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("approve at a terminal: %v\n%s", err, readUntil(t, master, ""))
	}
	a := <-answer
	want := approval.Answer{Granted: true, Scope: audit.ScopeOnce, Channel: audit.ChannelCLI,
		By: fmt.Sprintf("uid=%d pid=%d", os.Geteuid(), cmd.Process.Pid)}
	if a != want {
		t.Fatalf("answer = %+v, want %+v", a, want)
	}

	// Deny works from any shell, and unknown IDs say so.
	q.ID = approval.NewID()
	answer = asked(t, s, q)
	if out, err := exec.Command(bin, "approvals", "deny", q.ID, "--reason", "no").CombinedOutput(); err != nil {
		t.Fatalf("approvals deny: %v\n%s", err, out)
	}
	if a := <-answer; a.Granted || a.Reason != "no" || a.Channel != audit.ChannelCLI {
		t.Fatalf("answer = %+v, want denied with reason no", a)
	}
	out, err = exec.Command(bin, "approvals", "deny", q.ID).CombinedOutput()
	if exitCodeOf(err) != sandbox.ExitSetup || !strings.Contains(string(out), "is waiting on question") {
		t.Fatalf("deny of an answered question = %v\n%s\nwant an error naming it", err, out)
	}
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// readUntil reads the terminal until it shows marker ("" to the end).
func readUntil(t *testing.T, r io.Reader, marker string) string {
	t.Helper()
	var b strings.Builder
	br := bufio.NewReader(r)
	for marker == "" || !strings.Contains(b.String(), marker) {
		c, err := br.ReadByte()
		if err != nil {
			if marker != "" {
				t.Fatalf("the terminal ended before %q: %v\n%s", marker, err, b.String())
			}
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TestE2EApprovalSocketUnreachable: a sandboxed probe tries to reach a
// live approval socket by its path, and an abstract unix socket by name,
// and fails under each built-in profile, while the same probe without
// vm-run reaches both.
func TestE2EApprovalSocketUnreachable(t *testing.T) {
	for _, ns := range sandbox.Namespaces {
		if err := sandbox.CheckNamespace(ns); err != nil {
			t.Skipf("needs a new user namespace with a %s namespace for uid %d: %v", ns.Name, os.Getuid(), err)
		}
	}
	home, _ := os.UserHomeDir()
	strict, err := profiles.Load("strict", profiles.Vars{Workspace: "/nonexistent/workspace", Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strict.Landlock.Require {
		testkit.RequireLandlockFeature(t, f)
	}
	bin := os.Getenv("VMRUN_BIN")
	if bin == "" {
		bin = buildVMRun(t)
	}
	s := approvalSocket(t)
	sockToken := filepath.Base(s.Path()) // the hello names the socket

	// The approval socket has no abstract name; this listener shows that
	// the sandbox cannot reach one either.
	name := "vm-run-approval-test-" + approval.NewID()
	absToken := approval.NewID()
	ln, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(absToken + "\n"))
			c.Close()
		}
	}()

	// The probe is vm-run itself under the probe's argv[0], copied into a
	// workspace the sandbox's uid can run it from.
	b := newBox(t)
	probe := filepath.Join(b.ws, "vm-run:probe")
	copyExecutable(t, bin, probe)
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	attacks := []struct {
		what string
		args []string
	}{
		{"the approval socket by path", []string{"unix", "path=" + s.Path(), "token=" + sockToken}},
		{"an abstract unix socket", []string{"unix", "name=" + name, "token=" + absToken}},
	}
	for _, a := range attacks {
		base := exec.Command(probe, a.args...)
		base.Args[0] = "vm-run:probe"
		if v := probeVerdict(t, base); !v.Escaped {
			t.Fatalf("without vm-run, the probe did not reach %s: %+v", a.what, v)
		}
		for _, profile := range []string{"strict", "dev"} {
			cmd := exec.Command(bin, "--profile", profile, "--workspace", b.ws, "--no-proxy", "--ledger", ledger,
				"--env", "PATH="+b.ws, "--", "vm-run:probe")
			cmd.Args = append(cmd.Args, a.args...)
			if v := probeVerdict(t, cmd); v.Escaped || v.Error != "" {
				t.Errorf("under %s, the probe reached %s: %+v", profile, a.what, v)
			} else {
				t.Logf("under %s, %s: blocked by %s (%s)", profile, a.what, v.Mechanism, v.Detail)
			}
		}
	}
	// The socket served the baseline and lives on.
	if c, err := approval.Dial(t.Context(), s.Path()); err != nil {
		t.Fatalf("the approval socket after the probes: %v", err)
	} else {
		c.Close()
	}
}

type verdict struct {
	Escaped   bool   `json:"escaped"`
	Detail    string `json:"detail"`
	Mechanism string `json:"mechanism"`
	Error     string `json:"error"`
}

func probeVerdict(t *testing.T, cmd *exec.Cmd) verdict {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var v verdict
	if jerr := json.Unmarshal(out, &v); jerr != nil {
		t.Fatalf("%v: %v, output %q: %v\n%s", cmd.Args, err, out, jerr, stderr.String())
	}
	return v
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
