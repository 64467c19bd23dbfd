package audit

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds nesting in the data value; encoding/json's decoder stops
// at the same depth, so anything deeper could not be read back anyway.
const maxDepth = 10000

// scanner is a strict, allocation-free JSON scanner for one ledger line. It
// exists so that Verify can check every line's structure at hundreds of MB/s
// without decoding it; the decoding path (ParseLine) uses encoding/json.
//
// Running off the end of the input in a state where more bytes could still
// make a valid line sets errTruncated rather than a FrameError: that is how
// a torn write is told apart from a damaged line.
type scanner struct {
	b   []byte
	i   int
	err error
}

func (s *scanner) fail(msg string) {
	if s.err == nil {
		s.err = &FrameError{Offset: s.i, Msg: msg}
	}
}

func (s *scanner) short() {
	if s.err == nil {
		s.i = len(s.b)
		s.err = errTruncated
	}
}

// lit consumes the literal want.
func (s *scanner) lit(want string) {
	if s.err != nil {
		return
	}
	rest := s.b[s.i:]
	if len(rest) >= len(want) {
		if string(rest[:len(want)]) != want {
			s.fail("want " + strconv.Quote(want))
			return
		}
		s.i += len(want)
		return
	}
	if string(rest) == want[:len(rest)] {
		s.short()
		return
	}
	s.fail("want " + strconv.Quote(want))
}

// uint consumes a JSON non-negative integer without sign, fraction or
// exponent.
func (s *scanner) uint() uint64 {
	if s.err != nil {
		return 0
	}
	if s.i >= len(s.b) {
		s.short()
		return 0
	}
	c := s.b[s.i]
	if c == '0' {
		s.i++
		return 0
	}
	if c < '1' || c > '9' {
		s.fail("want an unsigned integer")
		return 0
	}
	var v uint64
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			s.fail("integer out of range")
			return 0
		}
		v = v*10 + d
		s.i++
	}
	return v
}

// timePattern is TimeLayout with every digit replaced by 'd'.
const timePattern = "dddd-dd-ddTdd:dd:dd.dddddddddZ"

// timestamp consumes the inside of the "time" string: exactly TimeLayout's
// shape. Calendar validity is left to ParseLine.
func (s *scanner) timestamp() {
	if s.err != nil {
		return
	}
	for k := 0; k < len(timePattern); k++ {
		if s.i >= len(s.b) {
			s.short()
			return
		}
		c, p := s.b[s.i], timePattern[k]
		if (p == 'd' && (c < '0' || c > '9')) || (p != 'd' && c != p) {
			s.fail("time is not in the layout " + strconv.Quote(TimeLayout))
			return
		}
		s.i++
	}
}

// Byte classes for the hot loops.
var (
	lowerHex [256]bool // 0-9 a-f
	strPlain [256]bool // bytes a string holds as they are, ASCII only
)

func init() {
	for c := 0; c < 256; c++ {
		lowerHex[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
		strPlain[c] = c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf
	}
}

// skipPlain returns the index of the first byte at or after i that a
// string cannot hold as it is: a control character, '"', '\\' or a
// non-ASCII byte. It tests eight bytes at a time with the "has a zero byte"
// bit trick, (v - 0x01..01) & ^v & 0x80..80, whose lowest set bit is exact.
func skipPlain(b []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lo * '"')
		bs := x ^ (lo * '\\')
		special := ((x-lo*0x20)&^x | (q-lo)&^q | (bs-lo)&^bs | x) & hi
		if special != 0 {
			i += bits.TrailingZeros64(special) / 8
			break
		}
		i += 8
	}
	for i < len(b) && strPlain[b[i]] {
		i++
	}
	return i
}

// hex64 consumes 64 lower-case hex digits.
func (s *scanner) hex64() {
	if s.err != nil {
		return
	}
	rest := s.b[s.i:]
	n := min(len(rest), hexLen)
	for k, c := range rest[:n] {
		if !lowerHex[c] {
			s.i += k
			s.fail("want 64 lower-case hex digits")
			return
		}
	}
	if n < hexLen {
		s.short()
		return
	}
	s.i += hexLen
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// str consumes a JSON string, checking escapes and UTF-8.
func (s *scanner) str() {
	if s.err != nil {
		return
	}
	if s.i >= len(s.b) {
		s.short()
		return
	}
	if s.b[s.i] != '"' {
		s.fail("want a string")
		return
	}
	s.i++
	for {
		s.i = skipPlain(s.b, s.i)
		if s.i >= len(s.b) {
			s.short()
			return
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return
		case c == '\\':
			s.escape()
			if s.err != nil {
				return
			}
		case c < 0x20:
			s.fail("control character in string")
			return
		default:
			if !utf8.FullRune(s.b[s.i:]) {
				s.short()
				return
			}
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 {
				s.fail("invalid UTF-8 in string")
				return
			}
			s.i += size
		}
	}
}

// escape consumes one backslash escape.
func (s *scanner) escape() {
	if s.i+1 >= len(s.b) {
		s.short()
		return
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
	case 'u':
		s.i += 2
		for k := 0; k < 4; k++ {
			if s.i >= len(s.b) {
				s.short()
				return
			}
			if !isHex(s.b[s.i]) {
				s.fail("invalid \\u escape")
				return
			}
			s.i++
		}
	default:
		s.i++
		s.fail("invalid escape")
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// value consumes one JSON value, with any whitespace before it.
func (s *scanner) value(depth int) {
	if s.err != nil {
		return
	}
	s.ws()
	if s.i >= len(s.b) {
		s.short()
		return
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.container(depth, '}')
	case c == '[':
		s.container(depth, ']')
	case c == '"':
		s.str()
	case c == 't':
		s.lit("true")
	case c == 'f':
		s.lit("false")
	case c == 'n':
		s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s.number()
	default:
		s.fail("want a JSON value")
	}
}

// container consumes an object (end '}') or an array (end ']').
func (s *scanner) container(depth int, end byte) {
	if depth >= maxDepth {
		s.fail("nested too deeply")
		return
	}
	s.i++ // '{' or '['
	s.ws()
	if s.i >= len(s.b) {
		s.short()
		return
	}
	if s.b[s.i] == end {
		s.i++
		return
	}
	for {
		if end == '}' {
			s.ws()
			s.str()
			s.ws()
			s.lit(":")
		}
		s.value(depth + 1)
		s.ws()
		if s.err != nil {
			return
		}
		if s.i >= len(s.b) {
			s.short()
			return
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case end:
			s.i++
			return
		default:
			s.fail("want ',' or " + strconv.Quote(string(end)))
			return
		}
	}
}

// number consumes a JSON number. Ending the input after a complete number
// is not a truncation: whatever follows the number decides.
func (s *scanner) number() {
	if s.b[s.i] == '-' {
		s.i++
	}
	if !s.digits(true) {
		return
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits(false) {
			return
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		s.digits(false)
	}
}

// digits consumes one or more digits; with intPart, a leading zero stands
// alone. It reports whether it succeeded.
func (s *scanner) digits(intPart bool) bool {
	if s.i >= len(s.b) {
		s.short()
		return false
	}
	c := s.b[s.i]
	if c < '0' || c > '9' {
		s.fail("want a digit")
		return false
	}
	s.i++
	if intPart && c == '0' {
		return true
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return true
}

// validJSON reports whether b is exactly one JSON value with optional
// surrounding whitespace. It agrees with json.Valid except that it also
// rejects invalid UTF-8 inside strings.
func validJSON(b []byte) bool {
	s := scanner{b: b}
	s.value(0)
	s.ws()
	return s.err == nil && s.i == len(b)
}
