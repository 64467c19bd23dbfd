package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"unicode/utf8"
)

// DefaultRedactKeys are the keys whose values the ledger stores only as a
// hash when the profile names none.
var DefaultRedactKeys = []string{
	"password", "passwd", "passphrase", "secret", "token", "api_key",
	"authorization", "cookie", "private_key", "access_key", "credential",
}

// DefaultRedactLimit is the longest string, in bytes, stored whole.
const DefaultRedactLimit = 4096

// Redact returns a copy of v, a decoded JSON value (map[string]any, []any,
// string, json.Number, float64, bool or nil), in which
//
//   - the value of every object member whose key matches one of keys is
//     replaced by {"redacted_sha256": "<hex>"}, and
//   - every other string longer than limit bytes (limit >= 0) is replaced
//     by {"truncated": "<first limit bytes>", "length": <bytes>,
//     "sha256": "<hex>"}.
//
// A key matches when, lower-cased and with '_', '-', '.' and spaces removed,
// it contains a listed key treated the same way: "api_key" matches "apiKey",
// "X-Api-Key" and "openai_api_key". Matching errs towards hiding too much.
//
// The hash of a string is the SHA-256 of its UTF-8 bytes; of any other
// value, of its compact JSON encoding. A hash lets a reader check a guess
// or see that two calls passed the same value; it does not hide a value
// that is easy to guess. Values of other Go types are returned as they are.
func Redact(v any, keys []string, limit int) any {
	return redactValue(v, normalizeKeys(keys), limit)
}

func normalizeKeys(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if n := normalizeKey(k); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func normalizeKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range strings.ToLower(k) {
		switch r {
		case '_', '-', '.', ' ':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func keyMatches(key string, norm []string) bool {
	if len(norm) == 0 {
		return false
	}
	k := normalizeKey(key)
	for _, n := range norm {
		if strings.Contains(k, n) {
			return true
		}
	}
	return false
}

func redactValue(v any, norm []string, limit int) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if keyMatches(k, norm) {
				out[k] = map[string]any{"redacted_sha256": hashValue(e)}
				continue
			}
			out[k] = redactValue(e, norm, limit)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactValue(e, norm, limit)
		}
		return out
	case string:
		if limit >= 0 && len(v) > limit {
			return map[string]any{
				"truncated": truncateUTF8(v, limit),
				"length":    len(v),
				"sha256":    hashValue(v),
			}
		}
		return v
	default:
		return v
	}
}

func hashValue(v any) string {
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			// Not reachable for decoded JSON; hash the error text so the
			// value is still not stored.
			b = []byte(err.Error())
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// keyMatcher finds normalized redaction keys inside a folded object key
// without a call per redaction key: Append asks it for every key of every
// record.
type keyMatcher struct {
	norm    []string // normalized keys
	minLen  int
	byFirst [256][]string
	// membersMayMatch says whether a member name of this package's event
	// types could match: with the default keys none does, and the encoder
	// need not look at them one by one.
	membersMayMatch bool
}

func newKeyMatcher(keys []string) *keyMatcher {
	m := &keyMatcher{norm: normalizeKeys(keys), minLen: math.MaxInt}
	for _, n := range m.norm {
		m.minLen = min(m.minLen, len(n))
		m.byFirst[n[0]] = append(m.byFirst[n[0]], n)
	}
	for _, name := range eventMembers {
		if len(m.norm) > 0 && m.mayMatch([]byte(name)) {
			m.membersMayMatch = true
		}
	}
	return m
}

// eventMembers are the member names of the data of this package's event
// types, as encoding/json names them.
var eventMembers = func() []string {
	var names []string
	for _, t := range []reflect.Type{
		reflect.TypeFor[Decision](), reflect.TypeFor[SessionStart](),
		reflect.TypeFor[SessionEnd](), reflect.TypeFor[Recovered](),
		reflect.TypeFor[Outcome](), reflect.TypeFor[Roots](), reflect.TypeFor[DroppedRoot](),
		reflect.TypeFor[NetDNS](), reflect.TypeFor[NetConnect](), reflect.TypeFor[NetClose](),
	} {
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	return names
}()

// match reports whether folded contains a normalized key.
func (m *keyMatcher) match(folded []byte) bool {
	for i := 0; i <= len(folded)-m.minLen; i++ {
		for _, n := range m.byFirst[folded[i]] {
			if len(n) <= len(folded)-i && string(folded[i:i+len(n)]) == n {
				return true
			}
		}
	}
	return false
}

// mayRedact reports whether redactJSON could change data; when it says no,
// Append skips the decoding and re-encoding. It errs towards yes: an object
// key with escapes or non-ASCII bytes always goes the slow way, because JSON
// unescaping and normalizeKey's Unicode lower-casing could make it match
// where its bytes do not. Escapes and non-ASCII bytes in values do not
// matter (decisions quote names in their reasons): data is valid JSON, so a
// string is a key exactly when a colon follows it.
func mayRedact(data []byte, m *keyMatcher, limit int) bool {
	// A decoded string is at least two bytes (its quotes) shorter than
	// the JSON that holds it, unless it holds invalid UTF-8, which
	// decodes to three bytes (U+FFFD) a byte.
	if limit >= 0 && (len(data) > limit+2 || !utf8.Valid(data)) {
		return true
	}
	if len(m.norm) == 0 {
		return false
	}
	for i := 0; i < len(data); {
		// The next string: jump to its opening quote, then from escape
		// to escape to its closing one.
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return false
		}
		start := i + q + 1
		end := start
		for {
			if end >= len(data) {
				return true // not valid JSON: let the slow path say so
			}
			k := bytes.IndexAny(data[end:], `"\`)
			if k < 0 {
				return true // not valid JSON: let the slow path say so
			}
			end += k
			if data[end] == '"' {
				break
			}
			end += 2
		}
		i = end + 1
		j := i
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j++
		}
		if j >= len(data) || data[j] != ':' {
			continue // a value
		}
		if m.mayMatch(data[start:end]) {
			return true
		}
	}
	return false
}

// mayMatch reports whether key, an object key as it is in JSON text,
// without its quotes, could match a redaction key once decoded: it does if
// its folded bytes contain one, and it may if it holds escapes or non-ASCII
// bytes, or is too long to fold here.
func (m *keyMatcher) mayMatch(key []byte) bool {
	var buf [256]byte
	if len(key) > len(buf) {
		return true
	}
	folded := buf[:0]
	for _, c := range key {
		switch {
		case c >= utf8.RuneSelf || c == '\\':
			return true
		case c == '_' || c == '-' || c == '.' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		folded = append(folded, c)
	}
	return m.match(folded)
}

// redactJSON applies Redact to an encoded JSON value and re-encodes it
// compactly, without HTML escaping.
func redactJSON(data []byte, keys []string, limit int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode event fields for redaction: %w", err)
	}
	return encodeCompact(Redact(v, keys, limit))
}

// encodeCompact encodes v as compact JSON without HTML escaping and without
// a trailing newline.
func encodeCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode event fields: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// RedactURI returns uri with the value of every query parameter whose name
// matches one of keys (as in [Redact]) replaced by
// "redacted_sha256:<hex>", the hash of the decoded value, and the password
// of any user information likewise: a resource URI is as likely as an
// argument to carry a token (https://api.example.com/x?api_key=...). The
// ledger applies it to the URIs of resource decisions.
func RedactURI(uri string, keys []string) string {
	return redactURI(uri, normalizeKeys(keys))
}

func redactURI(uri string, norm []string) string {
	if scheme, rest, ok := strings.Cut(uri, "://"); ok {
		auth, tail, _ := strings.Cut(rest, "/")
		if user, host, ok := strings.Cut(auth, "@"); ok {
			if name, pass, ok := strings.Cut(user, ":"); ok {
				user = name + ":redacted_sha256:" + hashValue(unescapeQuery(pass))
			}
			auth = user + "@" + host
			uri = scheme + "://" + auth
			if strings.Contains(rest, "/") {
				uri += "/" + tail
			}
		}
	}
	base, query, ok := strings.Cut(uri, "?")
	if !ok || len(norm) == 0 {
		return uri
	}
	frag := ""
	if q, f, ok := strings.Cut(query, "#"); ok {
		query, frag = q, "#"+f
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		name, value, ok := strings.Cut(p, "=")
		if ok && keyMatches(unescapeQuery(name), norm) {
			params[i] = name + "=redacted_sha256:" + hashValue(unescapeQuery(value))
		}
	}
	return base + "?" + strings.Join(params, "&") + frag
}

// unescapeQuery decodes a query component, "+" as a space; a malformed
// escape is kept as written.
func unescapeQuery(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
