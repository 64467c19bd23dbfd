package textsafe_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vm-run/vm-run/internal/textsafe"
)

var escapeTests = []struct {
	name, in, want string
}{
	{"empty", "", ""},
	{"plain", "read_file", "read_file"},
	{"space and punctuation", `write(src/*) is denied by rule "x"`, `write(src/*) is denied by rule "x"`},
	{"non-ASCII letters", "café ünïcødé 日本語 Ελληνικά", "café ünïcødé 日本語 Ελληνικά"},
	{"combining mark", "cafe\u0301", "cafe\u0301"},
	{"emoji", "🔒", "🔒"},
	{"encoded U+FFFD", "a\ufffdb", "a\ufffdb"},
	{"backslash", `C:\dir\n`, `C:\\dir\\n`},
	{"newline", "a\nb", `a\nb`},
	{"carriage return", "safe\rEVIL", `safe\rEVIL`},
	{"tab", "a\tb", `a\tb`},
	{"other short forms", "\a\b\f\v", `\a\b\f\v`},
	{"NUL", "a\x00b", `a\x00b`},
	{"clear screen", "\x1b[2J", `\x1b[2J`},
	{"OSC 52 clipboard", "\x1b]52;c;SGVsbG8=\x07", `\x1b]52;c;SGVsbG8=\a`},
	{"OSC title, ST", "\x1b]0;pwned\x1b\\", `\x1b]0;pwned\x1b\\`},
	{"DEL", "a\x7fb", `a\x7fb`},
	{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
	{"C1 first and last", "\u0080\u009f", `\u0080\u009f`},
	{"lone byte 0x9b", "a\x9b2J", `a\x9b2J`},
	{"invalid UTF-8", "\xff\xfe\xc3", `\xff\xfe\xc3`},
	{"truncated rune", "caf\xc3", `caf\xc3`},
	{"surrogate half", "\xed\xa0\x80", `\xed\xa0\x80`},
	{"right-to-left override", "exe.\u202etxt", `exe.\u202etxt`},
	{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
	{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
	{"zero-width", "read\u200b_file\u200c\u200d\u200e\u200f", `read\u200b_file\u200c\u200d\u200e\u200f`},
	{"BOM", "\ufefftool", `\ufefftool`},
	{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
	{"soft hyphen", "rea\u00add", `rea\u00add`},
	{"arabic letter mark", "a\u061cb", `a\u061cb`},
	{"no-break space", "read\u00a0file", `read\u00a0file`},
	{"tag characters", "x\U000e0041\U000e007f", `x\U000e0041\U000e007f`},
	{"private use", "\ue000", `\ue000`},
}

func TestEscape(t *testing.T) {
	for _, tt := range escapeTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := textsafe.Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestEscapeUnchangedIsSame checks that text needing no escape is returned
// without a copy.
func TestEscapeUnchangedIsSame(t *testing.T) {
	in := "read_file café"
	if n := testing.AllocsPerRun(100, func() { _ = textsafe.Escape(in) }); n != 0 {
		t.Errorf("Escape(%q) allocates %v times, want 0", in, n)
	}
}

// FuzzEscape checks the two properties the CLI relies on: the output holds
// only printable characters, and it is unambiguous (it unquotes back to
// the input).
func FuzzEscape(f *testing.F) {
	for _, tt := range escapeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := textsafe.Escape(in)
		if !utf8.ValidString(got) {
			t.Fatalf("Escape(%q) = %q, not valid UTF-8", in, got)
		}
		for _, r := range got {
			if !strconv.IsPrint(r) {
				t.Fatalf("Escape(%q) = %q, holds %U", in, got, r)
			}
		}
		back, err := strconv.Unquote(`"` + strings.ReplaceAll(got, `"`, `\"`) + `"`)
		if err != nil || back != in {
			t.Fatalf("Unquote(Escape(%q)) = %q, %v, want the input", in, back, err)
		}
	})
}

func ExampleEscape() {
	fmt.Println(textsafe.Escape("deny \x1b]52;c;SGVsbG8=\x07 café\u202e"))
	// Output:
	// deny \x1b]52;c;SGVsbG8=\a café\u202e
}
