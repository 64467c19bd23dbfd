//go:build linux

package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// linkedWorkspace is a workspace as a cloned repository may leave it:
// docs/srclink -> ../src, docs/mainlink.c -> ../src/main.c, docs/out ->
// /etc, and docs/hard.c, a second name of src/main.c.
func linkedWorkspace(t *testing.T) string {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"docs", "src"} {
		if err := os.Mkdir(filepath.Join(ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "src", "main.c"), []byte("int main;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"docs/srclink": "../src", "docs/mainlink.c": "../src/main.c", "docs/out": "/etc"} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(ws, "src", "main.c"), filepath.Join(ws, "docs", "hard.c")); err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestDecideFollowsLinks(t *testing.T) {
	ws := linkedWorkspace(t)
	pol := mustParse(t, `
rules:
  - id: allow-docs
    allow: ["read", "write(docs/*)"]
  - id: block-src-writes
    deny: ["write(src/*)"]
`)
	tests := []struct {
		name      string
		tool      string
		args      map[string]any
		bases     []string
		pending   bool
		rule      string
		verdict   Action
		wantPaths []string
	}{
		{"write through a linked dir", "write_file", map[string]any{"path": "docs/srclink/main.c"}, nil, false,
			"block-src-writes", Deny, []string{"src/main.c"}},
		{"write through a linked file", "write_file", map[string]any{"path": "docs/mainlink.c"}, nil, false,
			"block-src-writes", Deny, []string{"src/main.c"}},
		{"new file through a linked dir", "write_file", map[string]any{"path": "docs/srclink/new.c"}, nil, false,
			"block-src-writes", Deny, []string{"src/new.c"}},
		{"move out through a link", "move_file", map[string]any{"source": "docs/srclink/main.c", "destination": "docs/stolen.c"}, nil, false,
			"block-src-writes", Deny, []string{"src/main.c", "docs/stolen.c"}},
		{"absolute path through a link", "write_file", map[string]any{"path": ws + "/docs/srclink/main.c"}, nil, false,
			"block-src-writes", Deny, []string{"src/main.c"}},
		{"read through a link out of the workspace", "read_text_file", map[string]any{"path": "docs/out/passwd"}, nil, false,
			RulePaths, Deny, nil},
		{"write to a file with two names", "write_file", map[string]any{"path": "docs/hard.c"}, nil, false,
			RulePaths, Deny, []string{"docs/hard.c"}},
		{"read of a file with two names, no deny concerns reads", "read_text_file", map[string]any{"path": "docs/hard.c"}, nil, false,
			"allow-docs", Allow, []string{"docs/hard.c"}},
		{"plain write", "write_file", map[string]any{"path": "docs/a.md"}, nil, false,
			"allow-docs", Allow, []string{"docs/a.md"}},
		{"relative path read against a root too", "write_file", map[string]any{"path": "docs/a.md"}, []string{ws, ws + "/src"}, false,
			"block-src-writes", Deny, []string{"docs/a.md", "src/docs/a.md"}},
		{"relative path while roots change", "write_file", map[string]any{"path": "docs/a.md"}, nil, true,
			RulePaths, Deny, nil},
		{"absolute path while roots change", "write_file", map[string]any{"path": ws + "/docs/a.md"}, nil, true,
			"allow-docs", Allow, []string{"docs/a.md"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := pol.Decide(CallInfo{Kind: KindTool, Name: tt.tool, Arguments: tt.args, Workspace: ws, Bases: tt.bases, BasesPending: tt.pending})
			if d.Verdict != tt.verdict || d.Rule != tt.rule || !slices.Equal(d.Paths, tt.wantPaths) {
				t.Errorf("Decide(%s %v) = %s by %q, paths %q (%s); want %s by %q, paths %q",
					tt.tool, tt.args, d.Verdict, d.Rule, d.Paths, d.Reason, tt.verdict, tt.rule, tt.wantPaths)
			}
			// The same call judged as spelled is what the policy did
			// before it followed links: allowed where a link leads into
			// src/. Each attack above must be one that worked then.
			if tt.verdict == Deny && tt.rule == "block-src-writes" && tt.bases == nil {
				if old := pol.Decide(CallInfo{Kind: KindTool, Name: tt.tool, Arguments: tt.args, Workspace: ws, Resolver: Lexical}); !old.Allowed() {
					t.Errorf("judged lexically, %s %v = %s (%s); the case proves nothing", tt.tool, tt.args, old.Verdict, old.Reason)
				}
			}
		})
	}
	d := pol.Decide(CallInfo{Kind: KindTool, Name: "write_file", Arguments: map[string]any{"path": "docs/hard.c"}, Workspace: ws})
	if !strings.Contains(d.Reason, "2 hard links") {
		t.Errorf("hard-link denial reason = %q, want it to say why", d.Reason)
	}
}

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := parsePolicy([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
