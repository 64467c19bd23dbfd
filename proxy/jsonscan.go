package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// maxDepth bounds nesting so a hostile line cannot exhaust the stack of
// this scanner or of the peer's parser.
const maxDepth = 512

// syntaxError is a line that is not one RFC 8259 JSON text in UTF-8.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// envelope holds the top-level members of a JSON-RPC message, as raw byte
// slices of the scanned line (nil when absent).
type envelope struct {
	isObject bool
	isArray  bool
	jsonrpc  []byte
	id       []byte
	method   []byte
	params   []byte
	result   []byte
	error    []byte
	// dupKey is the first key found twice in one object, anywhere; dupTop
	// is set when that object is the top level.
	dupKey string
	dupTop bool
	// resultObject is set when result is an object; resIsError and
	// resInputRequests are its members of those names (nil when absent),
	// found in the same pass, so that a large result is read once.
	resultObject     bool
	resIsError       []byte
	resInputRequests []byte
	// resEmbeds are the members of result that may carry resources:
	// content (tools/call), contents (resources/read), messages
	// (prompts/get).
	resEmbeds []byte
}

// scanner validates a whole line in one pass. Beyond RFC 8259 it refuses
// lone surrogate escapes ("\ud800"), because Go decodes them to U+FFFD
// while JavaScript keeps them: the proxy and the server would read
// different strings. Duplicate keys are valid JSON but parsers disagree on
// which value wins, so they are reported for the caller to refuse.
type scanner struct {
	buf   []byte
	pos   int
	depth int
	env   envelope
	// visit, if set, receives the top-level members instead of env.
	visit func(key string, raw []byte)
}

func scanLine(line []byte) (envelope, error) {
	s := scanner{buf: line}
	s.skipSpace()
	if s.pos < len(s.buf) {
		s.env.isObject = s.buf[s.pos] == '{'
		s.env.isArray = s.buf[s.pos] == '['
	}
	if err := s.value(true); err != nil {
		return s.env, err
	}
	s.skipSpace()
	if s.pos != len(s.buf) {
		return s.env, s.errorf("data after the JSON value")
	}
	return s.env, nil
}

func (s *scanner) errorf(format string, args ...any) error {
	return &syntaxError{off: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(top bool) error {
	s.skipSpace()
	if s.pos >= len(s.buf) {
		return s.errorf("unexpected end of input")
	}
	switch c := s.buf[s.pos]; {
	case c == '{':
		if top {
			return s.object(objTop)
		}
		return s.object(objNested)
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.unexpected()
	}
}

// unexpected reports the character at s.pos that cannot start a value: a
// whole UTF-8 character when one starts there (quoting the lone byte would
// show it as Latin-1), a byte order mark by name (RFC 8259 section 8.1:
// JSON text sent between systems must not begin with one).
func (s *scanner) unexpected() error {
	r, size := utf8.DecodeRune(s.buf[s.pos:])
	switch {
	case r == '\uFEFF':
		return s.errorf("unexpected byte order mark (U+FEFF): send UTF-8 without one")
	case r == utf8.RuneError && size <= 1:
		return s.errorf("unexpected byte 0x%02x (not UTF-8)", s.buf[s.pos])
	}
	return s.errorf("unexpected %q", r)
}

func (s *scanner) literal(lit string) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.errorf("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) number() error {
	if s.buf[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.buf) && s.buf[s.pos] == '0':
		s.pos++
	case s.pos < len(s.buf) && '1' <= s.buf[s.pos] && s.buf[s.pos] <= '9':
		s.digits()
	default:
		return s.errorf("invalid number")
	}
	if s.pos < len(s.buf) && s.buf[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.errorf("invalid number")
		}
	}
	if s.pos < len(s.buf) && (s.buf[s.pos] == 'e' || s.buf[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.buf) && (s.buf[s.pos] == '+' || s.buf[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.errorf("invalid number")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.buf) && '0' <= s.buf[s.pos] && s.buf[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

// str scans a string starting at the opening quote. With decode it also
// returns the decoded value (for keys); otherwise it only validates.
func (s *scanner) str(decode bool) (string, error) {
	s.pos++ // opening quote
	start := s.pos
	var out []byte
	plain := true
	for {
		if s.pos >= len(s.buf) {
			return "", s.errorf("unterminated string")
		}
		if !decode || plain {
			s.plainRun()
			if s.pos >= len(s.buf) {
				continue
			}
		}
		c := s.buf[s.pos]
		switch {
		case c == '"':
			val := ""
			if decode {
				if plain {
					val = string(s.buf[start:s.pos])
				} else {
					val = string(out)
				}
			}
			s.pos++
			return val, nil
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c == '\\':
			if plain && decode {
				out = append(out, s.buf[start:s.pos]...)
			}
			plain = false
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			if decode {
				out = utf8.AppendRune(out, r)
			}
		case c < utf8.RuneSelf:
			if !plain && decode {
				out = append(out, c)
			}
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.buf[s.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", s.errorf("invalid UTF-8")
			}
			if !plain && decode {
				out = append(out, s.buf[s.pos:s.pos+size]...)
			}
			s.pos += size
		}
	}
}

// plainRun advances over printable ASCII other than '"' and '\\', eight
// bytes at a time: most of a large message is such bytes (text, base64),
// and the byte-at-a-time loop in str would be the proxy's bottleneck. A
// word holds a byte below 0x20, '"', '\\' or one of 0x80 and above exactly
// when one of the has* tests below sets its high bit (the classic
// "determine if a word has a byte less than n" trick).
func (s *scanner) plainRun() {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	b := s.buf
	i := s.pos
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		ctl := (w - 0x20*ones) & ^w & highs
		q := w ^ ('"' * ones)
		quote := (q - ones) & ^q & highs
		bs := w ^ ('\\' * ones)
		slash := (bs - ones) & ^bs & highs
		if ctl|quote|slash|(w&highs) != 0 {
			break
		}
	}
	for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
		i++
	}
	s.pos = i
}

// escape scans one backslash escape and returns the rune it denotes.
func (s *scanner) escape() (rune, error) {
	s.pos++ // backslash
	if s.pos >= len(s.buf) {
		return 0, s.errorf("unterminated escape")
	}
	c := s.buf[s.pos]
	s.pos++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return 0, err
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return 0, s.errorf("lone low surrogate escape")
		case 0xD800 <= r && r <= 0xDBFF:
			if len(s.buf)-s.pos < 2 || s.buf[s.pos] != '\\' || s.buf[s.pos+1] != 'u' {
				return 0, s.errorf("lone high surrogate escape")
			}
			s.pos += 2
			lo, err := s.hex4()
			if err != nil {
				return 0, err
			}
			if lo < 0xDC00 || lo > 0xDFFF {
				return 0, s.errorf("lone high surrogate escape")
			}
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
		}
		return r, nil
	}
	if c >= utf8.RuneSelf {
		return 0, s.errorf("invalid escape: \\ followed by byte 0x%02x", c)
	}
	return 0, s.errorf("invalid escape %q", c)
}

func (s *scanner) hex4() (rune, error) {
	if len(s.buf)-s.pos < 4 {
		return 0, s.errorf("short \\u escape")
	}
	var r rune
	for _, c := range s.buf[s.pos : s.pos+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c-'a') + 10
		case 'A' <= c && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, s.errorf("invalid \\u escape")
		}
	}
	s.pos += 4
	return r, nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > maxDepth {
		return s.errorf("nesting deeper than %d", maxDepth)
	}
	return nil
}

func (s *scanner) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := s.value(false); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.buf) {
			return s.errorf("unterminated array")
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want ',' or ']' in array")
		}
	}
}

// Where an object is, for what the scanner notes of its members.
type objLevel int

const (
	objNested objLevel = iota
	objTop             // the message: env's members
	objResult          // the top-level result: env.res*
)

func (s *scanner) object(level objLevel) error {
	top := level == objTop
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	// Most objects are small: a slice beats a map until it is not.
	var keys []string
	var keySet map[string]bool
	for {
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
			return s.errorf("want a string key")
		}
		key, err := s.str(true)
		if err != nil {
			return err
		}
		dup := false
		if keySet != nil {
			dup = keySet[key]
			keySet[key] = true
		} else {
			dup = slices.Contains(keys, key)
			keys = append(keys, key)
			if len(keys) > 16 {
				keySet = make(map[string]bool, 2*len(keys))
				for _, k := range keys {
					keySet[k] = true
				}
			}
		}
		if dup && s.env.dupKey == "" {
			s.env.dupKey, s.env.dupTop = key, top
		}
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
			return s.errorf("want ':' after key")
		}
		s.pos++
		s.skipSpace()
		start := s.pos
		if top && s.visit == nil && key == "result" && s.pos < len(s.buf) && s.buf[s.pos] == '{' {
			s.env.resultObject = true
			err = s.object(objResult)
		} else {
			err = s.value(false)
		}
		if err != nil {
			return err
		}
		switch {
		case top && s.visit != nil:
			s.visit(key, s.buf[start:s.pos])
		case top:
			s.member(key, s.buf[start:s.pos])
		case level == objResult && key == "isError":
			s.env.resIsError = s.buf[start:s.pos]
		case level == objResult && key == "inputRequests":
			s.env.resInputRequests = s.buf[start:s.pos]
		case level == objResult && (key == "content" || key == "contents" || key == "messages"):
			s.env.resEmbeds = s.buf[start:s.pos]
		}
		s.skipSpace()
		if s.pos >= len(s.buf) {
			return s.errorf("unterminated object")
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want ',' or '}' in object")
		}
	}
}

func (s *scanner) member(key string, raw []byte) {
	switch key {
	case "jsonrpc":
		s.env.jsonrpc = raw
	case "id":
		s.env.id = raw
	case "method":
		s.env.method = raw
	case "params":
		s.env.params = raw
	case "result":
		s.env.result = raw
	case "error":
		s.env.error = raw
	}
}

var errNotString = errors.New("not a JSON string")

// decodeString decodes a raw JSON string value that scanLine has validated.
func decodeString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", errNotString
	}
	s := scanner{buf: raw}
	return s.str(true)
}
