package sandbox_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

func TestCheckNamespace(t *testing.T) {
	requireSandbox(t)
	for _, ns := range sandbox.Namespaces {
		if err := sandbox.CheckNamespace(ns); err != nil {
			t.Errorf("CheckNamespace(%s) = %v", ns.Name, err)
		}
	}
	// clone(2): CLONE_THREAD without CLONE_SIGHAND is EINVAL.
	if err := sandbox.CheckNamespace(sandbox.Namespace{Name: "invalid", Flag: unix.CLONE_THREAD}); err == nil {
		t.Errorf("CheckNamespace(CLONE_THREAD) = nil, want the clone error")
	}
}

func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	tests := []struct {
		script string
		want   sandbox.Status
		code   int
	}{
		{"exit 0", sandbox.Status{}, 0},
		{"exit 3", sandbox.Status{Code: 3}, 3},
		{"exit 255", sandbox.Status{Code: 255}, 255},
		{"kill -KILL $$", sandbox.Status{Signal: 9}, 137},
		{"kill -TERM $$", sandbox.Status{Signal: 15}, 143},
		{"kill -SEGV $$", sandbox.Status{Signal: 11}, 139},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			t.Parallel()
			r := run(t, b.sh(t, "strict", tt.script), "", nil)
			if r.err != nil || r.st != tt.want || r.st.ExitCode() != tt.code {
				t.Errorf("sh -c %q: %v, exit code %d; want %v, exit code %d", tt.script, r, r.st.ExitCode(), tt.want, tt.code)
			}
		})
	}
}

// TestRunStartErrors covers commands that cannot be started: the error
// carries the shell's exit status for the case, and no command runs.
func TestRunStartErrors(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	b.writeFile(t, filepath.Join(b.ws, "noexec.sh"), "#!/bin/sh\necho ran\n", 0o644)
	b.writeFile(t, filepath.Join(b.ws, "badinterp.sh"), "#!/no/such/interpreter\necho ran\n", 0o755)
	b.writeFile(t, filepath.Join(b.ws, "ok.sh"), "#!/bin/sh\necho ran\n", 0o755)
	hidden := filepath.Join(b.root, "hidden.sh") // under the hidden /tmp
	b.writeFile(t, hidden, "#!/bin/sh\necho ran\n", 0o755)
	tests := []struct {
		name string
		argv []string
		code int // 0: runs and prints "ran"
	}{
		{"script in the workspace", []string{filepath.Join(b.ws, "ok.sh")}, 0},
		{"name not in PATH", []string{"vm-run-no-such-command"}, sandbox.ExitNotFound},
		{"path that does not exist", []string{"/usr/bin/vm-run-no-such-command"}, sandbox.ExitNotFound},
		{"interpreter that does not exist", []string{filepath.Join(b.ws, "badinterp.sh")}, sandbox.ExitNotFound},
		{"file without execute permission", []string{filepath.Join(b.ws, "noexec.sh")}, sandbox.ExitNotExecutable},
		{"directory", []string{"/usr/bin"}, sandbox.ExitNotExecutable},
		{"hidden by the private temp dir", []string{hidden}, sandbox.ExitNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, b.spec(t, "strict", tt.argv...), "", nil)
			if tt.code == 0 {
				if r.err != nil || r.st != (sandbox.Status{}) || r.stdout != "ran\n" {
					t.Errorf("run %q: %v, want it to print %q", tt.argv, r, "ran\n")
				}
				return
			}
			if r.stdout != "" {
				t.Errorf("run %q printed %q, want nothing", tt.argv, r.stdout)
			}
			wantSetupError(t, r.err, tt.code)
		})
	}
}

// TestRunExecDenied runs an executable file that Landlock lets the sandbox
// read but not execute: the workspace granted read-only, not exec.
func TestRunExecDenied(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	script := filepath.Join(b.ws, "ok.sh")
	b.writeFile(t, script, "#!/bin/sh\necho ran\n", 0o755)
	p := b.profile(t, "strict")
	exec := p.Filesystem.Exec[:0]
	for _, e := range p.Filesystem.Exec {
		if e != b.ws {
			exec = append(exec, e)
		}
	}
	p.Filesystem.Exec = exec
	p.Filesystem.Read = append(p.Filesystem.Read, b.ws)
	for _, argv := range [][]string{{script}, {"/bin/sh", "-c", script}, {"/bin/sh", "-c", "cat " + script}} {
		s, err := sandbox.Build(p, b.options(argv...))
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		r := run(t, s, "", nil)
		switch argv[len(argv)-1] {
		case script:
			if argv[0] == script {
				wantSetupError(t, r.err, sandbox.ExitNotExecutable, "beneath no path the profile grants under filesystem.exec (Landlock)")
			} else if r.err != nil || r.st.Code != sandbox.ExitNotExecutable {
				t.Errorf("sh -c %q: %v, want exit status %d", script, r, sandbox.ExitNotExecutable)
			}
		default:
			if r.err != nil || r.stdout != "#!/bin/sh\necho ran\n" {
				t.Errorf("cat %q: %v, want the script", script, r)
			}
		}
	}
}

// TestRunSetupErrors covers sandboxes the init stage cannot build: it
// reports why over the channel.
func TestRunSetupErrors(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	tests := []struct {
		name  string
		edit  func(*sandbox.Spec)
		words []string
	}{
		{
			name:  "unknown landlock feature",
			edit:  func(s *sandbox.Spec) { s.Landlock.Require = append(s.Landlock.Require, landlock.Feature("teleport")) },
			words: []string{"landlock", "teleport"},
		},
		{
			name:  "unknown syscall group",
			edit:  func(s *sandbox.Spec) { s.Seccomp.Allow = []string{"teleport"} },
			words: []string{"teleport"},
		},
		{
			name:  "kept path gone",
			edit:  func(s *sandbox.Spec) { s.Keep = append(s.Keep, sandbox.Keep{Path: filepath.Join(b.root, "gone")}) },
			words: []string{"mounts", filepath.Join(b.root, "gone")},
		},
	}
	if os.Getuid() != 0 {
		tests = append(tests, struct {
			name  string
			edit  func(*sandbox.Spec)
			words []string
		}{"another user's ids", func(s *sandbox.Spec) { s.UID++ }, []string{"root"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := b.sh(t, "strict", "echo ran")
			tt.edit(s)
			r := run(t, s, "", nil)
			if r.stdout != "" {
				t.Errorf("the command ran: %v", r)
			}
			wantSetupError(t, r.err, sandbox.ExitSetup, tt.words...)
		})
	}
}

// TestRunMissingDir starts a command whose working directory is gone: the
// error must name the directory, not blame the command.
func TestRunMissingDir(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	s := b.sh(t, "strict", "echo ran")
	s.Dir = filepath.Join(b.ws, "gone")
	r := run(t, s, "", nil)
	var se *sandbox.SetupError
	if !errors.As(r.err, &se) {
		t.Fatalf("run in a missing dir: %v, want a *sandbox.SetupError", r)
	}
	if se.Code != sandbox.ExitSetup || !strings.Contains(se.Error(), s.Dir) {
		t.Errorf("run in a missing dir: code %d, %q; want code %d naming %q", se.Code, se.Error(), sandbox.ExitSetup, s.Dir)
	}
}

func TestRunStdio(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	r := run(t, b.sh(t, "strict", "cat; echo to-stderr >&2; pwd"), "from stdin\n", nil)
	if r.err != nil || r.st != (sandbox.Status{}) {
		t.Fatalf("run: %v", r)
	}
	if want := "from stdin\n" + b.ws + "\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if r.stderr != "to-stderr\n" {
		t.Errorf("stderr = %q, want %q", r.stderr, "to-stderr\n")
	}
}

// TestRunLimits checks the strict profile's rlimits inside the sandbox.
func TestRunLimits(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	p := b.profile(t, "strict")
	if p.Limits.NoFile == nil || p.Limits.Core == nil {
		t.Fatalf("strict profile limits %+v, want nofile and core set", p.Limits)
	}
	out := mustRun(t, b.sh(t, "strict", "ulimit -n; ulimit -Hn; ulimit -c; ulimit -Hc"))
	want := fmt.Sprintf("%d\n%d\n%d\n%d\n", *p.Limits.NoFile, *p.Limits.NoFile, *p.Limits.Core, *p.Limits.Core)
	if out != want {
		t.Errorf("ulimit -n, -Hn, -c, -Hc = %q, want %q", out, want)
	}
}

// TestRunTmpDirNotHidden runs a profile that does not list the private
// temp dir under hide, with the workspace in the host's temp dir: the init
// stage covers the temp dir all the same, so the workspace must still be
// bind-mounted back.
func TestRunTmpDirNotHidden(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	yaml := `
name: nohide
filesystem:
  exec: [/usr, "/bin?", "/lib?", "/lib64?", "${WORKSPACE}"]
  read: [/etc, /proc]
  write: ["${TMPDIR}"]
  devices: [/dev/null]
network: none
env:
  pass: [PATH]
`
	p, err := new(profiles.Loader).Parse("nohide.yaml", []byte(yaml), b.vars())
	if err != nil {
		t.Fatal(err)
	}
	s, err := sandbox.Build(p, b.options("/bin/sh", "-c", "pwd"))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	r := run(t, s, "", nil)
	if r.err != nil || r.stdout != b.ws+"\n" {
		t.Errorf("pwd with the workspace in the unlisted temp dir: %v, want %q", r, b.ws+"\n")
	}
}

// TestRunRuleThroughSymlink grants a directory by a symlink that lives in
// a hidden directory: Build keeps the target, and the sandbox must start
// with the target readable.
func TestRunRuleThroughSymlink(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	data, link := filepath.Join(b.root, "data"), filepath.Join(b.root, "link")
	b.mkdir(t, data, true)
	b.writeFile(t, filepath.Join(data, "f"), "data\n", 0o644)
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	p := b.profile(t, "strict")
	p.Filesystem.Read = append(p.Filesystem.Read, link)
	r := run(t, b.build(t, p, "cat", filepath.Join(data, "f")), "", nil)
	if r.err != nil || r.stdout != "data\n" {
		t.Errorf("cat the granted symlink's target: %v, want %q", r, "data\n")
	}
}
