package audit

import (
	"slices"
	"strings"
	"testing"
)

func TestRedactArgv(t *testing.T) {
	h := "redacted_sha256:" + hashValue("s3cret")
	tests := []struct {
		argv, want []string
	}{
		{[]string{"srv", "--token=s3cret", "x"}, []string{"srv", "--token=" + h, "x"}},
		{[]string{"srv", "--api-key", "s3cret", "x"}, []string{"srv", "--api-key", h, "x"}},
		{[]string{"srv", "-PASSWORD=s3cret"}, []string{"srv", "-PASSWORD=" + h}},
		{[]string{"srv", "--github_token", "s3cret"}, []string{"srv", "--github_token", h}},
		{[]string{"srv", "--token", "--verbose"}, []string{"srv", "--token", "--verbose"}},
		{[]string{"srv", "--path=/tmp/token", "token"}, []string{"srv", "--path=/tmp/token", "token"}},
		{[]string{"--token=argv0-is-the-program"}, []string{"--token=argv0-is-the-program"}},
		{[]string{"srv", "--token"}, []string{"srv", "--token"}},
	}
	for _, tt := range tests {
		got := RedactArgv(tt.argv, DefaultRedactKeys)
		if !slices.Equal(got, tt.want) {
			t.Errorf("RedactArgv(%q) = %q, want %q", tt.argv, got, tt.want)
		}
		for _, a := range got {
			if strings.Contains(a, "s3cret") {
				t.Errorf("RedactArgv(%q) left the secret in %q", tt.argv, a)
			}
		}
	}
}

// TestMayRedactTruncated: mayRedact never reads past the end of data, even
// of data that is not JSON.
func TestMayRedactTruncated(t *testing.T) {
	m := newKeyMatcher(DefaultRedactKeys)
	for _, data := range []string{`{"a\`, `{"a":"b\`, `"`, `{"token`, `\`} {
		mayRedact([]byte(data), m, -1)
	}
}
