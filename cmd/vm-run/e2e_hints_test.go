package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestE2EHintsWork runs a program the sandbox's user cannot reach, for
// both reasons at once: a directory on its path that this user may not
// search (as root: mode 0700, as /root is, which nobody, who runs the
// command for root, may not search; otherwise mode 0600, which stops even
// its owner), and no grant of the profile. vm-run's error names both, and
// doing exactly what its hint says makes the next run work; the program
// itself runs without vm-run once the permissions allow it (the probe).
func TestE2EHintsWork(t *testing.T) {
	e := setupE2E(t)
	b := newBox(t)
	dir := filepath.Join(filepath.Dir(b.ws), "tools")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(dir, "tool.sh")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	closed := os.FileMode(0o600)
	if os.Getuid() == 0 {
		closed = 0o700
	}
	if err := os.Chmod(dir, closed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	run := func(profile string) (string, int) {
		cmd := exec.Command(e.bin, "--profile", profile, "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "ledger.jsonl"), "--no-proxy", "--", tool)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("strict")
	chmod := regexp.MustCompile(`chmod ([ugo]\+[rwx]+) (\S+?)\)`).FindStringSubmatch(out)
	grant := regexp.MustCompile(`add (\S+), or a directory above it, to filesystem\.exec`).FindStringSubmatch(out)
	if code != 126 && code != 127 || chmod == nil || chmod[2] != dir || grant == nil || grant[1] != dir ||
		!strings.Contains(out, "the file system's permissions; and it is beneath no path the profile grants under filesystem.exec (Landlock)") {
		t.Fatalf("vm-run -- %s: exit %d\n%s\nwant 126 or 127 (under a hidden directory), both causes, a chmod of %s and a grant", tool, code, out, dir)
	}

	// Do what the hint says.
	if out, err := exec.Command("chmod", chmod[1], chmod[2]).CombinedOutput(); err != nil {
		t.Fatalf("chmod %s %s: %v\n%s", chmod[1], chmod[2], err, out)
	}
	probe := exec.Command(tool)
	if os.Getuid() == 0 {
		probe = exec.Command("setpriv", "--reuid", fmt.Sprint(sandboxUID), "--regid", fmt.Sprint(sandboxUID), "--clear-groups", tool)
	}
	if got, err := probe.CombinedOutput(); err != nil || string(got) != "ran\n" {
		t.Fatalf("the probe without vm-run after the chmod: %q, %v; want it to run", got, err)
	}
	out, code = run("strict")
	if code != 126 && code != 127 || strings.Contains(out, "permissions") || grant == nil {
		t.Fatalf("after the chmod: exit %d\n%s\nwant the grant alone missing", code, out)
	}
	profile := b.config(t, "tools.yaml", fmt.Sprintf("extends: strict\nfilesystem:\n  exec: [%q]\n", grant[1]))
	if out, code = run(profile); code != 0 || out != "ran\n" {
		t.Errorf("with the grant: exit %d\n%s\nwant the program to run", code, out)
	}
}
