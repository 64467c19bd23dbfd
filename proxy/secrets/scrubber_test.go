package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// The secrets of the tests. tokB64 has bytes whose base64 needs '+' and
// '/' at every alignment, so that the two alphabets differ.
const (
	tok     = "ghp_R4nd0mT0kenValue1234567890abcdef"
	key     = "sk-live/9f8e7d6c5b4a"
	spaced  = "correct horse battery staple"
	odd     = "pa\"ss\\wo\x01rd-\u00e9t\u00e9-long"
	emoji   = "key-\U0001F600-0123456789"
	rep     = "xyxyxyxyxy"
	tokB64  = "ghp_>>>???>>>???>>>???zz"
	tokName = "GH_TOKEN"
)

var testSecrets = []Secret{
	{tokName, []byte(tok)},
	{"API_KEY", []byte(key)},
	{"PASSPHRASE", []byte(spaced)},
	{"ODD", []byte(odd)},
	{"EMOJI", []byte(emoji)},
	{"REP", []byte(rep)},
	{"B64", []byte(tokB64)},
}

func newTestScrubber(t testing.TB) *Scrubber {
	t.Helper()
	s, err := NewScrubber(testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// result wraps text as the text content of a tools/call result.
func result(text string) string {
	return `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":` +
		quote(text) + `}],"isError":false}}`
}

// quote is the JSON string literal of s, as encoding/json writes it.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// escapeAll writes every character of s as \uXXXX (surrogate pairs above
// U+FFFF), inside quotes.
func escapeAll(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r > 0xFFFF {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04X`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	b.WriteByte('"')
	return b.String()
}

// pctAll percent-encodes every byte of s, in the given hex case.
func pctAll(s string, upper bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if upper {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			fmt.Fprintf(&b, "%%%02x", s[i])
		}
	}
	return b.String()
}

// blob is the base64 of secret behind off bytes and followed by 7, as if
// the secret sat inside a larger encoded document.
func blob(enc *base64.Encoding, secret string, off int) string {
	return enc.EncodeToString([]byte(strings.Repeat("#", off) + secret + "-trail-"))
}

// mime wraps s at 76 columns with CRLF, as MIME does.
func mime(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// Decoders a reader might apply to a carrier, for the probes.
func jsonDecode(s string) string {
	var v string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return ""
	}
	return v
}

func urlDecode(s string) string {
	v, err := url.QueryUnescape(s)
	if err != nil {
		return ""
	}
	return v
}

func b64Decode(s string) string {
	s = strings.NewReplacer("\r", "", "\n", "", "-", "+", "_", "/", "=", "").Replace(s)
	v, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(v)
}

func identity(s string) string { return s }

type scrubCase struct {
	name string
	msg  string
	// carrier is the piece of msg that holds secret; decode is what a
	// reader would do with it. The probe checks that decode(carrier) does
	// hold the secret, so that a case cannot pass by testing nothing.
	carrier, secret string
	decode          func(string) string
	want            []Hit
}

func scrubCases() []scrubCase {
	var cs []scrubCase
	add := func(c scrubCase) { cs = append(cs, c) }
	h := func(name, form string, n int) Hit { return Hit{name, form, n} }

	add(scrubCase{"raw in result text", result("your token is " + tok + ", keep it"),
		tok, tok, identity, []Hit{h(tokName, FormRaw, 1)}})
	esc1 := `"\u0067hp_R4nd0mT0ken\u0056alue1234567890abcdef"`
	add(scrubCase{"some letters as \\u escapes", `{"jsonrpc":"2.0","id":1,"result":{"text":` + esc1 + `}}`,
		esc1, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	escAll := escapeAll(tok)
	add(scrubCase{"every letter as \\u escapes", `{"result":{"text":` + escAll + `}}`,
		escAll, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	surr := `"\ud83d\ude00` + tok + `\uD83D\uDE00"`
	add(scrubCase{"surrogate pairs around", `{"result":{"text":` + surr + `}}`,
		surr, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	em := escapeAll(emoji)
	add(scrubCase{"surrogate pair inside the secret", `{"result":{"text":` + em + `}}`,
		em, emoji, jsonDecode, []Hit{h("EMOJI", FormRaw, 1)}})
	lone := `"\ud800 ` + tok + ` \udc00"`
	add(scrubCase{"lone surrogates kept", `{"result":{"text":` + lone + `}}`,
		lone, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	add(scrubCase{"object key", `{"result":{"` + tok + `":true}}`,
		tok, tok, identity, []Hit{h(tokName, FormRaw, 1)}})
	add(scrubCase{"escaped object key", `{"result":{` + escAll + `:true}}`,
		escAll, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	slash := `"key: sk-live\/9f8e7d6c5b4a"`
	add(scrubCase{"escaped slash", `{"result":` + slash + `}`, slash, key, jsonDecode,
		[]Hit{h("API_KEY", FormRaw, 1)}})

	for _, u := range []struct{ name, enc string }{
		{"url one byte lower hex", "ghp%5fR4nd0mT0kenValue1234567890abcdef"},
		{"url one byte upper hex", "ghp%5FR4nd0mT0kenValue1234567890abcdef"},
		{"url every byte lower", pctAll(tok, false)},
		{"url every byte upper", pctAll(tok, true)},
	} {
		c := "https://example.com/cb?access_token=" + u.enc + "&x=1"
		add(scrubCase{u.name, result(c), c, tok, urlDecode, []Hit{h(tokName, FormURL, 1)}})
	}
	twice := "t=" + pctAll(pctAll(tok, true), false)
	add(scrubCase{"url twice", result(twice), twice, tok, func(s string) string { return urlDecode(urlDecode(s)) },
		[]Hit{h(tokName, FormURL, 1)}})
	split := "token: " + tok[:12] + "\n" + tok[12:]
	add(scrubCase{"raw split by a line break", result(split), split, tok,
		func(s string) string { return strings.NewReplacer("\r", "", "\n", "").Replace(s) }, []Hit{h(tokName, FormRaw, 1)}})
	form := "pass=" + strings.ReplaceAll(spaced, " ", "+")
	add(scrubCase{"url form with + for space", result(form), form, spaced, urlDecode,
		[]Hit{h("PASSPHRASE", FormURL, 1)}})
	pctQ := "u=" + url.QueryEscape(odd)
	add(scrubCase{"url of a value JSON must escape", result(pctQ), pctQ, odd, urlDecode,
		[]Hit{h("ODD", FormURL, 1)}})

	for off := range 3 {
		for _, e := range []struct {
			form string
			enc  *base64.Encoding
		}{
			{FormBase64, base64.StdEncoding},
			{FormBase64, base64.RawStdEncoding},
			{FormBase64URL, base64.URLEncoding},
			{FormBase64URL, base64.RawURLEncoding},
		} {
			b := blob(e.enc, tokB64, off)
			pad := map[bool]string{true: "padded", false: "unpadded"}[strings.HasSuffix(e.enc.EncodeToString([]byte{1}), "=")]
			name := fmt.Sprintf("%s %s offset %d", e.form, pad, off)
			add(scrubCase{name, result("data:" + b), b, tokB64, b64Decode, []Hit{h("B64", e.form, 1)}})
		}
		b := blob(base64.StdEncoding, tok, off)
		add(scrubCase{fmt.Sprintf("base64 of token offset %d", off), result(b), b, tok, b64Decode,
			[]Hit{h(tokName, FormBase64, 1)}})
	}
	long := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 40) + tok + strings.Repeat("y", 80)))
	wrapped := mime(long)
	add(scrubCase{"base64 wrapped MIME style", result(wrapped), wrapped, tok, b64Decode,
		[]Hit{h(tokName, FormBase64, 1)}})
	inURL := url.QueryEscape(blob(base64.StdEncoding, tokB64, 1))
	add(scrubCase{"base64 inside a URL query", result("q=" + inURL), inURL, tokB64,
		func(s string) string { return b64Decode(urlDecode(s)) }, []Hit{h("B64", FormBase64, 1)}})

	nested := `{"token":` + escapeAll(tok) + `}`
	add(scrubCase{"JSON text inside a string", result(nested), nested, tok,
		func(s string) string { var v map[string]string; json.Unmarshal([]byte(s), &v); return v["token"] },
		[]Hit{h(tokName, FormRaw, 1)}})

	two := result(tok + " and " + key + " and " + tok)
	add(scrubCase{"two secrets in one string", two, tok, tok, identity,
		[]Hit{h(tokName, FormRaw, 2), h("API_KEY", FormRaw, 1)}})
	twoStr := `{"result":{"a":"` + key + `","b":` + escapeAll(tok) + `}}`
	add(scrubCase{"two secrets in two strings", twoStr, key, key, identity,
		[]Hit{h("API_KEY", FormRaw, 1), h(tokName, FormRaw, 1)}})
	add(scrubCase{"overlapping occurrences", result("<" + rep + "xyxy>"), rep + "xyxy", rep, identity,
		[]Hit{h("REP", FormRaw, 3)}})
	oq := quote(odd)
	add(scrubCase{"value JSON must escape", `{"result":{"text":` + oq + `}}`, oq, odd, jsonDecode,
		[]Hit{h("ODD", FormRaw, 1)}})

	add(scrubCase{"not JSON: raw", "server says " + tok, tok, tok, identity, []Hit{h(tokName, FormRaw, 1)}})
	bad := `{"result":{"text":` + escAll + `}`
	add(scrubCase{"not JSON: \\u escapes", bad, escAll, tok, jsonDecode, []Hit{h(tokName, FormRaw, 1)}})
	add(scrubCase{"not JSON: base64", "blob " + blob(base64.StdEncoding, tok, 2), blob(base64.StdEncoding, tok, 2),
		tok, b64Decode, []Hit{h(tokName, FormBase64, 1)}})
	add(scrubCase{"two JSON values on a line", `{"a":1} ` + result(tok), tok, tok, identity,
		[]Hit{h(tokName, FormRaw, 1)}})
	return cs
}

func sortHits(hs []Hit) []Hit {
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b Hit) int { return strings.Compare(a.Name+" "+a.Form, b.Name+" "+b.Form) })
	return hs
}

// jsonStrings returns every string of a JSON text, keys included, as
// encoding/json decodes them.
func jsonStrings(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

func TestScrub(t *testing.T) {
	s := newTestScrubber(t)
	for _, c := range scrubCases() {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(c.msg, c.carrier) && !slices.ContainsFunc(jsonStrings(t, []byte(c.msg)),
				func(s string) bool { return strings.Contains(s, c.carrier) }) {
				t.Fatalf("carrier %q is not in the message", c.carrier)
			}
			if got := c.decode(c.carrier); !strings.Contains(got, c.secret) {
				t.Fatalf("probe: decode(%q) = %q, which does not hold %q", c.carrier, got, c.secret)
			}
			out, hits := s.Scrub([]byte(c.msg))
			if got, want := sortHits(hits), sortHits(c.want); !slices.Equal(got, want) {
				t.Errorf("Scrub(%q) hits = %v, want %v", c.msg, got, want)
			}
			if strings.Contains(string(out), c.carrier) {
				t.Errorf("Scrub(%q) = %q, still holds the carrier", c.msg, out)
			}
			for _, str := range jsonStrings(t, out) {
				if strings.Contains(str, c.carrier) {
					t.Errorf("Scrub(%q) = %q, still holds the carrier", c.msg, out)
				}
			}
			if !strings.Contains(string(out), "[redacted: secret ") {
				t.Errorf("Scrub(%q) = %q, no redaction text", c.msg, out)
			}
			if !json.Valid([]byte(c.msg)) {
				return
			}
			if !json.Valid(out) {
				t.Fatalf("Scrub(%q) = %q, not valid JSON", c.msg, out)
			}
			for _, str := range jsonStrings(t, out) {
				for _, sec := range testSecrets {
					if strings.Contains(str, string(sec.Value)) || strings.Contains(c.decode(str), string(sec.Value)) {
						t.Errorf("Scrub(%q): client reads %q, which holds %s", c.msg, str, sec.Name)
					}
				}
			}
		})
	}
}

// TestScrubStructure checks that only the strings holding a secret change.
func TestScrubStructure(t *testing.T) {
	s := newTestScrubber(t)
	msg := `{"jsonrpc":"2.0", "id":7,"result":{"content":[{"type":"text","text":"a ` + tok +
		` b"}, {"n": -1.5e3, "s":"\u00e9\n"}]}}`
	out, _ := s.Scrub([]byte(msg))
	want := `{"jsonrpc":"2.0", "id":7,"result":{"content":[{"type":"text","text":"a [redacted: secret GH_TOKEN] b"}, {"n": -1.5e3, "s":"\u00e9\n"}]}}`
	if string(out) != want {
		t.Errorf("Scrub(%q) = %q, want %q", msg, out, want)
	}
	lone := `{"t":"\ud800\u0001` + tok + `\"\\"}`
	out, _ = s.Scrub([]byte(lone))
	if want := `{"t":"\ud800\u0001[redacted: secret GH_TOKEN]\"\\"}`; string(out) != want {
		t.Errorf("Scrub(%q) = %q, want %q", lone, out, want)
	}
}

// TestScrubNotCaught pins what doc.go says is not caught, so that a change
// of behaviour is a change of the documentation too.
func TestScrubNotCaught(t *testing.T) {
	s := newTestScrubber(t)
	for _, msg := range []string{
		`{"a":"` + tok[:10] + `","b":"` + tok[10:] + `"}`,                                                 // split across strings
		result(fmt.Sprintf("%x", tok)),                                                                    // hex
		result(strings.ToUpper(tok)),                                                                      // transformed
		result(strings.Join(strings.Split(tok, ""), " ")),                                                 // characters inserted
		result(pctAll(pctAll(pctAll(tok, true), true), true)),                                             // three URL encodings
		result(base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(tok))))), // base64 twice
	} {
		out, hits := s.Scrub([]byte(msg))
		if string(out) != msg || hits != nil {
			t.Errorf("Scrub(%q) = %q, %v; want it unchanged", msg, out, hits)
		}
	}
}

func TestScrubMissSameSlice(t *testing.T) {
	s := newTestScrubber(t)
	for _, msg := range [][]byte{
		[]byte(result("nothing to see")),
		[]byte(result("line one\nline two with \"quotes\" and %41 and \\u0041 " + strings.Repeat("QUJD", 40) + "\r\n")),
		[]byte(`not json at all, but long enough`),
		[]byte(`{"a":"ghp_R4nd0mT0ken"}`),
	} {
		out, hits := s.Scrub(msg)
		if unsafe.SliceData(out) != unsafe.SliceData(msg) || len(out) != len(msg) || hits != nil {
			t.Errorf("Scrub(%q) = %q, %v; want the same slice, no hits", msg, out, hits)
		}
		if raceEnabled() {
			continue // the race detector makes sync.Pool drop items
		}
		allocs := testing.AllocsPerRun(100, func() { s.Scrub(msg) })
		if allocs != 0 {
			t.Errorf("Scrub(%q) allocates %v times, want 0", msg, allocs)
		}
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}

func TestNewScrubber(t *testing.T) {
	for _, c := range []struct {
		secrets []Secret
		want    error
	}{
		{nil, nil},
		{[]Secret{{"A", []byte("12345678")}, {"A", []byte("12345678")}}, nil},
		{[]Secret{{"", []byte("12345678")}}, ErrEmptyName},
		{[]Secret{{"A", []byte("1234567")}}, ErrShortSecret},
		{[]Secret{{"A\xff", []byte("12345678")}}, ErrBadName},
		{[]Secret{{"x ghp_R4nd0mT0ken", []byte("ghp_R4nd0mT0ken")}}, ErrBadName},
	} {
		_, err := NewScrubber(c.secrets)
		if !errors.Is(err, c.want) {
			t.Errorf("NewScrubber(%q) = %v, want %v", c.secrets, err, c.want)
		}
	}
	s, err := NewScrubber(nil)
	if err != nil {
		t.Fatal(err)
	}
	if msg := []byte(result(tok)); !bytes.Equal(must(s.Scrub(msg)), msg) {
		t.Errorf("a Scrubber without secrets changed %q", msg)
	}
}

func must(out []byte, _ []Hit) []byte { return out }

// TestBase64Cores checks the cores against coresByAgreement, a derivation
// of their own.
func TestBase64Cores(t *testing.T) {
	for _, v := range []string{tok, key, tokB64, "12345678", odd} {
		want := coresByAgreement(v)
		got := append(base64Cores(base64.StdEncoding, []byte(v)), base64Cores(base64.URLEncoding, []byte(v))...)
		for i := range want {
			if string(got[i]) != want[i] {
				t.Errorf("base64Cores(%q)[%d] = %q, want %q", v, i, got[i], want[i])
			}
			if len(got[i]) < 10 {
				t.Errorf("base64Cores(%q)[%d] = %q, shorter than 10", v, i, got[i])
			}
		}
	}
}

// TestScrubConcurrent runs Scrub from several goroutines on one Scrubber;
// run it with -race.
func TestScrubConcurrent(t *testing.T) {
	s := newTestScrubber(t)
	cases := scrubCases()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				c := cases[(g+i)%len(cases)]
				if _, hits := s.Scrub([]byte(c.msg)); hits == nil {
					t.Errorf("Scrub(%q) found nothing", c.msg)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func ExampleScrubber_Scrub() {
	s, err := NewScrubber([]Secret{{Name: "GITHUB_TOKEN", Value: []byte("ghp_exampleExample0123")}})
	if err != nil {
		panic(err)
	}
	line := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"token: \u0067hp_exampleExample0123"}]}}`)
	out, hits := s.Scrub(line)
	fmt.Println(string(out))
	fmt.Println(hits)
	// Output:
	// {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"token: [redacted: secret GITHUB_TOKEN]"}]}}
	// [{GITHUB_TOKEN raw 1}]
}
