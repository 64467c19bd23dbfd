package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv selects a helper mode when the test binary is re-executed as a
// ledger writer process (see helpers_linux_test.go).
const helperEnv = "VMRUN_AUDIT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// memFile is an in-memory ledgerFile with fault injection.
type memFile struct {
	mu       sync.Mutex
	data     []byte
	writes   int
	syncs    int
	writeErr error // returned by every Write once set
	syncErr  error // returned by every Datasync once set
	short    int   // with writeErr: bytes written before the error
	// syncGate, when set, makes Datasync wait for a value from it.
	syncGate   chan struct{}
	syncCalled chan struct{}
}

func (m *memFile) Lock() error             { return nil }
func (m *memFile) Unlock() error           { return nil }
func (m *memFile) SamePath() (bool, error) { return true, nil }
func (m *memFile) Close() error            { return nil }

func (m *memFile) Size() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.data)), nil
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, fmt.Errorf("short read")
	}
	return n, nil
}

func (m *memFile) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if m.writeErr != nil {
		n := min(m.short, len(p))
		m.data = append(m.data, p[:n]...)
		return n, m.writeErr
	}
	m.data = append(m.data, p...)
	return len(p), nil
}

func (m *memFile) Datasync() error {
	m.mu.Lock()
	m.syncs++
	gate, called, err := m.syncGate, m.syncCalled, m.syncErr
	m.mu.Unlock()
	if called != nil {
		called <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	return err
}

func (m *memFile) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data)
}

func (m *memFile) counts() (writes, syncs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes, m.syncs
}

// fixedOptions give records that do not depend on the machine.
var fixedOptions = Options{
	Host: "host-1", SessionID: "0123456789abcdef", PID: 4242, UID: 1000,
	Profile: "strict", ProfileHash: "sha256:" + strings.Repeat("ab", 32),
}

// fixedClock returns a clock that starts at 2025-01-02T03:04:05Z and
// advances one millisecond a call.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

// memLedger returns a ledger on m with fixed options and clock.
func memLedger(t testing.TB, m *memFile, o Options) *Ledger {
	t.Helper()
	l, err := newLedger("mem", o, m)
	if err != nil {
		t.Fatal(err)
	}
	l.now = fixedClock()
	t.Cleanup(func() { l.Close() })
	return l
}

// heldSync returns a ledger on a memFile whose first append is in
// fdatasync, where it stays until release is called; release returns once
// that append has.
func heldSync(t *testing.T) (m *memFile, l *Ledger, release func()) {
	t.Helper()
	m = &memFile{syncGate: make(chan struct{}), syncCalled: make(chan struct{}, 1)}
	l = memLedger(t, m, fixedOptions)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := l.Append(context.Background(), "first", nil); err != nil {
			t.Error(err)
		}
	}()
	<-m.syncCalled
	return m, l, func() {
		m.mu.Lock()
		m.syncCalled = nil
		m.mu.Unlock()
		close(m.syncGate)
		<-done
	}
}

// waitQueued waits until n appends after the first are written to m or
// queued in l.
func waitQueued(m *memFile, l *Ledger, n int) {
	for bytes.Count(m.bytes(), []byte("\n"))-2+l.pendingAppends() < n {
		runtime.Gosched()
	}
}

// pendingAppends returns the number of appends the writer has not taken.
func (l *Ledger) pendingAppends() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	n := 0
	for _, b := range l.pending {
		n += len(b.reqs)
	}
	return n
}

// buildLedger returns a ledger of n decision records after the genesis
// record, written through a memFile.
func buildLedger(t testing.TB, n int) []byte {
	t.Helper()
	m := &memFile{}
	l := memLedger(t, m, fixedOptions)
	for i := range n {
		verdict := VerdictAllow
		if i%5 == 0 {
			verdict = VerdictDeny
		}
		d := Decision{Method: "tools/call", Tool: fmt.Sprintf("tool_%d", i%7), Verdict: verdict,
			Rule: "rule-" + string(verdict), Args: map[string]any{"path": fmt.Sprintf("docs/file-%d.md", i)}}
		if _, err := l.Log(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return m.bytes()
}

// splitLines splits a ledger into lines, each with its newline.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// verifyBytes runs Verify on b.
func verifyBytes(b []byte) (Report, error) {
	return Verify(bytes.NewReader(b))
}

// mustVerify fails the test unless b verifies; it returns the report.
func mustVerify(t testing.TB, b []byte) Report {
	t.Helper()
	rep, err := verifyBytes(b)
	if err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	return rep
}

// wantProblem fails the test unless err is a *VerifyError with problem p on
// line (line 0: any line).
func wantProblem(t testing.TB, what string, err error, line int, p Problem) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: Verify = %v, want a *VerifyError", what, err)
	}
	if ve.Problem != p || (line != 0 && ve.Line != line) {
		t.Fatalf("%s: Verify = %v, want %s on line %d", what, err, p, line)
	}
}

// hashesBySeq reads a ledger and returns the hash of every intact record.
func hashesBySeq(b []byte) map[uint64]string {
	out := map[uint64]string{}
	for _, line := range splitLines(b) {
		fr, err := parseFrame(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil || !fr.hashOK() {
			continue
		}
		out[fr.seq] = string(fr.hash)
	}
	return out
}

// ack is what a helper writer prints for every acknowledged Append.
type ack struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// readAcks reads "seq hash" lines until EOF, calling fn after each.
func readAcks(r *bufio.Reader, fn func(ack)) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if line != "" {
				return fmt.Errorf("partial ack line %q", line)
			}
			return nil
		}
		var a ack
		if _, err := fmt.Sscanf(line, "%d %s", &a.Seq, &a.Hash); err != nil {
			return fmt.Errorf("parse ack %q: %w", line, err)
		}
		fn(a)
	}
}

// checkAcked fails the test for every acknowledged record the ledger does
// not hold with the same hash.
func checkAcked(t testing.TB, ledger []byte, acked []ack) {
	t.Helper()
	have := hashesBySeq(ledger)
	missing := 0
	for _, a := range acked {
		if have[a.Seq] != a.Hash {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged record %d (%.16s…) not in the ledger (found %.16q)", a.Seq, a.Hash, have[a.Seq])
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records missing", missing, len(acked))
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// jsonEqual compares two decoded JSON values by their encodings.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
