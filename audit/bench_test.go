package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchDecision is a typical record, as the proxy writes it: a tools/call
// decision with the arguments as the client sent them (raw JSON) and the
// path they lead to.
func benchDecision(i int) Decision {
	path := fmt.Sprintf("docs/section-%d/page.md", i)
	return Decision{Method: "tools/call", RequestID: json.RawMessage(strconv.Itoa(i)), Tool: "read_file",
		Verdict: VerdictAllow, Rule: "allow-docs",
		Reason: `tool "read_file" is allowed by rule "allow-docs" (read(docs/*))`,
		Args:   json.RawMessage(`{"path":"` + path + `"}`), Kind: "tool", From: "client",
		Matcher: "read(docs/*)", LatencyNS: 41_000, Seq: uint64(i + 1), Paths: []string{path}}
}

// plainRate is the appends per second of the simplest durable writer, one
// write and one fsync per event, measured once per run in the same
// directory as the ledger benchmarks.
var plainRate = sync.OnceValues(func() (float64, error) {
	dir, err := os.MkdirTemp("", "vmrun-bench-plain")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	return plainLoop(filepath.Join(dir, "plain.jsonl"), 200, 500*time.Millisecond)
})

// plainLoop appends ledger-sized lines with write+fsync, at least n of
// them and for at least d, and returns events per second.
func plainLoop(path string, min int, d time.Duration) (float64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	m := &memFile{}
	l, err := newLedger("mem", fixedOptions, m)
	if err != nil {
		return 0, err
	}
	if _, err := l.Log(context.Background(), benchDecision(0)); err != nil {
		return 0, err
	}
	l.Close()
	line := splitLines(m.bytes())[1]
	start := time.Now()
	n := 0
	for ; n < min || time.Since(start) < d; n++ {
		if _, err := f.Write(line); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// BenchmarkPlainFsync is the baseline: one write and one fsync per event,
// one event at a time.
func BenchmarkPlainFsync(b *testing.B) {
	path := filepath.Join(b.TempDir(), "plain.jsonl")
	rate, err := plainLoop(path, b.N, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, "appends/s")
}

// BenchmarkAppend measures appends per second with 1, 8, 64 and 256
// goroutines appending at once to a ledger on disk, and the ratio to the
// plain write+fsync loop ("x_plain").
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			plain, err := plainRate()
			if err != nil {
				b.Fatal(err)
			}
			l, err := Open(filepath.Join(b.TempDir(), "ledger.jsonl"), Options{Profile: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			// Records are made before the clock starts: the benchmark
			// measures the ledger, not the making of test data.
			decisions := make([]Decision, 1024)
			for i := range decisions {
				decisions[i] = benchDecision(i)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range n {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := l.Log(context.Background(), decisions[i%1024]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			rate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(plain, "plain_appends/s")
			b.ReportMetric(rate/plain, "x_plain")
		})
	}
}

// BenchmarkVerify measures Verify on a 16 MB ledger of typical records, a
// fifth of them carrying a 1 KiB argument.
func BenchmarkVerify(b *testing.B) {
	m := &memFile{}
	l, err := newLedger("mem", fixedOptions, m)
	if err != nil {
		b.Fatal(err)
	}
	content := strings.Repeat("package main\n\nfunc main() {}\n", 36)
	for i := 0; ; i++ {
		if size, _ := m.Size(); size >= 16<<20 {
			break
		}
		d := benchDecision(i)
		if i%5 == 0 {
			d.Args = json.RawMessage(fmt.Sprintf(`{"path":"docs/section-%d/page.md","content":%q}`, i, content))
		}
		if _, err := l.Log(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	data := m.bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := verifyBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}
