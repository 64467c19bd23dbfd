package policy

import (
	"slices"
	"testing"

	"github.com/vm-run/vm-run/audit"
)

func approvedUse(call CallInfo, status string) Use {
	return Use{Call: call, Verdict: Allow, Rule: "review", Status: status, Approval: "cli uid=1000 pid=42"}
}

// TestGenerateApproved: calls a person approved become allow rules of
// their own, after the ones for what the policy allowed.
func TestGenerateApproved(t *testing.T) {
	uses := []Use{
		used(path1("read_text_file", "docs/a.md")),
		approvedUse(path1("write_file", "src/a.c"), audit.OutcomeOK),
		approvedUse(path1("write_file", "src/b.c"), audit.OutcomeOK),
		approvedUse(path1("read_text_file", "docs/a.md"), audit.OutcomeOK), // already allowed
		approvedUse(tool("deploy", map[string]any{"env": "prod"}), audit.OutcomeOK),
		approvedUse(promptCall("release"), audit.OutcomeOK),
		approvedUse(path1("write_file", "lib/x.c"), audit.OutcomeToolError), // failed: offered only
		deniedUse(path1("write_file", "src/secret.c"), "review"),            // the person said no
	}
	g, err := Generate(uses, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"used-tools: read(docs/a.md)", // src/* would allow the refused call
		"approved-tools: deploy, write(src/a.c), write(src/b.c)",
		"approved-prompts: prompt(release)",
	}
	if got := rulesOf(g.Policy); !slices.Equal(got, want) {
		t.Errorf("Generate() rules = %q, want %q", got, want)
	}
	if n := len(g.Allow); n != 5 || g.Allow[0].Rule != "used-tools" || g.Allow[4].Rule != "approved-prompts" {
		t.Fatalf("Generate().Allow = %+v, want 5 entries in rule order", g.Allow)
	}
	// The used-tools entry stands for both reads, the approved one too.
	if u := g.Allow[0].Uses; len(u) != 2 || u[1].Approval == "" {
		t.Errorf("used-tools entry uses = %+v, want the approved read handed to it", u)
	}
	if got := entriesOf(g.Failed); !slices.Equal(got, []string{"write(lib/x.c)"}) {
		t.Errorf("Generate().Failed = %q, want the approved call that failed", got)
	}
	if got := entriesOf(g.Denied); !slices.Equal(got, []string{"write(src/secret.c)"}) {
		t.Errorf("Generate().Denied = %q, want the call the person refused", got)
	}
	for _, u := range uses[:6] {
		if d := g.Policy.Decide(u.Call); !d.Allowed() {
			t.Errorf("generated policy: %s %v = %s, want allowed", u.Call.Name, u.Call.Arguments, d.Verdict)
		}
	}
	if d := g.Policy.Decide(path1("write_file", "src/secret.c")); d.Allowed() {
		t.Error("generated policy allows the call the person refused")
	}
	roundTrip(t, g.Policy, nil)
}
