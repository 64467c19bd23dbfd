//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/policy"
)

// unicodePolicy protects three directories whose names have other
// canonically equivalent spellings: "\u0622rchive" (NFC on disk, rule in
// NFC), "Ba\u0301ckup" (NFD on disk, rule written in NFD as a listing copied
// from the disk would give it) and "Vide\u0301os" (NFD on disk, rule in NFC).
const unicodePolicy = "tools:\n" +
	"  rules:\n" +
	"    - id: allow-writes\n" +
	"      allow: [\"read\", \"write(**)\"]\n" +
	"    - id: protect\n" +
	"      deny: [\"write(\u0622rchive/*)\", \"write(Ba\u0301ckup/*)\", \"write(Vid\u00E9os/*)\"]\n"

// TestE2EUnicode: server-filesystem takes a name that does not exist for
// an existing one with the same NFC (resolveUnicodeEquivalentPath), so a
// spelling no rule names can write into a protected directory. Without
// vm-run's policy each write lands there; through vm-run each is denied.
func TestE2EUnicode(t *testing.T) {
	e := setupE2E(t)
	b := newBox(t)
	docs := b.writableDir(t, "docs")
	archive := b.writableDir(t, "\u0622rchive")
	backup := b.writableDir(t, "Ba\u0301ckup")
	videos := b.writableDir(t, "Vide\u0301os")
	if err := os.Symlink("../Vide\u0301os", filepath.Join(docs, "v")); err != nil {
		t.Fatal(err)
	}
	// A link whose own name is in NFD, into a protected directory.
	if err := os.Symlink("../\u0622rchive", filepath.Join(docs, "e\u0301")); err != nil {
		t.Fatal(err)
	}
	prof := e.profile(t, b, "e2e-unicode", fmt.Sprintf("  write: [%q]\n", b.ws), unicodePolicy)
	server := []string{"node", e.server("server-filesystem"), b.ws}
	attacks := []struct {
		name  string
		path  string
		lands string // the file the server writes
		rule  string
		// recorded is the path the ledger records, "" when the call is
		// refused before any path is judged.
		recorded string
	}{
		{"the review's alef plus maddah, not in NFC", "\u0627\u0653rchive/new.txt",
			filepath.Join(archive, "new.txt"), policy.RulePaths, ""},
		{"NFC spelling of a directory and a rule in NFD", "B\u00E1ckup/new.txt",
			filepath.Join(backup, "new.txt"), "protect", "Ba\u0301ckup/new.txt"},
		{"NFC spelling of a link named in NFD", "docs/\u00E9/new.txt",
			filepath.Join(archive, "new.txt"), "protect", "\u0622rchive/new.txt"},
		{"link target in NFD and a rule in NFC", "docs/v/new.txt",
			filepath.Join(videos, "new.txt"), "protect", "Vide\u0301os/new.txt"},
	}

	cs, _ := e.direct(t, b.ws, server, nil, nil)
	for _, a := range attacks {
		args := map[string]any{"path": a.path, "content": "planted\n"}
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "write_file", Arguments: args})
		if err != nil || res.IsError {
			t.Errorf("baseline %s: write_file %+q = %v, %v; want it written", a.name, a.path, text(res), err)
		}
		if _, err := os.Stat(a.lands); err != nil {
			t.Errorf("baseline %s: write_file %+q did not land in %+q: %v", a.name, a.path, a.lands, err)
		}
		os.Remove(a.lands)
	}
	cs.Close()

	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server})
	for _, a := range attacks {
		args := map[string]any{"path": a.path, "content": "planted\n"}
		s.wantDenied(t, "write_file", args, a.rule)
		wantAbsent(t, a.lands, fmt.Sprintf("%s: write_file %+q through vm-run", a.name, a.path))
		if d := s.decisionOn(t, "write_file"); a.recorded != "" && !contains(d.Paths, a.recorded) {
			t.Errorf("%s: ledger records paths %+q, want %+q among them", a.name, d.Paths, a.recorded)
		}
	}
	// A write the policy allows, also to a name outside ASCII, still works.
	ok := "docs/caf\u00E9.txt"
	s.wantAllowed(t, "write_file", map[string]any{"path": ok, "content": "fine\n"})
	if _, err := os.Stat(filepath.Join(b.ws, ok)); err != nil {
		t.Errorf("an allowed write to %+q did not land: %v", ok, err)
	}
	s.close(t)
}
