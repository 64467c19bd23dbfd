package egress_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// ledgerEvents reads the event names of the ledger at path, genesis and
// session records aside.
func ledgerEvents(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []string
	err = audit.ReadRecords(f, func(_ int, _ []byte, rec audit.Record, err error) error {
		if err != nil {
			return err
		}
		if rec.Event == audit.EventNetConnect || rec.Event == audit.EventNetClose {
			evs = append(evs, rec.Event)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A decision is in the file when Record returns; a NetClose is queued
// and goes out, in order, with the next decision.
func TestLedgerRecorder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := audit.Open(path, audit.Options{Profile: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rec := egress.LedgerRecorder(l)
	ctx := context.Background()
	if err := rec.Record(ctx, audit.NetConnect{Conn: 1, Name: "api.test", Port: 443, Verdict: audit.VerdictAllow}); err != nil {
		t.Fatal(err)
	}
	if got := ledgerEvents(t, path); len(got) != 1 {
		t.Fatalf("after the decision the ledger holds %v, want the net_connect", got)
	}
	if err := rec.Record(ctx, audit.NetClose{Conn: 1, Name: "api.test", Port: 443, BytesOut: 3}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Record(ctx, audit.NetConnect{Conn: 2, Name: "api.test", Port: 443, Verdict: audit.VerdictDeny, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	want := []string{audit.EventNetConnect, audit.EventNetClose, audit.EventNetConnect}
	if got := ledgerEvents(t, path); !equal(got, want) {
		t.Fatalf("ledger holds %v, want %v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Neither kind is dropped quietly once the ledger is gone.
	for _, ev := range []audit.Event{audit.NetConnect{Conn: 3, Verdict: audit.VerdictAllow}, audit.NetClose{Conn: 3}} {
		if err := rec.Record(ctx, ev); err == nil {
			t.Errorf("Record(%T) on a closed ledger = nil, want an error", ev)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
