package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// A security review found the hand-kept list of runes that NFC changes
// short by 84 single characters (U+0958, U+FB1D, ...) and 692 combining
// marks (U+0653 ARABIC MADDAH ABOVE, ...): "\u0627\u0653rchive/new.txt"
// passed the lexical checks and no rule for "\u0622rchive", while
// server-filesystem took it for the existing "\u0622rchive". These tests
// guard the exact NFC check and the matching in NFC that replaced it.

func TestNormalizePathNFC(t *testing.T) {
	tests := []struct {
		name, path string
		want       string // the NFC spelling the reason must offer; "" if accepted
	}{
		{"the review's alef plus maddah", "\u0627\u0653rchive/new.txt", "\u0622rchive/new.txt"},
		{"alef with madda, precomposed", "\u0622rchive/new.txt", ""},
		{"devanagari qa, a composition exclusion", "\u0958/x", "\u0915\u093C/x"},
		{"devanagari ka plus nukta", "\u0915\u093C/x", ""},
		{"hebrew yod with hiriq, a composition exclusion", "\uFB1D/x", "\u05D9\u05B4/x"},
		{"hebrew yod plus hiriq", "\u05D9\u05B4/x", ""},
		{"latin combining acute", "docs/cafe\u0301", "docs/caf\u00E9"},
		{"latin precomposed", "docs/caf\u00E9", ""},
		{"marks out of canonical order", "a\u0302\u0323", "\u1EAD"},
		{"conjoining hangul jamo", "\u1100\u1161", "\uAC00"},
		{"hangul syllable", "\uAC00", ""},
		{"kelvin sign, a singleton", "\u212Aconfig", "Kconfig"},
		{"a lone mark after a slash stays as it is", "a/\u0301b", ""},
		// NFKC would change these; the server does not, so neither do we.
		{"ligature fi", "\uFB01le", ""},
		{"full-width letter", "\uFF21", ""},
		{"upper case", "DOCS/a", ""},
	}
	// Refused whatever the reason: newer than norm's tables before Go
	// 1.27, not in NFC after.
	for _, p := range []string{"\U000105D2\u0307", "\U000105C9", "\u0378"} {
		if _, why := normalizePath(testWS, "docs/"+p); why == "" {
			t.Errorf("normalizePath(%+q) accepted it; the server normalises it by Unicode 17", "docs/"+p)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel, why := normalizePath(testWS, tt.path)
			switch {
			case tt.want == "" && why != "":
				t.Errorf("normalizePath(%+q) refused it: %s; want %+q", tt.path, why, tt.path)
			case tt.want == "" && rel != tt.path:
				t.Errorf("normalizePath(%+q) = %+q, want it unchanged", tt.path, rel)
			case tt.want != "" && !strings.Contains(why, "NFC spelling "+strconv.Quote(tt.want)):
				t.Errorf("normalizePath(%+q) = %+q, %q; want a refusal offering %+q", tt.path, rel, why, tt.want)
			}
		})
	}
}

// TestNormalizePathNFCEveryRune checks every rune with a canonical
// decomposition: of its spelling, its NFD and its NFC, exactly the NFC is
// accepted. This covers every singleton, every composition exclusion, every
// Hangul syllable and every mark that composes with something.
func TestNormalizePathNFCEveryRune(t *testing.T) {
	missed := map[string]int{}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		nfd, want := norm.NFD.String(s), norm.NFC.String(s)
		if nfd == s && want == s {
			continue
		}
		if _, why := normalizePath(testWS, "x/"+want+"/y"); why != "" {
			t.Errorf("normalizePath of the NFC %+q refused: %s", want, why)
		}
		for kind, spelling := range map[string]string{"single": s, "decomposed": nfd} {
			if spelling == want {
				continue
			}
			if _, why := normalizePath(testWS, "x/"+spelling+"/y"); why == "" {
				missed[kind]++
				if missed[kind] <= 3 {
					t.Errorf("normalizePath accepted %+q, whose NFC is %+q", spelling, want)
				}
			}
		}
	}
	if len(missed) > 0 {
		t.Errorf("normalizePath accepted spellings not in NFC: %v", missed)
	}
}

func TestPathGlobNFC(t *testing.T) {
	tests := []struct {
		pattern, rel      string
		covered, overlaps bool
	}{
		{"caf\u00E9/*", "cafe\u0301/a", true, true},  // NFC pattern, NFD path
		{"cafe\u0301/*", "caf\u00E9/a", true, true},  // NFD pattern, NFC path
		{"cafe\u0301/*", "cafe\u0301/a", true, true}, // both NFD
		{"\u0958/*", "\u0915\u093C/a", true, true},   // a composition exclusion in the pattern
		{"\u0915\u093C/*", "\u0958/a", true, true},   // ... and in the path
		{"\uFB1D/*", "\u05D9\u05B4/a", true, true},   // U+FB1D in the pattern
		{"a\u0302\u0323", "\u1EAD", true, true},      // marks in another order
		{"?", "e\u0301", true, true},                 // one character in NFC
		{"[\u00E9]/x", "e\u0301/x", true, true},      // classes hold characters
		{"\u0622rchive/*", "\u0627\u0653rchive", false, true},
		{"\uFB01le/*", "file/a", false, false}, // no NFKC folding
		{"docs/*", "DOCS/a", false, false},     // no case folding
	}
	for _, tt := range tests {
		g, err := compilePathGlob(tt.pattern)
		if err != nil {
			t.Fatalf("compilePathGlob(%+q): %v", tt.pattern, err)
		}
		covered, overlaps := g.relation(tt.rel)
		if covered != tt.covered || overlaps != tt.overlaps {
			t.Errorf("relation(%+q, %+q) = %v, %v, want %v, %v", tt.pattern, tt.rel, covered, overlaps, tt.covered, tt.overlaps)
		}
	}
	// A pattern with a character norm does not know cannot be matched as
	// the server would; it is an error rather than a rule that may miss.
	if _, err := compilePathGlob("\U000105D2\u0307/*"); err == nil && !normKnows(0x105D2) {
		t.Errorf("compilePathGlob(%+q) = nil error, want one: norm %s does not know U+105D2", "\U000105D2\u0307/*", norm.Version)
	}
	// Normalising a pattern must not change its structure: no glob
	// metacharacter composes with, or reorders around, a neighbour.
	for _, m := range `*?[]\-!^/` {
		p := norm.NFC.PropertiesString(string(m))
		if p.CCC() != 0 || !p.BoundaryBefore() || !p.BoundaryAfter() {
			t.Errorf("%q: canonical class %d, boundary before %v, after %v; want 0, true, true",
				m, p.CCC(), p.BoundaryBefore(), p.BoundaryAfter())
		}
	}
}

// TestNFCAgreesWithNode compares norm with the normalisation of the node
// that runs server-filesystem, code point by code point: on every code
// point norm knows (normKnows), NFC and NFD must be the same, and every
// code point on which they differ must be one normKnows refuses.
func TestNFCAgreesWithNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not installed, needed to compare with the server's normalisation: %v", err)
	}
	const script = `
const hex = s => [...s].map(c => c.codePointAt(0).toString(16)).join(",");
const out = [];
for (let c = 0; c <= 0x10FFFF; c++) {
	if (c >= 0xD800 && c <= 0xDFFF) continue;
	const s = String.fromCodePoint(c), n = s.normalize("NFC"), d = s.normalize("NFD");
	if (n !== s || d !== s) out.push(c.toString(16) + " " + hex(n) + " " + hex(d));
}
process.stdout.write(out.join("\n") + "\n");
`
	out, err := exec.Command(node, "-e", script).Output()
	if err != nil {
		t.Fatalf("%s -e SCRIPT: %v", node, err)
	}
	hex := func(s string) string {
		var p []string
		for _, r := range s {
			p = append(p, strconv.FormatInt(int64(r), 16))
		}
		return strings.Join(p, ",")
	}
	js := map[rune]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r rune
		if _, err := fmt.Sscanf(sc.Text(), "%x", &r); err != nil {
			t.Fatalf("node printed %q: %v", sc.Text(), err)
		}
		js[r] = sc.Text()[strings.IndexByte(sc.Text(), ' ')+1:]
	}
	if len(js) < 13000 {
		t.Fatalf("node listed %d code points that normalisation changes, want over 13000", len(js))
	}
	unknown := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		goForms := ""
		if n, d := norm.NFC.String(s), norm.NFD.String(s); n != s || d != s {
			goForms = hex(n) + " " + hex(d)
		}
		if !normKnows(r) {
			if js[r] != "" {
				unknown++
				nfd := ""
				for _, c := range strings.Split(strings.Fields(js[r])[1], ",") {
					v, _ := strconv.ParseInt(c, 16, 32)
					nfd += string(rune(v))
				}
				for _, p := range []string{s, nfd} {
					if _, why := normalizePath(testWS, "x/"+p); why == "" {
						t.Errorf("normalizePath accepted %+q, which norm does not know and node normalises", p)
					}
				}
			}
			continue
		}
		if goForms != js[r] {
			t.Errorf("%U: norm gives NFC and NFD %q, node %q", r, goForms, js[r])
		}
	}
	t.Logf("norm follows Unicode %s; node normalises %d code points norm does not know", norm.Version, unknown)
}

// formResolver judges paths lexically and hands back the names in its
// form, as a file system holding names so (or a link target spelling them
// so) would.
type formResolver struct{ form norm.Form }

func (r formResolver) Resolve(ws, base, p string) (Resolved, error) {
	res, err := Lexical.Resolve(ws, base, p)
	res.Rel = r.form.String(res.Rel)
	return res, err
}

// unicodePolicy denies writes to names that have canonically equivalent
// spellings, with its patterns in the given form.
func unicodePolicy(t testing.TB, form norm.Form) *Policy {
	t.Helper()
	p, err := parsePolicy([]byte(form.String(`
default_action: deny
rules:
  - id: allow-all
    allow: ["read(**)", "write(**)"]
  - id: protect
    deny:
      - "write(\u0622rchive/*)"
      - "write(\u00C1/*)"
      - "write(\u0958/*)"
      - "write(\uFB1D/*)"
      - "write(*\u00E9t\u00E9*)"
      - "write(\uAC00)"
`)), "unicode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzUnicodeEquivalence checks that canonically equivalent spellings
// never get different answers: a path in any form, a resolved name in NFD
// or NFC, and a policy with its patterns in NFD or NFC all decide as the
// NFC path under the NFC policy does, except that a path argument not in
// NFC is refused outright (by a tool that takes paths).
func FuzzUnicodeEquivalence(f *testing.F) {
	seedLines(f, "paths.txt", func(s string) { f.Add(s, "write_file") })
	for _, s := range []string{
		"\u0627\u0653rchive/new.txt", "\u0622rchive/new.txt", "A\u0301/x", "\u00C1/x",
		"\u0958/x", "\u0915\u093C/x", "\uFB1D/x", "\u05D9\u05B4/x",
		"docs/e\u0301te\u0301.txt", "docs/\u00E9t\u00E9.txt", "\u1100\u1161", "\uAC00/x",
	} {
		f.Add(s, "write_file")
		f.Add(s, "read_text_file")
	}
	policies := map[string]*Policy{"NFC": unicodePolicy(f, norm.NFC), "NFD": unicodePolicy(f, norm.NFD)}
	f.Fuzz(func(t *testing.T, p, toolName string) {
		decide := func(pol *Policy, arg string, form norm.Form) (Action, string) {
			call := tool(toolName, map[string]any{"path": arg})
			call.Resolver = formResolver{form}
			d := pol.Decide(call)
			return d.Verdict, d.Rule
		}
		canon := norm.NFC.String(p)
		verdict, rule := decide(policies["NFC"], canon, norm.NFC)
		// A tool takes paths when a NUL in its path argument is refused.
		_, nul := decide(policies["NFC"], "\x00", norm.NFC)
		takesPaths := nul == RulePaths
		for pname, pol := range policies {
			for _, arg := range []string{p, canon, norm.NFD.String(p)} {
				for fname, form := range map[string]norm.Form{"NFC": norm.NFC, "NFD": norm.NFD} {
					v, r := decide(pol, arg, form)
					if arg != canon && takesPaths {
						if v != Deny || r != RulePaths {
							t.Fatalf("%s %+q, not in NFC (policy in %s) = %s by %q, want deny by %q",
								toolName, arg, pname, v, r, RulePaths)
						}
						continue
					}
					if v != verdict || r != rule {
						t.Fatalf("%s %+q (policy in %s, resolved names in %s) = %s by %q; %+q is %s by %q",
							toolName, arg, pname, fname, v, r, canon, verdict, rule)
					}
				}
			}
		}
	})
}
