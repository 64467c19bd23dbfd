package profiles

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/policy"
)

// denyAll is the policy of a profile chain without tools:, compiled as Load
// returns it.
func denyAll() *policy.Policy {
	p := &policy.Policy{DefaultAction: policy.Deny}
	if err := p.Compile(); err != nil {
		panic(err)
	}
	return p
}

// seed is the seeds' example (DESIGN.md) as a profile, with the network
// written in the long form; the table below also writes it as the seed does.
const seed = `name: docs-only
extends: strict
network:
  mode: none
tools:
  rules:
    - id: allow-docs
      allow: ["read(docs/*)", "read(*.md)"]
    - id: block-src-writes
      deny: ["write(src/*)", "write(lib/*)"]
  default_action: deny
`

// call is one tool call and the verdict a policy should give it.
type call struct {
	kind    policy.Kind
	name    string
	path    string // the "path" argument of a tool call, if any
	verdict policy.Action
	rule    string
}

func (c call) info() policy.CallInfo {
	ci := policy.CallInfo{Kind: c.kind, Name: c.name, Workspace: testVars.Workspace}
	if c.kind == "" {
		ci.Kind = policy.KindTool
	}
	if c.path != "" {
		ci.Arguments = map[string]any{"path": c.path}
	}
	return ci
}

func checkCalls(t *testing.T, what string, p *policy.Policy, calls []call) {
	t.Helper()
	for _, c := range calls {
		d := p.Decide(c.info())
		if d.Verdict != c.verdict || d.Rule != c.rule {
			t.Errorf("%s: Decide(%s %s %q) = %s by %q (%s), want %s by %q",
				what, c.kind, c.name, c.path, d.Verdict, d.Rule, d.Reason, c.verdict, c.rule)
		}
	}
}

func ruleIDs(p *policy.Policy) []string {
	var ids []string
	for _, r := range p.Rules {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestToolsLoad loads D/p.yaml and checks the policy in force: its rule ids
// in order, its default, and verdicts on calls. The nearest tools: section
// replaces the inherited one, so the seed under strict reads docs/ only.
func TestToolsLoad(t *testing.T) {
	seedCalls := []call{
		{name: "read_text_file", path: "docs/a.txt", verdict: policy.Allow, rule: "allow-docs"},
		{name: "read_text_file", path: "README.md", verdict: policy.Allow, rule: "allow-docs"},
		{name: "read_text_file", path: "src/a.go", verdict: policy.Deny, rule: policy.RuleDefault},
		{name: "write_file", path: "src/a.go", verdict: policy.Deny, rule: "block-src-writes"},
		{name: "move_file", path: "lib/x", verdict: policy.Deny, rule: "block-src-writes"},
		{name: "write_file", path: "notes.txt", verdict: policy.Deny, rule: policy.RuleDefault},
		{name: "run_shell", verdict: policy.Deny, rule: policy.RuleDefault},
		{kind: policy.KindResource, name: "file:///work/proj/a", verdict: policy.Deny, rule: policy.RuleDefault},
		{kind: policy.KindSampling, name: "sampling/createMessage", verdict: policy.Deny, rule: policy.RuleDefault},
	}
	tests := []struct {
		name      string
		files     map[string]string
		wantRules []string
		wantNet   string
		calls     []call
	}{
		{"the seed, long network form", map[string]string{"p.yaml": seed},
			[]string{"allow-docs", "block-src-writes"}, NetworkNone, seedCalls},
		{"the seed, network: off", map[string]string{
			"p.yaml": strings.Replace(seed, "network:\n  mode: none\n", "network: off\n", 1),
		}, []string{"allow-docs", "block-src-writes"}, NetworkNone, seedCalls},
		{"the seed alone", map[string]string{"p.yaml": strings.Replace(seed, "extends: strict\n", "", 1)},
			[]string{"allow-docs", "block-src-writes"}, NetworkNone, []call{
				{name: "read_text_file", path: "docs/a.txt", verdict: policy.Allow, rule: "allow-docs"},
				{name: "read_text_file", path: "README.md", verdict: policy.Allow, rule: "allow-docs"},
				{name: "read_text_file", path: "src/a.go", verdict: policy.Deny, rule: policy.RuleDefault},
				{kind: policy.KindResource, name: "file:///work/proj/a", verdict: policy.Deny, rule: policy.RuleDefault},
			}},
		{"no tools and no extends: deny everything", map[string]string{"p.yaml": "network: loopback\n"},
			nil, NetworkLoopback, []call{
				{name: "read_text_file", path: "docs/a.txt", verdict: policy.Deny, rule: policy.RuleDefault},
				{kind: policy.KindResource, name: "file:///work/proj/a", verdict: policy.Deny, rule: policy.RuleDefault},
				{kind: policy.KindPrompt, name: "review", verdict: policy.Deny, rule: policy.RuleDefault},
			}},
		{"extends strict without tools", map[string]string{"p.yaml": "extends: strict\n"},
			[]string{"strict-read"}, NetworkNone, []call{
				{name: "list_directory", path: "src", verdict: policy.Allow, rule: "strict-read"},
				{name: "write_file", path: "src/a", verdict: policy.Deny, rule: policy.RuleDefault},
				{kind: policy.KindElicitation, name: "elicitation/create", verdict: policy.Deny, rule: policy.RuleDefault},
			}},
		{"a child's tools: section replaces the base's allows and default, not its denies", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools:\n  default_action: allow\n  defaults:\n    sampling: deny\n",
			"base.yaml": "tools:\n  default_action: deny\n  rules:\n    - id: no-src\n      deny: [\"write(src/**)\"]\n    - id: docs\n      allow: [\"read(docs/*)\"]\n",
		}, []string{"no-src"}, NetworkNone, []call{
			{name: "run_shell", verdict: policy.Allow, rule: policy.RuleDefault},
			{name: "write_file", path: "src/a", verdict: policy.Deny, rule: "no-src"},
			{name: "write_file", path: "lib/a", verdict: policy.Allow, rule: policy.RuleDefault},
			{kind: policy.KindSampling, name: "sampling/createMessage", verdict: policy.Deny, rule: policy.RuleDefault},
		}},
		{"a child without default_action denies by default", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools:\n  rules:\n    - id: echo\n      allow: [echo]\n",
			"base.yaml": "tools:\n  default_action: allow\n",
		}, []string{"echo"}, NetworkNone, []call{
			{name: "echo", verdict: policy.Allow, rule: "echo"},
			{name: "run_shell", verdict: policy.Deny, rule: policy.RuleDefault},
		}},
		{"tools: ~ drops the inherited policy", map[string]string{"p.yaml": "extends: standard\ntools: ~\n"},
			nil, NetworkNone, []call{
				{name: "read_text_file", path: "a", verdict: policy.Deny, rule: policy.RuleDefault},
			}},
		{"tools: ~ then a fresh policy further down", map[string]string{
			"p.yaml":   "extends: mid.yaml\ntools:\n  rules:\n    - id: echo\n      allow: [echo]\n",
			"mid.yaml": "extends: strict\ntools: ~\n",
		}, []string{"echo"}, NetworkNone, []call{
			{name: "echo", verdict: policy.Allow, rule: "echo"},
			{name: "read_text_file", path: "a", verdict: policy.Deny, rule: policy.RuleDefault},
		}},
		{"a child uses its base's class", map[string]string{
			"p.yaml": "extends: base.yaml\ntools:\n  rules:\n    - id: fetch-cache\n" +
				"      allow: [\"fetch(cache/*)\"]\n    - id: no-fetch-src\n      deny:\n        - class: fetch\n          paths: [src]\n",
			"base.yaml": "tools:\n  classes:\n    fetch:\n      tools: [http_get]\n      path_args: [file]\n",
		}, []string{"fetch-cache", "no-fetch-src"}, NetworkNone, []call{
			{name: "http_get", verdict: policy.Deny, rule: policy.RuleDefault},
		}},
		{"classes add up across extends", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools:\n  classes:\n    read:\n      tools: [my_reader]\n  rules:\n    - id: r\n      allow: [read]\n",
			"base.yaml": "extends: strict\n",
		}, []string{"r"}, NetworkNone, []call{
			{name: "my_reader", verdict: policy.Allow, rule: "r"},
			{name: "read_file", verdict: policy.Allow, rule: "r"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			p, err := (&Loader{}).Load(filepath.Join(dir, "p.yaml"), testVars)
			if err != nil {
				t.Fatalf("Load(p.yaml) = %v", err)
			}
			if p.Tools == nil {
				t.Fatal("Load(p.yaml).Tools = nil, want a policy")
			}
			if got := ruleIDs(p.Tools); !slices.Equal(got, tt.wantRules) {
				t.Errorf("tools.rules ids = %q, want %q", got, tt.wantRules)
			}
			if p.Tools.DefaultAction == "" {
				t.Errorf("tools.default_action is empty, want it filled in")
			}
			if p.Network.Mode != tt.wantNet {
				t.Errorf("network.mode = %q, want %q", p.Network.Mode, tt.wantNet)
			}
			checkCalls(t, tt.name, p.Tools, tt.calls)
			roundTrip(t, p, testVars)
		})
	}
}

// TestToolsClassesFromBase checks what the class of a base profile does to
// a child's matchers: "fetch(...)" names the class, not a tool.
func TestToolsClassesFromBase(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"p.yaml": "extends: base.yaml\ntools:\n  rules:\n    - id: fetch-cache\n      allow: [\"fetch(cache/*)\"]\n",
		"base.yaml": "tools:\n  classes:\n    fetch:\n      tools: [http_get]\n      path_args: [file]\n" +
			"  rules:\n    - id: no-fetch-src\n      deny:\n        - class: fetch\n          paths: [./src]\n",
	})
	p, err := (&Loader{}).Load(filepath.Join(dir, "p.yaml"), testVars)
	if err != nil {
		t.Fatalf("Load(p.yaml) = %v", err)
	}
	for _, c := range []struct {
		tool, file string
		verdict    policy.Action
		rule       string
	}{
		{"http_get", "cache/a", policy.Allow, "fetch-cache"},
		{"http_get", "src/a", policy.Deny, "no-fetch-src"},    // the base's deny rule stays in force, with its class
		{"fetch", "cache/a", policy.Deny, policy.RuleDefault}, // a tool named fetch is not in the class
	} {
		d := p.Tools.Decide(policy.CallInfo{Kind: policy.KindTool, Name: c.tool,
			Arguments: map[string]any{"file": c.file}, Workspace: testVars.Workspace})
		if d.Verdict != c.verdict || d.Rule != c.rule {
			t.Errorf("Decide(%s %q) = %s by %q, want %s by %q", c.tool, c.file, d.Verdict, d.Rule, c.verdict, c.rule)
		}
	}
}

// TestToolsErrors loads D/p.yaml (as TestLoadErrors does) and wants an
// *Error at file:line:col inside the tools: section.
func TestToolsErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown key", map[string]string{"p.yaml": "tools:\n  default_action: deny\n  rulez: []\n"},
			`D/p.yaml:3:3: tools: unknown key "rulez" (want one of [mode default_action defaults classes rules on_change])`},
		{"bad mode", map[string]string{"p.yaml": "tools:\n  mode: learn\n"},
			`D/p.yaml:2:9: tools: mode: "learn": want enforce or observe`},
		{"observe after enforce", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools:\n  mode: observe\n",
			"base.yaml": "tools:\n  mode: enforce\n  rules:\n    - id: a\n      deny: [echo]\n",
		}, `D/p.yaml:3:3: tools: mode: observe: an inherited policy says mode: enforce in D/base.yaml, which a later one cannot relax`},
		{"unknown rule key", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: a\n      alow: [echo]\n"},
			`D/p.yaml:4:7: tools: rule: unknown key "alow" (want one of [id reason allow ask deny ttl timeout])`},
		{"bad matcher", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: a\n      allow: [echo, \"read(/etc/*)\"]\n"},
			`D/p.yaml:4:21: tools: rule "a": matcher "read(/etc/*)": bad pattern: path pattern "/etc/*" is absolute; patterns are relative to the workspace`},
		{"unclosed matcher", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: a\n      deny:\n        - write(src\n"},
			`D/p.yaml:5:11: tools: rule "a": matcher "write(src": want WORD or WORD(ARGUMENT)`},
		{"bad default", map[string]string{"p.yaml": "tools:\n  default_action: maybe\n"},
			`D/p.yaml:2:19: tools: default_action: "maybe": want allow, ask or deny`},
		{"not a mapping", map[string]string{"p.yaml": "tools: [echo]\n"},
			`D/p.yaml:1:8: tools: want a mapping, got a list`},
		{"null with nothing inherited", map[string]string{"p.yaml": "tools: ~\n"},
			`D/p.yaml:1:8: tools: null removes an inherited value, but none is inherited`},
		{"anchor", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: a\n      allow: &x [echo]\n      deny: *x\n"},
			`D/p.yaml:4:14: tools.rules[0].allow: anchors (&x) are not supported`},
		{"tag", map[string]string{"p.yaml": "tools:\n  default_action: !act deny\n"},
			`D/p.yaml:2:19: tools.default_action: YAML tag !act is not supported`},
		{"merge key", map[string]string{"p.yaml": "tools:\n  <<: {}\n"},
			`D/p.yaml:2:3: tools: merge keys (<<) are not supported`},
		{"variable", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: a\n      deny: [\"write(${WORKSPACE}/src/*)\"]\n"},
			`D/p.yaml:4:21: tools.rules[0].deny[0]: ${WORKSPACE} is not expanded in tools: path patterns are relative to the workspace already ("docs/*" means ${WORKSPACE}/docs/*)`},
		{"broken base dropped by the child", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools: ~\n",
			"base.yaml": "tools:\n  rules:\n    - id: a\n      allow: [\"read(../x)\"]\n",
		}, `D/base.yaml:4:15: tools: rule "a": matcher "read(../x)": bad pattern: path pattern "../x" has a ".." segment`},
		{"unknown class nowhere defined", map[string]string{
			"p.yaml": "tools:\n  rules:\n    - id: a\n      allow:\n        - class: fetch\n",
		}, `D/p.yaml:5:11: tools: rule "a": matcher {"class":"fetch"}: unknown class "fetch"`},
		{"class defined only by the child", map[string]string{
			"p.yaml":    "extends: base.yaml\ntools:\n  classes:\n    fetch:\n      tools: [http_get]\n",
			"base.yaml": "tools:\n  rules:\n    - id: a\n      allow:\n        - class: fetch\n",
		}, `D/base.yaml:5:11: tools: rule "a": matcher {"class":"fetch"}: unknown class "fetch"`},
		// The network shorthand.
		{"network shorthand, bad mode", map[string]string{"p.yaml": "network: wifi\n"},
			`D/p.yaml:1:10: network.mode: want none, loopback or egress, got "wifi"`},
		{"network shorthand, a bool is no mode", map[string]string{"p.yaml": "network: false\n"},
			`D/p.yaml:1:10: network.mode: want none, loopback or egress, got "false"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := (&Loader{}).Load(filepath.Join(dir, "p.yaml"), testVars)
			want := strings.ReplaceAll(tt.want, "D/", dir+"/")
			if err == nil {
				t.Fatalf("Load(p.yaml) = nil error, want %q", want)
			}
			if err.Error() != want {
				t.Errorf("Load(p.yaml) error:\n got %s\nwant %s", err, want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Load(p.yaml) error %T is not an *Error", err)
			}
		})
	}
}

// TestToolsMode: an unset mode is inherited; observe may follow an unset
// or observing base, and neither a profile nor --observe relaxes an
// explicit enforce.
func TestToolsMode(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"observe.yaml": "extends: strict\ntools:\n  mode: observe\n  rules:\n    - id: r\n      allow: [read]\n",
		"child.yaml":   "extends: observe.yaml\ntools:\n  rules:\n    - id: c\n      allow: [echo]\n",
		"enforce.yaml": "extends: strict\ntools:\n  mode: enforce\n  rules:\n    - id: r\n      allow: [read]\n",
		"relaxed.yaml": "extends: enforce.yaml\ntools:\n  rules:\n    - id: c\n      allow: [echo]\n",
	})
	load := func(name string) *Profile {
		t.Helper()
		p, err := (&Loader{}).Load(filepath.Join(dir, name), testVars)
		if err != nil {
			t.Fatalf("Load(%s): %v", name, err)
		}
		return p
	}
	if p := load("child.yaml"); !p.Tools.Observing() {
		t.Errorf("child of an observing profile: mode %q, want observe inherited", p.Tools.Mode)
	}
	if p := load("enforce.yaml"); p.Tools.Observing() {
		t.Errorf("enforce.yaml observes")
	}
	for _, name := range []string{"enforce.yaml", "relaxed.yaml"} {
		p := load(name)
		if err := p.Tools.Observe(); err == nil || p.Tools.Observing() {
			t.Errorf("%s: Observe() = %v, mode %q; want refused", name, err, p.Tools.Mode)
		}
	}
	p, err := (&Loader{}).Load("strict", testVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Tools.Observe(); err != nil || !p.Tools.Observing() {
		t.Errorf("strict: Observe() = %v; want observing", err)
	}
}

func TestNetworkShorthand(t *testing.T) {
	tests := []struct {
		yaml    string
		want    Network
		wantErr string
	}{
		{"network: off\n", Network{Mode: NetworkNone}, ""},
		{"network: none\n", Network{Mode: NetworkNone}, ""},
		{"network: \"loopback\"\n", Network{Mode: NetworkLoopback}, ""},
		{"network:\n  mode: off\n", Network{Mode: NetworkNone}, ""},
		{"extends: strict\nnetwork: loopback\n", Network{Mode: NetworkLoopback}, ""},
		// The shorthand over an inherited mapping replaces only the mode:
		// dev's any_port stays, and needs loopback.
		{"extends: dev\nnetwork: off\n", Network{},
			": network.any_port: needs network.mode loopback; the mode is none"},
	}
	for _, tt := range tests {
		p, err := (&Loader{}).Parse("p.yaml", []byte(tt.yaml), testVars)
		if tt.wantErr != "" {
			if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) = %v, want an error ending %q", tt.yaml, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) = %v", tt.yaml, err)
			continue
		}
		if !reflect.DeepEqual(p.Network, tt.want) {
			t.Errorf("Parse(%q).Network = %+v, want %+v", tt.yaml, p.Network, tt.want)
		}
	}
}

func TestBuiltinTools(t *testing.T) {
	load := func(name string) *Profile {
		t.Helper()
		p, err := (&Loader{}).Load(name, testVars)
		if err != nil {
			t.Fatalf("Load(%q) = %v", name, err)
		}
		return p
	}
	strict, standard, dev := load("strict"), load("standard"), load("dev")
	// strict.yaml writes out policy.Strict(), so that "profiles show" shows
	// what is allowed.
	if !reflect.DeepEqual(sameRules(t, strict.Tools), sameRules(t, policy.Strict())) {
		t.Errorf("strict: tools =\n%s\nwant policy.Strict() =\n%s", jsonOf(t, strict.Tools), jsonOf(t, policy.Strict()))
	}
	want := policy.Strict()
	want.Rules = []policy.Rule{
		{ID: "standard-read", Reason: "the standard profile allows reading and writing in the workspace", Allow: []policy.Matcher{{Spec: "read"}}},
		{ID: "standard-write", Reason: "the standard profile allows reading and writing in the workspace", Allow: []policy.Matcher{{Spec: "write"}}},
	}
	if err := want.Compile(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sameRules(t, standard.Tools), sameRules(t, want)) {
		t.Errorf("standard: tools =\n%s\nwant strict's with read and write rules =\n%s", jsonOf(t, standard.Tools), jsonOf(t, want))
	}
	if !reflect.DeepEqual(sameRules(t, dev.Tools), sameRules(t, standard.Tools)) {
		t.Errorf("dev: tools =\n%s\nwant standard's", jsonOf(t, dev.Tools))
	}
	checkCalls(t, "strict", strict.Tools, []call{
		{name: "read_text_file", path: "src/a.go", verdict: policy.Allow, rule: "strict-read"},
		{name: "read_text_file", path: "/etc/passwd", verdict: policy.Deny, rule: policy.RulePaths},
		{name: "write_file", path: "src/a.go", verdict: policy.Deny, rule: policy.RuleDefault},
		{kind: policy.KindPrompt, name: "review", verdict: policy.Allow, rule: policy.RuleDefault},
		{kind: policy.KindSampling, name: "sampling/createMessage", verdict: policy.Deny, rule: policy.RuleDefault},
		{kind: policy.KindElicitation, name: "elicitation/create", verdict: policy.Deny, rule: policy.RuleDefault},
	})
	checkCalls(t, "standard", standard.Tools, []call{
		{name: "write_file", path: "src/a.go", verdict: policy.Allow, rule: "standard-write"},
		{name: "move_file", path: "/etc/passwd", verdict: policy.Deny, rule: policy.RulePaths},
		{name: "run_shell", verdict: policy.Deny, rule: policy.RuleDefault},
	})
	// "vm-run profiles show strict" prints the section.
	out, err := strict.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\ntools:\n  default_action: deny\n", "- id: strict-read\n", "resource: allow\n"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("strict: YAML() lacks %q:\n%s", s, out)
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestToolsHash(t *testing.T) {
	parse := func(doc string) *Profile {
		t.Helper()
		p, err := (&Loader{}).Parse("p.yaml", []byte(doc), testVars)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", doc, err)
		}
		return p
	}
	base := parse(seed)
	same := parse(strings.Replace(seed, "allow: [\"read(docs/*)\", \"read(*.md)\"]",
		"allow:\n        - read(docs/*)\n        - read(*.md)", 1))
	if base.Hash() != same.Hash() {
		t.Errorf("Hash() differs for the same policy written in another YAML style")
	}
	for _, change := range []struct{ from, to string }{
		{"read(*.md)", "read(*.txt)"},
		{"default_action: deny", "default_action: allow"},
		{"id: allow-docs", "id: allow-doc"},
		{"  default_action: deny\n", "  default_action: deny\n  defaults:\n    prompt: deny\n"},
		{"  default_action: deny\n", "  default_action: deny\n  classes:\n    read:\n      tools: [cat]\n"},
	} {
		q := parse(strings.Replace(seed, change.from, change.to, 1))
		if q.Hash() == base.Hash() {
			t.Errorf("Hash() unchanged by %q -> %q in tools:", change.from, change.to)
		}
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"seed.yaml":    "rules:\n  - id: allow-docs\n    allow: [\"read(docs/*)\", \"read(*.md)\"]\n  - id: block-src-writes\n    deny: [\"write(src/*)\", \"write(lib/*)\"]\ndefault_action: deny\n",
		"nodef.yaml":   "rules:\n  - id: echo\n    allow: [echo]\n",
		"empty.yaml":   "{}\n",
		"unknown.yaml": "rules: []\nrulez: []\n",
		"matcher.yaml": "rules:\n  - id: a\n    allow:\n      - tool: x\n        paths: [\"/abs\"]\n",
		"network.yaml": "rules: []\nnetwork: off\ndefault_action: deny\n",
		"tools.yaml":   "tools:\n  rules: []\n",
		"class.yaml":   "rules:\n  - id: a\n    allow:\n      - class: fetch\n",
		"variable.yaml": "rules:\n  - id: a\n    allow:\n      - tool: x\n        args:\n" +
			"          dir: {glob: \"${HOME}/*\"}\n",
		"blank.yaml":  "# nothing\n",
		"two.yaml":    "rules: []\n---\nrules: []\n",
		"syntax.yaml": "rules: [\n",
		"list.yaml":   "- echo\n",
	})
	tests := []struct {
		file      string
		wantRules []string
		wantDef   policy.Action
		wantErr   string
	}{
		{"seed.yaml", []string{"allow-docs", "block-src-writes"}, policy.Deny, ""},
		{"nodef.yaml", []string{"echo"}, "", ""}, // not filled in: WithPolicy keeps the profile's
		{"empty.yaml", nil, "", ""},
		{"unknown.yaml", nil, "", `D/unknown.yaml:2:1: tools: unknown key "rulez" (want one of [mode default_action defaults classes rules on_change])`},
		{"matcher.yaml", nil, "", `D/matcher.yaml:4:9: rule "a": matcher {"tool":"x","paths":["/abs"]}: bad pattern: path pattern "/abs" is absolute; patterns are relative to the workspace`},
		{"network.yaml", nil, "", `D/network.yaml:2:1: network: belongs in the profile (network: none), not in a tool policy`},
		{"tools.yaml", nil, "", `D/tools.yaml:1:1: tools: this file is a tools: section itself; write its keys (rules, default_action, ...) at the top level`},
		{"class.yaml", nil, "", `D/class.yaml:4:9: rule "a": matcher {"class":"fetch"}: unknown class "fetch"`},
		{"variable.yaml", nil, "", `D/variable.yaml:6:24: rules[0].allow[0].args.dir.glob: ${HOME} is not expanded in tools: path patterns are relative to the workspace already ("docs/*" means ${WORKSPACE}/docs/*)`},
		{"blank.yaml", nil, "", `D/blank.yaml: empty tool policy; write {} for one that denies everything`},
		{"two.yaml", nil, "", `D/two.yaml:2:1: a tool policy file holds one YAML document; this is a second`},
		{"syntax.yaml", nil, "", `D/syntax.yaml:1: YAML syntax: did not find expected node content`},
		{"list.yaml", nil, "", `D/list.yaml:1:1: tool policy: want a mapping, got a list`},
	}
	for _, tt := range tests {
		p, err := LoadPolicy(filepath.Join(dir, tt.file))
		if tt.wantErr != "" {
			want := strings.ReplaceAll(tt.wantErr, "D/", dir+"/")
			var e *Error
			if err == nil || err.Error() != want || !errors.As(err, &e) {
				t.Errorf("LoadPolicy(%s) = %v (%T)\nwant *Error %s", tt.file, err, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("LoadPolicy(%s) = %v", tt.file, err)
			continue
		}
		if got := ruleIDs(p); !slices.Equal(got, tt.wantRules) || p.DefaultAction != tt.wantDef {
			t.Errorf("LoadPolicy(%s): rules %q, default_action %q; want %q, %q",
				tt.file, got, p.DefaultAction, tt.wantRules, tt.wantDef)
		}
	}
	if _, err := LoadPolicy(filepath.Join(dir, "nosuch.yaml")); !errors.Is(err, os.ErrNotExist) ||
		!strings.HasPrefix(err.Error(), "open tool policy ") {
		t.Errorf("LoadPolicy(nosuch.yaml) = %v, want an os.ErrNotExist naming the tool policy", err)
	}
}

func TestWithPolicy(t *testing.T) {
	strict, err := (&Loader{}).Load("strict", testVars)
	if err != nil {
		t.Fatal(err)
	}
	before := strict.Hash()
	dir := writeFiles(t, map[string]string{
		"extra.yaml": "rules:\n  - id: block-src-writes\n    deny: [\"write(src/*)\"]\n  - id: echo\n    allow: [echo]\n",
		"allow.yaml": "default_action: allow\ndefaults:\n  sampling: deny\n",
		"dup.yaml":   "rules:\n  - id: strict-read\n    deny: [read]\n",
	})
	extra := func(name string) *policy.Policy {
		t.Helper()
		p, err := LoadPolicy(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p, err := strict.WithPolicy(extra("extra.yaml"))
	if err != nil {
		t.Fatalf("WithPolicy(extra.yaml) = %v", err)
	}
	if got, want := ruleIDs(p.Tools), []string{"block-src-writes", "echo"}; !slices.Equal(got, want) {
		t.Errorf("WithPolicy(extra.yaml): rules %q, want %q", got, want)
	}
	checkCalls(t, "strict with extra.yaml", p.Tools, []call{
		{name: "echo", verdict: policy.Allow, rule: "echo"},
		{name: "write_file", path: "src/a", verdict: policy.Deny, rule: "block-src-writes"},
		{name: "read_text_file", path: "a", verdict: policy.Deny, rule: policy.RuleDefault}, // strict's rules replaced
		{name: "run_shell", verdict: policy.Deny, rule: policy.RuleDefault},                 // deny when unset
		{kind: policy.KindResource, name: "file:///x", verdict: policy.Deny, rule: policy.RuleDefault},
	})
	if p.Hash() == before {
		t.Errorf("WithPolicy: Hash() unchanged")
	}
	if strict.Hash() != before || len(strict.Tools.Rules) != 1 {
		t.Errorf("WithPolicy changed the profile it was called on")
	}
	roundTrip(t, p, testVars)

	p, err = strict.WithPolicy(extra("allow.yaml"))
	if err != nil {
		t.Fatalf("WithPolicy(allow.yaml) = %v", err)
	}
	checkCalls(t, "strict with allow.yaml", p.Tools, []call{
		{name: "run_shell", verdict: policy.Allow, rule: policy.RuleDefault}, // default_action replaced
		{kind: policy.KindSampling, name: "sampling/createMessage", verdict: policy.Deny, rule: policy.RuleDefault},
		{kind: policy.KindPrompt, name: "review", verdict: policy.Allow, rule: policy.RuleDefault},
	})

	// A rule id the profile used is no conflict: the profile's rules are
	// replaced.
	if p, err := strict.WithPolicy(extra("dup.yaml")); err != nil || ruleIDs(p.Tools)[0] != "strict-read" {
		t.Errorf("WithPolicy(dup.yaml) = %v, want its own strict-read rule in force", err)
	}
	if q, err := strict.WithPolicy(nil); err != nil || q == strict || q.Hash() != before {
		t.Errorf("WithPolicy(nil) = %p, %v; want a copy of the profile", q, err)
	}
}

// TestDenyRulesAccumulate: the case that used to walk around a profile's
// deny: corp.yaml extends standard and denies write(src/*); a --policy
// file that allows read and write cannot remove that deny, and neither can
// a child profile, "tools: ~" or a rule reusing the deny's id.
func TestDenyRulesAccumulate(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"corp.yaml": "name: corp\nextends: standard\ntools:\n  default_action: deny\n  rules:\n" +
			"    - id: read-write\n      allow: [read, write]\n" +
			"    - id: no-src\n      reason: sources are reviewed\n      deny: [\"write(src/*)\"]\n",
		"extra.yaml":  "rules:\n  - id: extra-read-write\n    allow: [read, write]\n",
		"reuse.yaml":  "rules:\n  - id: no-src\n    allow: [write]\n",
		"child.yaml":  "extends: corp.yaml\ntools:\n  default_action: allow\n  rules:\n    - id: all\n      allow: [write]\n",
		"null.yaml":   "extends: corp.yaml\ntools: ~\n",
		"child2.yaml": "extends: child.yaml\ntools:\n  rules:\n    - id: more\n      deny: [\"write(lib/*)\"]\n      allow: [read]\n",
	})
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
	checkCalls(t, "corp with --policy extra.yaml", p.Tools, []call{
		{name: "write_file", path: "src/main.c", verdict: policy.Deny, rule: "no-src"},
		{name: "write_file", path: "docs/a.md", verdict: policy.Allow, rule: "extra-read-write"},
	})
	for _, r := range p.Tools.Rules {
		wantOrigin := filepath.Join(dir, "extra.yaml")
		if r.ID == "no-src" {
			wantOrigin = filepath.Join(dir, "corp.yaml")
		}
		if r.Origin != wantOrigin {
			t.Errorf("rule %q comes from %q, want %q", r.ID, r.Origin, wantOrigin)
		}
	}
	if !strings.Contains(p.Tools.Describe(), "no-src: write(src/*)  (from "+filepath.Join(dir, "corp.yaml")+")") {
		t.Errorf("Describe() = %q, want the inherited deny with its origin", p.Tools.Describe())
	}
	reuse, err := LoadPolicy(filepath.Join(dir, "reuse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := corp.WithPolicy(reuse); err == nil || !strings.Contains(err.Error(), "no-src") {
		t.Errorf("WithPolicy(reuse.yaml), which reuses the id of an inherited deny rule = %v, want an error naming it", err)
	}
	for _, c := range []struct {
		file  string
		calls []call
	}{
		{"child.yaml", []call{
			{name: "write_file", path: "src/main.c", verdict: policy.Deny, rule: "no-src"},
			{name: "run_shell", verdict: policy.Allow, rule: policy.RuleDefault},
		}},
		{"null.yaml", []call{
			{name: "write_file", path: "src/main.c", verdict: policy.Deny, rule: "no-src"},
			{name: "read_text_file", path: "a", verdict: policy.Deny, rule: policy.RuleDefault},
		}},
		{"child2.yaml", []call{
			{name: "write_file", path: "src/main.c", verdict: policy.Deny, rule: "no-src"},
			{name: "write_file", path: "lib/a", verdict: policy.Deny, rule: "more"},
			{name: "write_file", path: "docs/a", verdict: policy.Deny, rule: policy.RuleDefault},
			{name: "read_text_file", path: "a", verdict: policy.Allow, rule: "more"},
		}},
	} {
		p, err := (&Loader{}).Load(filepath.Join(dir, c.file), testVars)
		if err != nil {
			t.Fatalf("Load(%s) = %v", c.file, err)
		}
		checkCalls(t, c.file, p.Tools, c.calls)
	}
	if err := os.WriteFile(filepath.Join(dir, "clash.yaml"), []byte("extends: corp.yaml\ntools:\n  rules:\n    - id: no-src\n      allow: [write]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&Loader{}).Load(filepath.Join(dir, "clash.yaml"), testVars)
	var perr *Error
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "no-src") || !strings.Contains(err.Error(), "clash.yaml") {
		t.Errorf("Load(clash.yaml), which reuses an inherited deny rule's id = %v, want an *Error in clash.yaml naming it", err)
	}
}

// sameRules returns p recompiled without the origins of its rules, for
// comparing policies that came from different files.
func sameRules(t testing.TB, p *policy.Policy) *policy.Policy {
	t.Helper()
	if p == nil {
		return nil
	}
	q := &policy.Policy{DefaultAction: p.DefaultAction, Defaults: p.Defaults, Classes: p.Classes}
	for _, r := range p.Rules {
		r.Origin = ""
		q.Rules = append(q.Rules, r)
	}
	if err := q.Compile(); err != nil {
		t.Fatalf("recompile %+v: %v", q, err)
	}
	return q
}
