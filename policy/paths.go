package policy

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
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
//   - runes that Unicode normalisation changes, combining marks and canonical
//     singletons such as U+212A KELVIN SIGN: server-filesystem maps a
//     missing name to an existing NFC-equivalent one, so "cafe\u0301" could
//     reach "café" while a pattern names only the latter;
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
		if changesUnderNFC(r) {
			return "", fmt.Sprintf("contains %U, which Unicode normalisation may change; use the precomposed (NFC) spelling", r)
		}
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

// changesUnderNFC reports runes that NFC composition or canonical singleton
// decomposition can rewrite: the combining diacritic blocks (which compose
// with Latin, Greek and Cyrillic letters), conjoining Hangul jamo, the kana
// voicing marks, and the canonical singletons (Unicode UAX #15, and the
// Decomposition_Mapping field of UnicodeData.txt). It is deliberately a
// superset check: a false positive denies a call with an explanation, a false
// negative would let an equivalent spelling slip past a pattern.
func changesUnderNFC(r rune) bool {
	switch {
	case r < 0x300:
		return false
	case r <= 0x36F, // Combining Diacritical Marks
		0x1100 <= r && r <= 0x11FF, // Hangul Jamo
		0x1AB0 <= r && r <= 0x1AFF, // Combining Diacritical Marks Extended
		0x1DC0 <= r && r <= 0x1DFF, // Combining Diacritical Marks Supplement
		0x20D0 <= r && r <= 0x20FF, // Combining Diacritical Marks for Symbols
		0xFE20 <= r && r <= 0xFE2F, // Combining Half Marks
		r == 0x3099 || r == 0x309A: // kana voiced sound marks
		return true
	}
	switch r {
	// Canonical singletons: each decomposes to one other code point.
	case 0x0340, 0x0341, 0x0343, 0x0374, 0x037E, 0x0387,
		0x1F71, 0x1F73, 0x1F75, 0x1F77, 0x1F79, 0x1F7B, 0x1F7D,
		0x1FBB, 0x1FBE, 0x1FC9, 0x1FCB, 0x1FD3, 0x1FDB, 0x1FE3, 0x1FEB,
		0x1FEE, 0x1FEF, 0x1FF9, 0x1FFB, 0x1FFD,
		0x2000, 0x2001, 0x2126, 0x212A, 0x212B, 0x2329, 0x232A:
		return true
	}
	// CJK compatibility ideographs are singletons too.
	return (0xF900 <= r && r <= 0xFAFF) || (0x2F800 <= r && r <= 0x2FA1F)
}
