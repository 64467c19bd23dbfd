package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/landlock"
)

// TestReach: a file the command's uid cannot reach is reported with every
// component that stops it and the chmod for each; one outside the grants
// with the grant; one both with both; a reachable one not at all. The
// modes are checked as the kernel checks them for a process without
// capabilities, so the test needs no privilege: it asks about a uid that
// is not the caller's.
func TestReach(t *testing.T) {
	root := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(root, path)
		if strings.HasSuffix(path, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return filepath.Clean(p)
	}
	// The way down to root must be searchable for the test to mean
	// anything: the test's own directories are made so (t.TempDir makes
	// them 0700), and the rest is /tmp.
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for d := root; d != "/"; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s is not searchable by others", d)
		}
	}
	mk("granted/", 0o755)
	mk("granted/closed/", 0o750)
	closedFile := mk("granted/closed/tool", 0o755)
	unreadable := mk("granted/secret.py", 0o600)
	fine := mk("granted/tool", 0o755)
	mk("other/", 0o755)
	outside := mk("other/tool", 0o755)

	uid := os.Getuid() + 4242 // someone else: neither owner nor in the group
	s := &Spec{UID: uid, GID: uid, Dir: root, Landlock: landlock.Rules{Exec: []string{filepath.Join(root, "granted")}}}

	if u := s.Reach(fine, true); u != nil {
		t.Errorf("Reach(%s) = %v, want nil", fine, u)
	}
	u := s.Reach(closedFile, true)
	if u == nil || len(u.Blocked) != 1 || u.Blocked[0].Path != filepath.Dir(closedFile) || u.Blocked[0].Chmod != "o+x" || u.Landlock != "" {
		t.Fatalf("Reach(%s) = %+v, want the closed directory, o+x", closedFile, u)
	}
	if h := u.Hint(); !strings.Contains(h, "chmod o+x "+filepath.Dir(closedFile)) {
		t.Errorf("hint %q does not give the chmod", h)
	}
	u = s.Reach("granted/secret.py", false)
	if u == nil || len(u.Blocked) != 1 || u.Blocked[0].Path != unreadable || u.Blocked[0].Chmod != "o+r" {
		t.Errorf("Reach(relative unreadable) = %+v, want the file, o+r", u)
	}
	u = s.Reach(outside, true)
	if u == nil || len(u.Blocked) != 0 || u.Landlock != "filesystem.exec" ||
		!strings.Contains(u.Hint(), "add "+filepath.Dir(outside)+", or a directory above it, to filesystem.exec") {
		t.Errorf("Reach(%s) = %+v (hint %q), want the missing exec grant", outside, u, u.Hint())
	}
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	u = s.Reach(outside, true)
	if u == nil || len(u.Blocked) != 1 || u.Landlock == "" || !strings.Contains(u.Reason(), "; and ") {
		t.Errorf("Reach(%s) = %+v, want both causes", outside, u)
	}
	if u := s.Reach(filepath.Join(root, "absent"), true); u != nil {
		t.Errorf("Reach(absent) = %v, want nil: nothing to say about a file that is not there", u)
	}

	// The owner's bits apply to the owner, whatever the others may do.
	own := &Spec{UID: os.Getuid(), GID: os.Getgid(), Dir: root, Landlock: s.Landlock}
	if u := own.Reach(unreadable, false); u != nil {
		t.Errorf("owner: Reach(%s) = %+v, want nil", unreadable, u)
	}

	// Unreachables: arguments that are files, not the program itself.
	s.Path, s.Args = fine, []string{fine, "-v", "granted/secret.py", "not-a-file", outside}
	var got []string
	for _, u := range s.Unreachables() {
		got = append(got, u.Path)
	}
	if want := []string{unreadable, outside}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Unreachables() = %q, want %q", got, want)
	}
}

// TestReachPrivateHome: beneath a private home, the home itself (mode
// 0700 on the host, as /root is) does not stop the command, which has a
// home of its own there; a tree brought back is judged from its root down;
// an overlaid cache, idmapped to the command, not at all; a path in no
// tree is not there inside, hidden with the home.
func TestReachPrivateHome(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(root, "home")
	mk := func(path string, mode os.FileMode, dir bool) string {
		t.Helper()
		p := filepath.Join(home, path)
		if dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("", 0o700, true)
	ws := mk("ws", 0o755, true)
	script := mk("ws/server.js", 0o644, false)
	mk("ws/closed", 0o700, true)
	closed := mk("ws/closed/x.js", 0o644, false)
	cache := mk(".npm", 0o700, true)
	cached := mk(".npm/pkg.js", 0o600, false)
	other := mk("other.js", 0o644, false)
	granted := mk("ws/one.js", 0o644, false) // granted as a file, not a directory

	uid := os.Getuid() + 4242
	s := &Spec{UID: uid, GID: uid, Dir: ws, PrivateHome: home, Hide: []string{home},
		Keep:    []Keep{{Path: ws}},
		Overlay: []string{cache},
		// As Build grants it: the home itself is writable (its tmpfs).
		Landlock: landlock.Rules{Read: []string{ws, cache, granted}, Write: []string{home}}}
	if u := s.Reach(script, false); u != nil {
		t.Errorf("Reach(%s) in the workspace brought back = %v, want nil: the home's mode does not apply inside", script, u)
	}
	if u := s.Reach(cached, false); u != nil {
		t.Errorf("Reach(%s) in the overlaid cache = %v, want nil: the tree is idmapped to the command", cached, u)
	}
	if u := s.Reach(granted, false); u != nil {
		t.Errorf("Reach(%s), granted by its own path = %v, want nil", granted, u)
	}
	u := s.Reach(closed, false)
	if u == nil || len(u.Blocked) != 1 || u.Blocked[0].Path != filepath.Join(ws, "closed") || u.Landlock != "" {
		t.Errorf("Reach(%s) = %+v, want ws/closed alone blocked by its mode", closed, u)
	}
	u = s.Reach(other, false)
	if u == nil || len(u.Blocked) != 0 || u.Landlock != "filesystem.read" || u.Hidden != home {
		t.Errorf("Reach(%s) = %+v, want not granted and hidden with the home, no chmod", other, u)
	}
	// The control: without a private home the home's mode stops them all.
	s.PrivateHome, s.Hide = "", nil
	if u := s.Reach(script, false); u == nil || len(u.Blocked) == 0 || u.Blocked[0].Path != home {
		t.Errorf("Reach(%s) without a private home = %+v, want the home's mode to block it", script, u)
	}
}
