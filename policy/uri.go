package policy

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// URIError says why a resource URI was refused before any rule was
// consulted.
type URIError struct {
	URI string // the URI as sent
	// Reason completes the sentence "the URI ...": what is wrong and, where
	// the agent can fix it, how.
	Reason string
}

func (e *URIError) Error() string {
	return fmt.Sprintf("resource URI %q %s", e.URI, e.Reason)
}

// NormalizeURI returns the form of a resource URI that rules are matched
// against, or a *URIError when the URI's meaning is ambiguous (a server may
// read it differently from the proxy) or it is not an absolute URI: a
// refusal costs the agent a retry, a wrong guess would cost a bypass. It is
// idempotent: a normal form normalises to itself, without error.
//
// The normal form is RFC 3986 section 6.2.2 syntax-based normalisation, and
// 6.2.3 scheme-based for the WHATWG URL Standard's special schemes (http,
// https, ws, wss, ftp, file):
//   - scheme and host in lower case (sections 3.1, 3.2.2);
//   - percent-encoded unreserved characters decoded (2.3), other
//     percent-encodings in upper-case hex (2.1), non-ASCII characters
//     encoded as UTF-8 (RFC 3987 section 3.1, as the URL Standard does);
//   - dot segments removed (5.2.4) from a path that starts with "/", after
//     decoding, so "%2e%2E" is ".." as in the URL Standard; the query
//     keeps its dots;
//   - the port without leading zeros (the URL Standard reads a number),
//     dropped when empty or the special scheme's default (6.2.3);
//   - an empty special path written "/" (6.2.3), and "'" in a special
//     query written "%27" (URL Standard, special-query percent-encode set);
//   - for file, "file://localhost/" and "file:/" written "file:///" (RFC
//     8089 section 2), runs of "/" collapsed (POSIX.1-2017 section 4.13),
//     and percent-encoded sub-delims, ":" and "@" decoded in the path:
//     file path decoders decode them, and a file path gives them no
//     delimiter role.
//
// Refused, with a reason the agent can act on:
//   - invalid UTF-8, U+FFFD, control characters, spaces, backslashes (read
//     as "/" in special URLs), other ASCII characters that RFC 3986
//     section 2 does not allow unencoded, a fragment, userinfo (3.2.1);
//   - invalid percent-encodings ("%zz", "%4"; 2.1); encoded "/", "", "%",
//     "?", "#" or control characters, which a server may decode into
//     delimiters or decode twice; encoded bytes not UTF-8 or U+FFFD;
//   - a missing or invalid scheme (3.1), so every relative reference (4.2)
//     and every percent-encoded scheme;
//   - hosts that are IP literals, that the URL Standard's IPv4 parser reads
//     as an address ("0x7f.1", "2130706433"), that are not ASCII (so the
//     punycode "xn--" form is the one spelling), that hold anything but
//     letters, digits, "-", "." and "_", or that have an empty label;
//   - ports above 65535, a ":" without a host, ports on file URIs, and a
//     file host the URL Standard reads as a drive letter ("file://c:/");
//   - special URIs but file without a host (the URL Standard reads
//     "http:x/y" as "http://x/y"), and file URIs with a relative path;
//   - "//" in a path other than a file path (servers that map URIs to
//     files read it as "/"), and in a file path a ".." after "//" that the
//     URL Standard and POSIX resolve differently ("/a//../b");
//   - "." and ".." in a path that does not start with "/" ("urn:a/../b"),
//     which servers may or may not resolve; a ".." above the root, which a
//     server joining the path to a directory follows out of it; a ".." that
//     would remove a Windows drive letter, which the URL Standard never
//     does.
func NormalizeURI(uri string) (string, error) {
	refuse := func(format string, args ...any) error {
		return &URIError{URI: uri, Reason: fmt.Sprintf(format, args...)}
	}
	if uri == "" {
		return "", refuse("is empty")
	}
	if !utf8.ValidString(uri) {
		return "", refuse("is not valid UTF-8")
	}
	for i, r := range uri {
		switch {
		case r == utf8.RuneError:
			return "", refuse("contains U+FFFD, the mark of an earlier decoding error")
		case unicode.IsControl(r):
			return "", refuse("contains the control character %U at byte %d", r, i)
		case r == ' ':
			return "", refuse("contains a space at byte %d; percent-encode it as %%20", i)
		case r == '\\':
			return "", refuse(`contains a backslash, which WHATWG URL parsers read as "/" in http, https and file URIs; %%5C is refused too`)
		case r == '#':
			return "", refuse("has a fragment (%q); drop it: a resource request has no use for one, and servers differ on whether it names the resource", uri[i:])
		case r == '%' && !(i+2 < len(uri) && uriIsHex(uri[i+1]) && uriIsHex(uri[i+2])):
			return "", refuse("has the invalid percent-encoding %q at byte %d; RFC 3986 section 2.1 wants %%XX with two hex digits", uri[i:min(i+3, len(uri))], i)
		}
	}
	ref, ok := uriSplitRef(uri)
	switch {
	case !ok:
		return "", refuse(`has no scheme, so it is a relative reference (RFC 3986 section 4.2); give an absolute URI such as "file:///path" or "demo://host/path"`)
	case strings.Contains(ref.scheme, "%"):
		return "", refuse(`has the percent-encoded scheme %q; a scheme is letters, digits, "+", "-" and "." only (RFC 3986 section 3.1)`, ref.scheme)
	case !uriScheme.MatchString(ref.scheme):
		return "", refuse(`has the invalid scheme %q; a scheme is a letter followed by letters, digits, "+", "-" and "." (RFC 3986 section 3.1)`, ref.scheme)
	}
	ref.scheme = strings.ToLower(ref.scheme)
	special, file := uriSpecialSchemes[ref.scheme] != "", ref.scheme == "file"
	if ref.hasAuth {
		var why string
		if ref.auth, why = uriAuthority(ref.scheme, ref.auth); why != "" {
			return "", refuse("%s", why)
		}
	}
	switch {
	case special && !file && ref.auth == "":
		return "", refuse(`has no host; write "%[1]s://HOST/PATH" (WHATWG URL parsers read "%[1]s:x/y" as "%[1]s://x/y")`, ref.scheme)
	case file && !ref.hasAuth && !strings.HasPrefix(ref.path, "/"):
		return "", refuse(`is a file URI with a relative path; write "file:///absolute/path"`)
	}
	ref.hasAuth = ref.hasAuth || file // "file:/x" is "file:///x" (RFC 8089 section 2)

	path, why := uriComponent(ref.path, false, file, false)
	if why != "" {
		return "", refuse("%s", why)
	}
	segs := strings.Split(path, "/")
	if strings.Contains(path, "//") {
		if !file {
			return "", refuse(`has an empty path segment ("//"), which servers that map URIs to files read as "/"; write a single "/"`)
		}
		// A file path starts with "/". WHATWG URL parsers remove dot
		// segments first, so a ".." may remove an empty segment; POSIX
		// pathname resolution collapses "//" first.
		whatwg, _ := uriRemoveDotSegments(segs[1:], true)
		path = uriCollapse(path)
		segs = strings.Split(path, "/")
		if posix, _ := uriRemoveDotSegments(segs[1:], true); uriCollapse(whatwg) != posix {
			return "", refuse(`has a ".." after an empty path segment ("//"), which WHATWG URL parsers and POSIX path resolution resolve differently; write a single "/"`)
		}
	}
	for _, seg := range segs {
		switch {
		case seg != "." && seg != "..":
		case !strings.HasPrefix(path, "/"):
			return "", refuse(`has a %q segment in a path that does not start with "/"; servers differ on whether to resolve it, so spell the path without it`, seg)
		}
	}
	if strings.HasPrefix(path, "/") {
		if path, why = uriRemoveDotSegments(segs[1:], file); why != "" {
			return "", refuse("%s", why)
		}
	}
	if path == "" && ref.hasAuth && special {
		path = "/"
	}
	ref.path = path
	if ref.hasQuery {
		if ref.query, why = uriComponent(ref.query, true, false, special); why != "" {
			return "", refuse("%s", why)
		}
	}
	return ref.String(), nil
}

// uriSpecialSchemes maps the URL Standard's special schemes to their
// default ports; file has none.
var uriSpecialSchemes = map[string]string{
	"ftp": "21", "file": "-", "http": "80", "https": "443", "ws": "80", "wss": "443",
}

var (
	uriScheme      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`) // RFC 3986 section 3.1
	uriDriveLetter = regexp.MustCompile(`^[A-Za-z][:|]$`)            // URL Standard
	// uriIPv4 is the URL Standard's "ends in a number" on the last label.
	uriIPv4 = regexp.MustCompile(`(^|\.)([0-9]+|0x[0-9a-f]*)$`)
	// uriDecimal is ECMA-262 StrUnsignedDecimalLiteral but Infinity.
	uriDecimal = regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
)

// uriRef is a URI split as in RFC 3986 Appendix B, without a fragment.
type uriRef struct {
	scheme, auth, path, query string
	hasAuth, hasQuery         bool
}

// uriSplitRef splits s; ok is false when s has no scheme.
func uriSplitRef(s string) (r uriRef, ok bool) {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || strings.ContainsAny(s[:colon], "/?#") {
		return r, false
	}
	r.scheme, s = s[:colon], s[colon+1:]
	s, r.query, r.hasQuery = strings.Cut(s, "?")
	if rest, auth := strings.CutPrefix(s, "//"); auth {
		r.hasAuth = true
		end := strings.IndexByte(rest+"/", '/') // len(rest) without a "/"
		r.auth, s = rest[:end], rest[end:]
	}
	r.path = s
	return r, true
}

func (r uriRef) String() string {
	s := r.scheme + ":"
	if r.hasAuth {
		s += "//" + r.auth
	}
	s += r.path
	if r.hasQuery {
		s += "?" + r.query
	}
	return s
}

// uriAuthority checks and normalises the authority of a URI with the given
// lower-case scheme; a non-empty why says why it is refused.
func uriAuthority(scheme, auth string) (norm, why string) {
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		return "", fmt.Sprintf(`has userinfo (%q); drop it and the "@": credentials do not belong in a resource URI, and userinfo hides the host`, auth[:at+1])
	}
	if strings.HasPrefix(auth, "[") {
		return "", fmt.Sprintf("has the IP-literal host %q; IP-address hosts are refused because servers spell and compare them differently", auth)
	}
	if scheme == "file" && uriDriveLetter.MatchString(auth) {
		return "", fmt.Sprintf(`has %q where the host belongs, which WHATWG URL parsers read as a Windows drive letter; write "file:///%s/..."`, auth, auth)
	}
	host, port, colon := strings.Cut(auth, ":")
	if host == "" && colon {
		return "", `has a ":" but no host`
	}
	if strings.Trim(port, "0123456789") != "" {
		return "", fmt.Sprintf("has the port %q, which is not a decimal number (RFC 3986 section 3.2.3)", port)
	}
	if port != "" {
		if port = strings.TrimLeft(port, "0"); port == "" {
			port = "0"
		}
		if n, err := strconv.Atoi(port); err != nil || n > 65535 {
			return "", fmt.Sprintf("has the port %s, above 65535", port)
		}
	}
	if port == uriSpecialSchemes[scheme] {
		port = "" // RFC 3986 section 6.2.3; URL Standard, port state
	}
	const only = `; only letters, digits, "-", "." and "_" are accepted there`
	h := make([]byte, 0, len(host))
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c == '%' {
			if c = uriUnhex(host[i+1])<<4 | uriUnhex(host[i+2]); !uriIsUnreserved(c) {
				return "", fmt.Sprintf("has the percent-encoding %q in its host%s", host[i:i+3], only)
			}
			i += 2
		}
		switch {
		case c >= utf8.RuneSelf:
			return "", fmt.Sprintf(`has the non-ASCII host %q; use its ASCII (punycode "xn--") form, since servers differ on which of the two they compare`, host)
		case 'A' <= c && c <= 'Z':
			h = append(h, c+'a'-'A')
		case uriIsUnreserved(c) && c != '~':
			h = append(h, c)
		default:
			return "", fmt.Sprintf("has %q in its host%s", string(rune(c)), only)
		}
	}
	host = string(h)
	switch {
	case host == "":
	case strings.HasSuffix(host, ".") && !strings.Contains(host, ".."):
		return "", fmt.Sprintf(`has the host %q, which ends in "."; drop the trailing dot`, host)
	case strings.HasPrefix(host, ".") || strings.Contains(host, ".."):
		return "", fmt.Sprintf("has the host %q, which has an empty label", host)
	case uriIPv4.MatchString(host):
		return "", fmt.Sprintf(`has the host %q, which URL parsers may read as an IPv4 address (URL Standard, "ends in a number"); IP-address hosts are refused because they have many spellings`, host)
	}
	if scheme == "file" {
		if port != "" {
			return "", "has a port, which a file URI cannot have (URL Standard, file host state)"
		}
		if host == "localhost" {
			host = "" // RFC 8089 section 2; URL Standard, file host state
		}
	}
	return strings.TrimSuffix(host+":"+port, ":"), "" // no ":" without a port
}

// uriComponent normalises a path or, with query, a query whose
// percent-encodings are well-formed. file decodes percent-encoded
// sub-delims, ":" and "@" (in file paths); special writes "'" as "%27" (in
// the query of a special URL); why says why s is refused.
func uriComponent(s string, query, file, special bool) (norm, why string) {
	var b strings.Builder
	b.Grow(len(s))
	decoded := make([]byte, 0, len(s)) // s percent-decoded, for the checks
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			d, enc := uriUnhex(s[i+1])<<4|uriUnhex(s[i+2]), s[i:i+3]
			i += 2
			decoded = append(decoded, d)
			switch {
			case strings.IndexByte(`/\%?#`, d) >= 0:
				return "", fmt.Sprintf("has %s, a percent-encoded %q, which a server may decode into a delimiter or decode twice; spell the resource without it", enc, string(rune(d)))
			case d < 0x20 || d == 0x7f:
				return "", fmt.Sprintf("has the percent-encoded control character %s", strings.ToUpper(enc))
			case uriIsUnreserved(d), file && uriIsSubDelim(d):
				b.WriteByte(d)
			default:
				b.WriteString(strings.ToUpper(enc))
			}
			continue
		case c >= utf8.RuneSelf:
			fmt.Fprintf(&b, "%%%02X", c) // RFC 3987 section 3.1
		case c == '\'' && special:
			b.WriteString("%27")
		case uriIsUnreserved(c) || uriIsSubDelim(c) || c == '/' || c == '?' && query:
			b.WriteByte(c)
		default:
			where := map[bool]string{false: "path", true: "query"}[query]
			return "", fmt.Sprintf("contains %q, which RFC 3986 section 2 does not allow unencoded in a %s; percent-encode it", string(rune(c)), where)
		}
		decoded = append(decoded, c)
	}
	if !utf8.Valid(decoded) {
		return "", "has percent-encoded bytes that are not UTF-8; encode text as UTF-8 (RFC 3986 section 2.5)"
	}
	for _, r := range string(decoded) {
		if r == utf8.RuneError {
			return "", "has a percent-encoded U+FFFD, the mark of an earlier decoding error"
		}
		if unicode.IsControl(r) {
			return "", fmt.Sprintf("has the percent-encoded control character %U", r)
		}
	}
	return b.String(), ""
}

// uriRemoveDotSegments is remove_dot_segments (RFC 3986 section 5.2.4) for
// the segments of a path that starts with "/" and has no empty segment but
// the last. It refuses a ".." above the root, which a server joining the
// path to a directory would follow out of it, and in a file path a ".."
// that removes a Windows drive letter, which the URL Standard keeps (Node's
// URL parser keeps any first segment that starts with one: "C:a").
func uriRemoveDotSegments(segs []string, file bool) (norm, why string) {
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch {
		case s == "..":
			if len(out) == 0 {
				return "", `has a ".." that climbs above the root; servers differ on where it leads, so spell the path without it`
			}
			if file && len(out) == 1 && len(out[0]) >= 2 && uriDriveLetter.MatchString(out[0][:2]) {
				return "", fmt.Sprintf(`has a ".." that would remove the Windows drive letter %q, which WHATWG URL parsers never do; spell the path without it`, out[0])
			}
			out = out[:len(out)-1]
		case s != ".":
			out = append(out, s)
			continue
		}
		if i == len(segs)-1 {
			out = append(out, "") // "/a/.." is "/"
		}
	}
	return "/" + strings.Join(out, "/"), ""
}

// uriCollapse collapses runs of "/" as POSIX pathname resolution does
// (POSIX.1-2017 section 4.13).
func uriCollapse(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

func uriIsDigit(c byte) bool { return '0' <= c && c <= '9' }
func uriIsHex(c byte) bool   { return uriIsDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

// uriIsUnreserved reports membership of unreserved (RFC 3986 section 2.3).
func uriIsUnreserved(c byte) bool {
	return uriIsDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'z' || strings.IndexByte("-._~", c) >= 0
}

// uriIsSubDelim reports whether c is a sub-delim, ":" or "@": what pchar
// allows besides unreserved (RFC 3986 section 3.3).
func uriIsSubDelim(c byte) bool { return strings.IndexByte("!$&'()*+,;=:@", c) >= 0 }

func uriUnhex(c byte) byte {
	if uriIsDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// NumericVariant returns norm (an output of NormalizeURI) with every token
// that a number parser would read as a number rewritten in canonical form,
// so that deny rules can be matched against it as well:
// "demo://resource/dynamic/text/01" gives "demo://resource/dynamic/text/1".
// It returns norm unchanged when nothing reads as a number in a
// non-canonical spelling. It is idempotent and its output is a normal form.
//
// Tokens are path segments (split at "/", and also at ":" in a path that
// does not start with "/", as in "urn:x:01"), query names and query values
// (split at "&", then at the first "="). A number inside a longer token
// ("item-01.json") is not rewritten; deny such resources with a glob.
//
// A token is percent-decoded, read as JavaScript's Number(s) reads it
// (ECMA-262 StringToNumber) and written as String(Number(s)) (ECMA-262
// Number::toString): "01", "1.0", "1e0", "+1", "0x1", "0o1", "0b1" and
// "%201" give "1", "-0" "0", "1e21" "1e+21", "1e400" "Infinity"; integers
// beyond 2^53 round as in JavaScript. As a variant only adds deny matches,
// tokens are read more widely than JavaScript does, to cover other servers:
//   - white space around the number is dropped: JavaScript's, Unicode
//     White_Space and Python's U+001C-U+001F; white space alone is not a
//     number, although Number reads it as 0;
//   - "_" between two digits is dropped (Python int, Go strconv base 0);
//   - Unicode decimal digits count as ASCII digits (Python int);
//   - a sign may precede "0x", "0o" and "0b" (Python, Go);
//   - in the query, "+" is read as a space (HTML form decoding) when the
//     token does not read as a number otherwise.
//
// Not read as numbers: "010" as octal 8 (C strtol, Go base 0; it gives
// "10", as in JavaScript), a number prefix of a longer token ("1abc", which
// parseInt reads as 1), "NaN", and Python's "inf".
func NumericVariant(norm string) string {
	ref, ok := uriSplitRef(norm)
	if !ok {
		return norm
	}
	seps := "/"
	if !strings.HasPrefix(ref.path, "/") {
		seps = "/:"
	}
	ref.path = uriRewriteTokens(ref.path, seps, false)
	ref.query = uriRewriteTokens(ref.query, "&=", true)
	return ref.String()
}

// uriRewriteTokens returns s with every token between bytes of seps
// rewritten in canonical form if it reads as a number. In a query only the
// first "=" of a pair separates.
func uriRewriteTokens(s, seps string, query bool) string {
	var b strings.Builder
	eqSeen, start := false, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && (strings.IndexByte(seps, s[i]) < 0 || query && s[i] == '=' && eqSeen) {
			continue
		}
		tok := s[start:i]
		f, ok := uriParseNumber(uriUnescape(tok))
		if !ok && query && strings.Contains(tok, "+") {
			f, ok = uriParseNumber(uriUnescape(strings.ReplaceAll(tok, "+", "%20")))
		}
		if ok {
			tok = uriFormatNumber(f)
		}
		b.WriteString(tok)
		if i < len(s) {
			b.WriteByte(s[i])
			eqSeen = query && s[i] == '='
		}
		start = i + 1
	}
	return b.String()
}

// uriUnescape decodes every well-formed percent-encoding.
func uriUnescape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && uriIsHex(s[i+1]) && uriIsHex(s[i+2]) {
			out = append(out, uriUnhex(s[i+1])<<4|uriUnhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

// uriIsSpace is the white space a number parser skips: ECMA-262 WhiteSpace
// and LineTerminator (White_Space and U+FEFF) and Python's str.strip
// separators U+001C-U+001F.
func uriIsSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\uFEFF' || 0x1c <= r && r <= 0x1f
}

// uriParseNumber reads s as described at [NumericVariant].
func uriParseNumber(s string) (float64, bool) {
	if !utf8.ValidString(s) {
		return 0, false
	}
	// Unicode encodes the decimal digits (Nd) in runs of ten from 0 to 9
	// (Unicode Standard, section 4.6), so a digit's value is its offset
	// from the start of its run, modulo ten.
	a := make([]byte, 0, len(s))
	for _, r := range strings.TrimFunc(s, uriIsSpace) {
		switch {
		case r < utf8.RuneSelf:
			a = append(a, byte(r))
		case unicode.IsDigit(r):
			z := r
			for unicode.IsDigit(z - 1) {
				z--
			}
			a = append(a, byte('0'+(r-z)%10))
		default:
			return 0, false
		}
	}
	sign := 1.0
	if len(a) > 0 && (a[0] == '+' || a[0] == '-') {
		if a[0] == '-' {
			sign = -1
		}
		a = a[1:]
	}
	if string(a) == "Infinity" {
		return math.Inf(int(sign)), true
	}
	base, digit := 10, uriIsDigit
	if len(a) > 2 && a[0] == '0' {
		if base = map[byte]int{'x': 16, 'o': 8, 'b': 2}[a[1]|0x20]; base == 0 {
			base = 10
		} else {
			a, digit = a[2:], uriIsHex
		}
	}
	w := 0 // drop "_" between two digits (Python int, Go strconv base 0)
	for i, c := range a {
		if c == '_' {
			if i == 0 || i == len(a)-1 || !digit(a[i-1]) || !digit(a[i+1]) {
				return 0, false
			}
			continue
		}
		a[w], w = c, w+1
	}
	a = a[:w]
	if base != 10 {
		n, ok := new(big.Int).SetString(string(a), base) // rejects bad digits
		if !ok || a[0] == '+' || a[0] == '-' {
			return 0, false
		}
		f, _ := new(big.Float).SetInt(n).Float64() // nearest, ties to even
		return sign * f, true
	}
	if !uriDecimal.Match(a) {
		return 0, false
	}
	// Out of range, ParseFloat gives ±Inf or 0, as StringToNumber does.
	f, err := strconv.ParseFloat(string(a), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return sign * f, true
}

// uriFormatNumber is ECMA-262 Number::toString(x, 10); Go's shortest
// round-trip digits are the k digits that section asks for.
func uriFormatNumber(f float64) string {
	switch {
	case f == 0:
		return "0" // -0 too
	case math.IsInf(f, 0):
		return map[bool]string{false: "Infinity", true: "-Infinity"}[f < 0]
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	if k > 1 {
		digits = digits[:1] + "." + digits[1:]
	}
	return fmt.Sprintf("%s%se%+d", sign, digits, n-1)
}
