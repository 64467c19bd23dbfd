package secrets

import (
	"bytes"
	"unicode/utf8"
)

// A view is a text derived from a string by decoding it the way a reader
// might: JSON escapes, percent escapes, line breaks removed. Patterns are
// searched in the string and in every view reachable from it by a short
// chain of transforms. A transform is applied only when its trigger is
// present, so a plain string costs one search.
type transform uint8

const (
	// tJSON decodes JSON backslash escapes, leniently: an escape that is
	// not valid is kept as it is. At the top of a line it is the client's
	// own decoding; inside a decoded string it is text that is itself
	// JSON (a tool result's text is often a JSON document).
	tJSON transform = iota
	// tURL decodes %XX, either hex case. '+' is left alone; see
	// patternsOf.
	tURL
	// tLines removes CR and LF, which base64 decoders skip (MIME and PEM
	// wrap base64 at 76 and 64 columns). Nothing follows it in a chain:
	// the other transforms do not make line breaks worth removing again.
	tLines
	numTransforms
)

// span32 is the region of the parent view that produced one byte of a
// view.
type span32 struct{ start, end int32 }

// triggered reports whether t(buf) could hold an occurrence that buf and
// its other views do not. An occurrence new in a view holds a byte the
// transform made: a decoded byte, or the two bytes a removed line break
// joined. So a transform is needed only where it makes a byte of some
// pattern (s.alpha), or a byte that lets a later transform do so: '\\'
// and '%' (escapes written twice), CR and LF (line breaks the lines view
// removes). Most text has escapes, few of them matter: \" and \n in a
// document's JSON do not send it through a second decoding.
func (s *Scrubber) triggered(t transform, buf []byte) bool {
	switch t {
	case tJSON:
		// before is the byte ahead of the current run of \n and \r escapes
		// (0, no pattern byte, when the run follows another escape).
		var before byte
		end := 0 // of the last escape
		for i := 0; ; {
			j := indexShort(buf[i:], '\\')
			if j < 0 || i+j+1 >= len(buf) {
				return false
			}
			i += j
			c := buf[i+1]
			switch {
			case s.trigEscape[c]:
				if _, ok := hex4(buf[i+2:]); c != 'u' || ok {
					return true
				}
			case c == 'n' || c == 'r':
				switch {
				case i > end:
					before = buf[i-1]
				case !isBreak(buf[end-1]):
					before = 0
				}
				if i+2 < len(buf) && buf[i+2] != '\\' && s.alpha[before] && s.alpha[buf[i+2]] {
					return true
				}
			}
			i += 2
			end = i
		}
	case tURL:
		for i := 0; ; i++ {
			j := bytes.IndexByte(buf[i:], '%')
			if j < 0 {
				return false
			}
			i += j
			if i+2 < len(buf) && isHex(buf[i+1]) && isHex(buf[i+2]) {
				switch c := unhex(buf[i+1])<<4 | unhex(buf[i+2]); {
				case s.alpha[c], c == '%', c == '\\', c == '\n', c == '\r':
					return true
				}
			}
		}
	case tLines:
		hasCR := bytes.IndexByte(buf, '\r') >= 0
		for i := 0; ; {
			j := nextBreak(buf[i:], hasCR)
			if j < 0 {
				return false
			}
			i += j
			k := i + 1
			for k < len(buf) && (buf[k] == '\n' || buf[k] == '\r') {
				k++
			}
			if s.joins(buf, i, k) {
				return true
			}
			i = k
		}
	}
	return false
}

// nextBreak is the index of the first CR or LF in buf, or -1; hasCR says
// whether buf has a CR at all, which is rare, so that the search is
// usually one IndexByte.
func nextBreak(buf []byte, hasCR bool) int {
	if !hasCR {
		return bytes.IndexByte(buf, '\n')
	}
	return bytes.IndexAny(buf, "\r\n")
}

// joins reports whether removing the line breaks buf[i:j] would join two
// bytes of patterns.
func (s *Scrubber) joins(buf []byte, i, j int) bool {
	return i > 0 && j < len(buf) && s.alpha[buf[i-1]] && s.alpha[buf[j]]
}

// isBreak reports whether c is the letter of a line break escape.
func isBreak(c byte) bool { return c == 'n' || c == 'r' }

// indexShort is bytes.IndexByte for text where c is often near: escapes
// in JSON text come every few bytes, and a call of the vector search
// costs more than a short loop.
func indexShort(b []byte, c byte) int {
	n := min(len(b), 16)
	for i, x := range b[:n] {
		if x == c {
			return i
		}
	}
	if n == len(b) {
		return -1
	}
	if j := bytes.IndexByte(b[n:], c); j >= 0 {
		return n + j
	}
	return -1
}

// escaped maps the letter of a one-letter JSON escape to the byte it
// stands for.
var escaped = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// apply appends t(src) to dst. With withMap it also appends to m, for each
// byte appended to dst, the region of src it came from.
func apply(t transform, dst, src []byte, m []span32, withMap bool) ([]byte, []span32) {
	switch t {
	case tJSON:
		return unescape(dst, src, m, withMap)
	case tURL:
		return percentDecode(dst, src, m, withMap)
	default:
		return stripLines(dst, src, m, withMap)
	}
}

// copyRun appends src[i:j] unchanged.
func copyRun(dst, src []byte, m []span32, withMap bool, i, j int) ([]byte, []span32) {
	dst = append(dst, src[i:j]...)
	if withMap {
		for k := i; k < j; k++ {
			m = append(m, span32{int32(k), int32(k + 1)})
		}
	}
	return dst, m
}

// emit appends the bytes of b, all of them produced by src[i:j].
func emit(dst []byte, m []span32, withMap bool, i, j int, b ...byte) ([]byte, []span32) {
	dst = append(dst, b...)
	if withMap {
		for range b {
			m = append(m, span32{int32(i), int32(j)})
		}
	}
	return dst, m
}

// unescape decodes the JSON escapes of src. A valid escaped surrogate pair
// becomes its character; a lone surrogate becomes the three bytes that
// UTF-8 would give it were it allowed (WTF-8), so that appendString can
// write it back exactly as the server did.
func unescape(dst, src []byte, m []span32, withMap bool) ([]byte, []span32) {
	var tmp [4]byte
	for i := 0; i < len(src); {
		j := bytes.IndexByte(src[i:], '\\')
		if j < 0 {
			return copyRun(dst, src, m, withMap, i, len(src))
		}
		dst, m = copyRun(dst, src, m, withMap, i, i+j)
		i += j
		if i+1 >= len(src) {
			return copyRun(dst, src, m, withMap, i, len(src))
		}
		var c byte
		switch src[i+1] {
		case '"', '\\', '/':
			c = src[i+1]
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r, ok := hex4(src[i+2:])
			if !ok {
				dst, m = copyRun(dst, src, m, withMap, i, i+1)
				i++
				continue
			}
			n := 6
			if 0xD800 <= r && r < 0xDC00 && len(src)-i >= 12 && src[i+6] == '\\' && src[i+7] == 'u' {
				if lo, ok := hex4(src[i+8:]); ok && 0xDC00 <= lo && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					n = 12
				}
			}
			dst, m = emit(dst, m, withMap, i, i+n, appendRune(tmp[:0], r)...)
			i += n
			continue
		default:
			dst, m = copyRun(dst, src, m, withMap, i, i+1)
			i++
			continue
		}
		dst, m = emit(dst, m, withMap, i, i+2, c)
		i += 2
	}
	return dst, m
}

// appendRune is utf8.AppendRune, except that a surrogate is written as
// WTF-8 instead of U+FFFD.
func appendRune(dst []byte, r rune) []byte {
	if 0xD800 <= r && r < 0xE000 {
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return utf8.AppendRune(dst, r)
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func percentDecode(dst, src []byte, m []span32, withMap bool) ([]byte, []span32) {
	for i := 0; i < len(src); {
		j := bytes.IndexByte(src[i:], '%')
		if j < 0 {
			return copyRun(dst, src, m, withMap, i, len(src))
		}
		dst, m = copyRun(dst, src, m, withMap, i, i+j)
		i += j
		if i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]) {
			dst, m = emit(dst, m, withMap, i, i+3, unhex(src[i+1])<<4|unhex(src[i+2]))
			i += 3
			continue
		}
		dst, m = copyRun(dst, src, m, withMap, i, i+1)
		i++
	}
	return dst, m
}

func stripLines(dst, src []byte, m []span32, withMap bool) ([]byte, []span32) {
	hasCR := bytes.IndexByte(src, '\r') >= 0
	for i := 0; i < len(src); {
		j := nextBreak(src[i:], hasCR)
		if j < 0 {
			return copyRun(dst, src, m, withMap, i, len(src))
		}
		dst, m = copyRun(dst, src, m, withMap, i, i+j)
		i += j + 1
	}
	return dst, m
}

// maxChain bounds the transforms applied on top of a decoded JSON string;
// the search of a whole line allows one more, the client's own decoding.
const maxChain = 2

// found is a pattern occurrence mapped back to the string searched (the
// root of the views).
type found struct {
	start, end int
	pat        int
	form       string
}

// scratch holds the buffers of one Scrub call; Scrubber.pool recycles
// them, so that the search allocates nothing once warm.
type scratch struct {
	views [maxChain + 2][]byte
	maps  [maxChain + 2][]span32
	occ   []occurrence
	found []found
	dec   []byte    // a decoded JSON string
	red   [2][]byte // redacted text, alternately
	stack []byte    // the JSON walker's open containers
}

// search looks for patterns in buf, the view at level lvl, and in every
// view of it up to level maxLvl. Without collect it stops at the first
// occurrence. With collect it appends every occurrence to sc.found, mapped
// to the root view, the form taking viaURL into account.
func (s *Scrubber) search(sc *scratch, buf []byte, lvl, maxLvl int, collect, viaURL bool) bool {
	if len(buf) < s.m.window {
		return false
	}
	var hit bool
	if !collect {
		if _, hit = s.m.scan(buf, nil, true); hit {
			return true
		}
	} else {
		sc.occ, hit = s.m.scan(buf, sc.occ[:0], false)
		for _, o := range sc.occ {
			a, b := sc.toRoot(lvl, o.start, o.end)
			form := s.m.pats[o.pat].form
			if form == FormRaw && viaURL {
				form = FormURL
			}
			sc.found = append(sc.found, found{a, b, o.pat, form})
		}
	}
	if lvl == maxLvl {
		return hit
	}
	for t := range numTransforms {
		if !s.triggered(t, buf) {
			continue
		}
		next := lvl + 1
		sc.views[next], sc.maps[next] = apply(t, sc.views[next][:0], buf, sc.maps[next][:0], collect)
		childMax := maxLvl
		if t == tLines {
			childMax = next
		}
		if s.search(sc, sc.views[next], next, childMax, collect, viaURL || t == tURL) {
			hit = true
			if !collect {
				return true
			}
		}
	}
	return hit
}

// toRoot maps the region [a, b) of the view at level lvl to the root.
func (sc *scratch) toRoot(lvl, a, b int) (int, int) {
	for l := lvl; l > 0; l-- {
		m := sc.maps[l]
		a, b = int(m[a].start), int(m[b-1].end)
	}
	return a, b
}

// redact appends src to dst with every region in fs (sorted by
// sortFound) replaced by the redaction text of the secret found there;
// overlapping regions merge and take the text of the first.
func (s *Scrubber) redact(dst, src []byte, fs []found) []byte {
	last := 0
	for i := 0; i < len(fs); {
		start, end := fs[i].start, fs[i].end
		owner := s.m.pats[fs[i].pat].owner
		for i++; i < len(fs) && fs[i].start < end; i++ {
			end = max(end, fs[i].end)
		}
		start = max(start, last)
		dst = append(dst, src[last:start]...)
		dst = append(dst, s.repl[owner]...)
		last = end
	}
	return append(dst, src[last:]...)
}
