package main

import (
	"io"
	"testing"
)

// BenchmarkParseVersion measures vm-run's own start-up work before a
// command runs: building the CLI model and parsing argv.
func BenchmarkParseVersion(b *testing.B) {
	for b.Loop() {
		run([]string{"version"}, io.Discard, io.Discard)
	}
}

// BenchmarkPrepare measures resolving a run: profile, policy, ledger path
// and spec, before any namespace exists.
func BenchmarkPrepare(b *testing.B) {
	ws := b.TempDir()
	for b.Loop() {
		r := runCmd{Profile: "strict", Workspace: ws, Cmd: []string{"/bin/true"}}
		if _, err := r.prepare(); err != nil {
			b.Fatal(err)
		}
	}
}
