package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// decodeArgs decodes arguments as the proxy does, numbers as sent.
func decodeArgs(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func TestGrantKey(t *testing.T) {
	p := mustParse(t, `
rules:
  - id: ask-run
    ask: [run, "write(src/*)", "resource(file:///srv/**)"]
    ttl: 1h
  - id: ask-other
    ask: [other]
`)
	key := func(call CallInfo) string {
		t.Helper()
		d := p.Decide(call)
		if d.Verdict != Ask {
			t.Fatalf("Decide(%q) = %s (%s), want ask", call.Name, d.Verdict, d.Reason)
		}
		return GrantKey(d, call)
	}
	run := func(args string) CallInfo { return tool("run", decodeArgs(t, args)) }
	same := []struct {
		name string
		a, b CallInfo
	}{
		{"key order", run(`{"a":1,"b":"x"}`), run(`{"b":"x","a":1}`)},
		{"nested key order", run(`{"o":{"y":[1,{"q":true,"p":null}],"x":"é"}}`), run(`{"o":{"x":"é","y":[1,{"p":null,"q":true}]}}`)},
		{"blanks and escapes", run(`{ "s" : "\u00e9\n" }`), run(`{"s":"é\n"}`)},
		{"no arguments", tool("run", nil), tool("run", nil)},
	}
	for _, tt := range same {
		if ka, kb := key(tt.a), key(tt.b); ka != kb || len(ka) != 64 {
			t.Errorf("%s: GrantKey = %s and %s, want the same key", tt.name, ka, kb)
		}
	}
	base := run(`{"n":1,"s":"é","l":[1,2]}`)
	differ := []struct {
		name string
		b    CallInfo
	}{
		{"number text", run(`{"n":1.0,"s":"é","l":[1,2]}`)},
		{"number as a string", run(`{"n":"1","s":"é","l":[1,2]}`)},
		{"NFD spelling", run(`{"n":1,"s":"e\u0301","l":[1,2]}`)},
		{"list order", run(`{"n":1,"s":"é","l":[2,1]}`)},
		{"extra argument", run(`{"n":1,"s":"é","l":[1,2],"x":null}`)},
		{"null for absent", run(`{"n":1,"s":"é","l":[1,2,null]}`)},
		{"other workspace", func() CallInfo { c := base; c.Workspace = "/other"; return c }()},
		{"another root", func() CallInfo { c := base; c.Bases = []string{testWS, testWS + "/src"}; return c }()},
	}
	kbase := key(base)
	for _, tt := range differ {
		if kb := key(tt.b); kb == kbase {
			t.Errorf("%s: GrantKey is the same as for %v, want another", tt.name, base.Arguments)
		}
	}
	if key(tool("other", nil)) == key(tool("run", nil)) {
		t.Error("GrantKey of two tools is the same")
	}
	// The name as sent: two spellings of one URI are two calls.
	r1 := CallInfo{Kind: KindResource, Name: "file:///srv/a"}
	r2 := CallInfo{Kind: KindResource, Name: "FILE:///srv/a"}
	if key(r1) == key(r2) {
		t.Error("GrantKey of two spellings of a URI is the same, want the name as sent")
	}
	// Arguments that JSON would decode to one string stay apart.
	if key(tool("run", map[string]any{"s": "\xff"})) == key(tool("run", map[string]any{"s": "\xfe"})) {
		t.Error("GrantKey of two invalid UTF-8 strings is the same")
	}
	allow := p.Decide(tool("nope", nil))
	if k := GrantKey(allow, tool("nope", nil)); k != "" {
		t.Errorf("GrantKey of a %s = %q, want \"\"", allow.Verdict, k)
	}
}

// TestGrantKeyFollowsLinks: a link swapped between two calls spelled the
// same makes the second call another call.
func TestGrantKeyFollowsLinks(t *testing.T) {
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"src/a", "src/b"} {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(ws, "src", "cur")
	if err := os.Symlink("a", link); err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, "rules:\n  - id: src\n    ask: [\"write(src/*)\"]\n    ttl: 1h\n")
	call := CallInfo{Kind: KindTool, Name: "write_file", Arguments: map[string]any{"path": "src/cur/x"}, Workspace: ws}
	d1 := p.Decide(call)
	k1 := GrantKey(d1, call)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", link); err != nil {
		t.Fatal(err)
	}
	d2 := p.Decide(call)
	k2 := GrantKey(d2, call)
	if !slices.Equal(d1.Paths, []string{"src/a/x"}) || !slices.Equal(d2.Paths, []string{"src/b/x"}) {
		t.Fatalf("paths = %q then %q, want src/a/x then src/b/x", d1.Paths, d2.Paths)
	}
	if k1 == "" || k1 == k2 {
		t.Errorf("GrantKey before and after the link moved = %q, %q; want two keys", k1, k2)
	}
	if k3 := GrantKey(p.Decide(call), call); k3 != k2 {
		t.Errorf("GrantKey of the same call twice = %q, %q", k2, k3)
	}
}
