package proxy

import (
	"encoding/json"
	"testing"
)

func TestScanLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		dup  string
	}{
		{`{}`, true, ""},
		{` {"a" : [1, -0.5e+3, true, false, null, "x\u00e9\ud83d\ude00"]} `, true, ""},
		{`{"a":1,"a":2}`, true, "a"},
		{`{"a":1,"\u0061":2}`, true, "a"},
		{`{"a":{"b":1,"b":1}}`, true, "b"},
		{`{"a":1,"A":2}`, true, ""},
		{`[]`, true, ""},
		{`"s"`, true, ""},
		{``, false, ""},
		{`{`, false, ""},
		{`{"a":1,}`, false, ""},
		{`{"a":01}`, false, ""},
		{`{"a":1.}`, false, ""},
		{`{"a":.1}`, false, ""},
		{`{"a":+1}`, false, ""},
		{`{"a":tru}`, false, ""},
		{`{"a":"\x"}`, false, ""},
		{"{\"a\":\"\t\"}", false, ""},
		{"{\"a\":\"\xff\"}", false, ""},
		{"{\"a\":\"\xed\xa0\x80\"}", false, ""}, // UTF-8 encoded surrogate
		{`{"a":"\ud800"}`, false, ""},
		{`{"a":"\udc00"}`, false, ""},
		{`{"a":"\ud800\u0041"}`, false, ""},
		{`{"a":1} {}`, false, ""},
		{`{'a':1}`, false, ""},
		{`NaN`, false, ""},
	}
	for _, tt := range tests {
		env, err := scanLine([]byte(tt.line))
		if (err == nil) != tt.ok || env.dupKey != tt.dup {
			t.Errorf("scanLine(%q) = dup %q, %v; want ok %v, dup %q", tt.line, env.dupKey, err, tt.ok, tt.dup)
		}
		if err == nil && !json.Valid([]byte(tt.line)) {
			t.Errorf("scanLine(%q) accepted what encoding/json rejects", tt.line)
		}
	}
	deep := make([]byte, 0, 2*maxDepth+2)
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, '[')
	}
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, ']')
	}
	if _, err := scanLine(deep); err == nil {
		t.Errorf("scanLine(%d nested arrays) = nil error, want one", maxDepth+1)
	}
	if _, err := scanLine(deep[1 : len(deep)-1]); err != nil {
		t.Errorf("scanLine(%d nested arrays) = %v, want nil", maxDepth, err)
	}
}
