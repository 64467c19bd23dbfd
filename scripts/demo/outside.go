package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vm-run/vm-run/profiles"
)

// The Landlock case needs a directory that the sandbox sees but is not
// granted, holding a file the sandbox's user could read without vm-run:
// then only Landlock stands between the two. Where a checkout lies decides
// whether its own .cache/demo/outside is such a place: under /tmp the
// sandbox hides it, under /opt strict grants it, under /root (mode 0700)
// nobody, who runs the server for root, cannot reach it anyway. So the demo
// tries a few places and takes the first that holds all three.

// outsideCandidates are the places tried, in order: the one asked for,
// then one outside every checkout: for root /var/lib (neither hidden nor
// granted by the built-in profiles, and searchable by everyone), for
// anyone else the home directory.
func outsideCandidates(asked string) []string {
	out := []string{asked}
	if os.Getuid() == 0 {
		out = append(out, "/var/lib/vm-run-demo/outside")
	} else if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		out = append(out, filepath.Join(home, ".vm-run-demo-outside"))
	}
	return out
}

// chooseOutside makes the secret file in the first candidate that suits
// and returns the directory; why says what was wrong with each that did
// not. p is the demo's profile, loaded for the workspace.
func chooseOutside(p *profiles.Profile, candidates []string) (dir string, why []string) {
	for _, c := range candidates {
		abs, err := filepath.Abs(c)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		if reason := unsuitable(p, abs); reason != "" {
			why = append(why, fmt.Sprintf("%s: %s", abs, reason))
			continue
		}
		return abs, why
	}
	return "", why
}

// unsuitable makes dir with the secret in it and says why it cannot serve,
// or "" when it can (the directory then stays).
func unsuitable(p *profiles.Profile, dir string) string {
	for _, hidden := range p.Filesystem.Hide {
		hidden, _ = profiles.SplitOptional(hidden)
		if beneath(dir, hidden) {
			return fmt.Sprintf("under %s, which the sandbox hides", hidden)
		}
	}
	for _, list := range [][]string{p.Filesystem.Read, p.Filesystem.Exec, p.Filesystem.Write, p.Filesystem.Overlay} {
		for _, granted := range list {
			granted, _ = profiles.SplitOptional(granted)
			if real, err := filepath.EvalSymlinks(granted); err == nil {
				granted = real
			}
			if beneath(dir, granted) {
				return fmt.Sprintf("under %s, which the profile grants", granted)
			}
		}
	}
	os.RemoveAll(dir)
	secret := filepath.Join(dir, secretName)
	if err := writeFile(secret, secretText); err != nil {
		return err.Error()
	}
	if err := share(dir); err != nil {
		return err.Error()
	}
	// The probe without vm-run: the sandbox's user reads the file.
	if err := readAs(secret); err != nil {
		os.RemoveAll(dir)
		return fmt.Sprintf("the sandbox's user cannot read it even without vm-run (%v)", err)
	}
	return ""
}

const (
	secretName = "settlement-keys.md"
	secretText = "# Settlement keys\n\nprod: 4f1c-REDACTED-9a2e\n"
)

// readAs reads path as the user the sandbox runs the server as: nobody for
// root (as vm-run does), the caller otherwise.
func readAs(path string) error {
	if os.Getuid() != 0 {
		_, err := os.ReadFile(path)
		return err
	}
	out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", path).CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	if string(out) != secretText {
		return fmt.Errorf("read %q", out)
	}
	return nil
}

// beneath reports whether path is dir or lies beneath it.
func beneath(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
