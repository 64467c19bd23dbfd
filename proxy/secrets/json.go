package secrets

import (
	"unicode/utf8"
)

// rewriter walks one line as a sequence of JSON values, validating it as
// it goes (RFC 8259, without a depth limit: the walk keeps its own stack),
// and copies it to out with the strings that hold a secret re-encoded.
// out stays nil until the first such string, so a line without one costs
// no allocation.
type rewriter struct {
	s    *Scrubber
	sc   *scratch
	buf  []byte
	pos  int
	out  []byte
	last int // buf[:last] is already in out
	hits []Hit
}

// Walker states.
const (
	wantValue = iota
	wantKey   // after '{' or ','
	afterValue
)

// walk reports whether buf is one or more JSON values separated by
// optional whitespace: a line of several values is scrubbed value by
// value, as a stream decoder would read it.
func (r *rewriter) walk() bool {
	stack := r.sc.stack[:0]
	defer func() { r.sc.stack = stack }()
	state := wantValue
	for {
		r.skipSpace()
		if r.pos == len(r.buf) {
			return len(stack) == 0 && state == afterValue
		}
		c := r.buf[r.pos]
		switch state {
		case wantValue:
			switch {
			case c == '{' || c == '[':
				stack = append(stack, c)
				r.pos++
				r.skipSpace()
				if r.pos < len(r.buf) && r.buf[r.pos] == c+2 { // '}' or ']'
					stack = stack[:len(stack)-1]
					r.pos++
					state = afterValue
				} else if c == '{' {
					state = wantKey
				}
				continue
			case c == '"':
				if !r.str() {
					return false
				}
			case c == '-' || '0' <= c && c <= '9':
				if !r.number() {
					return false
				}
			case c == 't':
				if !r.literal("true") {
					return false
				}
			case c == 'f':
				if !r.literal("false") {
					return false
				}
			case c == 'n':
				if !r.literal("null") {
					return false
				}
			default:
				return false
			}
			state = afterValue
		case wantKey:
			if c != '"' || !r.str() {
				return false
			}
			r.skipSpace()
			if r.pos == len(r.buf) || r.buf[r.pos] != ':' {
				return false
			}
			r.pos++
			state = wantValue
		case afterValue:
			if len(stack) == 0 {
				state = wantValue
				continue
			}
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				r.pos++
				state = wantValue
				if top == '{' {
					state = wantKey
				}
			case c == top+2:
				r.pos++
				stack = stack[:len(stack)-1]
			default:
				return false
			}
		}
	}
}

func (r *rewriter) skipSpace() {
	for r.pos < len(r.buf) {
		switch r.buf[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *rewriter) literal(lit string) bool {
	if len(r.buf)-r.pos < len(lit) || string(r.buf[r.pos:r.pos+len(lit)]) != lit {
		return false
	}
	r.pos += len(lit)
	return true
}

func (r *rewriter) number() bool {
	if r.buf[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.buf) && r.buf[r.pos] == '0':
		r.pos++
	case r.digits() == 0:
		return false
	}
	if r.pos < len(r.buf) && r.buf[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return false
		}
	}
	if r.pos < len(r.buf) && (r.buf[r.pos] == 'e' || r.buf[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.buf) && (r.buf[r.pos] == '+' || r.buf[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

func (r *rewriter) digits() int {
	n := 0
	for r.pos < len(r.buf) && '0' <= r.buf[r.pos] && r.buf[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}

// str validates the string at r.pos (its opening quote) and hands its
// content to r.scrub.
func (r *rewriter) str() bool {
	start := r.pos + 1
	escaped := false
	i := start
	for ; i < len(r.buf); i++ {
		c := r.buf[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return false
		}
		if c != '\\' {
			continue
		}
		escaped = true
		i++
		if i == len(r.buf) {
			return false
		}
		switch r.buf[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if _, ok := hex4(r.buf[i+1:]); !ok {
				return false
			}
			i += 4
		default:
			return false
		}
	}
	if i == len(r.buf) || !utf8.Valid(r.buf[start:i]) {
		return false
	}
	r.pos = i + 1
	r.scrub(start, i, escaped)
	return true
}

// scrub searches the string whose content is buf[start:end] as the client
// will read it, and if a secret is there writes the string to out again,
// redacted and JSON-escaped. The rest of the line is copied unchanged.
func (r *rewriter) scrub(start, end int, escaped bool) {
	v := r.buf[start:end]
	if len(v) < r.s.m.window {
		return // decoding only shortens
	}
	if escaped {
		r.sc.dec, _ = unescape(r.sc.dec[:0], v, nil, false)
		v = r.sc.dec
	}
	clean, hits := r.s.clean(r.sc, v, maxChain, r.hits)
	if clean == nil {
		return
	}
	r.hits = hits
	if r.out == nil {
		r.out = make([]byte, 0, len(r.buf)+len(clean))
	}
	r.out = append(r.out, r.buf[r.last:start]...)
	r.out = appendString(r.out, clean)
	r.last = end
}

// appendString appends v JSON-escaped, without quotes. WTF-8 surrogates
// (see unescape) go back to the \uXXXX escapes they came from; any other
// byte that is not UTF-8 (a redaction boundary inside a character, when a
// secret's value is not UTF-8) becomes U+FFFD, so the output stays valid.
func appendString(dst, v []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		case c == 0xED && i+2 < len(v) && v[i+1]&0xE0 == 0xA0 && v[i+2]&0xC0 == 0x80:
			r := rune(c&0x0F)<<12 | rune(v[i+1]&0x3F)<<6 | rune(v[i+2]&0x3F)
			dst = append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF],
				hexDigits[r>>4&0xF], hexDigits[r&0xF])
			i += 3
			continue
		default:
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n <= 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, v[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	return dst
}
