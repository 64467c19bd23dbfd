package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vm-run/vm-run/audit"
)

func ExampleLedger_Log() {
	dir, err := os.MkdirTemp("", "vm-run-ledger")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	l, err := audit.Open(filepath.Join(dir, "ledger.jsonl"), audit.Options{Profile: "strict"})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	rec, err := l.Log(context.Background(), audit.Decision{
		Tool: "write_file", Verdict: audit.VerdictDeny, Rule: "block-src-writes",
		Args: map[string]any{"path": "src/main.go", "api_key": "s3cr3t"},
	})
	if err != nil {
		// Not recorded: the call must not go ahead.
		panic(err)
	}
	fmt.Println(rec.Seq, rec.Event, string(rec.Data))
	// Output:
	// 2 decision {"args":{"api_key":{"redacted_sha256":"4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"},"path":"src/main.go"},"rule":"block-src-writes","tool":"write_file","verdict":"deny"}
}

func ExampleVerify() {
	f, err := os.Open("testdata/recovered.jsonl")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	fmt.Println(rep.Records, "records,", rep.Recovered, "recovered, error:", err)
	for _, w := range rep.Warnings {
		fmt.Printf("line %d: %s\n", w.Line, w.Msg)
	}
	// Output:
	// 7 records, 1 recovered, error: <nil>
	// line 6: torn write: 266 bytes from byte 2818, in 1 line(s), recovered by line 7
}
