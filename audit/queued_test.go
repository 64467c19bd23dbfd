package audit

import (
	"bytes"
	"context"
	"testing"
)

// TestAppendQueued: a queued record costs no sync of its own; the next
// Append's sync, or Close's, covers it; the chain holds either way.
func TestAppendQueued(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		ops       []bool // true: AppendQueued, false: Append
		wantSyncs int    // after Close; the genesis record is synced on open
	}{
		{"queued alone, synced by Close", []bool{true}, 1},
		{"queued then durable share the durable sync", []bool{true, false}, 1},
		{"durable, queued, durable", []bool{false, true, false}, 2},
		{"durable then queued: Close syncs the queued one", []bool{false, true}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFile{}
			l, err := newLedger("mem", fixedOptions, m)
			if err != nil {
				t.Fatal(err)
			}
			_, before := m.counts()
			for i, queued := range tt.ops {
				f := l.Append
				if queued {
					f = l.AppendQueued
				}
				if _, err := f(ctx, "outcome", map[string]any{"n": i}); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			if _, syncs := m.counts(); syncs-before != tt.wantSyncs {
				t.Errorf("syncs after open = %d, want %d", syncs-before, tt.wantSyncs)
			}
			rep, err := Verify(bytes.NewReader(m.bytes()))
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if want := 1 + len(tt.ops); rep.Records != want {
				t.Errorf("Verify: %d records, want %d", rep.Records, want)
			}
		})
	}
}
