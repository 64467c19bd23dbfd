package policy

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// pathGlob is a compiled path pattern: a list of segments, each either "**"
// (any number of segments, including none) or a path.Match pattern for one
// segment. Patterns are relative to the workspace.
//
// A pattern without a slash matches at any depth, as in gitignore(5): "*.md"
// is "**/*.md". A leading "./" anchors it at the workspace root instead.
//
// segs are in Unicode NFC, and relation takes paths to NFC before matching
// them, so that canonically equivalent spellings of a name meet the same
// rules (see [nfc]). No glob metacharacter composes with a combining mark,
// so normalising a pattern never changes its structure. A pattern holding a
// character that norm does not know ([normKnows]) is refused: it could not
// be normalised as the server normalises.
type pathGlob struct {
	src  string // as written, for messages
	segs []string
}

// errPatternSyntax marks pattern errors so decoders can tell them apart.
var errPatternSyntax = errors.New("bad pattern")

func compilePathGlob(src string) (*pathGlob, error) {
	p := src
	switch {
	case p == "":
		return nil, fmt.Errorf("%w: empty path pattern", errPatternSyntax)
	case strings.HasPrefix(p, "/"):
		return nil, fmt.Errorf("%w: path pattern %q is absolute; patterns are relative to the workspace", errPatternSyntax, src)
	case strings.ContainsRune(p, 0):
		return nil, fmt.Errorf("%w: path pattern %q contains a NUL byte", errPatternSyntax, src)
	}
	for _, r := range p {
		if !normKnows(r) {
			return nil, fmt.Errorf("%w: path pattern %q contains %U, which is not assigned in Unicode %s, "+
				"the version vm-run normalises names by", errPatternSyntax, src, r, norm.Version)
		}
	}
	p = nfc(p)
	anchored := strings.Contains(strings.TrimSuffix(p, "/"), "/")
	if rest, ok := strings.CutPrefix(p, "./"); ok {
		p, anchored = rest, true
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		// "./" or ".": the workspace root itself.
		return &pathGlob{src: src}, nil
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		switch s {
		case "":
			return nil, fmt.Errorf("%w: path pattern %q has an empty segment", errPatternSyntax, src)
		case ".", "..":
			return nil, fmt.Errorf("%w: path pattern %q has a %q segment", errPatternSyntax, src, s)
		case "**":
			continue
		}
		if strings.Contains(s, "**") {
			return nil, fmt.Errorf("%w: path pattern %q: \"**\" must be a whole segment", errPatternSyntax, src)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("%w: path pattern %q: segment %q is malformed", errPatternSyntax, src, s)
		}
	}
	if !anchored {
		segs = append([]string{"**"}, segs...)
	}
	return &pathGlob{src: src, segs: segs}, nil
}

// closure adds to set every position reachable without consuming a segment:
// a "**" may match nothing.
func (g *pathGlob) closure(set []bool) {
	for i := 0; i < len(g.segs); i++ {
		if set[i] && g.segs[i] == "**" {
			set[i+1] = true
		}
	}
}

// step advances the set of pattern positions over one path segment.
func (g *pathGlob) step(set, next []bool, seg string) {
	clear(next)
	for i := 0; i < len(g.segs); i++ {
		if !set[i] {
			continue
		}
		if g.segs[i] == "**" {
			next[i] = true // "**" swallows seg and may go on
			next[i+1] = true
			continue
		}
		if ok, _ := path.Match(g.segs[i], seg); ok {
			next[i+1] = true
		}
	}
	g.closure(next)
}

// relation reports how the subtree rooted at rel (a cleaned workspace-relative
// path, "." for the root) relates to the paths the pattern matches:
// covered means rel or one of its ancestors matches, so everything beneath
// rel is matched too; overlaps means some path in that subtree matches
// (covered implies overlaps).
//
// Allow rules need covered: "read(docs/*)" grants docs/a and all beneath it.
// Deny rules need overlaps: "write(src/*)" also refuses moving "src" itself.
//
// rel may be in any Unicode form (resolved paths hold names as the file
// system and link targets spell them); it is matched in NFC.
func (g *pathGlob) relation(rel string) (covered, overlaps bool) {
	rel = nfc(rel)
	var segs []string
	if rel != "." {
		segs = strings.Split(rel, "/")
	}
	n := len(g.segs) + 1
	set, next := make([]bool, n), make([]bool, n)
	set[0] = true
	g.closure(set)
	for _, s := range segs {
		if set[n-1] {
			return true, true // an ancestor (or the root) matched
		}
		g.step(set, next, s)
		set, next = next, set
	}
	if set[n-1] {
		return true, true
	}
	// Not covered. Some descendant matches if a pattern position other than
	// the end is still live: every segment glob matches some name.
	for i := 0; i < n-1; i++ {
		if set[i] {
			return false, true
		}
	}
	return false, false
}

// compileStringGlob compiles a glob for names and argument values: "*" is
// any run of characters, "?" any one character, "[...]" a class as in
// path.Match, "\\" quotes the next character. sep, when non-zero, is a
// separator that "*" and "?" do not cross while "**" does (URIs use '/').
// The result is an anchored RE2 regexp, so matching is linear in the input.
func compileStringGlob(src string, sep rune) (*regexp.Regexp, error) {
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("%w: glob %q is not valid UTF-8", errPatternSyntax, src)
	}
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	notSep := "."
	if sep != 0 {
		notSep = "[^" + regexp.QuoteMeta(string(sep)) + "]"
	}
	rs := []rune(src)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			if sep != 0 && i+1 < len(rs) && rs[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString(notSep + "*")
			}
		case '?':
			b.WriteString(notSep)
		case '\\':
			if i+1 == len(rs) {
				return nil, fmt.Errorf("%w: glob %q ends in a lone backslash", errPatternSyntax, src)
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		case '[':
			n, err := writeClass(&b, rs[i+1:], sep)
			if err != nil {
				return nil, fmt.Errorf("%w: glob %q: %v", errPatternSyntax, src, err)
			}
			i += n
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)\z`)
	re, err := compileRegexp(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: glob %q: %v", errPatternSyntax, src, err)
	}
	return re, nil
}

// writeClass translates the body of a "[...]" class (rs starts after the
// '[') and returns how many runes it consumed, the ']' included.
func writeClass(b *strings.Builder, rs []rune, sep rune) (int, error) {
	i := 0
	neg := i < len(rs) && (rs[i] == '!' || rs[i] == '^')
	if neg {
		i++
	}
	b.WriteByte('[')
	if neg {
		b.WriteByte('^')
		if sep != 0 {
			b.WriteString(regexp.QuoteMeta(string(sep)))
		}
	}
	empty := true
	for ; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ']' && !empty:
			b.WriteByte(']')
			return i + 1, nil
		case c == '\\':
			if i+1 == len(rs) {
				return 0, errors.New("lone backslash in class")
			}
			i++
			c = rs[i]
		case c == '-' && !empty && i+1 < len(rs) && rs[i+1] != ']':
			b.WriteByte('-')
			continue
		}
		empty = false
		b.WriteString(regexp.QuoteMeta(string(c)))
	}
	return 0, errors.New("unclosed '['")
}

// compileAnchoredRegexp compiles a user regexp that must match the whole
// value, so "^" and "$" are never forgotten in an allow rule.
func compileAnchoredRegexp(src string) (*regexp.Regexp, error) {
	if _, err := compileRegexp(src); err != nil {
		return nil, fmt.Errorf("%w: regexp %q: %v", errPatternSyntax, src, err)
	}
	return compileRegexp(`\A(?:` + src + `)\z`)
}

// compiledRegexps caches compileRegexp's results by expression. A profile
// chain compiles the same patterns several times (the built-in classes
// with every policy, each profile of an extends: chain, then the merged
// policy), and regexp compilation dominates loading a profile, which is on
// the path of every sandbox start. A *regexp.Regexp is safe for concurrent
// use, so one compiled value can serve every policy.
var compiledRegexps sync.Map // string -> *regexp.Regexp

func compileRegexp(expr string) (*regexp.Regexp, error) {
	if re, ok := compiledRegexps.Load(expr); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	compiledRegexps.Store(expr, re)
	return re, nil
}
