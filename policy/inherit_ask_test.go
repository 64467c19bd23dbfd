package policy

import (
	"strings"
	"testing"
	"time"
)

// TestInheritAsk: ask rules accumulate like deny rules, and nothing later
// removes, replaces, outranks or lengthens them.
func TestInheritAsk(t *testing.T) {
	base := mustParse(t, `
default_action: deny
rules:
  - id: review
    reason: reviewed
    allow: [echo]
    ask: ["write(src/*)"]
    ttl: 10m
    timeout: 30s
  - id: reads
    allow: [read]
`)
	base.SetOrigin("corp.yaml")
	tests := []struct {
		name  string
		over  string
		calls []decideCase
	}{
		{"a later allow does not outrank it", "default_action: allow\nrules:\n  - id: all\n    allow: [write]\n", []decideCase{
			{"asked", path1("write_file", "src/a"), "review", Ask},
			{"allowed elsewhere", path1("write_file", "docs/a"), "all", Allow},
		}},
		{"an empty section (tools: ~) keeps it", "{}", []decideCase{
			{"asked", path1("write_file", "src/a"), "review", Ask},
			{"its allow is dropped", tool("echo", nil), RuleDefault, Deny},
		}},
		{"a later ask adds to it", "rules:\n  - id: more\n    ask: [echo]\n", []decideCase{
			{"inherited", path1("write_file", "src/a"), "review", Ask},
			{"added", tool("echo", nil), "more", Ask},
		}},
		{"a later deny tightens it", "rules:\n  - id: no\n    deny: [\"write(src/x)\"]\n", []decideCase{
			{"denied", path1("write_file", "src/x"), "no", Deny},
			{"asked", path1("write_file", "src/y"), "review", Ask},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			over := mustParse(t, tt.over)
			got, err := Inherit(base, over)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Compile(); err != nil {
				t.Fatal(err)
			}
			runDecide(t, got, tt.calls)
			a, ok := got.AskRule("review")
			if want := (AskParams{TTL: 10 * time.Minute, Timeout: 30 * time.Second, Origin: "corp.yaml"}); !ok || a != want {
				t.Errorf("AskRule(review) = %+v, %v; want %+v", a, ok, want)
			}
		})
	}
	for _, over := range []string{
		"rules:\n  - id: review\n    allow: [write]\n",
		"rules:\n  - id: review\n    ask: [\"write(src/*)\"]\n    ttl: 24h\n",
		"rules:\n  - id: review\n    ask: [\"write(src/*)\"]\n    timeout: 1h\n",
	} {
		o := mustParse(t, over)
		o.SetOrigin("extra.yaml")
		_, err := Inherit(base, o)
		if err == nil || !strings.Contains(err.Error(), `rule "review" in extra.yaml: a rule with this id is inherited from corp.yaml and holds ask matchers`) {
			t.Errorf("Inherit(%q) = %v, want an error: the inherited ask can be neither replaced nor lengthened", over, err)
		}
	}
	// Down two levels, and the base is not changed.
	mid, err := Inherit(base, mustParse(t, "rules:\n  - id: x\n    deny: [rm]\n    ask: [ls]\n"))
	if err != nil {
		t.Fatal(err)
	}
	low, err := Inherit(mid, mustParse(t, "default_action: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := low.Compile(); err != nil {
		t.Fatal(err)
	}
	runDecide(t, low, []decideCase{
		{"grandparent's ask", path1("write_file", "src/a"), "review", Ask},
		{"parent's ask", tool("ls", nil), "x", Ask},
		{"parent's deny", tool("rm", nil), "x", Deny},
	})
	if len(base.Rules[0].Allow) != 1 || base.Rules[0].TTL != 10*time.Minute {
		t.Errorf("Inherit changed its base: %+v", base.Rules[0])
	}
	_, err = Inherit(low, mustParse(t, "rules:\n  - id: x\n    allow: [ls]\n"))
	if err == nil || !strings.Contains(err.Error(), "holds deny and ask matchers") {
		t.Errorf("reusing the id of an inherited deny and ask rule = %v, want an error", err)
	}
}
