package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// FormatVersion is the value of the "v" field of every line this package
// writes. Verify rejects any other version.
const FormatVersion = 1

// MaxLineSize is the largest line, newline excluded, that Append writes and
// that Verify accepts as a record.
const MaxLineSize = 1 << 20

// TimeLayout is the layout of the "time" field: RFC 3339 in UTC with all nine
// fractional digits, so every timestamp has the same width.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// Fixed pieces of a line. The tail of every line is
//
//	,"prev":"<64 hex>","hash":"<64 hex>"}
//
// and the hashed bytes are the line up to and excluding `,"hash":"`.
const (
	linePrefix = `{"v":1,"seq":`
	prevKey    = `,"prev":"`
	hashKey    = `","hash":"`
	lineSuffix = `"}`
	hexLen     = 2 * sha256.Size
	// hashTail is the number of bytes after the hashed body:
	// `,"hash":"` + 64 hex + `"}`.
	hashTail = len(`,"hash":"`) + hexLen + len(lineSuffix)
)

// zeroHash is the "prev" of the first record of a ledger: 64 ASCII zeros.
var zeroHash = func() (h [hexLen]byte) {
	for i := range h {
		h[i] = '0'
	}
	return h
}()

// Record is one ledger line, decoded. Its JSON form, field for field and in
// this order, is the line's format (see the package documentation).
type Record struct {
	Version     int             `json:"v"`
	Seq         uint64          `json:"seq"`
	Time        time.Time       `json:"time"`
	Host        string          `json:"host"`
	Session     string          `json:"session"`
	PID         int             `json:"pid"`
	UID         int             `json:"uid"`
	Event       string          `json:"event"`
	Profile     string          `json:"profile"`
	ProfileHash string          `json:"profile_hash"`
	Data        json.RawMessage `json:"data"`
	Prev        string          `json:"prev"`
	Hash        string          `json:"hash"`
}

// header holds the per-handle fields of a line, already JSON-encoded.
type header struct {
	host, session, profile, profileHash []byte
	pid, uid                            int
}

func newHeader(host, session, profile, profileHash string, pid, uid int) (header, error) {
	var h header
	for _, f := range []struct {
		dst *[]byte
		s   string
	}{{&h.host, host}, {&h.session, session}, {&h.profile, profile}, {&h.profileHash, profileHash}} {
		b, err := json.Marshal(f.s)
		if err != nil {
			return h, fmt.Errorf("encode header field %q: %w", f.s, err)
		}
		*f.dst = b
	}
	h.pid, h.uid = pid, uid
	return h, nil
}

// appendLine appends one complete line, newline included, to dst and returns
// the extended slice and the line's hash in hex. data must be one compact
// JSON value without a newline; event must be a valid event name.
func appendLine(dst []byte, h *header, seq uint64, t time.Time, event string, data []byte, prev *[hexLen]byte) ([]byte, [hexLen]byte) {
	start := len(dst)
	dst = append(dst, linePrefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = appendTime(dst, t)
	dst = append(dst, `","host":`...)
	dst = append(dst, h.host...)
	dst = append(dst, `,"session":`...)
	dst = append(dst, h.session...)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendInt(dst, int64(h.pid), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendInt(dst, int64(h.uid), 10)
	dst = append(dst, `,"event":"`...)
	dst = append(dst, event...)
	dst = append(dst, `","profile":`...)
	dst = append(dst, h.profile...)
	dst = append(dst, `,"profile_hash":`...)
	dst = append(dst, h.profileHash...)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, prevKey...)
	dst = append(dst, prev[:]...)
	dst = append(dst, '"')
	var hash [hexLen]byte
	sum := sha256.Sum256(dst[start:])
	hex.Encode(hash[:], sum[:])
	dst = append(dst, hashKey[1:]...)
	dst = append(dst, hash[:]...)
	dst = append(dst, lineSuffix...)
	dst = append(dst, '\n')
	return dst, hash
}

// appendTime appends t in TimeLayout. It is what t.UTC().AppendFormat(dst,
// TimeLayout) appends, for years 0 to 9999, in a tenth of the time: the
// writer formats one timestamp per record while holding the file lock.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, min, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond(), 9)
	return append(dst, 'Z')
}

// appendDigits appends v, 0 <= v < 10^width, as exactly width digits.
func appendDigits(dst []byte, v, width int) []byte {
	n := len(dst)
	dst = append(dst, "000000000"[:width]...)
	for i := n + width - 1; i >= n && v > 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

// validEventName reports whether s may be an event type: lower-case ASCII
// letters, digits and underscores, starting with a letter. Names never need
// JSON escaping, so the fast scanner can compare them as raw bytes.
func validEventName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// frame is what the scanner learns about a well-formed line; the slices
// point into the line.
type frame struct {
	seq   uint64
	event []byte // without quotes; may hold escapes in a forged line
	data  []byte
	body  []byte // the hashed bytes
	prev  []byte
	hash  []byte
}

// errTruncated marks a line that ends where a record could still go on: a
// proper prefix of a well-formed line, which is what a torn write leaves.
var errTruncated = errors.New("line ends inside a record")

// FrameError says why a line is not a well-formed record.
type FrameError struct {
	Offset int // byte offset within the line
	Msg    string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("byte %d: %s", e.Offset, e.Msg)
}

// parseFrame checks that line (newline excluded) has exactly the layout
// documented in the package doc and returns its parts. It does not check
// the hash. A proper prefix of a well-formed line yields errTruncated.
func parseFrame(line []byte) (frame, error) {
	var fr frame
	s := scanner{b: line}
	s.lit(`{"v":`)
	if s.err == nil {
		if v := s.uint(); s.err == nil && v != FormatVersion {
			return fr, &FrameError{Offset: 5, Msg: fmt.Sprintf("unsupported format version %d (want %d)", v, FormatVersion)}
		}
	}
	s.lit(`,"seq":`)
	fr.seq = s.uint()
	s.lit(`,"time":"`)
	s.timestamp()
	s.lit(`","host":`)
	s.str()
	s.lit(`,"session":`)
	s.str()
	s.lit(`,"pid":`)
	s.uint()
	s.lit(`,"uid":`)
	s.uint()
	s.lit(`,"event":`)
	evStart := s.i
	s.str()
	if s.err == nil {
		fr.event = line[evStart+1 : s.i-1]
	}
	s.lit(`,"profile":`)
	s.str()
	s.lit(`,"profile_hash":`)
	s.str()
	s.lit(`,"data":`)
	dataStart := s.i
	s.value(0)
	if s.err == nil {
		fr.data = line[dataStart:s.i]
	}
	s.lit(prevKey)
	prevStart := s.i
	s.hex64()
	s.lit(hashKey)
	hashStart := s.i
	s.hex64()
	s.lit(lineSuffix)
	if s.err == nil && s.i != len(line) {
		s.fail("trailing bytes after the record")
	}
	if s.err != nil {
		return fr, s.err
	}
	fr.prev = line[prevStart : prevStart+hexLen]
	fr.hash = line[hashStart : hashStart+hexLen]
	fr.body = line[:len(line)-hashTail]
	return fr, nil
}

// hashOK reports whether the frame's stored hash is the SHA-256 of its body.
func (fr *frame) hashOK() bool {
	sum := sha256.Sum256(fr.body)
	var h [hexLen]byte
	hex.Encode(h[:], sum[:])
	return string(h[:]) == string(fr.hash)
}

// ParseLine decodes one line (with or without its trailing newline) after
// checking its layout. It does not check the hash or the chain: use
// [Verify] for that.
func ParseLine(line []byte) (Record, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	var r Record
	if _, err := parseFrame(line); err != nil {
		return r, fmt.Errorf("parse ledger line: %w", err)
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("decode ledger line: %w", err)
	}
	return r, nil
}
