package secrets

// The fuzz target and the benchmarks: the harnesses that run the scrubber
// on generated messages rather than on the cases of scrubber_test.go.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// coresByAgreement derives the base64 cores of v without base64Cores: the
// characters on which the encodings with all-zero and all-one neighbours
// agree are those that depend on v alone.
func coresByAgreement(v string) []string {
	var cores []string
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for p := range 3 {
			lo := enc.EncodeToString([]byte(strings.Repeat("\x00", p) + v + "\x00\x00"))
			hi := enc.EncodeToString([]byte(strings.Repeat("\xff", p) + v + "\xff\xff"))
			i := 0
			for lo[i] != hi[i] {
				i++
			}
			j := i
			for lo[j] == hi[j] {
				j++
			}
			cores = append(cores, lo[i:j])
		}
	}
	return cores
}

// pctDecode decodes every valid %XX and leaves the rest, as a lenient
// reader would.
func pctDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := url.PathUnescape(s[i : i+3]); err == nil {
				b.WriteString(v)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// quoteMasked writes s as a JSON string literal, with the characters
// whose index has its bit set in mask written as \u escapes.
func quoteMasked(s string, mask uint64) string {
	var b strings.Builder
	b.WriteByte('"')
	i := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		i++
		if mask>>(i%64)&1 == 0 && r >= 0x20 && r != '"' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		if r > 0xFFFF {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			continue
		}
		fmt.Fprintf(&b, `\u%04X`, r)
	}
	b.WriteByte('"')
	return b.String()
}

// plant returns text holding v in the given form, between prefix and
// suffix.
func plant(v, prefix, suffix string, form uint8, mask uint64) string {
	switch form % 8 {
	case 1:
		return prefix + pctAll(v, true) + suffix
	case 2:
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if mask>>(i%64)&1 == 1 {
				fmt.Fprintf(&b, "%%%02x", v[i])
			} else {
				b.WriteByte(v[i])
			}
		}
		return prefix + b.String() + suffix
	case 3:
		return base64.StdEncoding.EncodeToString([]byte(prefix + v + suffix))
	case 4:
		return base64.RawURLEncoding.EncodeToString([]byte(prefix + v + suffix))
	case 5:
		return mime(base64.StdEncoding.EncodeToString([]byte(prefix + v + suffix)))
	case 6:
		return prefix + `{"token":` + quoteMasked(v, mask) + `}` + suffix
	case 7:
		return prefix + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(v+suffix))) + suffix
	}
	return prefix + v + suffix
}

// FuzzScrub checks two invariants. Any line: valid JSON stays valid and the
// output holds neither the token nor a base64 core of it. A line with the
// token planted in some form inside a JSON string: no string the client
// decodes from the output reveals it to a reader who undoes the form.
func FuzzScrub(f *testing.F) {
	for i, c := range scrubCases() {
		f.Add([]byte(c.msg), "pre ", " post", uint8(i), uint64(0x5555_5555_5555_5555))
	}
	f.Add([]byte(`{"a":"\ud800"}`), "", "", uint8(6), ^uint64(0))
	f.Add([]byte(`[1,2,{"b":null}] "x"`), "\x00\"\\", "\u2028", uint8(5), uint64(1))
	s := newTestScrubber(f)
	cores := coresByAgreement(tok)
	f.Fuzz(func(t *testing.T, data []byte, prefix, suffix string, form uint8, mask uint64) {
		out, _ := s.Scrub(data)
		if json.Valid(data) && !json.Valid(out) {
			t.Fatalf("Scrub(%q) = %q, not valid JSON", data, out)
		}
		if bytes.Contains(out, []byte(tok)) {
			t.Fatalf("Scrub(%q) = %q, holds the token", data, out)
		}
		for _, c := range cores {
			if bytes.Contains(out, []byte(c)) {
				t.Fatalf("Scrub(%q) = %q, holds base64 core %q", data, out, c)
			}
		}

		text := plant(tok, prefix, suffix, form, mask)
		msg := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":` +
			quoteMasked(text, mask) + `}]}}`)
		if !json.Valid(msg) {
			t.Fatalf("test bug: %q is not valid JSON", msg)
		}
		out, hits := s.Scrub(msg)
		if !json.Valid(out) {
			t.Fatalf("Scrub(%q) = %q, not valid JSON", msg, out)
		}
		if hits == nil {
			t.Fatalf("Scrub(%q) found nothing", msg)
		}
		for _, str := range jsonStrings(t, out) {
			if !utf8.ValidString(str) {
				continue
			}
			reads := []string{str, pctDecode(str), jsonDecode(`"` + str + `"`)}
			for _, r := range reads {
				if strings.Contains(r, tok) {
					t.Fatalf("Scrub(%q): client reads %q, which reveals the token", msg, str)
				}
				r = strings.NewReplacer("\r", "", "\n", "").Replace(r)
				for _, c := range cores {
					if strings.Contains(r, c) {
						t.Fatalf("Scrub(%q): client reads %q, which holds base64 core %q", msg, str, c)
					}
				}
			}
		}
	})
}

// benchSecrets are three secrets of the lengths profiles carry: a GitHub
// token, an API key, a password.
var benchSecrets = []Secret{
	{"GH_TOKEN", []byte(tok)},
	{"OPENAI_API_KEY", []byte("sk-proj-Zq9XwV3b7Kp2Lm8Nr4Ts6Uy1")},
	{"DB_PASSWORD", []byte("Tr0ub4dor&3-horse")},
}

// sourceText is size bytes of the kind of text a tools/call result
// carries: source lines, with tabs, quotes and a little embedded JSON, so
// that the JSON string has escapes and line breaks.
func sourceText(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "func handle%d(w http.ResponseWriter, r *http.Request) {\n", i)
		fmt.Fprintf(&b, "\tlog.Printf(\"request %%d from %%s\", %d, r.RemoteAddr)\n", i)
		fmt.Fprintf(&b, "\tw.Write([]byte(`{\"ok\":true,\"n\":%d,\"path\":\"/api/v1/items\"}`))\n}\n\n", i)
	}
	return b.String()[:size]
}

// benchMessage is a tools/call result whose text content makes the whole
// line about size bytes.
func benchMessage(size int, text func(int) string, insert string) []byte {
	const overhead = 110
	t := text(size - overhead - len(insert))
	t = t[:len(t)/2] + insert + t[len(t)/2:]
	return []byte(result(t))
}

func imageText(size int) string {
	raw := make([]byte, size*3/4+3)
	for i := range raw {
		raw[i] = byte(i*7 + i>>8)
	}
	return base64.StdEncoding.EncodeToString(raw)[:size]
}

type benchCase struct {
	name string
	msg  []byte
}

func benchCases(insert string) []benchCase {
	return []benchCase{
		{"1KB", benchMessage(1<<10, sourceText, insert)},
		{"64KB", benchMessage(64<<10, sourceText, insert)},
		{"64KB-base64", benchMessage(64<<10, imageText, insert)},
	}
}

func runScrub(b *testing.B, cases []benchCase, wantHits bool) {
	s, err := NewScrubber(benchSecrets)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if _, hits := s.Scrub(c.msg); (hits != nil) != wantHits {
				b.Fatalf("Scrub hits = %v, want hits: %v", hits, wantHits)
			}
			b.SetBytes(int64(len(c.msg)))
			b.ReportAllocs()
			for b.Loop() {
				s.Scrub(c.msg)
			}
		})
	}
}

// BenchmarkScrubMiss is the hot path: every server→client message, none
// holding a secret.
func BenchmarkScrubMiss(b *testing.B) {
	runScrub(b, benchCases(""), false)
}

// BenchmarkScrubHit has one token in the middle of the text, its first
// letter written \u0067 in text that is itself JSON, so that the hit is
// found two decodings deep and the string is re-encoded.
func BenchmarkScrubHit(b *testing.B) {
	runScrub(b, benchCases(" token \\u0067hp_R4nd0mT0kenValue1234567890abcdef "), true)
}

// BenchmarkNaiveIndex is the alternative the matcher was measured against:
// bytes.Index for each pattern over the line and its decoded view, which
// is what Scrub searches on the miss path of these messages.
func BenchmarkNaiveIndex(b *testing.B) {
	s, err := NewScrubber(benchSecrets)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range benchCases("") {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.msg)))
			var dec, lines []byte
			for b.Loop() {
				dec, _ = unescape(dec[:0], c.msg, nil, false)
				lines, _ = stripLines(lines[:0], dec, nil, false)
				for _, view := range [][]byte{c.msg, dec, lines} {
					for _, p := range s.m.pats {
						if bytes.Index(view, p.text) >= 0 {
							b.Fatal("hit")
						}
					}
				}
			}
		})
	}
}
