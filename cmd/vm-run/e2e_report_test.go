//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/testkit"
	"github.com/vm-run/vm-run/landlock"
)

// TestE2ELandlockDenials: a command that fails because Landlock refused it
// a file it never named on its command line (a script reading a secret,
// as a Python venv's interpreter reads pyvenv.cfg) makes vm-run name the
// path and the refused right, on stderr and in session_end, from the
// kernel's own audit records. Audit is switched on for the test if it was
// off, and switched back. The probe: the same script reads the file
// without vm-run, as the sandbox's user.
func TestE2ELandlockDenials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("Landlock's denial records come through the kernel's audit, which only root (CAP_AUDIT_READ) may read")
	}
	testkit.RequireLandlockABI(t, 7) // denial logging came with ABI 7
	e := setupE2E(t)
	if ok, why := landlock.AuditStatus(); !ok {
		// Switching the machine's audit on is for CI, or when asked:
		// two test runs at once could switch it off under each other.
		if os.Getenv("CI") != "true" && os.Getenv("VMRUN_TOGGLE_AUDIT") == "" {
			t.Skipf("Landlock's denial records need the kernel's audit (%s); CI=true or VMRUN_TOGGLE_AUDIT=1 lets the test switch it on for its run", why)
		}
		if err := landlock.SetAuditEnabled(true); err != nil {
			failOnCI(t, "the kernel's audit cannot be enabled (%s): %v", why, err)
		}
		t.Cleanup(func() {
			if err := landlock.SetAuditEnabled(false); err != nil {
				t.Errorf("switch audit back off: %v", err)
			}
		})
	}
	b := newBox(t)
	secret := filepath.Join(e.outsideDir(t), "secret.txt")
	script := b.file(t, "read.sh", fmt.Sprintf("#!/bin/sh\nexec cat %s\n", secret))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := exec.Command("setpriv", "--reuid", fmt.Sprint(sandboxUID), "--regid", fmt.Sprint(sandboxUID), "--clear-groups", script)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Fatalf("the probe without vm-run: %v\n%s", err, out)
	}

	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	cmd := exec.Command(e.bin, "--profile", "strict", "--workspace", b.ws, "--ledger", ledger, "--no-proxy", "--", script)
	out, _ := cmd.CombinedOutput()
	want := "vm-run:   fs.read_file " + secret
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "Landlock refused the sandbox") ||
		!strings.Contains(string(out), want+"\n") || !strings.Contains(string(out), "filesystem.read") {
		t.Fatalf("vm-run -- %s: exit %d\n%s\nwant exit 1 and %q with a hint", script, cmd.ProcessState.ExitCode(), out, want)
	}
	s := &e2eSession{ledger: ledger}
	ends := s.records(t, audit.EventSessionEnd)
	if len(ends) != 1 {
		t.Fatalf("%d session_end records, want 1", len(ends))
	}
	end, err := audit.ReadEvent[audit.SessionEnd](ends[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(end.LandlockDenials) != 1 || end.LandlockDenials[0] != (audit.LandlockDenial{Blockers: "fs.read_file", Object: secret, Count: 1}) {
		t.Errorf("session_end landlock_denials = %+v, want one fs.read_file of %s", end.LandlockDenials, secret)
	}

	// The control: a session that is refused nothing records nothing.
	ok := b.file(t, "ok.sh", "#!/bin/sh\nexit 2\n")
	if err := os.Chmod(ok, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(e.bin, "--profile", "strict", "--workspace", b.ws, "--ledger", ledger, "--no-proxy", "--", ok)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || strings.Contains(string(out), "Landlock refused") {
		t.Errorf("a session refused nothing: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	ends = s.records(t, audit.EventSessionEnd)
	if end, err := audit.ReadEvent[audit.SessionEnd](ends[len(ends)-1]); err != nil || len(ends) != 2 || end.LandlockDenials != nil {
		t.Errorf("the control's session_end (of %d): %+v, %v; want no landlock_denials", len(ends), end, err)
	}
}

// failOnCI fails t on CI, where nothing this machine supports may be
// skipped, and skips it elsewhere.
func failOnCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestE2EDoctor runs `vm-run doctor` as the user runs it: every built-in
// profile launches here (as root, with the private home root's sandbox
// user gets, whatever root's home holds), or, for a user without a
// delegated cgroup, fails for that documented reason alone.
func TestE2EDoctor(t *testing.T) {
	e := setupE2E(t)
	cmd := exec.Command(e.bin, "doctor")
	out, _ := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if os.Getuid() != 0 && strings.Contains(string(out), "no cgroup is delegated to this user") {
		if code != 1 || !strings.Contains(string(out), "the strict profile cannot be enforced") {
			t.Errorf("vm-run doctor without a delegated cgroup: exit %d\n%s\nwant exit 1 saying strict cannot be enforced", code, out)
		}
		return
	}
	if code != 0 {
		t.Fatalf("vm-run doctor: exit %d\n%s", code, out)
	}
	for _, name := range []string{"strict", "standard", "dev", "server-memory"} {
		if !regexp.MustCompile(`(?m)^` + name + ` +yes +launched /bin/true`).Match(out) {
			t.Errorf("vm-run doctor: profile %s not launched:\n%s", name, out)
		}
	}
	if !strings.Contains(string(out), "landlock denial records") {
		t.Errorf("vm-run doctor says nothing of Landlock's denial records:\n%s", out)
	}
	// Where the device opens, doctor really launches a sandbox that makes
	// its own TUN device, the step user-namespace policies can refuse.
	if f, err := os.OpenFile(tunDevice, os.O_RDWR, 0); err == nil {
		f.Close()
		if !regexp.MustCompile(`(?m)^network mode egress +ok +a sandbox created its TUN device`).Match(out) {
			t.Errorf("vm-run doctor: no launched egress probe:\n%s", out)
		}
	}
}
