package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/audit"
)

// used, deniedUse and failedUse build the uses a ledger would give.
func used(call CallInfo) Use {
	return Use{Call: call, Verdict: Allow, Rule: "session-rule", Status: audit.OutcomeOK}
}

func deniedUse(call CallInfo, rule string) Use {
	return Use{Call: call, Verdict: Deny, Rule: rule, Reason: "denied in the session"}
}

func failedUse(call CallInfo, status string) Use {
	return Use{Call: call, Verdict: Allow, Rule: "session-rule", Status: status}
}

func resourceCall(uri string) CallInfo {
	return CallInfo{Kind: KindResource, Name: uri, Workspace: testWS}
}

func promptCall(name string) CallInfo {
	return CallInfo{Kind: KindPrompt, Name: name, Workspace: testWS}
}

func requestCall(k Kind) CallInfo {
	return CallInfo{Kind: k, Name: "sampling/createMessage", Workspace: testWS}
}

// rulesOf lists a policy's rules as "id: matcher, matcher".
func rulesOf(p *Policy) []string {
	var out []string
	for _, r := range p.Rules {
		var ms []string
		for _, m := range r.Allow {
			ms = append(ms, m.String())
		}
		out = append(out, r.ID+": "+strings.Join(ms, ", "))
	}
	return out
}

func entriesOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		s := e.Matcher.String()
		if e.Allowed {
			s += " (allowed)"
		}
		out = append(out, s)
	}
	return out
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name    string
		uses    []Use
		want    []string // rules of the generated policy
		denied  []string // offers for denied calls
		failed  []string // offers for failed calls
		skipped int
		// notContained are calls the session did not make that the
		// generated policy must deny; contained, calls it did not make
		// that the generalisation covers.
		notContained, contained []CallInfo
	}{
		{
			name: "filesystem session",
			uses: []Use{
				used(path1("read_text_file", "docs/a.md")),
				used(path1("read_text_file", "/ws/docs/b.md")), // absolute, in the workspace
				used(path1("read_file", "README.md")),
				used(path1("list_directory", ".")),
				used(path1("list_directory", "docs")),
				used(tool("list_allowed_directories", nil)),
				used(resourceCall("file:///notes/today")),
				used(promptCall("review")),
				used(requestCall(KindSampling)),
				deniedUse(tool("write_file", map[string]any{"path": "src/x.go", "content": "x"}), RuleDefault),
				failedUse(path1("read_text_file", "docs/missing.md"), audit.OutcomeToolError),
				failedUse(path1("read_text_file", "lib/gone.md"), ""),
			},
			want: []string{
				"used-tools: list_allowed_directories, list_directory(.), read(./README.md), read(docs/*)",
				"used-resources: resource(file:///notes/today)",
				"used-prompts: prompt(review)",
				"used-sampling: sampling",
			},
			denied: []string{"write(src/x.go)"},
			failed: []string{"read(docs/missing.md) (allowed)", "read(lib/gone.md)"},
			notContained: []CallInfo{
				path1("read_text_file", "src/main.go"),
				path1("read_text_file", "docs"), // the directory itself is not beneath docs/*
				path1("read_text_file", "sub/README.md"),
				path1("write_file", "docs/a.md"),
				path1("directory_tree", "docs"),
				tool("echo", map[string]any{"message": "hi"}),
				resourceCall("file:///notes/yesterday"),
				promptCall("deploy"),
				requestCall(KindElicitation),
			},
			contained: []CallInfo{path1("read_media_file", "docs/c.png"), path1("list_directory", "src")},
		},
		{
			name: "a denied call keeps paths exact",
			uses: []Use{
				used(path1("read_text_file", "docs/a.md")),
				used(path1("read_text_file", "docs/b.md")),
				deniedUse(path1("read_text_file", "docs/secret.md"), "no-secrets"),
			},
			want:         []string{"used-tools: read(docs/a.md), read(docs/b.md)"},
			denied:       []string{"read(docs/secret.md)"},
			notContained: []CallInfo{path1("read_text_file", "docs/secret.md"), path1("read_text_file", "docs/c.md")},
		},
		{
			name: "files at the root stay exact and anchored",
			uses: []Use{
				used(path1("read_text_file", "README.md")),
				used(path1("read_text_file", "./LICENSE")),
			},
			want:         []string{"used-tools: read(./LICENSE), read(./README.md)"},
			notContained: []CallInfo{path1("read_text_file", "NOTES.md"), path1("read_text_file", "sub/README.md")},
		},
		{
			name: "paths of one call generalise together",
			uses: []Use{
				used(tool("read_multiple_files", map[string]any{"paths": []any{"docs/a.md", "docs/b.md"}})),
				used(tool("move_file", map[string]any{"source": "tmp/a", "destination": "out/a"})),
				used(path1("create_directory", "out/new")),
			},
			want: []string{"used-tools: create_directory(out/new), move_file(out/a), move_file(tmp/a), read(docs/*)"},
			notContained: []CallInfo{
				tool("move_file", map[string]any{"source": "tmp/a", "destination": "src/a"}),
				path1("create_directory", "out/other"),
				path1("write_file", "out/new/x"),
			},
		},
		{
			name: "glob characters are quoted",
			uses: []Use{
				used(path1("read_text_file", "data/[x]*.csv")),
				used(tool("get_*", nil)),
				used(tool("read", nil)), // a tool named like a class
				used(tool(" pad", nil)), // no string form parses back
				used(path1("search_files", "a(1)")),
				used(resourceCall("mem://k?x=*")),
			},
			want: []string{
				`used-tools: get_\*, read(data/\[x]\*.csv), search_files(./a(1)), tool(read), {"tool":" pad"}`,
				`used-resources: resource(mem://k\?x=\*)`,
			},
			notContained: []CallInfo{
				path1("read_text_file", "data/xy.csv"),
				tool("get_secret", nil),
				path1("read_text_file", "other"),
				resourceCall("mem://k/x=1"),
			},
		},
		{
			name: "what cannot be expressed is skipped",
			uses: []Use{
				deniedUse(path1("read_text_file", "../etc/passwd"), RulePaths),
				deniedUse(resourceCall("file:///a/%2e%2e/b"), RuleURI),
				deniedUse(tool("", nil), RuleInvalid),
				used(tool("read_text_file", map[string]any{"path": map[string]any{"redacted_sha256": "00"}})),
				used(path1("read_text_file", "/elsewhere/x")),
				used(CallInfo{Kind: "telepathy", Name: "x"}),
				used(path1("read_text_file", "ok.md")),
			},
			want:    []string{"used-tools: read(./ok.md)"},
			skipped: 6,
		},
		{
			name:   "no call used: deny everything",
			uses:   []Use{deniedUse(tool("echo", nil), RuleDefault)},
			denied: []string{"echo"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Generate(tt.uses, GenerateOptions{})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got := rulesOf(g.Policy); !slices.Equal(got, tt.want) {
				t.Errorf("rules = %q, want %q", got, tt.want)
			}
			if g.Policy.DefaultAction != Deny || g.Policy.Defaults != nil {
				t.Errorf("default_action %q, defaults %v; want deny for every kind", g.Policy.DefaultAction, g.Policy.Defaults)
			}
			if got := entriesOf(g.Denied); !slices.Equal(got, tt.denied) {
				t.Errorf("denied offers = %q, want %q", got, tt.denied)
			}
			if got := entriesOf(g.Failed); !slices.Equal(got, tt.failed) {
				t.Errorf("failed offers = %q, want %q", got, tt.failed)
			}
			if len(g.Skipped) != tt.skipped {
				t.Errorf("skipped %d calls (%+v), want %d", len(g.Skipped), g.Skipped, tt.skipped)
			}
			skipped := map[string]bool{}
			for _, s := range g.Skipped {
				if s.Why == "" {
					t.Errorf("skip of %q gives no reason", s.Use.Call.Name)
				}
				skipped[s.Use.Call.Name+describeArgs(s.Use.Call)] = true
			}
			// What the YAML says must decide as the policy does: decode the
			// written form back.
			back := roundTrip(t, g.Policy, nil)
			for _, p := range []*Policy{g.Policy, back} {
				for _, u := range tt.uses {
					if skipped[u.Call.Name+describeArgs(u.Call)] {
						continue
					}
					d := p.Decide(u.Call)
					if u.Used() && !d.Allowed() {
						t.Errorf("Decide(used %s %q %v) = deny (%s), want allow", u.Call.Kind, u.Call.Name, u.Call.Arguments, d.Reason)
					}
					if u.Verdict == Deny && d.Allowed() {
						t.Errorf("Decide(denied %s %q %v) = allow (%s), want deny", u.Call.Kind, u.Call.Name, u.Call.Arguments, d.Reason)
					}
				}
				for _, c := range tt.notContained {
					if d := p.Decide(c); d.Allowed() {
						t.Errorf("Decide(%s %q %v) = allow (%s), want deny: the session made no such call", c.Kind, c.Name, c.Arguments, d.Reason)
					}
				}
				for _, c := range tt.contained {
					if d := p.Decide(c); !d.Allowed() {
						t.Errorf("Decide(%s %q %v) = deny (%s), want allow by the generalised rule", c.Kind, c.Name, c.Arguments, d.Reason)
					}
				}
			}
			for _, e := range g.Allow {
				if len(e.Uses) == 0 {
					t.Errorf("matcher %s stands for no call", e.Matcher)
				}
			}
			again, err := Generate(tt.uses, GenerateOptions{})
			if err != nil || !reflect.DeepEqual(rulesOf(again.Policy), rulesOf(g.Policy)) {
				t.Errorf("Generate is not deterministic: %q then %q (%v)", rulesOf(g.Policy), rulesOf(again.Policy), err)
			}
		})
	}
}

func describeArgs(c CallInfo) string {
	b, _ := yaml.Marshal(c.Arguments)
	return string(b)
}

// roundTrip writes p as YAML and decodes it as the profile loader would,
// with the classes of the profile it extends.
func roundTrip(t *testing.T, p *Policy, classes map[string]Class) *Policy {
	t.Helper()
	data, err := yaml.Marshal(p)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
	back, err := DecodePolicy(&n, nil)
	if err != nil {
		t.Fatalf("DecodePolicy(%s): %v", data, err)
	}
	if classes == nil {
		return back
	}
	merged := Merge(&Policy{Classes: classes}, back)
	if err := merged.Compile(); err != nil {
		t.Fatalf("compile %s: %v", data, err)
	}
	return merged
}

// TestGenerateClasses checks that a class of the extended profile decides
// which arguments hold paths, and that the generated policy, which does not
// restate the class, allows the call with it.
func TestGenerateClasses(t *testing.T) {
	classes := map[string]Class{"fetch": {Tools: []string{"fetch_*"}, PathArgs: []string{"file"}}}
	uses := []Use{used(tool("fetch_url", map[string]any{"file": "cache/a", "url": "https://x"}))}
	g, err := Generate(uses, GenerateOptions{Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rulesOf(g.Policy), []string{"used-tools: fetch_url(cache/a)"}; !slices.Equal(got, want) {
		t.Fatalf("rules = %q, want %q", got, want)
	}
	if g.Policy.Classes != nil {
		t.Errorf("generated policy restates classes %v", g.Policy.Classes)
	}
	merged := roundTrip(t, g.Policy, classes)
	for _, tt := range []struct {
		file string
		want Action
	}{{"cache/a", Allow}, {"cache/b", Deny}} {
		c := tool("fetch_url", map[string]any{"file": tt.file})
		if d := merged.Decide(c); d.Verdict != tt.want {
			t.Errorf("Decide(fetch_url file %q) = %s (%s), want %s", tt.file, d.Verdict, d.Reason, tt.want)
		}
	}
}
