package audit

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	keys := []string{"password", "api_key", "Authorization"}
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"plain", `{"path":"a","n":1}`, 10, `{"n":1,"path":"a"}`},
		{"key", `{"password":"pw"}`, 10, `{"password":{"redacted_sha256":"` + hashValue("pw") + `"}}`},
		{"case and separators", `{"X-API-Key":"k","apiKey":"k2","OPENAI_API_KEY":"k3"}`, 10,
			`{"OPENAI_API_KEY":{"redacted_sha256":"` + hashValue("k3") + `"},"X-API-Key":{"redacted_sha256":"` + hashValue("k") + `"},"apiKey":{"redacted_sha256":"` + hashValue("k2") + `"}}`},
		{"nested in arrays", `{"h":[{"authorization":"Bearer x"}]}`, 100, `{"h":[{"authorization":{"redacted_sha256":"` + hashValue("Bearer x") + `"}}]}`},
		{"non-string secret", `{"password":{"a":[1,2]}}`, 100, `{"password":{"redacted_sha256":"` + hashValue(map[string]any{"a": []any{json.Number("1"), json.Number("2")}}) + `"}}`},
		{"long string", `{"body":"abcdefghij"}`, 4, `{"body":{"length":10,"sha256":"` + hashValue("abcdefghij") + `","truncated":"abcd"}}`},
		{"long string, no limit", `{"body":"abcdefghij"}`, -1, `{"body":"abcdefghij"}`},
		{"cut on a character boundary", `{"s":"ééé"}`, 3, `{"s":{"length":6,"sha256":"` + hashValue("ééé") + `","truncated":"é"}}`},
		{"top-level array", `["abcdef"]`, 2, `[{"length":6,"sha256":"` + hashValue("abcdef") + `","truncated":"ab"}]`},
	}
	for _, tt := range tests {
		got, err := redactJSON([]byte(tt.in), keys, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s: Redact(%s) = %s, want %s", tt.name, tt.in, got, tt.want)
		}
	}
	if got := hashValue("hunter2"); got != "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7" {
		t.Errorf("hashValue(%q) = %s, want the SHA-256 of its bytes", "hunter2", got)
	}
	if strings.Contains(string(mustJSON(t, Redact(map[string]any{"token": "t0p"}, DefaultRedactKeys, -1))), "t0p") {
		t.Error("DefaultRedactKeys do not cover \"token\"")
	}
}

func TestRedactURI(t *testing.T) {
	h := func(s string) string { return "redacted_sha256:" + hashValue(s) }
	tests := []struct{ uri, want string }{
		{"https://api.example.com/x?api_key=s3cr3t&page=2", "https://api.example.com/x?api_key=" + h("s3cr3t") + "&page=2"},
		{"https://u:p%40ss@h/x", "https://u:" + h("p@ss") + "@h/x"},
		{"demo://r/x?Access-Token=a+b#f", "demo://r/x?Access-Token=" + h("a b") + "#f"},
		{"demo://r/x?page=1", "demo://r/x?page=1"},
		{"file:///home/u/token.txt", "file:///home/u/token.txt"},
	}
	for _, tt := range tests {
		if got := RedactURI(tt.uri, DefaultRedactKeys); got != tt.want {
			t.Errorf("RedactURI(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}
