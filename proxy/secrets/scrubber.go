package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"
)

// MinSecretLen is the shortest value a [Scrubber] accepts, in bytes. A
// shorter value would match ordinary text (a word, a number, a run of
// base64 in an image) and mangle messages the model needs; a value this
// short is also too weak to be worth a sandbox. At 8 bytes every base64
// core is at least 10 characters, 60 bits: a chance match inside a megabyte
// of random base64 has odds of about one in 10^12.
const MinSecretLen = 8

// Errors of [NewScrubber]; the error it returns wraps one of them and names
// the secret.
var (
	ErrEmptyName   = errors.New("secret has no name")
	ErrShortSecret = fmt.Errorf("secret value is shorter than %d bytes", MinSecretLen)
	ErrBadName     = errors.New("secret name is not UTF-8 or its redaction text holds a secret")
)

// Secret is one value to keep from the client, by name.
type Secret struct {
	Name  string
	Value []byte
}

// Hit says that a secret was found in a message, in which form, how often.
// Form is one of [FormRaw], [FormURL], [FormBase64] and [FormBase64URL];
// Count is the number of separate occurrences redacted in that form.
type Hit struct {
	Name  string
	Form  string
	Count int
}

// Scrubber finds secrets in server→client messages and replaces them.
// Build one with [NewScrubber]; it is safe for concurrent use.
type Scrubber struct {
	m     matcher
	alpha [256]bool // the bytes of the patterns
	// trigEscape holds the letters of the escapes that send a string
	// through one more JSON decoding (Scrubber.triggered).
	trigEscape [256]bool
	names      []string // by owner
	repl       [][]byte // "[redacted: secret NAME]", by owner
	pool       sync.Pool
}

// NewScrubber returns a Scrubber for secrets. It refuses a secret with an
// empty name ([ErrEmptyName]), a value shorter than [MinSecretLen]
// ([ErrShortSecret]), and a name that is not UTF-8 or whose redaction
// text would itself hold a secret in some form ([ErrBadName]). The same
// name or value given twice is fine: a value's occurrences are reported
// under the first name given for it. No secrets at all is fine too: Scrub
// then returns every message as it is.
func NewScrubber(secrets []Secret) (*Scrubber, error) {
	s := &Scrubber{}
	var pats []pattern
	seen := make(map[string]bool)
	for i, sec := range secrets {
		switch {
		case sec.Name == "":
			return nil, fmt.Errorf("secret %d: %w", i, ErrEmptyName)
		case !utf8.ValidString(sec.Name):
			return nil, fmt.Errorf("secret %q: %w", sec.Name, ErrBadName)
		case len(sec.Value) < MinSecretLen:
			return nil, fmt.Errorf("secret %q: %w", sec.Name, ErrShortSecret)
		}
		owner := len(s.names)
		s.names = append(s.names, sec.Name)
		s.repl = append(s.repl, []byte("[redacted: secret "+sec.Name+"]"))
		texts, forms := patternsOf(sec.Value)
		for j, t := range texts {
			if !seen[string(t)] {
				seen[string(t)] = true
				pats = append(pats, pattern{text: t, owner: owner, form: forms[j]})
			}
		}
	}
	s.m = newMatcher(pats)
	for _, p := range pats {
		for _, c := range p.text {
			s.alpha[c] = true
		}
	}
	for _, c := range []byte(`"\\/bfnrtu`) {
		s.trigEscape[c] = c == 'u' || c == '\\' || s.alpha[escaped[c]]
	}
	s.pool.New = func() any { return new(scratch) }
	for i, r := range s.repl {
		if s.contains(r) {
			return nil, fmt.Errorf("secret %q: %w", s.names[i], ErrBadName)
		}
	}
	return s, nil
}

// The forms a [Hit] reports. doc.go says what each covers.
const (
	FormRaw       = "raw"
	FormURL       = "url"
	FormBase64    = "base64"
	FormBase64URL = "base64url"
)

// pattern is one byte string whose presence in a view means a secret is
// there: the value itself, its form-encoded variant, or a base64 core.
type pattern struct {
	text  []byte
	owner int    // index into Scrubber.names and Scrubber.repl
	form  string // the form the pattern stands for, before any view
	tail  uint32 // blockHash of the last block of text[:window]
}

// patternsOf returns the patterns of one secret value, in the order a hit
// is attributed: raw first, so that a value that is also its own base64
// (unlikely, but possible) counts as raw.
func patternsOf(v []byte) (texts [][]byte, forms []string) {
	add := func(t []byte, form string) {
		texts = append(texts, t)
		forms = append(forms, form)
	}
	add(bytes.Clone(v), FormRaw)
	// application/x-www-form-urlencoded writes a space as '+'. The URL view
	// decodes only %XX, leaving '+' as it is, so the value with its spaces
	// as '+' is a pattern of its own; '+' written %2B still decodes to '+'
	// and meets the raw pattern.
	if bytes.IndexByte(v, ' ') >= 0 {
		add(bytes.ReplaceAll(v, []byte{' '}, []byte{'+'}), FormURL)
	}
	for _, c := range base64Cores(base64.StdEncoding, v) {
		add(c, FormBase64)
	}
	for _, c := range base64Cores(base64.URLEncoding, v) {
		add(c, FormBase64URL)
	}
	return texts, forms
}

// base64Cores returns, for each of the three positions the value can take
// within a 3-byte group of a longer base64 blob, the characters of the
// encoding that depend on the value's bytes alone. Character i of an
// encoding carries bits [6i, 6i+6) of the input; with p unknown bytes
// before the value, the value holds bits [8p, 8(p+n)), so the core is the
// characters from ceil(8p/6) up to, not including, floor(8(p+n)/6). Padding
// and the partial last character are outside every core, so one core
// covers padded and unpadded blobs and any bytes after the value.
func base64Cores(enc *base64.Encoding, v []byte) [][]byte {
	enc = enc.WithPadding(base64.NoPadding)
	cores := make([][]byte, 0, 3)
	for p := 0; p < 3; p++ {
		in := make([]byte, p+len(v)+2)
		copy(in[p:], v)
		out := make([]byte, enc.EncodedLen(len(in)))
		enc.Encode(out, in)
		first, last := (8*p+5)/6, 8*(p+len(v))/6
		cores = append(cores, out[first:last:last])
	}
	return cores
}

// The matcher is a Wu-Manber multi-pattern search. It slides a window the
// length of the shortest pattern along the text and looks at the last
// three bytes of the window: when that block occurs in no pattern's first
// window bytes, the window jumps by nearly its whole length. Patterns are
// at least MinSecretLen bytes and usually 20 to 60, so on text without a
// secret most bytes are never read; bytes.Index per pattern would read
// every byte once per pattern.
const (
	blockLen  = 3
	tableBits = 15
	maxWindow = 250 // shifts are stored in a uint8
)

type matcher struct {
	pats   []pattern
	window int
	shift  []uint8 // by blockHash; 0 means "verify here"
}

// occurrence is a pattern found in a view: pat is an index into
// matcher.pats.
type occurrence struct {
	start, end int
	pat        int
}

func blockHash(a, b, c byte) uint32 {
	return (uint32(a) | uint32(b)<<8 | uint32(c)<<16) * 0x9E3779B1 >> (32 - tableBits)
}

func newMatcher(pats []pattern) matcher {
	m := matcher{pats: pats}
	if len(pats) == 0 {
		return m
	}
	m.window = maxWindow
	for _, p := range pats {
		m.window = min(m.window, len(p.text))
	}
	w := m.window
	m.shift = make([]uint8, 1<<tableBits)
	for i := range m.shift {
		m.shift[i] = uint8(w - blockLen + 1)
	}
	for i := range m.pats {
		t := m.pats[i].text
		for q := blockLen - 1; q < w; q++ {
			h := blockHash(t[q-2], t[q-1], t[q])
			m.shift[h] = min(m.shift[h], uint8(w-1-q))
		}
		m.pats[i].tail = blockHash(t[w-3], t[w-2], t[w-1])
	}
	return m
}

// scan appends to dst every occurrence of every pattern in text,
// overlapping ones included, ordered by start. With first it stops at the
// first one and reports only whether there was one.
func (m *matcher) scan(text []byte, dst []occurrence, first bool) ([]occurrence, bool) {
	w := m.window
	if w == 0 || len(text) < w {
		return dst, false
	}
	found := false
	shift := m.shift[:1<<tableBits]
	for pos := w - 1; pos < len(text); {
		h := blockHash(text[pos-2], text[pos-1], text[pos])
		if sh := shift[h]; sh != 0 {
			pos += int(sh)
			continue
		}
		start := pos - w + 1
		for i := range m.pats {
			p := &m.pats[i]
			if p.tail != h || len(text)-start < len(p.text) ||
				!bytes.Equal(text[start:start+len(p.text)], p.text) {
				continue
			}
			found = true
			if first {
				return dst, true
			}
			dst = append(dst, occurrence{start, start + len(p.text), i})
		}
		pos++
	}
	return dst, found
}

// contains reports whether any secret is in text, read as a whole line
// would be (all views, one more transform than a JSON string gets).
func (s *Scrubber) contains(text []byte) bool {
	sc := s.pool.Get().(*scratch)
	defer s.put(sc)
	return s.search(sc, text, 0, maxChain+1, false, false)
}

// Scrub returns msg with every occurrence of a secret replaced, and what it
// found. msg is one JSON-RPC message: one JSON value, as read from the
// server's stdout line; several values separated by whitespace are scrubbed
// one by one. When nothing is found Scrub returns msg itself and a nil
// slice, without allocating. Otherwise out is a new slice: when msg is
// valid JSON, out is valid JSON of the same structure in which only the
// strings that held a secret differ, each occurrence replaced, inside its
// string, by the text "[redacted: secret NAME]". When msg is not valid
// JSON, the occurrences are replaced in the raw bytes (see doc.go,
// "Lines that are not JSON"). Scrub never modifies msg.
func (s *Scrubber) Scrub(msg []byte) (out []byte, hits []Hit) {
	if s.m.window == 0 || len(msg) < s.m.window {
		return msg, nil
	}
	var sc *scratch
	if s.anyTriggered(msg) {
		sc = s.pool.Get().(*scratch)
		if !s.search(sc, msg, 0, maxChain+1, false, false) {
			s.put(sc)
			return msg, nil
		}
	} else {
		// The common case of a line without escapes: the line is its own
		// only view.
		if _, hit := s.m.scan(msg, nil, true); !hit {
			return msg, nil
		}
		sc = s.pool.Get().(*scratch)
	}
	defer s.put(sc)

	// Something is there, though perhaps not inside one string. Every view
	// a string gets is a piece of a view the line got, so a line that
	// passed the search above needs nothing more; this is the slow path.
	r := rewriter{s: s, sc: sc, buf: msg}
	if r.walk() {
		if r.out == nil {
			return msg, nil
		}
		return append(r.out, msg[r.last:]...), r.hits
	}
	clean, hits := s.clean(sc, msg, maxChain+1, nil)
	if clean == nil {
		return msg, nil
	}
	return bytes.Clone(clean), hits
}

func (s *Scrubber) anyTriggered(buf []byte) bool {
	for t := range numTransforms {
		if s.triggered(t, buf) {
			return true
		}
	}
	return false
}

// maxKeep is the largest buffer a scratch keeps for the next call; one huge
// message should not pin its size in the pool.
const maxKeep = 4 << 20

func (s *Scrubber) put(sc *scratch) {
	for _, v := range sc.views {
		if cap(v) > maxKeep {
			return
		}
	}
	if cap(sc.dec) > maxKeep || cap(sc.red[0]) > maxKeep || cap(sc.red[1]) > maxKeep {
		return
	}
	s.pool.Put(sc)
}

// maxRounds bounds the searches of a redacted text. A redaction text is
// clean by itself (NewScrubber checks), but it could, with the text around
// it, make up a secret in some view; each round redacts what the last one
// made. If the text is still not clean after maxRounds, all of it is
// replaced: fail closed.
const maxRounds = 3

// clean searches v, a decoded string (or a whole line that is not JSON),
// and its views up to level maxLvl. With nothing there it returns nil and
// hits unchanged. Otherwise it returns v redacted, in a scratch buffer,
// and hits with what it found added.
func (s *Scrubber) clean(sc *scratch, v []byte, maxLvl int, hits []Hit) ([]byte, []Hit) {
	sc.found = sc.found[:0]
	if !s.search(sc, v, 0, maxLvl, true, false) {
		return nil, hits
	}
	hits = s.count(sc, hits)
	first := s.m.pats[sc.found[0].pat].owner
	cur := s.redact(sc.red[0][:0], v, sc.found)
	sc.red[0] = cur
	for round := 1; ; round++ {
		sc.found = sc.found[:0]
		if !s.search(sc, cur, 0, maxLvl, true, false) {
			return cur, hits
		}
		if round == maxRounds {
			return s.repl[first], hits
		}
		sortFound(sc.found)
		i := round & 1
		sc.red[i] = s.redact(sc.red[i][:0], cur, sc.found)
		cur = sc.red[i]
	}
}

// sortFound orders occurrences by start, the longest first among those
// that start together, keeping the search order otherwise: the root view
// is searched first, so an occurrence seen through two views keeps the
// form it was first seen in.
func sortFound(fs []found) {
	slices.SortStableFunc(fs, func(x, y found) int {
		if x.start != y.start {
			return x.start - y.start
		}
		return y.end - x.end
	})
}

// count sorts sc.found and adds to hits the occurrences that are not
// inside an earlier one: the same occurrence seen through two views counts
// once, and so does a secret found inside another.
func (s *Scrubber) count(sc *scratch, hits []Hit) []Hit {
	sortFound(sc.found)
	reach := -1
	for _, f := range sc.found {
		if f.end <= reach {
			continue
		}
		reach = f.end
		name := s.names[s.m.pats[f.pat].owner]
		i := slices.IndexFunc(hits, func(h Hit) bool { return h.Name == name && h.Form == f.form })
		if i < 0 {
			hits = append(hits, Hit{Name: name, Form: f.form})
			i = len(hits) - 1
		}
		hits[i].Count++
	}
	return hits
}
