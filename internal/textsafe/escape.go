package textsafe

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every character that is not printable, every byte
// that is not UTF-8 and every backslash replaced by a Go escape sequence;
// see the package documentation for the rule. The result holds only
// printable characters, so it cannot move the cursor, change the
// terminal's state or reorder text, and a column padded by rune count
// (fmt's %-20s, text/tabwriter) lines up, wide and combining characters
// aside. It returns s itself, without a copy, when nothing needs escaping.
func Escape(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !passes(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if passes(r, n) {
			b.WriteString(s[i : i+n])
		} else if r == utf8.RuneError && n == 1 {
			writeHex(&b, `\x`, rune(s[i]), 2)
		} else {
			writeEscape(&b, r)
		}
		i += n
	}
	return b.String()
}

// passes reports whether the rune r, n bytes long, is printed as it is.
func passes(r rune, n int) bool {
	if r < utf8.RuneSelf {
		return ' ' <= r && r < 0x7f && r != '\\'
	}
	// DecodeRune returns RuneError with n == 1 for a byte that is not
	// UTF-8; an encoded U+FFFD is a printable symbol.
	return !(r == utf8.RuneError && n == 1) && strconv.IsPrint(r)
}

// writeEscape writes the escape of a valid rune that does not pass, in the
// forms strconv.Quote uses.
func writeEscape(b *strings.Builder, r rune) {
	switch r {
	case '\\':
		b.WriteString(`\\`)
	case '\a':
		b.WriteString(`\a`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\v':
		b.WriteString(`\v`)
	default:
		switch {
		case r < utf8.RuneSelf: // the other C0 controls and DEL
			writeHex(b, `\x`, r, 2)
		case r <= 0xffff:
			writeHex(b, `\u`, r, 4)
		default:
			writeHex(b, `\U`, r, 8)
		}
	}
}

func writeHex(b *strings.Builder, prefix string, r rune, digits int) {
	const hex = "0123456789abcdef"
	b.WriteString(prefix)
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hex[r>>uint(shift)&0xf])
	}
}
