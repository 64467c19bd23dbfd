//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2EOtherRuntimes runs the README's worked examples of servers that
// are not npm packages, kept outside the workspace as users keep them: a
// Python server run by a virtual environment's interpreter, and a Go
// binary built with the official Go SDK. Without a grant each fails the
// way the README shows and vm-run names the path to grant; with the
// README's profile each serves the official Go SDK client. The probes:
// both run without vm-run as the sandbox's user.
func TestE2EOtherRuntimes(t *testing.T) {
	e := setupE2E(t)
	t.Run("python venv", func(t *testing.T) { t.Parallel(); e.testPythonVenv(t) })
	t.Run("go binary", func(t *testing.T) { t.Parallel(); e.testGoBinary(t) })
}

func (e *e2e) testPythonVenv(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		failOnCI(t, "needs python3 with its venv module (scripts/setup.sh installs python3-venv): %v", err)
	}
	b := newBox(t)
	home := e.outsideTemp(t)
	venv, servers := filepath.Join(home, "venvs", "notes"), filepath.Join(home, "servers")
	if out, err := exec.Command("python3", "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		failOnCI(t, "python3 -m venv (needs python3-venv): %v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "scripts", "examples", "notes-py", "notes_server.py"))
	if err != nil {
		t.Fatal(err)
	}
	server := filepath.Join(servers, "notes_server.py")
	if err := os.MkdirAll(servers, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(server, src, 0o644); err != nil {
		t.Fatal(err)
	}
	python := filepath.Join(venv, "bin", "python")
	if out, err := asSandboxUser(python, "-c", "import sys; print(sys.prefix)").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != venv {
		t.Fatalf("the probe: the venv's python without vm-run: %q, %v; want %s", out, err, venv)
	}
	// The server writes notes.txt in the workspace.
	if err := os.Chmod(b.ws, 0o777); err != nil {
		t.Fatal(err)
	}

	// standard grants neither the venv nor the script.
	cmd := exec.Command(e.bin, "--profile", "standard", "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "refused.jsonl"), "--", python, server)
	out, _ := cmd.CombinedOutput()
	cfg := filepath.Join(venv, "pyvenv.cfg")
	for _, want := range []string{
		fmt.Sprintf("vm-run: warning: the command will not be able to read %q", cfg),
		fmt.Sprintf("vm-run: hint: add %s, or a directory above it, to filesystem.read", venv),
		fmt.Sprintf("vm-run: hint: add %s, or a directory above it, to filesystem.read", servers),
		"PermissionError",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("vm-run --profile standard -- %s %s: exit %d, want %q in\n%s", python, server, cmd.ProcessState.ExitCode(), want, out)
		}
	}

	// The README's profile.
	prof := b.config(t, "notes.yaml", fmt.Sprintf(`extends: standard
filesystem:
  read:
    - %s
    - %s
tools:
  rules:
    - id: notes
      allow: [add_note, list_notes]
`, venv, servers))
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{python, server}})
	if got := s.tools(t); !slices.Equal(got, []string{"add_note", "list_notes"}) {
		t.Errorf("tools/list = %v, want add_note and list_notes", got)
	}
	s.wantAllowed(t, "add_note", map[string]any{"text": "buy milk"})
	if got := s.wantAllowed(t, "list_notes", map[string]any{}); got != "buy milk\n" {
		t.Errorf("list_notes = %q, want the note", got)
	}
	if got, err := os.ReadFile(filepath.Join(b.ws, "notes.txt")); err != nil || string(got) != "buy milk\n" {
		t.Errorf("notes.txt on the host = %q, %v", got, err)
	}
	s.close(t)
}

func (e *e2e) testGoBinary(t *testing.T) {
	b := newBox(t)
	bindir := filepath.Join(e.outsideTemp(t), "bin")
	bin := filepath.Join(bindir, "wordcount")
	// VMRUN_WORDCOUNT is one built already, for a user without go
	// (scripts/test.sh's unprivileged pass).
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "scripts", "examples", "wordcount-go")
	if prebuilt := os.Getenv("VMRUN_WORDCOUNT"); prebuilt != "" {
		build = exec.Command("install", "-D", "-m", "0755", prebuilt, bin)
	} else if _, err := exec.LookPath("go"); err != nil {
		failOnCI(t, "needs go to build the example server, or VMRUN_WORDCOUNT: %v", err)
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build.Args, err, out)
	}
	if err := os.Chmod(bindir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.file(t, "notes.txt", "three words here\n")
	// The probe: the binary runs as the sandbox's user without vm-run
	// (it answers an empty input by exiting cleanly).
	probe := asSandboxUser(bin)
	probe.Stdin = strings.NewReader("")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Fatalf("the probe: %s without vm-run: %v\n%s", bin, err, out)
	}

	cmd := exec.Command(e.bin, "--profile", "strict", "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "refused.jsonl"), "--", bin)
	out, _ := cmd.CombinedOutput()
	want := fmt.Sprintf("vm-run: hint: add %s, or a directory above it, to filesystem.exec", bindir)
	if cmd.ProcessState.ExitCode() != 126 || !strings.Contains(string(out), want) {
		t.Errorf("vm-run --profile strict -- %s: exit %d\n%s\nwant 126 and %q", bin, cmd.ProcessState.ExitCode(), out, want)
	}

	prof := b.config(t, "wordcount.yaml", fmt.Sprintf(`extends: strict
filesystem:
  exec: [%q]
tools:
  rules:
    - id: wordcount
      allow: [count_words]
`, bin))
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{bin}})
	if got := s.tools(t); !slices.Equal(got, []string{"count_words"}) {
		t.Errorf("tools/list = %v, want count_words", got)
	}
	if got := s.wantAllowed(t, "count_words", map[string]any{"path": "notes.txt"}); got != "3 words in notes.txt" {
		t.Errorf("count_words = %q", got)
	}
	s.close(t)
}

// asSandboxUser runs a command as vm-run's command would run: as this
// user, or as root as the sandbox's nobody.
func asSandboxUser(name string, args ...string) *exec.Cmd {
	if os.Getuid() != 0 {
		return exec.Command(name, args...)
	}
	return exec.Command("setpriv", slices.Concat([]string{"--reuid", fmt.Sprint(sandboxUID), "--regid", fmt.Sprint(sandboxUID), "--clear-groups", name}, args)...)
}

// outsideTemp returns a new empty directory, readable by every uid, that
// the strict profile neither hides nor grants: where a user keeps servers
// outside the workspace (~/venvs, ~/bin). As root it is under /var/lib,
// otherwise in the home directory.
func (e *e2e) outsideTemp(t *testing.T) string {
	t.Helper()
	parent := "/var/lib"
	if os.Getuid() != 0 {
		parent, _ = os.UserHomeDir()
	}
	dir, err := os.MkdirTemp(parent, "vm-run-e2e-home-")
	if err != nil {
		failOnCI(t, "needs a directory outside the workspace that strict neither hides nor grants: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if why := e.hiddenOrGranted(dir); why != "" {
		failOnCI(t, "needs a directory outside the workspace that strict neither hides nor grants: %s", why)
	}
	return dir
}
