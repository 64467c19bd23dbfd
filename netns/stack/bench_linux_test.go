//go:build linux

package stack

// Benchmarks of the stack against direct loopback, each measured in the
// same run as its baseline: the sandbox's Go client through tun0 and the
// stack to a server on the host's loopback, beside the test process's own
// Go client to the same server. Issue 11's targets: one-stream download
// at least 0.4x direct, connection setup adding at most 0.5 ms p50, peak
// RSS at most 64 MB with four bulk streams.

import (
	"context"
	"path/filepath"

	"github.com/vm-run/vm-run/audit"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns/egress"
)

// downloadSize is what one iteration of BenchmarkDownload reads, each
// way: long enough for TCP's windows to open fully.
const downloadSize = 256 << 20

// BenchmarkDownload reads one stream from a loopback server through the
// stack, and directly; it reports both rates and their ratio.
func BenchmarkDownload(b *testing.B) {
	up := listen(b, bulk)
	e := newEnv(b, egress.Limits{}, []string{"bulk.test:80"}, map[string]string{"bulk.test:80": up})
	addr := e.addr("bulk.test", 80)
	var stack, direct time.Duration
	for b.Loop() {
		r := e.mustDo(cmd{Op: "download", Addr: addr, N: downloadSize, MS: 60000})
		stack += time.Duration(r.MS * float64(time.Millisecond))
		direct += directDownload(b, up, downloadSize)
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * downloadSize / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(stack), "MB/s-stack")
	b.ReportMetric(mbps(direct), "MB/s-direct")
	b.ReportMetric(direct.Seconds()/stack.Seconds(), "x-direct")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDownload4 reads four streams at once through the stack and
// reports the test process's peak RSS meanwhile (the stack, its relays
// and the loopback server).
func BenchmarkDownload4(b *testing.B) {
	up := listen(b, bulk)
	e := newEnv(b, egress.Limits{}, []string{"bulk.test:80"}, map[string]string{"bulk.test:80": up})
	addr := e.addr("bulk.test", 80)
	resetPeakRSS(b)
	var d time.Duration
	for b.Loop() {
		r := e.mustDo(cmd{Op: "downloads", Addr: addr, N: downloadSize, Data: "4", MS: 120000})
		d += time.Duration(r.MS * float64(time.Millisecond))
	}
	b.ReportMetric(float64(b.N)*4*downloadSize/1e6/d.Seconds(), "MB/s-stack")
	b.ReportMetric(peakRSS(b)/(1<<20), "MiB-peak-RSS")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConnect opens connections one after another through the
// stack, and directly, and reports the median setup time of each and the
// difference: what the stack adds (policy, dial, record, handshake).
func BenchmarkConnect(b *testing.B) { benchConnect(b, false) }

// BenchmarkConnectLedger is BenchmarkConnect with every record written to
// a real ledger, synced, as vm-run run does: the setup production pays.
// The ledger lives in $TMPDIR, which should be a disk (on tmpfs a sync
// costs nothing).
func BenchmarkConnectLedger(b *testing.B) { benchConnect(b, true) }

func benchConnect(b *testing.B, ledger bool) {
	up := listen(b, func(c net.Conn) { io.Copy(io.Discard, c) })
	e := newEnv(b, egress.Limits{}, []string{"conn.test:80"}, map[string]string{"conn.test:80": up})
	if ledger {
		dir, err := os.MkdirTemp("", "vm-run-bench-ledger")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		l, err := audit.Open(filepath.Join(dir, "ledger.jsonl"), audit.Options{Profile: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		rec := egress.LedgerRecorder(l)
		e.rec.setFail(func(ev audit.Event) error { return rec.Record(context.Background(), ev) })
	}
	addr := e.addr("conn.test", 80)
	const perIter = 200
	var stack, direct, syncs []float64
	for b.Loop() {
		r := e.mustDo(cmd{Op: "connects", Addr: addr, N: perIter, MS: 10000})
		stack = append(stack, r.Durs...)
		for range perIter {
			start := time.Now()
			c, err := net.Dial("tcp4", up)
			if err != nil {
				b.Fatal(err)
			}
			direct = append(direct, float64(time.Since(start).Nanoseconds())/1000)
			c.Close()
		}
	}
	ps, pd := median(stack), median(direct)
	b.ReportMetric(ps, "µs-p50-stack")
	b.ReportMetric(pd, "µs-p50-direct")
	b.ReportMetric(ps-pd, "µs-p50-added")
	if ledger {
		// The floor under the records' syncs, in the same run: one line
		// written and fdatasync'd, in the ledger's directory.
		syncs = syncFloor(b, perIter)
		b.ReportMetric(median(syncs), "µs-p50-fdatasync")
	}
	b.ReportMetric(0, "ns/op")
}

// syncFloor times n appends of one ledger-sized line, each followed by
// fdatasync, to a file in $TMPDIR: what one durable record costs at
// least on that disk.
func syncFloor(b *testing.B, n int) []float64 {
	b.Helper()
	f, err := os.CreateTemp("", "vm-run-bench-sync")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	line := []byte(strings.Repeat("x", 299) + "\n")
	var out []float64
	for range n {
		start := time.Now()
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		out = append(out, float64(time.Since(start).Nanoseconds())/1000)
	}
	return out
}

func directDownload(b *testing.B, addr string, n int) time.Duration {
	b.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for got := 0; got < n; {
		k, err := c.Read(buf[:min(len(buf), n-got)])
		got += k
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// resetPeakRSS sets VmHWM back to the current RSS (proc(5),
// /proc/pid/clear_refs, value 5).
func resetPeakRSS(b *testing.B) {
	b.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset, it counts from the start: %v", err)
	}
}

// peakRSS returns VmHWM, in bytes.
func peakRSS(b *testing.B) float64 {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkHold1000 opens 1,000 connections from the sandbox through the
// stack, under the default limits, holds them all open, and shows every
// one live (a byte there and back); it reports how many were held and the
// test process's peak RSS meanwhile.
func BenchmarkHold1000(b *testing.B) {
	const n = 1000
	up := listen(b, func(c net.Conn) { io.Copy(c, c) })
	e := newEnv(b, egress.Limits{}, []string{"hold.test:80"}, map[string]string{"hold.test:80": up})
	addr := e.addr("hold.test", 80)
	resetPeakRSS(b)
	held := 0
	for b.Loop() {
		r := e.mustDo(cmd{Op: "hold", Addr: addr, N: n, MS: 120000})
		held = r.Status
	}
	if held != n {
		b.Fatalf("held %d connections, want %d", held, n)
	}
	b.ReportMetric(float64(held), "conns-held")
	b.ReportMetric(peakRSS(b)/(1<<20), "MiB-peak-RSS")
	b.ReportMetric(0, "ns/op")
}
