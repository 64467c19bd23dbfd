package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDecodePolicyTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "policies", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parsePolicy(data, file)
		if err != nil {
			t.Errorf("decode %s: %v", file, err)
			continue
		}
		// Round trip: what MarshalYAML writes decodes to the same decisions.
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal %s: %v", file, err)
		}
		again, err := parsePolicy(out, file+" (marshalled)")
		if err != nil {
			t.Errorf("decode marshalled %s: %v\n%s", file, err, out)
			continue
		}
		for _, call := range []CallInfo{path1("read_file", "docs/a.md"), path1("write_file", "src/a"), tool("echo", nil)} {
			if a, b := p.Decide(call), again.Decide(call); a.Verdict != b.Verdict || a.Rule != b.Rule {
				t.Errorf("%s: Decide(%s) = %s/%s, after a YAML round trip %s/%s", file, call.Name, a.Verdict, a.Rule, b.Verdict, b.Rule)
			}
		}
	}
}

func TestDecodePolicyEmbedded(t *testing.T) {
	// The lead embeds Policy in the profile struct; yaml.v3 then calls
	// UnmarshalYAML and errors carry positions.
	var profile struct {
		Network string  `yaml:"network"`
		Tools   *Policy `yaml:"tools"`
	}
	doc := "network: off\ntools:\n  rules:\n    - id: allow-docs\n      allow: [\"read(docs/*)\"]\n  default_action: deny\n"
	if err := yaml.Unmarshal([]byte(doc), &profile); err != nil {
		t.Fatal(err)
	}
	if d := profile.Tools.Decide(path1("read_file", "docs/x")); d.Rule != "allow-docs" {
		t.Errorf("embedded policy: Decide = %s by %q, want allow by %q", d.Verdict, d.Rule, "allow-docs")
	}
	err := yaml.Unmarshal([]byte("tools:\n  rules:\n    - id: x\n      allow: [\"read(/etc)\"]\n"), &profile)
	var pe *PositionError
	if !errors.As(err, &pe) || pe.Line != 4 || pe.Column != 15 {
		t.Errorf("embedded bad policy: error %v, want a PositionError at 4:15", err)
	}
}

func TestDecodePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // file:line:col prefix and a fragment of the message
	}{
		{"unknown key", "rules: []\nnetwork: off\n", `p.yaml:2:1: tools: unknown key "network"`},
		{"bad default", "default_action: maybe\n", `p.yaml:1:17: default_action: "maybe": want allow, ask or deny`},
		{"bad kind default", "defaults:\n  files: allow\n", `p.yaml:2:3: defaults: unknown key "files"`},
		{"duplicate key", "default_action: deny\ndefault_action: allow\n", `p.yaml:2:1: tools: key "default_action" given twice`},
		{"rules not list", "rules: {}\n", `p.yaml:1:8: rules: want a list`},
		{"missing id", "rules:\n  - allow: [echo]\n", `p.yaml:2:5: rule: missing id`},
		{"bad id", "rules:\n  - id: \"a:b\"\n    allow: [echo]\n", `p.yaml:2:9: rule id "a:b"`},
		{"duplicate id", "rules:\n  - id: a\n    allow: [echo]\n  - id: a\n    deny: [x]\n", `p.yaml:4:9: rule id "a" is used twice`},
		{"empty rule", "rules:\n  - id: a\n", `p.yaml:2:5: rule "a": give allow, ask or deny`},
		{"absolute pattern", "rules:\n  - id: a\n    allow: [\"read(/etc/*)\"]\n", `p.yaml:3:13: rule "a": matcher "read(/etc/*)": bad pattern: path pattern "/etc/*" is absolute`},
		{"dotdot pattern", "rules:\n  - id: a\n    deny:\n      - \"write(../x)\"\n", `p.yaml:4:9: rule "a"`},
		{"unclosed class", "rules:\n  - id: a\n    allow: [\"get_[a\"]\n", `p.yaml:3:13: rule "a": matcher "get_[a": bad pattern: glob "get_[a": unclosed '['`},
		{"bad regex", "rules:\n  - id: a\n    allow:\n      - tool: run\n        args:\n          cmd: {regex: \"(\"}\n", `p.yaml:4:9: rule "a": matcher`},
		{"unknown class", "rules:\n  - id: a\n    allow:\n      - class: exec\n", `p.yaml:4:9: rule "a": matcher {"class":"exec"}: unknown class "exec"`},
		{"two targets", "rules:\n  - id: a\n    allow:\n      - {tool: x, prompt: y}\n", `give exactly one of tool, class, resource, prompt and kind`},
		{"paths on prompt", "rules:\n  - id: a\n    allow:\n      - {prompt: x, paths: [a]}\n", `paths apply to tools only`},
		{"sampling arg", "rules:\n  - id: a\n    deny: [\"sampling(x)\"]\n", `sampling takes no argument`},
		{"tool needs arg", "rules:\n  - id: a\n    deny: [\"tool\"]\n", `tool needs an argument`},
		{"unclosed paren", "rules:\n  - id: a\n    deny: [\"write(src\"]\n", `want WORD or WORD(ARGUMENT)`},
		{"unknown matcher key", "rules:\n  - id: a\n    allow:\n      - {tool: x, path: [a]}\n", `p.yaml:4:19: matcher: unknown key "path"`},
		{"class reserved", "classes:\n  sampling:\n    tools: [x]\n", `p.yaml:2:3: class "sampling": the name is reserved`},
		{"read_only not bool", "classes:\n  c:\n    tools: [x]\n    read_only: \"yes\"\n", `p.yaml:4:16: class c: read_only: want true or false`},
		{"not a mapping", "- a\n", `p.yaml:1:1: tools: want a mapping`},
		{"arg both", "rules:\n  - id: a\n    allow:\n      - tool: x\n        args:\n          a: {glob: x, regex: y}\n", `give exactly one of glob and regex`},
		{"number as string", "rules:\n  - id: a\n    allow: [5]\n", `p.yaml:3:13: matcher: want a string`},
		{"ask not list", "rules:\n  - id: a\n    ask: echo\n", `p.yaml:3:10: ask: want a list of matchers`},
		{"ttl without ask", "rules:\n  - id: a\n    allow: [echo]\n    ttl: 5m\n", `p.yaml:4:10: rule "a": ttl applies to ask matchers only`},
		{"timeout without ask", "rules:\n  - id: a\n    deny: [echo]\n    timeout: 5m\n", `p.yaml:4:14: rule "a": timeout applies to ask matchers only`},
		{"ttl no unit", "rules:\n  - id: a\n    ask: [echo]\n    ttl: 15\n", `p.yaml:4:10: ttl: "15": want a duration such as 90s, 15m or 1h`},
		{"ttl list", "rules:\n  - id: a\n    ask: [echo]\n    ttl: [1m]\n", `p.yaml:4:10: ttl: want a duration`},
		{"ttl negative", "rules:\n  - id: a\n    ask: [echo]\n    ttl: -1m\n", `p.yaml:4:10: rule "a": ttl -1m0s: want 0 (approve once only) up to 24h0m0s`},
		{"ttl too long", "rules:\n  - id: a\n    ask: [echo]\n    ttl: 25h\n", `rule "a": ttl 25h0m0s`},
		{"timeout too short", "rules:\n  - id: a\n    ask: [echo]\n    timeout: 500ms\n", `p.yaml:4:14: rule "a": timeout 500ms: want 1s up to 1h0m0s (absent means 2m0s)`},
		{"timeout too long", "rules:\n  - id: a\n    ask: [echo]\n    timeout: 2h\n", `timeout 2h0m0s: want 1s up to 1h0m0s`},
		{"bad ask matcher", "rules:\n  - id: a\n    ask: [\"write(/etc)\"]\n", `p.yaml:3:11: rule "a": matcher "write(/etc)"`},
		{"bad defaults action", "defaults:\n  tool: maybe\n", `p.yaml:2:9: defaults: tool: "maybe": want allow, ask or deny`},
	}
	for _, tt := range tests {
		_, err := parsePolicy([]byte(tt.doc), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: DecodePolicy(%q) = %v, want an error containing %q", tt.name, tt.doc, err, tt.want)
		}
	}
}
