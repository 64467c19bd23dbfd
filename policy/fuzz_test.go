package policy

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// seedLines adds every line of a testdata file to the corpus.
func seedLines(f *testing.F, name string, add func(string)) {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		add(line)
	}
}

// FuzzDecide checks the path matcher on arbitrary paths: no panic, the
// same answer twice, nothing outside the workspace or ambiguous allowed,
// and the seeds' deny rule never bypassed.
func FuzzDecide(f *testing.F) {
	seedLines(f, "paths.txt", func(s string) { f.Add(s, "write_file") })
	f.Add("docs/a.md", "read_file")
	pol, err := parsePolicy([]byte(`
default_action: deny
rules:
  - id: allow-docs
    allow: ["read(docs/*)", "read(*.md)", "write(**)"]
  - id: block-src-writes
    deny: ["write(src/*)", "write(lib/*)"]
`), "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p, toolName string) {
		for _, call := range []CallInfo{
			tool(toolName, map[string]any{"path": p}),
			tool(toolName, map[string]any{"source": "docs/a", "destination": p}),
			tool(toolName, map[string]any{"paths": []any{p, "x.md"}}),
		} {
			d := pol.Decide(call)
			if d2 := pol.Decide(call); d2.Verdict != d.Verdict || d2.Rule != d.Rule {
				t.Fatalf("Decide(%q) = %s/%s then %s/%s", p, d.Verdict, d.Rule, d2.Verdict, d2.Rule)
			}
			if !d.Allowed() {
				continue
			}
			rel, why := normalizePath(testWS, p)
			if why != "" || !utf8.ValidString(p) || strings.ContainsRune(p, 0) || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("Decide allowed %s with path %q (normalised %q, %s)", toolName, p, rel, why)
			}
			segs := strings.Split(rel, "/")
			switch toolName {
			case "write_file", "edit_file", "create_directory", "move_file":
				if rel == "." || segs[0] == "src" || segs[0] == "lib" {
					t.Fatalf("Decide allowed %s on %q past block-src-writes", toolName, p)
				}
			default:
				md := false
				for _, s := range segs {
					if ok, _ := path.Match("*.md", s); ok {
						md = true
					}
				}
				if !md && (segs[0] != "docs" || len(segs) < 2) {
					t.Fatalf("Decide allowed %s on %q, which no allow pattern covers", toolName, p)
				}
			}
		}
	})
}

// FuzzDecodePolicy checks the YAML decoder on arbitrary input: no panic,
// and a policy it accepts decides, asks only under rules [Policy.AskRule]
// knows, and survives a YAML round trip with its ask terms.
func FuzzDecodePolicy(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "policies", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) != nil {
			return
		}
		p, err := DecodePolicy(&n, nil)
		if err != nil {
			return
		}
		for _, call := range []CallInfo{path1("read_file", "docs/a.md"), path1("write_file", "src/a"), tool("echo", nil), {Kind: KindSampling}} {
			if d := p.Decide(call); d.Verdict == Ask {
				if _, ok := p.AskRule(d.Rule); !ok {
					t.Fatalf("Decide(%q) asks under rule %q, which AskRule does not know", call.Name, d.Rule)
				}
			}
			p.Visible(call.Kind, call.Name, nil)
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal an accepted policy: %v", err)
		}
		again, err := parsePolicy(out, "again.yaml")
		if err != nil {
			t.Fatalf("an accepted policy does not decode after a round trip: %v\n%s", err, out)
		}
		// Ask rules keep their terms: a ttl or timeout lost in `profiles
		// show` would change what a person is offered.
		for _, id := range append(ruleIDs(p), RuleDefault) {
			a, ok := p.AskRule(id)
			b, ok2 := again.AskRule(id)
			if a != b || ok != ok2 {
				t.Fatalf("AskRule(%q) = %+v, %v; after a round trip %+v, %v\n%s", id, a, ok, b, ok2, out)
			}
			if ok && (a.Timeout < MinAskTimeout || a.Timeout > MaxAskTimeout || a.TTL < 0 || a.TTL > MaxAskTTL) {
				t.Fatalf("AskRule(%q) = %+v, out of bounds", id, a)
			}
		}
	})
}

func ruleIDs(p *Policy) []string {
	var out []string
	for _, r := range p.Rules {
		out = append(out, r.ID)
	}
	return out
}
