package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// askPolicy is the policy of the ask tests: deny beats ask beats allow.
const askPolicy = `
default_action: allow
rules:
  - id: allow-all
    allow: [read, write, echo, "prompt(*)"]
  - id: review-src
    reason: sources are reviewed
    ask: ["write(src/*)", echo]
    ttl: 15m
  - id: once
    ask: ["prompt(deploy)", {tool: run, args: {cmd: {glob: "rm *"}}}]
    timeout: 30s
  - id: no-lib
    deny: ["write(lib/*)", "write(src/secret.c)"]
`

func TestDecideAsk(t *testing.T) {
	p := mustParse(t, askPolicy)
	runDecide(t, p, []decideCase{
		{"ask beats allow", path1("write_file", "src/a.c"), "review-src", Ask},
		{"ask touches like deny: moving src/sub away", tool("move_file", map[string]any{"source": "src/sub", "destination": "old"}), "review-src", Ask},
		{"deny beats ask", path1("write_file", "src/secret.c"), "no-lib", Deny},
		{"allow where no ask matches", path1("write_file", "docs/a.md"), "allow-all", Allow},
		{"bare tool ask", tool("echo", nil), "review-src", Ask},
		{"prompt ask", CallInfo{Kind: KindPrompt, Name: "deploy"}, "once", Ask},
		{"other prompt allowed", CallInfo{Kind: KindPrompt, Name: "review"}, "allow-all", Allow},
		{"argument ask", tool("run", map[string]any{"cmd": "rm -rf x"}), "once", Ask},
		{"an argument no pattern describes asks", tool("run", map[string]any{"cmd": map[string]any{"x": 1}}), "once", Ask},
		{"argument not matching", tool("run", map[string]any{"cmd": "ls"}), RuleDefault, Allow},
		{"a path check still denies first", path1("write_file", "../x"), RulePaths, Deny},
	})
	d := p.Decide(path1("write_file", "src/a.c"))
	if d.Allowed() {
		t.Errorf("Decide(ask).Allowed() = true, want false: code that knows nothing of asking must deny")
	}
	if !strings.Contains(d.Reason, "approval") || !strings.Contains(d.Reason, "sources are reviewed") || d.Matcher != "write(src/*)" {
		t.Errorf("ask decision = %+v, want a reason with the rule's and its matcher", d)
	}
}

func TestDecideAskDefault(t *testing.T) {
	p := mustParse(t, `
default_action: ask
defaults:
  sampling: deny
rules:
  - id: reads
    allow: ["read(docs/*)"]
  - id: no-env
    deny: ["read(./.env)"]
`)
	ro := &ToolAnnotations{ReadOnlyHint: ptr(false)}
	runDecide(t, p, []decideCase{
		{"allowed", path1("read_text_file", "docs/a"), "reads", Allow},
		{"default ask", path1("write_file", "docs/a"), RuleDefault, Ask},
		{"deny beats the ask default", path1("read_text_file", ".env"), "no-env", Deny},
		{"kind default", CallInfo{Kind: KindSampling, Name: "sampling/createMessage"}, RuleDefault, Deny},
		{"a vetoed allow is asked, not allowed", CallInfo{Kind: KindTool, Name: "read_text_file", Workspace: testWS,
			Arguments: map[string]any{"path": "docs/a"}, Annotations: ro}, RuleDefault, Ask},
	})
	q := mustParse(t, "default_action: deny\ndefaults:\n  tool: ask\n")
	runDecide(t, q, []decideCase{
		{"tool asks", tool("x", nil), RuleDefault, Ask},
		{"prompt denied", CallInfo{Kind: KindPrompt, Name: "x"}, RuleDefault, Deny},
	})
	if a, ok := q.AskRule(RuleDefault); !ok || a.TTL != 0 || a.Timeout != DefaultAskTimeout {
		t.Errorf("AskRule(default) = %+v, %v; want once only, %s", a, ok, DefaultAskTimeout)
	}
}

// TestAnnotationsNeverLoosenAsk: a server's readOnlyHint: true makes no ask
// an allow, and destructiveHint on an allowed read under an allow default
// still denies.
func TestAnnotationsNeverLoosenAsk(t *testing.T) {
	p := mustParse(t, askPolicy)
	for _, ann := range []*ToolAnnotations{{ReadOnlyHint: ptr(true)}, {DestructiveHint: ptr(false)}, {ReadOnlyHint: ptr(false)}} {
		call := path1("write_file", "src/a.c")
		call.Annotations = ann
		if d := p.Decide(call); d.Verdict != Ask {
			t.Errorf("Decide(write src/a.c, annotations %+v) = %s, want ask", *ann, d.Verdict)
		}
	}
}

func TestAskRule(t *testing.T) {
	p := mustParse(t, askPolicy)
	p.SetOrigin("corp.yaml")
	tests := []struct {
		id   string
		want AskParams
		ok   bool
	}{
		{"review-src", AskParams{TTL: 15 * time.Minute, Timeout: DefaultAskTimeout, Origin: "corp.yaml"}, true},
		{"once", AskParams{Timeout: 30 * time.Second, Origin: "corp.yaml"}, true},
		{"allow-all", AskParams{}, false},
		{"no-lib", AskParams{}, false},
		{"nope", AskParams{}, false},
		{RuleDefault, AskParams{}, false},
	}
	for _, tt := range tests {
		if got, ok := p.AskRule(tt.id); got != tt.want || ok != tt.ok {
			t.Errorf("AskRule(%q) = %+v, %v; want %+v, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
	if got := (AskParams{TTL: time.Minute}).Scopes(); len(got) != 2 || got[1] != audit.ScopeTTL {
		t.Errorf("Scopes() with a ttl = %v, want once and ttl", got)
	}
	if got := (AskParams{}).Scopes(); len(got) != 1 || got[0] != audit.ScopeOnce {
		t.Errorf("Scopes() without a ttl = %v, want once", got)
	}
	var nilPolicy *Policy
	if _, ok := nilPolicy.AskRule("x"); ok {
		t.Error("nil policy AskRule = ok, want not found")
	}
	// Every ask decision names a rule AskRule knows.
	for _, call := range []CallInfo{path1("write_file", "src/a.c"), tool("echo", nil), {Kind: KindPrompt, Name: "deploy"}} {
		d := p.Decide(call)
		if _, ok := p.AskRule(d.Rule); d.Verdict != Ask || !ok {
			t.Errorf("Decide(%q) = %s by %q; AskRule ok = %v, want an ask AskRule knows", call.Name, d.Verdict, d.Rule, ok)
		}
	}
}

func TestCompileAskErrors(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{"ttl without ask", Policy{Rules: []Rule{{ID: "a", Allow: []Matcher{{Tool: "x"}}, TTL: time.Minute}}}, "ttl applies to ask matchers only"},
		{"timeout too long", Policy{Rules: []Rule{{ID: "a", Ask: []Matcher{{Tool: "x"}}, Timeout: 2 * time.Hour}}}, "timeout 2h0m0s"},
		{"bad default", Policy{DefaultAction: "maybe"}, "want allow, ask or deny"},
		{"bad ask matcher", Policy{Rules: []Rule{{ID: "a", Ask: []Matcher{{Tool: "x", Prompt: "y"}}}}}, "give exactly one"},
	}
	for _, tt := range tests {
		if err := tt.p.Compile(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Compile() = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestVisibleAsk(t *testing.T) {
	p := mustParse(t, "default_action: deny\nrules:\n  - id: a\n    ask: [echo, \"prompt(deploy)\"]\n  - id: d\n    deny: [rm]\n    ask: [rm]\n")
	for _, tt := range []struct {
		kind Kind
		name string
		want bool
	}{{KindTool, "echo", true}, {KindPrompt, "deploy", true}, {KindTool, "other", false}, {KindTool, "rm", false}} {
		if got := p.Visible(tt.kind, tt.name, nil); got != tt.want {
			t.Errorf("Visible(%s %q) = %v, want %v", tt.kind, tt.name, got, tt.want)
		}
	}
	if !mustParse(t, "default_action: ask\n").Visible(KindTool, "x", nil) {
		t.Error("Visible under default_action: ask = false, want true")
	}
}

// TestObserveAsks: observe mode forwards denials, but never a call the
// profile says a person must see first.
func TestObserveAsks(t *testing.T) {
	p := mustParse(t, "mode: observe\n"+askPolicy)
	runDecide(t, p, []decideCase{
		{"an ask is still asked", path1("write_file", "src/a.c"), "review-src", Ask},
		{"a denial an ask rule also names is asked", path1("write_file", "src/secret.c"), "review-src", Ask},
		{"a plain denial stays a denial (the proxy forwards it)", tool("zap", map[string]any{"cmd": 1}), RuleDefault, Allow},
	})
	d := p.Decide(path1("write_file", "src/secret.c"))
	if !strings.Contains(d.Reason, `in enforce mode it would be denied (rule "no-lib"`) {
		t.Errorf("observed ask reason = %q, want it to name the deny", d.Reason)
	}
	q := mustParse(t, "mode: observe\ndefault_action: ask\nrules:\n  - id: no\n    deny: [rm]\n")
	runDecide(t, q, []decideCase{
		{"a denial under an ask default is asked", tool("rm", nil), RuleDefault, Ask},
	})
	r := mustParse(t, "mode: observe\nrules:\n  - id: no\n    deny: [rm]\n")
	runDecide(t, r, []decideCase{
		{"no ask anywhere: a denial", tool("rm", nil), "no", Deny},
	})
}

func TestDescribeAsk(t *testing.T) {
	p := mustParse(t, askPolicy)
	p.SetOrigin("corp.yaml")
	got := p.Describe()
	for _, want := range []string{
		"ask   review-src: write(src/*), echo  (ttl 15m0s, timeout 2m0s)  (from corp.yaml)",
		`ask   once: prompt(deploy), {"tool":"run","args":{"cmd":{"glob":"rm *"}}}  (once only, timeout 30s)  (from corp.yaml)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe() = %q, want a line %q", got, want)
		}
	}
	if got := mustParse(t, "default_action: ask\n").Describe(); !strings.HasPrefix(got, "default: ask; ask by default: once only, timeout 2m0s") {
		t.Errorf("Describe() = %q, want the ask default with its terms", got)
	}
}

// TestAskRoundTrip: ask rules, ttl and timeout survive the YAML that
// `profiles show` prints.
func TestAskRoundTrip(t *testing.T) {
	p := loadPolicy(t, "ask")
	again := roundTrip(t, p, nil)
	for _, id := range []string{"review-writes", "once", "no-secrets", RuleDefault} {
		a, ok := p.AskRule(id)
		b, ok2 := again.AskRule(id)
		if !ok || a != b || ok2 != ok {
			t.Errorf("AskRule(%q) = %+v, %v before a round trip, %+v, %v after", id, a, ok, b, ok2)
		}
	}
}

func TestPolicyAsks(t *testing.T) {
	for _, c := range []struct {
		p    *Policy
		want bool
	}{
		{nil, false},
		{&Policy{}, false},
		{&Policy{DefaultAction: Ask}, true},
		{&Policy{Defaults: map[Kind]Action{KindTool: Ask}}, true},
		{&Policy{Rules: []Rule{{ID: "r", Ask: []Matcher{{}}}}}, true},
		{&Policy{Rules: []Rule{{ID: "r", Allow: []Matcher{{}}}}}, false},
	} {
		if got := c.p.Asks(); got != c.want {
			t.Errorf("%+v.Asks() = %v, want %v", c.p, got, c.want)
		}
	}
}
