package audit

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Append encodes every record's fields in the caller's goroutine, and with
// many appenders the encoding is a large part of the CPU time of a record.
// dataEncoder writes what json.Marshal writes for the event types of this
// package and for the values that decoded JSON holds, byte for byte, without
// reflection; every other value goes to json.Marshal. The bytes must be the
// same because they are hashed and stored: a ledger must not depend on which
// path encoded a record (encode_test.go compares the two).
//
// The encoder also works out, as it writes, what mayRedact would say of its
// output, so that Append does not scan the data a second time.

// maxFastDepth is how deep the encoder nests before it hands a value to
// json.Marshal, which detects cycles.
const maxFastDepth = 64

// dataEncoder appends event fields to buf as compact JSON.
type dataEncoder struct {
	buf   []byte
	keys  *keyMatcher
	limit int
	// mayRedact is set once a key written so far could match a redaction
	// key, or a piece json.Marshal wrote could need redaction.
	mayRedact bool
}

// fields appends fields, which Append requires to encode to a JSON object,
// and reports whether mayRedact would say yes of what it appended.
func (e *dataEncoder) fields(fields any) (bool, error) {
	start := len(e.buf)
	var err error
	// Pointers to event types are rare enough to go to json.Marshal.
	switch v := fields.(type) {
	case Decision:
		err = e.decision(&v)
	case SessionStart:
		err = e.sessionStart(&v)
	case SessionEnd:
		e.sessionEnd(&v)
	case Recovered:
		e.recovered(&v)
	case Outcome:
		e.outcome(&v)
	case Roots:
		e.roots(&v)
	case NetDNS:
		e.netDNS(&v)
	case NetConnect:
		e.netConnect(&v)
	case NetClose:
		e.netClose(&v)
	case map[string]any:
		err = e.value(v, 0)
	default:
		return e.marshalFields(fields)
	}
	if err != nil {
		return false, err
	}
	n := len(e.buf) - start
	return e.mayRedact || (e.limit >= 0 && n > e.limit+2), nil
}

// marshalFields is fields for a type the encoder does not know.
func (e *dataEncoder) marshalFields(fields any) (bool, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return false, err
	}
	e.buf = append(e.buf, b...)
	return mayRedact(b, e.keys, e.limit), nil
}

// The event types, member by member: the names, order and omitempty rules
// are those of their json tags.

func (e *dataEncoder) decision(d *Decision) error {
	// Tool and Verdict are never omitted, so the object is never empty and
	// the first member written opens it.
	sep := byte('{')
	if d.Method != "" {
		e.member(sep, "method")
		e.string(d.Method)
		sep = ','
	}
	if len(d.RequestID) > 0 {
		e.member(sep, "request_id")
		if err := e.raw(d.RequestID); err != nil {
			return err
		}
		sep = ','
	}
	e.member(sep, "tool")
	e.string(d.Tool)
	e.member(',', "verdict")
	e.string(string(d.Verdict))
	e.omitEmpty("rule", d.Rule)
	e.omitEmpty("reason", d.Reason)
	if err := e.omitNil("args", d.Args); err != nil {
		return err
	}
	e.omitEmpty("kind", d.Kind)
	e.omitEmpty("from", d.From)
	e.omitEmpty("matcher", d.Matcher)
	if d.LatencyNS != 0 {
		e.member(',', "latency_ns")
		e.buf = strconv.AppendInt(e.buf, d.LatencyNS, 10)
	}
	if d.Seq != 0 {
		e.member(',', "seq")
		e.buf = strconv.AppendUint(e.buf, d.Seq, 10)
	}
	if len(d.Paths) > 0 {
		e.member(',', "paths")
		e.strings(d.Paths)
	}
	e.omitEmpty("uri", d.URI)
	e.buf = append(e.buf, '}')
	return nil
}

func (e *dataEncoder) outcome(o *Outcome) {
	e.member('{', "seq")
	e.buf = strconv.AppendUint(e.buf, o.Seq, 10)
	e.member(',', "kind")
	e.string(o.Kind)
	e.member(',', "name")
	e.string(o.Name)
	e.member(',', "method")
	e.string(o.Method)
	e.member(',', "status")
	e.string(o.Status)
	if o.Code != 0 {
		e.member(',', "code")
		e.buf = strconv.AppendInt(e.buf, int64(o.Code), 10)
	}
	e.member(',', "size")
	e.buf = strconv.AppendInt(e.buf, int64(o.Size), 10)
	e.member(',', "duration_ns")
	e.buf = strconv.AppendInt(e.buf, o.DurationNS, 10)
	e.buf = append(e.buf, '}')
}

func (e *dataEncoder) roots(r *Roots) {
	e.member('{', "offered")
	e.strings(r.Offered)
	e.member(',', "kept")
	e.strings(r.Kept)
	if len(r.Dropped) > 0 {
		e.member(',', "dropped")
		e.buf = append(e.buf, '[')
		for i, d := range r.Dropped {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.member('{', "uri")
			e.string(d.URI)
			e.member(',', "reason")
			e.string(d.Reason)
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, ']')
	}
	e.buf = append(e.buf, '}')
}

func (e *dataEncoder) sessionStart(s *SessionStart) error {
	e.member('{', "argv")
	e.strings(s.Argv)
	e.member(',', "profile")
	e.string(s.Profile)
	e.member(',', "profile_hash")
	e.string(s.ProfileHash)
	e.omitEmpty("workdir", s.Workdir)
	if err := e.omitNil("sandbox", s.Sandbox); err != nil {
		return err
	}
	if err := e.omitNil("kernel", s.Kernel); err != nil {
		return err
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *dataEncoder) sessionEnd(s *SessionEnd) {
	e.member('{', "exit_status")
	e.buf = strconv.AppendInt(e.buf, int64(s.ExitStatus), 10)
	e.omitEmpty("signal", s.Signal)
	e.member(',', "duration_ns")
	e.buf = strconv.AppendInt(e.buf, s.DurationNS, 10)
	e.omitEmpty("error", s.Error)
	if l := s.Limits; l != nil {
		e.member(',', "limits")
		// LimitHits is no event type: key, not member, notes whether its
		// names could match a redaction key.
		sep := byte('{')
		if l.OOMKills != 0 {
			e.key(sep, "oom_kills")
			e.buf = strconv.AppendUint(e.buf, l.OOMKills, 10)
			sep = ','
		}
		if l.PidsMaxHits != 0 {
			e.key(sep, "pids_max_hits")
			e.buf = strconv.AppendUint(e.buf, l.PidsMaxHits, 10)
			sep = ','
		}
		if sep == '{' {
			e.buf = append(e.buf, '{')
		}
		e.buf = append(e.buf, '}')
	}
	if len(s.LandlockDenials) > 0 {
		e.member(',', "landlock_denials")
		for i, d := range s.LandlockDenials {
			sep := byte(',')
			if i == 0 {
				sep = '['
			}
			e.buf = append(e.buf, sep)
			// Not an event type either: key, as for LimitHits.
			e.key('{', "blockers")
			e.string(d.Blockers)
			e.key(',', "object")
			e.string(d.Object)
			e.key(',', "count")
			e.buf = strconv.AppendInt(e.buf, int64(d.Count), 10)
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, ']')
	}
	e.buf = append(e.buf, '}')
}

func (e *dataEncoder) recovered(r *Recovered) {
	e.member('{', "torn_offset")
	e.buf = strconv.AppendInt(e.buf, r.TornOffset, 10)
	e.member(',', "torn_length")
	e.buf = strconv.AppendInt(e.buf, r.TornLength, 10)
	e.member(',', "torn_sha256")
	e.string(r.TornSHA256)
	e.buf = append(e.buf, '}')
}

// omitEmpty appends a string member that is not the first of its object,
// unless it is empty (a json tag's omitempty).
func (e *dataEncoder) omitEmpty(name, s string) {
	if s != "" {
		e.member(',', name)
		e.string(s)
	}
}

// omitNil appends a member of interface type that is not the first of its
// object, unless it is nil (a json tag's omitempty).
func (e *dataEncoder) omitNil(name string, v any) error {
	if v == nil {
		return nil
	}
	e.member(',', name)
	return e.value(v, 1)
}

// member appends sep, then name, a member name of one of this package's
// event types, and its colon. Such names need no escaping, and whether any
// of them could match a redaction key is known once for all (see
// keyMatcher.membersMayMatch).
func (e *dataEncoder) member(sep byte, name string) {
	if e.keys.membersMayMatch {
		e.key(sep, name)
		return
	}
	e.buf = append(e.buf, sep, '"')
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '"', ':')
}

// key appends sep, then k as a member name and its colon, and notes
// whether the name could match a redaction key.
func (e *dataEncoder) key(sep byte, k string) {
	e.buf = append(e.buf, sep)
	start := len(e.buf) + 1
	e.string(k)
	if !e.mayRedact && len(e.keys.norm) > 0 && e.keys.mayMatch(e.buf[start:len(e.buf)-1]) {
		e.mayRedact = true
	}
	e.buf = append(e.buf, ':')
}

// value appends v, found depth levels below the top of the data.
func (e *dataEncoder) value(v any, depth int) error {
	if depth > maxFastDepth {
		return e.marshal(v)
	}
	switch v := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case string:
		e.string(v)
	case bool:
		e.buf = strconv.AppendBool(e.buf, v)
	case float64:
		return e.float(v)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, v, 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, v, 10)
	case json.Number:
		return e.number(v)
	case json.RawMessage:
		if v == nil {
			// What RawMessage.MarshalJSON says of nil.
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.raw(v)
	case map[string]any:
		return e.object(v, depth)
	case []any:
		if v == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.buf = append(e.buf, '[')
		for i, x := range v {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case []string:
		e.strings(v)
	default:
		return e.marshal(v)
	}
	return nil
}

// object appends m with its members in the order of their keys' bytes, as
// encoding/json sorts them.
func (e *dataEncoder) object(m map[string]any, depth int) error {
	if m == nil {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	if len(m) == 0 {
		e.buf = append(e.buf, "{}"...)
		return nil
	}
	type member struct {
		k string
		v any
	}
	var small [8]member
	members := small[:0]
	for k, v := range m {
		members = append(members, member{k, v})
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.k, b.k) })
	sep := byte('{')
	for _, m := range members {
		e.key(sep, m.k)
		sep = ','
		if err := e.value(m.v, depth+1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *dataEncoder) strings(s []string) {
	if s == nil {
		e.buf = append(e.buf, "null"...)
		return
	}
	e.buf = append(e.buf, '[')
	for i, x := range s {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.string(x)
	}
	e.buf = append(e.buf, ']')
}

// marshal appends what json.Marshal writes for v, which the encoder does not
// know; v may need redaction in ways the encoder cannot see.
func (e *dataEncoder) marshal(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	e.buf = append(e.buf, b...)
	if !e.mayRedact && mayRedact(b, e.keys, e.limit) {
		e.mayRedact = true
	}
	return nil
}

// float appends f as encoding/json does: the shortest decimal that reads
// back as f, in exponent form only below 1e-6 and from 1e21 on, with no
// leading zero in a negative exponent (ECMAScript's Number.toString).
func (e *dataEncoder) float(f float64) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return e.marshal(f) // for json.Marshal's error
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, 64)
	if n := len(e.buf); format == 'e' && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
		// strconv writes at least two exponent digits: e-07 becomes e-7.
		e.buf[n-2] = e.buf[n-1]
		e.buf = e.buf[:n-1]
	}
	return nil
}

// number appends n as written, "" as 0, after checking that it is a JSON
// number.
func (e *dataEncoder) number(n json.Number) error {
	if n == "" {
		e.buf = append(e.buf, '0')
		return nil
	}
	s := scanner{b: []byte(n)}
	s.number()
	if s.err != nil || s.i != len(s.b) {
		return e.marshal(n) // for json.Marshal's error
	}
	e.buf = append(e.buf, n...)
	return nil
}

// raw appends a JSON text held as bytes (a json.RawMessage) as
// json.Marshal does: compacted, with <, >, &, U+2028 and U+2029 escaped.
// Text the strict scanner rejects (invalid JSON, or invalid UTF-8, which
// json.Marshal lets through) goes to json.Marshal.
func (e *dataEncoder) raw(r json.RawMessage) error {
	if !validJSON(r) {
		return e.marshal(r)
	}
	str := -1 // start of the string being written, or of the last one
	inStr := false
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !inStr {
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			case '"':
				inStr, str = true, len(e.buf)+1
			case ':':
				// The string before a colon is a member name.
				if !e.mayRedact && len(e.keys.norm) > 0 && e.keys.mayMatch(e.buf[str:len(e.buf)-1]) {
					e.mayRedact = true
				}
			}
			e.buf = append(e.buf, c)
			continue
		}
		switch {
		case c == '"':
			inStr = false
		case c == '\\':
			e.buf = append(e.buf, c)
			i++
			c = r[i]
		case c == '<' || c == '>' || c == '&':
			e.buf = appendUnicodeEscape(e.buf, rune(c))
			continue
		case c == 0xE2 && r[i+1] == 0x80 && (r[i+2] == 0xA8 || r[i+2] == 0xA9):
			// U+2028 or U+2029; the text is valid UTF-8, so both bytes
			// are there.
			e.buf = appendUnicodeEscape(e.buf, 0x2028+rune(r[i+2]-0xA8))
			i += 2
			continue
		}
		e.buf = append(e.buf, c)
	}
	return nil
}

// jsonSafe marks the bytes json.Marshal writes as they are in a string:
// printable ASCII except '"', '\\' and the HTML characters <, > and &.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// string appends s as a JSON string as json.Marshal writes it: invalid
// UTF-8 becomes U+FFFD; control characters, '"', '\\', <, >, &, U+2028 and
// U+2029 are escaped; \b, \f, \n, \r and \t have their short escapes.
func (e *dataEncoder) string(s string) {
	e.buf = append(e.buf, '"')
	done := 0 // s[:done] is in buf
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			e.buf = append(e.buf, s[done:i]...)
			switch c {
			case '"', '\\':
				e.buf = append(e.buf, '\\', c)
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			default:
				e.buf = appendUnicodeEscape(e.buf, rune(c))
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			e.buf = append(e.buf, s[done:i]...)
			e.buf = appendUnicodeEscape(e.buf, utf8.RuneError)
		case r == '\u2028' || r == '\u2029':
			e.buf = append(e.buf, s[done:i]...)
			e.buf = appendUnicodeEscape(e.buf, r)
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	e.buf = append(e.buf, s[done:]...)
	e.buf = append(e.buf, '"')
}

// appendUnicodeEscape appends \uXXXX for r, which must be in the Basic
// Multilingual Plane, with lower-case hex digits as encoding/json writes
// them.
func appendUnicodeEscape(dst []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}
