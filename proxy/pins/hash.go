package pins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Fields are the members of a tool definition that are pinned, in the
// order a summary names them. They are what an MCP client hands its model
// or shows its user as the tool: its name, its title, the description the
// model reads as instructions, the schemas of what it takes and returns,
// and the annotations a client or vm-run's policy trusts. Everything else
// is left out of the hash: _meta (reserved for implementations, and
// servers put per-session values in it), icons (pictures for people, whose
// URLs may move), execution (how a task runs, not what the tool does) and
// members this version of MCP does not define. Changing them is no rug
// pull of what the model was told.
var Fields = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}

// maxDepth bounds the nesting of a definition, as the proxy's parser does.
const maxDepth = 512

// Definition is one tool of a tools/list result, reduced to [Fields] in
// canonical form.
type Definition struct {
	Name string
	// Canonical is the JSON object of the pinned members, in the form
	// [Canonical] gives: what the hash is taken of, and what the pin file
	// keeps.
	Canonical []byte
	// SHA256 is the hex SHA-256 of Canonical.
	SHA256 string
}

// Parse reads one tool definition of a tools/list result. A member that
// is null counts as absent. It fails on a tool without a string name, and
// on what is not a JSON object.
func Parse(tool []byte) (Definition, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(tool, &members); err != nil || members == nil {
		return Definition{}, errors.New("tool definition is not a JSON object")
	}
	var name string
	if err := json.Unmarshal(members["name"], &name); err != nil || members["name"] == nil {
		return Definition{}, errors.New("tool definition has no string name")
	}
	picked := map[string]json.RawMessage{}
	for _, f := range Fields {
		if v, ok := members[f]; ok && string(bytes.TrimSpace(v)) != "null" {
			picked[f] = v
		}
	}
	raw, err := json.Marshal(picked)
	if err != nil {
		return Definition{}, fmt.Errorf("tool %q: %w", name, err)
	}
	c, err := Canonical(raw)
	if err != nil {
		return Definition{}, fmt.Errorf("tool %q: %w", name, err)
	}
	sum := sha256.Sum256(c)
	return Definition{Name: name, Canonical: c, SHA256: hex.EncodeToString(sum[:])}, nil
}

// Canonical returns the canonical form of a JSON text: no insignificant
// white space; object members sorted by key (bytewise, on UTF-8); strings
// as encoding/json writes them without HTML escaping; numbers by value,
// so that 1, 1.0 and 1e0 are one number: integers up to 2^53 in decimal,
// others in Go's shortest 'g' form, and numbers beyond float64 as written.
// Two definitions that say the same thing in different JSON hash alike,
// and any change of content changes the hash.
func Canonical(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical JSON: more than one JSON value")
	}
	var b bytes.Buffer
	if err := writeCanonical(&b, v, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeCanonical(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("canonical JSON: nested deeper than %d", maxDepth)
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(canonicalNumber(v))
	case string:
		writeString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeCanonical(b, v[k], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("canonical JSON: unexpected %T", v)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}

func canonicalNumber(n json.Number) string {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return string(n)
	}
	if f == 0 {
		return "0" // -0 and 0 are one value
	}
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// members splits a canonical definition into its members; a definition
// that does not parse (one the pin file does not keep) has none.
func members(c []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(c, &m) != nil {
		return nil
	}
	return m
}

// Bounds of what a summary quotes: a hostile server chooses the text, and
// the summary goes to the ledger, to stderr and to the terminal of
// `vm-run pins show`.
const (
	// MaxSummary bounds a whole summary in bytes.
	MaxSummary = 480
	// maxQuote bounds one quoted excerpt in runes, before quoting.
	maxQuote = 48
	// maxWords is how many words from the first difference on are quoted.
	maxWords = 6
	// maxNames is how many property or annotation names a summary lists.
	maxNames = 4
)

// Diff compares a pinned definition with the one seen, both in canonical
// form, and returns the names of the [Fields] that differ and a summary of
// at most [MaxSummary] bytes, safe to print: excerpts are quoted with
// control and non-printing characters escaped. For a description it gives
// the lengths and the first words that differ; for a schema the
// properties added, removed and changed; for annotations the hints. When
// the pinned definition is not kept (over [MaxDefinition]), changed is
// ["definition"] and the summary says so.
func Diff(pinned, seen []byte) (changed []string, summary string) {
	old, cur := members(pinned), members(seen)
	if old == nil || cur == nil {
		return []string{"definition"}, "the definition differs from its pin (the pin file keeps only the hash of a definition over 64 KiB)"
	}
	var parts []string
	for _, f := range Fields {
		a, b := old[f], cur[f]
		if bytes.Equal(a, b) {
			continue
		}
		changed = append(changed, f)
		parts = append(parts, fieldSummary(f, a, b))
	}
	if len(changed) == 0 {
		return []string{"definition"}, "the definitions differ only in form"
	}
	return changed, bound(strings.Join(parts, "; "), MaxSummary)
}

func fieldSummary(field string, a, b json.RawMessage) string {
	switch {
	case a == nil:
		return field + " added"
	case b == nil:
		return field + " removed"
	}
	switch field {
	case "description", "title", "name":
		var sa, sb string
		if json.Unmarshal(a, &sa) != nil || json.Unmarshal(b, &sb) != nil {
			return field + " changed"
		}
		return textSummary(field, sa, sb)
	case "inputSchema", "outputSchema":
		return schemaSummary(field, a, b)
	}
	return keysSummary(field, a, b)
}

// textSummary gives the lengths and the words from the first that differs.
func textSummary(field, a, b string) string {
	wa, wb := strings.Fields(a), strings.Fields(b)
	i := 0
	for i < len(wa) && i < len(wb) && wa[i] == wb[i] {
		i++
	}
	s := fmt.Sprintf("%s: %d → %d bytes", field, len(a), len(b))
	if i == len(wa) && i == len(wb) {
		return s + ", the same words in other white space"
	}
	return fmt.Sprintf("%s, from word %d: %s → %s", s, i+1, excerpt(wa, i), excerpt(wb, i))
}

// excerpt quotes up to maxWords words of ws from i, at most maxQuote runes.
func excerpt(ws []string, i int) string {
	if i >= len(ws) {
		return "(end)"
	}
	end := min(len(ws), i+maxWords)
	s := strings.Join(ws[i:end], " ")
	cut := end < len(ws)
	if utf8.RuneCountInString(s) > maxQuote {
		s = string([]rune(s)[:maxQuote])
		cut = true
	}
	q := strconv.QuoteToGraphic(s)
	if cut {
		q += "…"
	}
	return q
}

// schemaSummary names the top-level properties added, removed and changed.
func schemaSummary(field string, a, b json.RawMessage) string {
	var sa, sb struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(a, &sa) != nil || json.Unmarshal(b, &sb) != nil {
		return field + " changed"
	}
	var added, removed, altered []string
	for k, v := range sb.Properties {
		if old, ok := sa.Properties[k]; !ok {
			added = append(added, k)
		} else if !bytes.Equal(old, v) {
			altered = append(altered, k)
		}
	}
	for k := range sa.Properties {
		if _, ok := sb.Properties[k]; !ok {
			removed = append(removed, k)
		}
	}
	var parts []string
	for _, l := range []struct {
		verb  string
		names []string
	}{{"added", added}, {"removed", removed}, {"changed", altered}} {
		if len(l.names) > 0 {
			parts = append(parts, fmt.Sprintf("properties %s: %s", l.verb, names(l.names)))
		}
	}
	if len(parts) == 0 {
		return field + " changed outside its properties"
	}
	return field + ": " + strings.Join(parts, ", ")
}

// keysSummary names the members of an object that differ, with their
// values when short (annotations: "readOnlyHint true → false").
func keysSummary(field string, a, b json.RawMessage) string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return field + " changed"
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if bytes.Equal(ma[k], mb[k]) {
			continue
		}
		if len(parts) == maxNames {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", quoteName(k), shortValue(ma[k]), shortValue(mb[k])))
	}
	return field + ": " + strings.Join(parts, ", ")
}

func shortValue(v json.RawMessage) string {
	switch {
	case v == nil:
		return "(absent)"
	case len(v) > 16:
		return "(changed)"
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return "(changed)"
		}
	}
	return string(v)
}

// names lists up to maxNames names, sorted and quoted where needed.
func names(ns []string) string {
	slices.Sort(ns)
	out := make([]string, 0, maxNames+1)
	for i, n := range ns {
		if i == maxNames {
			out = append(out, fmt.Sprintf("and %d more", len(ns)-maxNames))
			break
		}
		out = append(out, quoteName(n))
	}
	return strings.Join(out, ", ")
}

// quoteName writes a plain identifier as it is and anything else quoted,
// cut to maxQuote runes.
func quoteName(n string) string {
	if utf8.RuneCountInString(n) > maxQuote {
		return strconv.QuoteToGraphic(string([]rune(n)[:maxQuote])) + "…"
	}
	for _, r := range n {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.QuoteToGraphic(n)
		}
	}
	if n == "" {
		return `""`
	}
	return n
}

// bound cuts s to at most max bytes on a rune boundary, marking the cut.
func bound(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = " …"
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
