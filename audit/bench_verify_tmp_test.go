package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func BenchmarkVerifyTmp(b *testing.B) {
	m := &memFile{}
	l := memLedger(b, m, fixedOptions)
	for i := range 20000 {
		args := map[string]any{"path": fmt.Sprintf("src/pkg/file_%d.go", i)}
		if i%5 == 0 {
			args["content"] = strings.Repeat("package main\n\nfunc main() {}\n", 40)
		}
		l.Log(context.Background(), Decision{Method: "tools/call", Tool: "write_file", Verdict: VerdictAllow, Rule: "allow-src", Args: args})
	}
	data := m.bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := verifyBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySmall(b *testing.B) {
	data := buildLedger(b, 1000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := verifyBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}
