package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var ctx = context.Background()

func TestAppendWritesChainedRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "vm-run", "ledger.jsonl")
	l, err := Open(path, Options{Profile: "strict", ProfileHash: "sha256:00"})
	if err != nil {
		t.Fatal(err)
	}
	start, err := l.Log(ctx, SessionStart{Argv: []string{"npx", "server"}, Profile: "strict"})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := l.Log(ctx, Decision{Tool: "read_file", Verdict: VerdictDeny, Rule: "block-src"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if start.Seq != 2 || dec.Seq != 3 || dec.Prev != start.Hash {
		t.Fatalf("records = seq %d, %d (prev %.8s, want %.8s); want seq 2, 3 chained after the genesis record",
			start.Seq, dec.Seq, dec.Prev, start.Hash)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700, filepath.Dir(filepath.Dir(path)): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %q = %v, want %v", p, got, want)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, b)
	if rep.Records != 3 || rep.HeadHash != dec.Hash {
		t.Fatalf("Verify = %d records, head %.8s; want 3, %.8s", rep.Records, rep.HeadHash, dec.Hash)
	}
	lines := splitLines(b)
	first, err := ParseLine(lines[0])
	if err != nil || first.Event != EventGenesis || first.Prev != string(zeroHash[:]) {
		t.Fatalf("first line = %+v, %v; want a genesis record with prev of 64 zeros", first, err)
	}
	got, err := ParseLine(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != dec.Hash || got.Session != l.SessionID() || got.Event != EventDecision || !got.Time.Equal(dec.Time) {
		t.Fatalf("ParseLine(line 3) = %+v, want the record Append returned, %+v", got, dec)
	}

	// A second handle continues the chain; nothing is truncated.
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := l2.Log(ctx, NewSessionEnd(0, "", 0))
	l2.Close()
	if err != nil || next.Seq != 4 || next.Prev != dec.Hash {
		t.Fatalf("Append on a second handle = seq %d prev %.8s, %v; want seq 4 after %.8s", next.Seq, next.Prev, err, dec.Hash)
	}
	b2, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b2, b) {
		t.Fatal("reopening changed existing bytes")
	}
}

func TestOpenRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fifo, Options{}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open(fifo) = %v, want ErrNotRegular", err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Errorf("Open(directory) = nil error, want one")
	}
}

func TestAppendRejects(t *testing.T) {
	m := &memFile{}
	l := memLedger(t, m, fixedOptions)
	tests := []struct {
		name   string
		typ    string
		fields any
		want   error
	}{
		{"genesis is reserved", EventGenesis, nil, ErrEventName},
		{"recovery is reserved", EventRecovered, Recovered{}, ErrEventName},
		{"upper case", "Decision", nil, ErrEventName},
		{"quote", `a"b`, nil, ErrEventName},
		{"empty", "", nil, ErrEventName},
		{"not an object", "list", []int{1}, nil},
	}
	for _, tt := range tests {
		_, err := l.Append(ctx, tt.typ, tt.fields)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: Append(%q) = %v, want %v", tt.name, tt.typ, err, tt.want)
		}
	}
	// Redaction truncates long strings; without a limit, the record is
	// too large.
	l2 := memLedger(t, m, Options{RedactLimit: -1})
	_, err := l2.Append(ctx, "big", map[string]string{"x": strings.Repeat("x", MaxLineSize)})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append(1 MiB string, no redact limit) = %v, want ErrTooLarge", err)
	}
	if w, _ := m.counts(); w != 0 {
		t.Errorf("rejected appends made %d writes, want 0", w)
	}
	if _, err := l.Append(ctx, "big", map[string]string{"x": strings.Repeat("x", MaxLineSize)}); err != nil {
		t.Errorf("Append(1 MiB string, default redact limit) = %v, want nil: the string is stored truncated", err)
	}
}

func TestAppendRedacts(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes
	fields := map[string]any{"args": map[string]any{"Password": "hunter2", "path": "a.txt", "body": long}}
	tests := []struct {
		name string
		o    Options
		want map[string]any
	}{
		{"defaults", Options{}, map[string]any{"args": map[string]any{
			"Password": map[string]any{"redacted_sha256": hashValue("hunter2")},
			"path":     "a.txt",
			"body":     map[string]any{"truncated": strings.Repeat("é", 2048), "length": 6000.0, "sha256": hashValue(long)},
		}}},
		{"none", Options{RedactKeys: []string{}, RedactLimit: -1}, fields},
	}
	for _, tt := range tests {
		m := &memFile{}
		l := memLedger(t, m, tt.o)
		rec, err := l.Append(ctx, "call", fields)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := jsonUnmarshal(rec.Data, &got); err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(got, tt.want) {
			t.Errorf("%s: stored data = %s, want %s", tt.name, rec.Data, mustJSON(t, tt.want))
		}
		if tt.name == "defaults" && bytes.Contains(m.bytes(), []byte("hunter2")) {
			t.Errorf("%s: the ledger holds the password in plain text", tt.name)
		}
	}
}

// TestGroupCommit holds the first sync until 63 more appends are queued or
// written: they must go out in at most two more writes and syncs (one batch
// may be written while the first sync runs).
func TestGroupCommit(t *testing.T) {
	m, l, release := heldSync(t)
	var wg sync.WaitGroup
	for range 63 {
		wg.Go(func() {
			if _, err := l.Append(ctx, "later", nil); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(m, l, 63)
	release()
	wg.Wait()
	if w, s := m.counts(); w > 3 || s > 3 {
		t.Fatalf("64 appends made %d writes and %d syncs, want at most 3 of each", w, s)
	}
	if rep := mustVerify(t, m.bytes()); rep.Records != 65 {
		t.Fatalf("Verify = %d records, want 65", rep.Records)
	}
}

// TestGiveUpWhileQueued: an append whose context ends while its batch
// waits gives up, and the writer, which waits for the appenders of a batch
// just synced to wake up before it writes again, does not wait for it.
func TestGiveUpWhileQueued(t *testing.T) {
	m, l, release := heldSync(t)
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := l.Append(cctx, "given_up", nil)
		gaveUp <- err
	}()
	waitQueued(m, l, 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(cancelled context) = %v, want context.Canceled", err)
	}
	release()
	// A hang here is the bug: the writer waiting for the append that gave up.
	if _, err := l.Append(ctx, "later", nil); err != nil {
		t.Fatalf("Append after one that gave up = %v", err)
	}
}

// TestFailClosed injects write and sync errors: the failing Append and every
// later one must fail, the handle must never write or sync again, and the
// error must say what happened.
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name    string
		write   error
		short   int
		sync    error
		op      string
		errno   syscall.Errno
		message string
	}{
		{"write ENOSPC", syscall.ENOSPC, 0, nil, "write", syscall.ENOSPC, "no space left on device"},
		{"partial write ENOSPC", syscall.ENOSPC, 100, nil, "write", syscall.ENOSPC, "no space left on device"},
		{"write EROFS", syscall.EROFS, 0, nil, "write", syscall.EROFS, "read-only file system"},
		{"fdatasync EIO", nil, 0, syscall.EIO, "fdatasync", syscall.EIO, "input/output error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFile{}
			l := memLedger(t, m, fixedOptions)
			if _, err := l.Append(ctx, "ok", nil); err != nil {
				t.Fatal(err)
			}
			m.mu.Lock()
			m.writeErr, m.short, m.syncErr = tt.write, tt.short, tt.sync
			m.mu.Unlock()
			_, err := l.Append(ctx, "fails", nil)
			var we *WriteError
			if !errors.As(err, &we) || we.Op != tt.op || !errors.Is(err, tt.errno) || !errors.Is(err, ErrDead) {
				t.Fatalf("Append = %v, want a %s WriteError matching %v and ErrDead", err, tt.op, tt.errno)
			}
			if !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), "dead") {
				t.Errorf("error = %q, want it to say %q and that the handle is dead", err, tt.message)
			}
			if Hint(err) == "" {
				t.Errorf("Hint(%v) = \"\", want advice", err)
			}
			// Even with the fault gone, the handle stays dead.
			m.mu.Lock()
			m.writeErr, m.syncErr = nil, nil
			m.mu.Unlock()
			w, s := m.counts()
			for range 3 {
				if _, err := l.Append(ctx, "later", nil); !errors.Is(err, ErrDead) || !errors.Is(err, tt.errno) {
					t.Fatalf("Append after the failure = %v, want ErrDead wrapping %v", err, tt.errno)
				}
			}
			if w2, s2 := m.counts(); w2 != w || s2 != s {
				t.Fatalf("dead handle made %d more writes and %d more syncs, want 0", w2-w, s2-s)
			}
			if !errors.Is(l.Err(), ErrDead) {
				t.Fatalf("Err() = %v, want ErrDead", l.Err())
			}
		})
	}
}

func TestClose(t *testing.T) {
	m := &memFile{}
	l := memLedger(t, m, fixedOptions)
	if _, err := l.Append(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l2 := memLedger(t, m, fixedOptions)
	if _, err := l2.Append(cctx, "x", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(cancelled context) = %v, want context.Canceled", err)
	}
}

func TestReplacedLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "x", nil); !errors.Is(err, ErrReplaced) {
		t.Fatalf("Append after rename = %v, want ErrReplaced", err)
	}
}

// TestHandlesInOneProcess uses two handles on one file from one process:
// open file description locks keep them apart as they do processes.
func TestHandlesInOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	var wg sync.WaitGroup
	for range 2 {
		l, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for range 8 {
			wg.Go(func() {
				for range 25 {
					if _, err := l.Append(ctx, "x", nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	b, _ := os.ReadFile(path)
	if rep := mustVerify(t, b); rep.Records != 401 {
		t.Fatalf("Verify = %d records, want 401", rep.Records)
	}
}

// replaceScrubber replaces one value, as the proxy's secrets scrubber does.
type replaceScrubber struct{ value, with string }

func (r replaceScrubber) Scrub(data []byte) []byte {
	return bytes.ReplaceAll(data, []byte(r.value), []byte(r.with))
}

// TestSetScrubber: once a scrubber is set, a value it knows is stored in no
// record, wherever in the data it stands, and the ledger still verifies.
func TestSetScrubber(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const value = "Zq7xK9pLmW3vRt2Y"
	ctx := context.Background()
	before := Decision{Tool: "echo", Verdict: VerdictAllow, Args: map[string]any{"message": value}}
	if _, err := l.Log(ctx, before); err != nil {
		t.Fatal(err)
	}
	l.SetScrubber(replaceScrubber{value, "[redacted: secret s1]"})
	if _, err := l.Log(ctx, Decision{Tool: "nosuch-" + value, Verdict: VerdictDeny, Args: map[string]any{"message": value}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Log(ctx, Outcome{Seq: 2, Name: value, Status: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(value)); n != 1 {
		t.Errorf("the value is stored %d times, want once: only in the record appended before the scrubber was set", n)
	}
	if n := bytes.Count(data, []byte("[redacted: secret s1]")); n != 3 {
		t.Errorf("%d redactions stored, want 3", n)
	}
	if _, err := Verify(bytes.NewReader(data)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
