package proxy

import (
	"encoding/json"
	"testing"
)

func TestPathGlobRelation(t *testing.T) {
	tests := []struct {
		pattern, rel      string
		covered, overlaps bool
	}{
		{"docs/*", "docs/a", true, true},
		{"docs/*", "docs/a/b/c", true, true},
		{"docs/*", "docs", false, true}, // docs holds matches
		{"docs/*", ".", false, true},
		{"docs/*", "src/a", false, false},
		{"docs/*", "docsx/a", false, false},
		{"docs/*", "a/docs/b", false, false}, // anchored: it has a slash
		{"*.md", "README.md", true, true},
		{"*.md", "a/b/c.md", true, true},
		{"*.md", "a/b", false, true}, // a/b/x.md may exist
		{"./*.md", "a/b.md", false, false},
		{"./*.md", "b.md", true, true},
		{"docs/**", "docs", true, true},
		{"docs/**", "docs/a/b", true, true},
		{"docs/**/*.go", "docs/a/b.go", true, true},
		{"docs/**/*.go", "docs/b.go", true, true},
		{"docs/**/*.go", "docs/a/b.txt", false, true},
		{"**", ".", true, true},
		{".", ".", true, true},
		{".", "a", true, true},
		{"src", "src/x", true, true},
		{"src", "a/src/x", true, true}, // no slash: any depth
		{"[a-c]?/x", "b1/x", true, true},
		{"[a-c]?/x", "d1/x", false, false},
		{"\\*", "*", true, true},
		{"\\*", "a", false, true}, // unanchored: a/* may exist
	}
	for _, tt := range tests {
		g, err := compilePathGlob(tt.pattern)
		if err != nil {
			t.Fatalf("compilePathGlob(%q): %v", tt.pattern, err)
		}
		covered, overlaps := g.relation(tt.rel)
		if covered != tt.covered || overlaps != tt.overlaps {
			t.Errorf("relation(%q, %q) = %v, %v, want %v, %v", tt.pattern, tt.rel, covered, overlaps, tt.covered, tt.overlaps)
		}
	}
}

func TestPathGlobErrors(t *testing.T) {
	for _, p := range []string{"", "/abs", "a//b", "a/../b", "../a", "a/./b", "a**/b", "[a", "a\x00"} {
		if _, err := compilePathGlob(p); err == nil {
			t.Errorf("compilePathGlob(%q) = nil error, want one", p)
		}
	}
}

func TestStringGlob(t *testing.T) {
	tests := []struct {
		glob  string
		sep   rune
		value string
		want  bool
	}{
		{"get_*", 0, "get_weather", true},
		{"get_*", 0, "get_", true},
		{"get_*", 0, "xget_a", false},
		{"get_*", 0, "get_a\nb", true},
		{"a.b", 0, "axb", false},
		{"a?c", 0, "abc", true},
		{"a?c", 0, "aéc", true},
		{"[!a]x", 0, "bx", true},
		{"[!a]x", 0, "ax", false},
		{"[a-c]", 0, "b", true},
		{"[é]", 0, "é", true},
		{"a\\*", 0, "a*", true},
		{"a\\*", 0, "ab", false},
		{"(x)+", 0, "(x)+", true},
		{"file:///docs/*", '/', "file:///docs/a", true},
		{"file:///docs/*", '/', "file:///docs/a/b", false},
		{"file:///docs/**", '/', "file:///docs/a/b", true},
		{"file:///docs/[!x]", '/', "file:///docs//", false},
	}
	for _, tt := range tests {
		re, err := compileStringGlob(tt.glob, tt.sep)
		if err != nil {
			t.Fatalf("compileStringGlob(%q): %v", tt.glob, err)
		}
		if got := re.MatchString(tt.value); got != tt.want {
			t.Errorf("glob %q matches %q = %v, want %v", tt.glob, tt.value, got, tt.want)
		}
	}
	for _, bad := range []string{"[", "a\\", "[]", "[!]", "\xff"} {
		if _, err := compileStringGlob(bad, 0); err == nil {
			t.Errorf("compileStringGlob(%q) = nil error, want one", bad)
		}
	}
}

func TestScanLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		dup  string
	}{
		{`{}`, true, ""},
		{` {"a" : [1, -0.5e+3, true, false, null, "x\u00e9\ud83d\ude00"]} `, true, ""},
		{`{"a":1,"a":2}`, true, "a"},
		{`{"a":1,"\u0061":2}`, true, "a"},
		{`{"a":{"b":1,"b":1}}`, true, "b"},
		{`{"a":1,"A":2}`, true, ""},
		{`[]`, true, ""},
		{`"s"`, true, ""},
		{``, false, ""},
		{`{`, false, ""},
		{`{"a":1,}`, false, ""},
		{`{"a":01}`, false, ""},
		{`{"a":1.}`, false, ""},
		{`{"a":.1}`, false, ""},
		{`{"a":+1}`, false, ""},
		{`{"a":tru}`, false, ""},
		{`{"a":"\x"}`, false, ""},
		{"{\"a\":\"\t\"}", false, ""},
		{"{\"a\":\"\xff\"}", false, ""},
		{"{\"a\":\"\xed\xa0\x80\"}", false, ""}, // UTF-8 encoded surrogate
		{`{"a":"\ud800"}`, false, ""},
		{`{"a":"\udc00"}`, false, ""},
		{`{"a":"\ud800\u0041"}`, false, ""},
		{`{"a":1} {}`, false, ""},
		{`{'a':1}`, false, ""},
		{`NaN`, false, ""},
	}
	for _, tt := range tests {
		env, err := scanLine([]byte(tt.line))
		if (err == nil) != tt.ok || env.dupKey != tt.dup {
			t.Errorf("scanLine(%q) = dup %q, %v; want ok %v, dup %q", tt.line, env.dupKey, err, tt.ok, tt.dup)
		}
		if err == nil && !json.Valid([]byte(tt.line)) {
			t.Errorf("scanLine(%q) accepted what encoding/json rejects", tt.line)
		}
	}
	deep := make([]byte, 0, 2*maxDepth+2)
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, '[')
	}
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, ']')
	}
	if _, err := scanLine(deep); err == nil {
		t.Errorf("scanLine(%d nested arrays) = nil error, want one", maxDepth+1)
	}
	if _, err := scanLine(deep[1 : len(deep)-1]); err != nil {
		t.Errorf("scanLine(%d nested arrays) = %v, want nil", maxDepth, err)
	}
}
