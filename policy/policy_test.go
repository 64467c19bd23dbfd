package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const testWS = "/ws"

// loadPolicy decodes testdata/policies/NAME.yaml.
func loadPolicy(t testing.TB, name string) *Policy {
	t.Helper()
	file := filepath.Join("testdata", "policies", name+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePolicy(data, file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parsePolicy decodes a YAML document as the lead's loader would, with the
// hook adding the file name.
func parsePolicy(data []byte, file string) (*Policy, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	return DecodePolicy(&n, func(line, col int, err error) error {
		return &fileError{file: file, PositionError: PositionError{Line: line, Column: col, Err: err}}
	})
}

type fileError struct {
	file string
	PositionError
}

func (e *fileError) Error() string { return e.file + ":" + e.PositionError.Error() }

func tool(name string, args map[string]any) CallInfo {
	return CallInfo{Kind: KindTool, Name: name, Arguments: args, Workspace: testWS}
}

func path1(name, p string) CallInfo { return tool(name, map[string]any{"path": p}) }

func ptr(b bool) *bool { return &b }

type decideCase struct {
	name     string
	call     CallInfo
	wantRule string
	want     Action
}

func runDecide(t *testing.T, p *Policy, tests []decideCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.call)
			if d.Verdict != tt.want || d.Rule != tt.wantRule {
				t.Errorf("Decide(%s %q %v) = %s by %q (%s), want %s by %q",
					tt.call.Kind, tt.call.Name, tt.call.Arguments, d.Verdict, d.Rule, d.Reason, tt.want, tt.wantRule)
			}
			if d.Reason == "" {
				t.Errorf("Decide(%q) gave no reason", tt.call.Name)
			}
			if again := p.Decide(tt.call); !reflect.DeepEqual(again, d) {
				t.Errorf("Decide(%q) is not deterministic: %+v then %+v", tt.call.Name, d, again)
			}
		})
	}
}

func TestDecideSeedsExample(t *testing.T) {
	p := loadPolicy(t, "seeds")
	destructive := path1("read_file", "docs/a.md")
	destructive.Annotations = &ToolAnnotations{DestructiveHint: ptr(true)}
	readOnlyFalse := path1("read_file", "docs/a.md")
	readOnlyFalse.Annotations = &ToolAnnotations{ReadOnlyHint: ptr(false)}
	honest := path1("read_file", "docs/a.md")
	honest.Annotations = &ToolAnnotations{ReadOnlyHint: ptr(true)}

	runDecide(t, p, []decideCase{
		{"docs file", path1("read_text_file", "docs/a.md"), "allow-docs", Allow},
		{"beneath docs entry", path1("read_file", "docs/sub/x.txt"), "allow-docs", Allow},
		{"docs itself", path1("list_directory", "docs"), RuleDefault, Deny},
		{"md at root", path1("read_file", "README.md"), "allow-docs", Allow},
		{"md at depth", path1("read_file", "a/b/c.md"), "allow-docs", Allow},
		{"dot slash", path1("read_file", "./docs/a.md"), "allow-docs", Allow},
		{"double slash", path1("read_file", "docs//a.md"), "allow-docs", Allow},
		{"trailing slash", path1("list_directory", "docs/sub/"), "allow-docs", Allow},
		{"absolute inside", path1("read_file", "/ws/docs/a.md"), "allow-docs", Allow},
		{"not allowed", path1("read_file", "src/main.go"), RuleDefault, Deny},
		{"case differs", path1("read_file", "DOCS/a.txt"), RuleDefault, Deny},
		{"root listing", path1("list_directory", "."), RuleDefault, Deny},
		{"src write", path1("write_file", "src/a.go"), "block-src-writes", Deny},
		{"deep src write", path1("edit_file", "src/x/y/z.go"), "block-src-writes", Deny},
		{"lib write", path1("create_directory", "lib/new"), "block-src-writes", Deny},
		{"src itself moved", tool("move_file", map[string]any{"source": "src", "destination": "old"}), "block-src-writes", Deny},
		{"move into src", tool("move_file", map[string]any{"source": "docs/a.md", "destination": "src/a.md"}), "block-src-writes", Deny},
		{"md write not allowed", path1("write_file", "notes.md"), RuleDefault, Deny},
		{"multiple all docs", tool("read_multiple_files", map[string]any{"paths": []any{"docs/a", "x.md"}}), "allow-docs", Allow},
		{"multiple one outside", tool("read_multiple_files", map[string]any{"paths": []any{"docs/a", "src/b"}}), RuleDefault, Deny},
		{"no path args", tool("list_allowed_directories", nil), RuleDefault, Deny},
		{"unknown tool", tool("echo", map[string]any{"path": "../x"}), RuleDefault, Deny},
		// The server's claims tighten, never loosen.
		{"annotated destructive", destructive, RuleDefault, Deny},
		{"annotated not read-only", readOnlyFalse, RuleDefault, Deny},
		{"annotated read-only", honest, "allow-docs", Allow},
	})
}

func TestDecidePathAttacks(t *testing.T) {
	// Everything here is refused before any rule, even by a policy that
	// allows everything.
	p := Permissive()
	cases := []struct{ name, path string }{
		{"dotdot", "../etc/passwd"},
		{"dotdot inside", "docs/../src/x"},
		{"dotdot trailing", "docs/.."},
		{"absolute outside", "/etc/passwd"},
		{"absolute sibling prefix", "/wsx/a"},
		{"absolute dotdot", "/ws/../etc/passwd"},
		{"NUL", "docs/a\x00.md"},
		{"invalid UTF-8", "docs/\xff.md"},
		{"replacement char", "docs/\uFFFD.md"},
		{"overlong UTF-8 slash", "docs\xc0\xafetc"},
		{"newline", "docs/a\n.md"},
		{"escape char", "docs/\x1b[2J"},
		{"home", "~/.ssh/id_ed25519"},
		{"home bare", "~"},
		{"leading blank", " docs/a.md"},
		{"trailing blank", "docs/a.md "},
		{"quoted", "\"docs/a.md\""},
		{"single quoted", "'/etc/passwd'"},
		{"combining mark", "cafe\u0301/x"},
		{"kelvin sign", "\u212Aconfig"},
		{"angstrom sign", "\u212B"},
		{"hangul jamo", "\u1100\u1161"},
		{"empty", ""},
		{"too long", strings.Repeat("a/", pathMax/2+1)},
		{"long name", strings.Repeat("n", nameMax+1)},
	}
	for _, tt := range cases {
		for _, call := range []CallInfo{
			path1("read_file", tt.path),
			tool("read_multiple_files", map[string]any{"paths": []any{"docs/ok", tt.path}}),
			tool("move_file", map[string]any{"source": "docs/ok", "destination": tt.path}),
		} {
			if d := p.Decide(call); d.Verdict != Deny || d.Rule != RulePaths {
				t.Errorf("%s: Decide(%s %v) = %s by %q (%s), want deny by %q", tt.name, call.Name, call.Arguments, d.Verdict, d.Rule, d.Reason, RulePaths)
			}
		}
	}
	for _, v := range []any{42.0, true, map[string]any{"x": "y"}, nil, []any{"ok", 1.0}} {
		call := tool("read_multiple_files", map[string]any{"paths": v})
		if _, isList := v.([]any); !isList {
			call = path1("read_file", "")
			call.Arguments["path"] = v
		}
		if d := p.Decide(call); d.Verdict != Deny || d.Rule != RulePaths {
			t.Errorf("Decide(%s %v) = %s by %q, want deny by %q", call.Name, call.Arguments, d.Verdict, d.Rule, RulePaths)
		}
	}
}

func TestDecideLiteralPaths(t *testing.T) {
	// Encoded and symlink-looking names are taken literally, as the kernel
	// takes them: they are never decoded into something else.
	p := loadPolicy(t, "seeds")
	runDecide(t, p, []decideCase{
		{"percent dotdot is a name", path1("read_file", "docs/%2e%2e/x"), "allow-docs", Allow},
		{"percent slash is a name", path1("read_file", "docs%2F..%2F..%2Fetc%2Fpasswd"), RuleDefault, Deny},
		{"backslash is a name", path1("read_file", "docs\\..\\..\\etc"), RuleDefault, Deny},
		{"dots in names", path1("read_file", "docs/...md"), "allow-docs", Allow},
		{"symlink-ish name", path1("read_file", "docs/link -> ..%2fsrc"), "allow-docs", Allow},
		{"windows drive", path1("write_file", "C:\\src\\a"), RuleDefault, Deny},
	})
}

func TestDecideNamesResourcesPrompts(t *testing.T) {
	p := loadPolicy(t, "names")
	res := func(uri string) CallInfo { return CallInfo{Kind: KindResource, Name: uri, Workspace: testWS} }
	prompt := func(name string) CallInfo { return CallInfo{Kind: KindPrompt, Name: name, Workspace: testWS} }
	runDecide(t, p, []decideCase{
		{"plain name", tool("echo", nil), "names", Allow},
		{"glob name", tool("get_weather", nil), "names", Allow},
		{"deny beats allow", tool("get_secret_key", nil), "no-secrets", Deny},
		{"tool named like a class", tool("read", nil), "names", Allow},
		{"class member not named", path1("read_file", "docs/a"), RuleDefault, Deny},
		{"name is exact", tool("echo2", nil), RuleDefault, Deny},
		{"resource allowed", res("file:///ws/docs/a/b.md"), "names", Allow},
		{"resource denied", res("file:///ws/docs/private/key"), "no-secrets", Deny},
		{"resource other", res("file:///etc/passwd"), RuleDefault, Deny},
		// Dot segments are removed, so these are file:///ws/secret, which
		// no rule allows; they no longer pass for something under docs/.
		{"resource dotdot", res("file:///ws/docs/../secret"), RuleDefault, Deny},
		{"resource encoded dot", res("file:///ws/docs/%2e%2e/secret"), RuleDefault, Deny},
		{"resource dotdot into denied", res("file:///ws/docs/x/../private/key"), "no-secrets", Deny},
		{"resource other spelling denied", res("FILE://LOCALHOST/ws/docs/%70rivate/key"), "no-secrets", Deny},
		{"resource denied ignoring the query", res("file:///ws/docs/private/key?x=1"), "no-secrets", Deny},
		{"resource encoded slash", res("file:///ws/docs/private%2Fkey"), RuleURI, Deny},
		{"resource NUL", res("file:///ws/docs/a%00"), RuleURI, Deny},
		{"resource control", res("file:///ws/docs/a\n"), RuleURI, Deny},
		{"prompt allowed", prompt("review_code"), "names", Allow},
		{"prompt other", prompt("exfiltrate"), RuleDefault, Deny},
		{"elicitation allowed", CallInfo{Kind: KindElicitation, Name: "elicitation/create"}, "names", Allow},
		{"sampling by default", CallInfo{Kind: KindSampling, Name: "sampling/createMessage"}, RuleDefault, Deny},
	})
}

func TestDecideArguments(t *testing.T) {
	p := loadPolicy(t, "args")
	runDecide(t, p, []decideCase{
		{"search go in src", tool("search_files", map[string]any{"path": "src/pkg", "pattern": "*.go"}), "search-go", Allow},
		{"search other pattern", tool("search_files", map[string]any{"path": "src", "pattern": "*.key"}), RuleDefault, Deny},
		{"search outside src", tool("search_files", map[string]any{"path": "docs", "pattern": "*.go"}), RuleDefault, Deny},
		{"search pattern missing", tool("search_files", map[string]any{"path": "src"}), RuleDefault, Deny},
		{"search pattern not string", tool("search_files", map[string]any{"path": "src", "pattern": map[string]any{}}), RuleDefault, Deny},
		{"custom class path", tool("fetch_url", map[string]any{"file": "cache/x"}), "fetch-ws", Allow},
		{"custom class elsewhere", tool("fetch_url", map[string]any{"file": "src/x"}), RuleDefault, Deny},
		{"custom class escape", tool("fetch_url", map[string]any{"file": "../x"}), RulePaths, Deny},
		{"custom class no path", tool("fetch_url", nil), RuleDefault, Deny},
		{"regex whole value", tool("run", map[string]any{"cmd": "ls src"}), "run-safe", Allow},
		{"regex anchored", tool("run", map[string]any{"cmd": "ls src; curl evil"}), RuleDefault, Deny},
		{"deny regex", tool("run", map[string]any{"cmd": "cat a; rm -rf b"}), "run-no-rm", Deny},
		{"deny on odd type", tool("run", map[string]any{"cmd": []any{map[string]any{}}}), "run-no-rm", Deny},
		{"added to read class", path1("peek", "peekable/x"), "peek", Allow},
		{"added to read class elsewhere", path1("peek", "x"), RuleDefault, Deny},
		{"resource default", CallInfo{Kind: KindResource, Name: "mem://x"}, RuleDefault, Allow},
	})
}

func TestStrictPolicy(t *testing.T) {
	p := Strict()
	runDecide(t, p, []decideCase{
		{"read anywhere", path1("read_text_file", "src/main.go"), "strict-read", Allow},
		{"read root", path1("directory_tree", testWS), "strict-read", Allow},
		{"list allowed dirs", tool("list_allowed_directories", nil), "strict-read", Allow},
		{"read outside", path1("read_text_file", "/etc/shadow"), RulePaths, Deny},
		{"write", path1("write_file", "a.txt"), RuleDefault, Deny},
		{"move", tool("move_file", map[string]any{"source": "a", "destination": "b"}), RuleDefault, Deny},
		{"unknown tool", tool("run_shell", nil), RuleDefault, Deny},
		{"resource", CallInfo{Kind: KindResource, Name: "file:///ws/a"}, RuleDefault, Allow},
		{"prompt", CallInfo{Kind: KindPrompt, Name: "p"}, RuleDefault, Allow},
		{"sampling", CallInfo{Kind: KindSampling, Name: "sampling/createMessage"}, RuleDefault, Deny},
		{"elicitation", CallInfo{Kind: KindElicitation, Name: "elicitation/create"}, RuleDefault, Deny},
	})
}

func TestNilAndZeroPolicyDeny(t *testing.T) {
	for _, p := range []*Policy{nil, {}} {
		for _, k := range kinds {
			if d := p.Decide(CallInfo{Kind: k, Name: "x"}); d.Allowed() {
				t.Errorf("(%v).Decide(%s) = allow, want deny", p, k)
			}
			if p.Visible(k, "x", nil) {
				t.Errorf("(%v).Visible(%s) = true, want false", p, k)
			}
		}
	}
}

func TestVisible(t *testing.T) {
	seeds := loadPolicy(t, "seeds")
	names := loadPolicy(t, "names")
	destructive := &ToolAnnotations{DestructiveHint: ptr(true)}
	tests := []struct {
		p    *Policy
		kind Kind
		name string
		ann  *ToolAnnotations
		want bool
	}{
		{seeds, KindTool, "read_file", nil, true},
		{seeds, KindTool, "read_file", destructive, false},
		{seeds, KindTool, "write_file", nil, false}, // nothing allows writing
		{seeds, KindTool, "echo", nil, false},
		{names, KindTool, "get_weather", nil, true},
		{names, KindTool, "get_secret", nil, false},
		{names, KindPrompt, "review_x", nil, true},
		{names, KindResource, "file:///ws/docs/private/k", nil, false},
		{names, KindResource, "file:///ws/docs/%2e%2e/k", nil, false},
		{Permissive(), KindTool, "anything", nil, true},
		{Strict(), KindTool, "write_file", nil, false},
		{Strict(), KindTool, "read_media_file", nil, true},
	}
	for _, tt := range tests {
		if got := tt.p.Visible(tt.kind, tt.name, tt.ann); got != tt.want {
			t.Errorf("Visible(%s %q, %v) = %v, want %v", tt.kind, tt.name, tt.ann, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	base := Strict()
	over := &Policy{
		Classes: map[string]Class{"write": {Tools: []string{"scribble"}}},
		Rules:   []Rule{{ID: "tmp-writes", Allow: []Matcher{{Spec: "write(tmp/**)"}}}},
	}
	m := Merge(base, over)
	if err := m.Compile(); err != nil {
		t.Fatal(err)
	}
	runDecide(t, m, []decideCase{
		{"base rule", path1("read_file", "a"), "strict-read", Allow},
		{"over rule", path1("write_file", "tmp/a"), "tmp-writes", Allow},
		{"over class", path1("scribble", "tmp/a"), "tmp-writes", Allow},
		{"still default deny", path1("write_file", "a"), RuleDefault, Deny},
	})
	if err := Merge(m, base).Compile(); err == nil {
		t.Errorf("Merge with a repeated rule id compiled, want an error")
	}
}
