package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// uriFuzzSeeds adds the unit-test URIs to a corpus.
func uriFuzzSeeds(add func(string)) {
	for _, s := range uriLegitimate {
		add(s)
	}
	for _, tt := range uriNormalizeTests {
		add(tt.in)
	}
	for _, tt := range uriNumericTests {
		add(tt.in)
	}
}

// FuzzNormalizeURI checks that a refusal is a *URIError for the URI, that
// every normal form has the properties NormalizeURI promises, and that a
// respelling of a normal form (see uriRespell) has the same normal form.
func FuzzNormalizeURI(f *testing.F) {
	uriFuzzSeeds(func(s string) { f.Add(s, uint64(len(s))) })
	f.Fuzz(func(t *testing.T, s string, seed uint64) {
		n, err := NormalizeURI(s)
		if err != nil {
			var ue *URIError
			if !errors.As(err, &ue) || n != "" || ue.URI != s || ue.Reason == "" {
				t.Fatalf("NormalizeURI(%q) = %q, %v, want a *URIError for the URI", s, n, err)
			}
			return
		}
		uriCheckNormal(t, s, n)
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		for range 4 {
			v := uriRespell(n, r)
			if got, err := NormalizeURI(v); got != n || err != nil {
				t.Fatalf("NormalizeURI(%q) = %q, %v, want %q (the normal form of %q)", v, got, err, n, s)
			}
		}
	})
}

// FuzzNumericVariant checks that NumericVariant is idempotent, gives a
// normal form with the same structure, leaves URIs without digits alone
// and only rewrites tokens into canonical numbers of the same value.
func FuzzNumericVariant(f *testing.F) {
	uriFuzzSeeds(func(s string) { f.Add(s) })
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeURI(s)
		if err != nil {
			return
		}
		v := NumericVariant(n)
		if again := NumericVariant(v); again != v {
			t.Fatalf("NumericVariant(%q) = %q, want %q (NumericVariant is idempotent)", v, again, v)
		}
		if got, err := NormalizeURI(v); got != v || err != nil {
			t.Fatalf("NormalizeURI(%q) = %q, %v, want %q (NumericVariant(%q))", v, got, err, v, n)
		}
		if v == n {
			return
		}
		dec := uriUnescape(n)
		if !strings.ContainsFunc(dec, unicode.IsDigit) && !strings.Contains(dec, "Infinity") {
			t.Fatalf("NumericVariant(%q) = %q, want it unchanged: it has no number", n, v)
		}
		nu, vu := uriSplit(n), uriSplit(v)
		if nu.scheme != vu.scheme || nu.auth != vu.auth || nu.hasQuery != vu.hasQuery {
			t.Fatalf("NumericVariant(%q) = %q, want the same scheme, authority and query presence", n, v)
		}
		seps := "/&="
		if !strings.HasPrefix(nu.path, "/") {
			seps += ":"
		}
		isSep := func(r rune) bool { return strings.ContainsRune(seps, r) }
		nt := strings.FieldsFunc(nu.path+"&"+nu.query, isSep)
		vt := strings.FieldsFunc(vu.path+"&"+vu.query, isSep)
		if len(nt) != len(vt) {
			t.Fatalf("NumericVariant(%q) = %q, want as many tokens", n, v)
		}
		for i := range nt {
			if nt[i] == vt[i] {
				continue
			}
			a, aok := uriParseNumber(uriUnescape(strings.ReplaceAll(nt[i], "+", "%20")))
			if !aok {
				a, aok = uriParseNumber(uriUnescape(nt[i]))
			}
			b, bok := uriParseNumber(vt[i])
			if !aok || !bok || uriFormatNumber(a) != vt[i] || uriFormatNumber(b) != vt[i] {
				t.Fatalf("NumericVariant(%q) = %q rewrote %q to %q, want a canonical number of the same value", n, v, nt[i], vt[i])
			}
		}
	})
}

// uriParts are the components of a normal form.
type uriParts struct {
	scheme, auth, host, port, path, query string
	hasAuth, hasQuery                     bool
}

// uriSplit splits a normal form, which has no fragment and no userinfo
// (RFC 3986 Appendix B, simplified).
func uriSplit(n string) uriParts {
	var p uriParts
	p.scheme, n, _ = strings.Cut(n, ":")
	n, p.query, p.hasQuery = strings.Cut(n, "?")
	if rest, ok := strings.CutPrefix(n, "//"); ok {
		p.hasAuth = true
		p.auth, p.path = rest, ""
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			p.auth, p.path = rest[:i], rest[i:]
		}
		p.host, p.port, _ = strings.Cut(p.auth, ":")
	} else {
		p.path = n
	}
	return p
}

func (p uriParts) String() string {
	s := p.scheme + ":"
	if p.hasAuth {
		s += "//" + p.host
		if p.port != "" {
			s += ":" + p.port
		}
	}
	s += p.path
	if p.hasQuery {
		s += "?" + p.query
	}
	return s
}

// uriCheckNormal checks the promises of NormalizeURI on n = NormalizeURI(s).
func uriCheckNormal(t *testing.T, s, n string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("NormalizeURI(%q) = %q, which %s", s, n, fmt.Sprintf(format, args...))
	}
	if again, err := NormalizeURI(n); again != n || err != nil {
		t.Fatalf("NormalizeURI(%q) = %q, %v, want %q (NormalizeURI(%q))", n, again, err, n, s)
	}
	if i := strings.IndexFunc(n, func(r rune) bool {
		return r >= utf8.RuneSelf || unicode.IsControl(r) || strings.ContainsRune(" #\\\"<>[]^`{|}", r)
	}); i >= 0 {
		fail("has %q", n[i:])
	}
	p := uriSplit(n)
	if p.scheme != strings.ToLower(p.scheme) || p.host != strings.ToLower(p.host) {
		fail("has an upper-case scheme or host")
	}
	for i := 0; i < len(n); i++ {
		if n[i] != '%' {
			continue
		}
		enc := n[i : i+3]
		if enc != strings.ToUpper(enc) {
			fail("has the lower-case percent-encoding %q", enc)
		}
		if d := uriUnhex(n[i+1])<<4 | uriUnhex(n[i+2]); uriIsUnreserved(d) {
			fail("has the percent-encoded unreserved %q", enc)
		}
	}
	for _, seg := range strings.Split(p.path, "/") {
		if seg == "." || seg == ".." {
			fail("has a dot segment")
		}
	}
	if strings.Contains(p.path, "//") {
		fail("has an empty path segment")
	}
	u, err := url.Parse(n)
	if err != nil {
		fail("net/url does not parse: %v", err)
	}
	if u.Scheme != p.scheme || u.User != nil || u.Fragment != "" || u.RawQuery != p.query || p.hasAuth && u.Host != p.auth {
		fail("net/url parses differently: %#v", u)
	}
}

// uriRespell spells the normal form n differently without changing its
// meaning: random case in scheme, host and percent-encodings, unreserved
// characters percent-encoded, non-ASCII characters unencoded, "./" and
// "x/../" inserted after a "/", default, empty and zero-padded ports,
// "'" unencoded in special queries, and for file URIs "localhost", extra
// slashes and encoded sub-delims.
func uriRespell(n string, r *rand.Rand) string {
	p := uriSplit(n)
	coin := func() bool { return r.IntN(3) == 0 }
	randCase := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'a' <= c && c <= 'z' && coin() {
				b[i] = c - 'a' + 'A'
			}
		}
		return string(b)
	}
	encode := func(c byte) string { return randCase(fmt.Sprintf("%%%02x", c)) }
	file := p.scheme == "file"
	def := uriSpecialSchemes[p.scheme]
	special, rooted := def != "", strings.HasPrefix(p.path, "/")
	p.scheme = randCase(p.scheme)
	if p.hasAuth {
		var h strings.Builder
		for i := 0; i < len(p.host); i++ {
			if coin() {
				h.WriteString(encode(p.host[i]))
			} else {
				h.WriteString(randCase(p.host[i : i+1]))
			}
		}
		p.host = h.String()
		if file && p.host == "" && coin() {
			p.host = randCase("localhost")
		}
		switch {
		case file:
		case p.port == "" && def != "" && coin():
			p.port = strings.Repeat("0", r.IntN(3)) + def
		case p.port != "" && coin():
			p.port = strings.Repeat("0", 1+r.IntN(3)) + p.port
		}
		if p.port == "" && p.host != "" && !file && coin() {
			p.host += ":" // an empty port
		}
	}
	if file && p.host == "" && coin() {
		p.hasAuth = false // "file:/x" for "file:///x"
	}
	if special && !file && p.path == "/" && coin() {
		p.path = ""
	}
	var b strings.Builder
	for i := 0; i < len(p.path); i++ {
		c := p.path[i]
		switch {
		case c == '%':
			i += uriRespellEncoded(&b, p.path[i:], r, randCase)
		case uriIsUnreserved(c) && coin(), file && uriIsSubDelim(c) && coin():
			b.WriteString(encode(c))
		default:
			b.WriteByte(c)
		}
		if c == '/' && rooted {
			switch r.IntN(6) {
			case 0:
				b.WriteString(randCase(".") + "/")
			case 1:
				b.WriteString("x/" + [...]string{"..", "%2e%2E", ".%2e"}[r.IntN(3)] + "/")
			case 2:
				if file && (p.hasAuth || i > 0) { // not "file://x" for "file:/x"
					b.WriteString("/")
				}
			}
		}
	}
	p.path = b.String()
	b.Reset()
	for i := 0; i < len(p.query); i++ {
		c := p.query[i]
		switch {
		case special && strings.HasPrefix(p.query[i:], "%27") && coin():
			b.WriteByte('\'')
			i += 2
		case c == '%':
			i += uriRespellEncoded(&b, p.query[i:], r, randCase)
		case uriIsUnreserved(c) && coin():
			b.WriteString(encode(c))
		default:
			b.WriteByte(c)
		}
	}
	p.query = b.String()
	return p.String()
}

// uriRespellEncoded writes the percent-encoding at the start of s, either
// in random case or, for a whole UTF-8 sequence, unencoded, and returns
// how many bytes beyond the first it consumed.
func uriRespellEncoded(b *strings.Builder, s string, r *rand.Rand, randCase func(string) string) int {
	if r.IntN(2) == 0 {
		var seq []byte
		for i := 0; i+2 < len(s) && s[i] == '%' && len(seq) < utf8.UTFMax; i += 3 {
			seq = append(seq, uriUnhex(s[i+1])<<4|uriUnhex(s[i+2]))
			if ru, size := utf8.DecodeRune(seq); ru >= utf8.RuneSelf && ru != utf8.RuneError && size == len(seq) {
				b.Write(seq)
				return 3*len(seq) - 1
			}
		}
	}
	b.WriteString(randCase(strings.ToLower(s[:3])))
	return 2
}
