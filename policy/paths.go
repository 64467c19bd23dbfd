package policy

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// Linux limits, from limits.h: a path longer than PATH_MAX or a name longer
// than NAME_MAX fails with ENAMETOOLONG (path_resolution(7)), so refusing
// them loses nothing and bounds the matcher's work.
const (
	pathMax = 4096
	nameMax = 255
)

// PathError says why a path-valued argument was refused before any rule was
// consulted. The policy never guesses what the server would make of such a
// path; it denies the call.
type PathError struct {
	Arg    string // argument name, with "[i]" for list elements
	Path   string
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("argument %s: path %q %s", e.Arg, e.Path, e.Reason)
}

// normalizePath turns a path argument into a cleaned path relative to the
// workspace ("." for the workspace itself). It refuses, rather than
// interprets, everything whose meaning depends on the server or the file
// system:
//
//   - invalid UTF-8 (and U+FFFD, which is what a lone surrogate escape decodes
//     to here while a JavaScript server keeps the surrogate);
//   - NUL and other control characters;
//   - a ".." segment anywhere: with symlinks, "a/../b" need not be "b"
//     (path_resolution(7)), and lexical cleaning would be a guess;
//   - a leading "~" (server-filesystem expands "~/" to the home directory);
//   - leading or trailing white space or quotes (server-filesystem trims and
//     unquotes paths before its own containment check);
//   - a path that is not in Unicode normalisation form C (NFC), such as
//     "cafe\u0301" or "\u212Aconfig" (KELVIN SIGN): server-filesystem maps a
//     missing name to an existing name of the same NFC, so a spelling other
//     than the NFC one can reach a name it does not spell. Rules are
//     matched in NFC as well (see [nfc]); the refusal makes the name the
//     agent sends the one that a denial quotes and the ledger records;
//   - characters newer than the Unicode version vm-run normalises by (see
//     [normKnows]);
//   - absolute paths outside the workspace;
//   - paths longer than PATH_MAX or with a name longer than NAME_MAX.
//
// Symbolic links inside the workspace are not resolved: the proxy runs
// outside the sandbox and must not race the server for the file system.
// Landlock is the boundary for what a link may reach.
func normalizePath(workspace, p string) (string, string) {
	switch {
	case p == "":
		return "", "is empty"
	case len(p) > pathMax:
		return "", fmt.Sprintf("is longer than PATH_MAX (%d bytes)", pathMax)
	case !utf8.ValidString(p) || strings.ContainsRune(p, utf8.RuneError):
		return "", "is not valid UTF-8"
	case strings.IndexByte(p, 0) >= 0:
		return "", "contains a NUL byte"
	case strings.HasPrefix(p, "~"):
		return "", "starts with \"~\" (home-relative paths are not resolved)"
	}
	first, _ := utf8.DecodeRuneInString(p)
	last, _ := utf8.DecodeLastRuneInString(p)
	if unicode.IsSpace(first) || unicode.IsSpace(last) || isQuote(first) || isQuote(last) {
		return "", "starts or ends with white space or a quote"
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", "contains a control character"
		}
		if !normKnows(r) {
			return "", fmt.Sprintf("contains %U, which is not assigned in Unicode %s, the version vm-run "+
				"normalises names by; the server may normalise it otherwise", r, norm.Version)
		}
	}
	if !norm.NFC.IsNormalString(p) {
		n := norm.NFC.String(p)
		return "", fmt.Sprintf("is not in Unicode normalisation form C (NFC), and the server may take it for "+
			"another name; use the NFC spelling %q (escaped: %+q)", n, n)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", "contains a \"..\" segment"
		}
		if len(seg) > nameMax {
			return "", fmt.Sprintf("has a name longer than NAME_MAX (%d bytes)", nameMax)
		}
	}
	if !path.IsAbs(p) {
		return path.Clean(p), ""
	}
	p = path.Clean(p)
	ws := path.Clean(workspace)
	if ws == "" || !path.IsAbs(ws) {
		return "", "is absolute and no workspace is set"
	}
	if p == ws {
		return ".", ""
	}
	if ws == "/" {
		return p[1:], ""
	}
	if rel, ok := strings.CutPrefix(p, ws+"/"); ok {
		return rel, ""
	}
	return "", fmt.Sprintf("is outside the workspace %q", ws)
}

func isQuote(r rune) bool { return r == '"' || r == '\'' || r == '`' }

// nfc returns s in Unicode normalisation form C, and s itself, without
// copying, when it already is. Path patterns and judged paths are compared
// in NFC because that is the equivalence server-filesystem applies: when a
// name does not exist it takes the directory entry whose
// String.prototype.normalize("NFC") equals that of the requested name
// (resolveUnicodeEquivalentPath in its lib.js). Names that are canonically
// equivalent therefore lead to the same file and must meet the same rules,
// whichever spelling the agent, a link target or the file system uses.
//
// NFC, not NFKC: compatibility equivalents ("\uFB01" and "fi", full-width
// and ASCII letters) are different names to the kernel and to the server,
// and folding them would let an allow rule for one grant the other. Nor is
// case folded: Linux compares names byte for byte, and server-filesystem
// on Linux compares them as strings (it lower-cases only Windows drive
// letters).
func nfc(s string) string { return norm.NFC.String(s) }

// normAssigned holds the code points assigned in the Unicode version that
// norm's tables follow; nil if x/text has no such table.
var normAssigned = rangetable.Assigned(norm.Version)

// normKnows reports whether r is assigned in the Unicode version of norm's
// tables (norm.Version). The server normalises with its JavaScript
// engine's tables, which may be newer: Node 20's ICU follows Unicode 17,
// while x/text before Go 1.27 follows Unicode 15, and 20 characters of
// Unicode 16 and 17 compose there that norm leaves apart (U+105D2 U+0307
// is U+105C9 to the server). Unicode's normalisation stability policy
// makes a string of characters assigned in one version normalise alike in
// every later one, so refusing the characters norm does not know makes the
// two agree on everything else.
func normKnows(r rune) bool {
	return r < utf8.RuneSelf || normAssigned != nil && unicode.Is(normAssigned, r)
}
