//go:build linux

package policy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// unicodeWorkspace holds names in several Unicode forms: "\u0622rchive" and
// "\u00E9t\u00E9" in NFC, "A\u0301" in NFD as a file system may hold it,
// docs/l -> ../A\u0301 (a link target in NFD), and the NFC spellings of
// U+0958 and U+FB1D.
func unicodeWorkspace(t *testing.T) string {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"docs", "\u0622rchive", "A\u0301", "\u00E9t\u00E9", "\u0915\u093C", "\u05D9\u05B4", "secret"} {
		if err := os.Mkdir(filepath.Join(ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../A\u0301", filepath.Join(ws, "docs", "l")); err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestDecideUnicodeEquivalence(t *testing.T) {
	ws := unicodeWorkspace(t)
	deny := mustParse(t, `
default_action: allow
rules:
  - id: protect
    deny:
      - "write(`+"\u0622"+`rchive/*)"
      - "write(`+"\u00C1"+`/*)"
      - "write(e`+"\u0301"+`te`+"\u0301"+`/*)"
      - "write(`+"\u0958"+`/*)"
      - "write(`+"\uFB1D"+`/*)"
      - "write(file/*)"
      - "write(Secret/*)"
`)
	allow := mustParse(t, `
rules:
  - id: allow-a
    allow: ["write(`+"\u00C1"+`/**)"]
`)
	tests := []struct {
		name      string
		pol       *Policy
		path      string
		bases     []string
		rule      string
		verdict   Action
		wantPaths []string
	}{
		{"the review's demonstration: alef plus maddah", deny, "\u0627\u0653rchive/new.txt", nil,
			RulePaths, Deny, nil},
		{"the exact spelling", deny, "\u0622rchive/new.txt", nil,
			"protect", Deny, []string{"\u0622rchive/new.txt"}},
		{"NFD pattern, NFC path", deny, "\u00E9t\u00E9/new.txt", nil,
			"protect", Deny, []string{"\u00E9t\u00E9/new.txt"}},
		{"NFC pattern, NFD link target", deny, "docs/l/new.txt", nil,
			"protect", Deny, []string{"A\u0301/new.txt"}},
		{"NFC pattern, NFD root", deny, "new.txt", []string{ws + "/A\u0301"},
			"protect", Deny, []string{"A\u0301/new.txt"}},
		{"U+0958 in a path", deny, "\u0958/new.txt", nil,
			RulePaths, Deny, nil},
		{"U+0958 in a pattern", deny, "\u0915\u093C/new.txt", nil,
			"protect", Deny, []string{"\u0915\u093C/new.txt"}},
		{"U+FB1D in a path", deny, "\uFB1D/new.txt", nil,
			RulePaths, Deny, nil},
		{"U+FB1D in a pattern", deny, "\u05D9\u05B4/new.txt", nil,
			"protect", Deny, []string{"\u05D9\u05B4/new.txt"}},
		{"NFKC is not folded", deny, "\uFB01le/new.txt", nil,
			RuleDefault, Allow, []string{"\uFB01le/new.txt"}},
		{"case is not folded", deny, "secret/new.txt", nil,
			RuleDefault, Allow, []string{"secret/new.txt"}},
		{"NFC allow, NFD link target", allow, "docs/l/new.txt", nil,
			"allow-a", Allow, []string{"A\u0301/new.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := CallInfo{Kind: KindTool, Name: "write_file", Arguments: map[string]any{"path": tt.path}, Workspace: ws, Bases: tt.bases}
			d := tt.pol.Decide(call)
			if d.Verdict != tt.verdict || d.Rule != tt.rule || !slices.Equal(d.Paths, tt.wantPaths) {
				t.Errorf("Decide(write_file %+q) = %s by %q, paths %+q (%s); want %s by %q, paths %+q",
					tt.path, d.Verdict, d.Rule, d.Paths, d.Reason, tt.verdict, tt.rule, tt.wantPaths)
			}
		})
	}
}
