package audit

import (
	"strings"
)

// RedactArgv returns a copy of argv in which the value of every flag named
// like one of keys (matched as in [Redact]) is replaced by
// "redacted_sha256:<hex>": --token=x, -api-key=x, and --password x (the
// next argument). A command line is as likely as a tool call to carry a
// secret, and session_start records it.
func RedactArgv(argv, keys []string) []string {
	norm := normalizeKeys(keys)
	out := make([]string, len(argv))
	copy(out, argv)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			continue
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, eq := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "" || !keyMatches(name, norm) {
			continue
		}
		switch {
		case eq:
			out[i] = a[:len(a)-len(value)] + "redacted_sha256:" + hashValue(value)
		case i+1 < len(out) && !strings.HasPrefix(out[i+1], "-"):
			out[i+1] = "redacted_sha256:" + hashValue(out[i+1])
			i++
		}
	}
	return out
}
