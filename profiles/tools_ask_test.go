package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/policy"
)

// TestAskRulesAccumulate: a profile's ask rules hold in every profile that
// extends it and under every --policy file, with their ttl and timeout;
// "tools: ~", a later allow, or a rule reusing the id cannot remove or
// lengthen them.
func TestAskRulesAccumulate(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"corp.yaml": "name: corp\nextends: standard\ntools:\n  default_action: allow\n  rules:\n" +
			"    - id: review-src\n      reason: sources are reviewed\n      ask: [\"write(src/*)\"]\n      ttl: 15m\n      timeout: 45s\n",
		"child.yaml":  "extends: corp.yaml\ntools:\n  default_action: allow\n  rules:\n    - id: all\n      allow: [write]\n",
		"null.yaml":   "extends: corp.yaml\ntools: ~\n",
		"extra.yaml":  "default_action: allow\nrules:\n  - id: extra\n    allow: [write]\n",
		"longer.yaml": "rules:\n  - id: review-src\n    ask: [\"write(src/*)\"]\n    ttl: 24h\n",
		"clash.yaml":  "extends: corp.yaml\ntools:\n  rules:\n    - id: review-src\n      allow: [write]\n",
	})
	asked := call{name: "write_file", path: "src/main.c", verdict: policy.Ask, rule: "review-src"}
	for _, c := range []struct {
		file  string
		calls []call
	}{
		{"corp.yaml", []call{asked, {name: "write_file", path: "docs/a", verdict: policy.Allow, rule: policy.RuleDefault}}},
		{"child.yaml", []call{asked, {name: "write_file", path: "docs/a", verdict: policy.Allow, rule: "all"}}},
		{"null.yaml", []call{asked, {name: "write_file", path: "docs/a", verdict: policy.Deny, rule: policy.RuleDefault}}},
	} {
		p, err := (&Loader{}).Load(filepath.Join(dir, c.file), testVars)
		if err != nil {
			t.Fatalf("Load(%s) = %v", c.file, err)
		}
		checkCalls(t, c.file, p.Tools, c.calls)
		a, ok := p.Tools.AskRule("review-src")
		want := policy.AskParams{TTL: 15 * time.Minute, Timeout: 45 * time.Second, Origin: filepath.Join(dir, "corp.yaml")}
		if !ok || a != want {
			t.Errorf("%s: AskRule(review-src) = %+v, %v; want %+v", c.file, a, ok, want)
		}
		if d := p.Tools.Describe(); !strings.Contains(d, "ask   review-src: write(src/*)  (ttl 15m0s, timeout 45s)  (from "+filepath.Join(dir, "corp.yaml")+")") {
			t.Errorf("%s: Describe() = %q, want the inherited ask with its terms and origin", c.file, d)
		}
	}
	corp, err := (&Loader{}).Load(filepath.Join(dir, "corp.yaml"), testVars)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := LoadPolicy(filepath.Join(dir, "extra.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := corp.WithPolicy(extra)
	if err != nil {
		t.Fatalf("WithPolicy(extra.yaml) = %v", err)
	}
	checkCalls(t, "corp with --policy extra.yaml", p.Tools, []call{asked})
	longer, err := LoadPolicy(filepath.Join(dir, "longer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := corp.WithPolicy(longer); err == nil || !strings.Contains(err.Error(), `rule "review-src"`) || !strings.Contains(err.Error(), "holds ask matchers") {
		t.Errorf("WithPolicy(longer.yaml), which restates the ask with a longer ttl = %v, want an error naming the rule", err)
	}
	_, err = (&Loader{}).Load(filepath.Join(dir, "clash.yaml"), testVars)
	var perr *Error
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "clash.yaml") || !strings.Contains(err.Error(), "holds ask matchers") {
		t.Errorf("Load(clash.yaml), which reuses an inherited ask rule's id = %v, want an *Error in clash.yaml naming it", err)
	}
}

// TestAskRuleErrors: a bad ask rule is an error at its file, line and
// column, saying what is wanted.
func TestAskRuleErrors(t *testing.T) {
	for _, tt := range []struct {
		doc, want string
	}{
		{"tools:\n  rules:\n    - id: r\n      ask: [x]\n      ttl: 15\n", `p.yaml:5:12: tools: ttl: "15": want a duration such as 90s, 15m or 1h`},
		{"tools:\n  rules:\n    - id: r\n      allow: [x]\n      timeout: 1m\n", `p.yaml:5:16: tools: rule "r": timeout applies to ask matchers only`},
		{"tools:\n  rules:\n    - id: r\n      ask: [x]\n      timeout: 3h\n", `p.yaml:5:16: tools: rule "r": timeout 3h0m0s: want 1s up to 1h0m0s`},
		{"tools:\n  default_action: maybe\n", `p.yaml:2:19: tools: default_action: "maybe": want allow, ask or deny`},
	} {
		dir := writeFiles(t, map[string]string{"p.yaml": tt.doc})
		_, err := (&Loader{}).Load(filepath.Join(dir, "p.yaml"), testVars)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), dir+string(os.PathSeparator), ""), tt.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q", tt.doc, err, tt.want)
		}
	}
}
