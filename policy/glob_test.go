package policy

import "testing"

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
