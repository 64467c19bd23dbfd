package profiles

import (
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// parseNumber parses a number-valued scalar. Ports (uint16) are plain
// decimal numbers. Limits (uint64) depend on the field's unit: counts are
// decimal numbers; sizes may carry a binary suffix (K, M, G, T, also written
// Ki/KiB..., any case: powers of 1024, as ulimit and systemd count); times
// may carry s, m or h. Limits other than counts may be "unlimited". Only
// decimal digits are accepted: YAML's 0x, 0o, underscores and signs would
// make "017" mean 15 to one reader and 17 to another.
func parseNumber(n *yaml.Node, t reflect.Type, o opts) (uint64, error) {
	tag, v := n.ShortTag(), n.Value
	bad := fmt.Errorf("want %s, got %s", want(t, o), got(n))
	if t.Kind() == reflect.Uint16 {
		x, ok := decimal(v)
		if tag != "!!int" || !ok || x > 65535 {
			return 0, bad
		}
		return x, nil
	}
	if tag == "!!int" {
		if x, ok := decimal(v); ok {
			return x, nil
		}
		return 0, bad
	}
	if tag != "!!str" {
		return 0, bad
	}
	if v == "unlimited" {
		return Unlimited, nil
	}
	switch o.unit {
	case "bytes":
		return parseSize(v)
	case "seconds":
		return parseSeconds(v)
	}
	return 0, bad
}

func decimal(s string) (uint64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	x, err := strconv.ParseUint(s, 10, 64)
	return x, err == nil
}

func parseSize(s string) (uint64, error) {
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	num, unit := s[:digits], strings.TrimSpace(s[digits:])
	x, ok := decimal(num)
	if !ok {
		return 0, fmt.Errorf(`want a size such as 4096, "64KiB" or "unlimited", got %q`, s)
	}
	var shift uint
	switch strings.ToLower(unit) {
	case "", "b":
	case "k", "ki", "kib":
		shift = 10
	case "m", "mi", "mib":
		shift = 20
	case "g", "gi", "gib":
		shift = 30
	case "t", "ti", "tib":
		shift = 40
	case "kb", "mb", "gb", "tb":
		return 0, fmt.Errorf("size %q is ambiguous; write %s%ciB (powers of 1024) or a number of bytes",
			s, num, unicode.ToUpper(rune(unit[0])))
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q; use K, M, G or T (powers of 1024)", s, unit)
	}
	if bits.LeadingZeros64(x) < int(shift) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return x << shift, nil
}

var timeUnits = map[string]uint64{"": 1, "s": 1, "m": 60, "h": 3600}

func parseSeconds(s string) (uint64, error) {
	num := strings.TrimRight(s, "smh")
	x, ok := decimal(num)
	mult, known := timeUnits[s[len(num):]]
	if !ok || !known {
		return 0, fmt.Errorf(`want a time such as 30, "90s", "10m" or "unlimited", got %q`, s)
	}
	hi, lo := bits.Mul64(x, mult)
	if hi != 0 {
		return 0, fmt.Errorf("time %q is too large", s)
	}
	return lo, nil
}

// formatNumber writes a number so that parseNumber reads it back: sizes in
// the largest binary unit that divides them.
func formatNumber(x uint64, o opts) *yaml.Node {
	if x == Unlimited && o.unit != "" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "unlimited"}
	}
	if o.unit == "bytes" && x != 0 {
		for _, u := range []struct {
			suffix string
			shift  uint
		}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
			if x&(1<<u.shift-1) == 0 {
				return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str",
					Value: strconv.FormatUint(x>>u.shift, 10) + u.suffix}
			}
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(x, 10)}
}

// Variable names, in the order messages list them.
var varNames = []string{"WORKSPACE", "HOME", "TMPDIR"}

func (v *Vars) lookup(name string) string {
	switch name {
	case "WORKSPACE":
		return v.Workspace
	case "HOME":
		return v.Home
	case "TMPDIR":
		return v.TmpDir
	}
	return ""
}

var errStray = errors.New(`a "$" must start ${WORKSPACE}, ${HOME} or ${TMPDIR}; write "$$" for a literal "$"`)

// expand substitutes ${WORKSPACE}, ${HOME} and ${TMPDIR} in s and turns
// "$$" into "$". s starts at byte off of n.Value, for error columns. With v
// nil, expand only checks the syntax.
func (st *state) expand(n *yaml.Node, s string, off int, v *Vars, path string) (string, error) {
	if strings.ContainsRune(s, 0) {
		// A NUL in a loaded value is a secret reference (secrets.go).
		return "", st.at(n).errorf("%s: contains a NUL byte", label(path))
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		at := st.offsetPos(n, off+i)
		rest := s[i:]
		if strings.HasPrefix(rest, "$$") {
			b.WriteByte('$')
			i += 2
			continue
		}
		if !strings.HasPrefix(rest, "${") {
			return "", at.errorf("%s: %v", label(path), errStray)
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", at.errorf(`%s: unterminated "${"`, label(path))
		}
		name := rest[2:end]
		i += end + 1
		if ref, ok := strings.CutPrefix(name, "secret:"); ok {
			mark, err := secretRef(path, ref)
			if err != nil {
				return "", at.errorf("%s: %v", label(path), err)
			}
			b.WriteString(mark)
			continue
		}
		known := false
		for _, k := range varNames {
			known = known || k == name
		}
		if !known {
			return "", at.errorf("%s: unknown variable ${%s}; known: ${WORKSPACE}, ${HOME}, ${TMPDIR}",
				label(path), name)
		}
		if v == nil {
			continue
		}
		val := v.lookup(name)
		switch {
		case val == "":
			return "", at.errorf("%s: ${%s} is empty here", label(path), name)
		case !filepath.IsAbs(val):
			return "", at.errorf("%s: ${%s} is %q, not an absolute path", label(path), name, val)
		case strings.ContainsRune(val, 0):
			return "", at.errorf("%s: ${%s} contains a NUL byte", label(path), name)
		}
		val = filepath.Clean(val)
		if strings.HasSuffix(val, "?") {
			return "", at.errorf(`%s: ${%s} is %q, which ends in the optional marker "?"`, label(path), name, val)
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

// offsetPos is the position of byte off of n.Value. yaml.v3 gives only the
// node's start, so the value is matched against the source line: where it
// matches (a plain or quoted scalar without escapes on one line) the column
// is exact; elsewhere the node's start is the best there is.
func (st *state) offsetPos(n *yaml.Node, off int) pos {
	p := st.at(n)
	lines := st.lines[p.file]
	if p.line < 1 || p.line > len(lines) || p.col < 1 {
		return p
	}
	rest := lines[p.line-1]
	for k := 1; k < p.col && rest != ""; k++ {
		_, size := utf8.DecodeRuneInString(rest)
		rest = rest[size:]
	}
	quote := 0
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		quote = 1
	}
	prefix := n.Value[:off]
	if len(rest) >= quote && strings.HasPrefix(rest[quote:], prefix) {
		p.col += quote + utf8.RuneCountInString(prefix)
	}
	return p
}
