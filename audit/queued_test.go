package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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

// TestEnqueue: an enqueued record is not waited on; it is written with the
// next batch and made durable by the next Append's sync or Close's, in the
// chain in the order of the calls.
func TestEnqueue(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		ops  []bool // true: Enqueue, false: Append
	}{
		{"enqueued alone, written and synced by Close", []bool{true}},
		{"enqueued then appended", []bool{true, false}},
		{"many enqueued between appends", []bool{false, true, true, true, false, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFile{}
			l, err := newLedger("mem", fixedOptions, m)
			if err != nil {
				t.Fatal(err)
			}
			for i, enq := range tt.ops {
				if enq {
					err = l.Enqueue(ctx, "outcome", map[string]any{"n": i})
				} else {
					_, err = l.Append(ctx, "outcome", map[string]any{"n": i})
				}
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			var got []string
			err = ReadRecords(bytes.NewReader(m.bytes()), func(_ int, _ []byte, r Record, err error) error {
				if err == nil && r.Event == "outcome" {
					got = append(got, string(r.Data))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.ops {
				if want := fmt.Sprintf(`{"n":%d}`, i); i >= len(got) || got[i] != want {
					t.Fatalf("records %q, want {\"n\":0} ... {\"n\":%d} in order", got, len(tt.ops)-1)
				}
			}
			if _, err := Verify(bytes.NewReader(m.bytes())); err != nil {
				t.Errorf("Verify = %v", err)
			}
			if err := l.Enqueue(ctx, "outcome", nil); !errors.Is(err, ErrClosed) {
				t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// TestLogAll: events logged together are in the file in order, share a
// sync, and an event that cannot be encoded fails alone.
func TestLogAll(t *testing.T) {
	m := &memFile{}
	l, err := newLedger("mem", fixedOptions, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Log(context.Background(), NewSessionEnd(0, "", 0)); err != nil {
		t.Fatal(err)
	}
	_, before := m.counts()
	evs := []Event{benchDecision(1), benchDecision(2), Decision{Tool: "x", Args: map[string]any{"bad": make(chan int)}}, benchDecision(3)}
	errs := l.LogAll(context.Background(), evs)
	for i, err := range errs {
		if (err != nil) != (i == 2) {
			t.Errorf("LogAll error %d = %v, want an error only for the event that cannot be encoded", i, err)
		}
	}
	if _, after := m.counts(); after-before != 1 {
		t.Errorf("LogAll made %d syncs, want 1", after-before)
	}
	l.Close()
	rep, err := Verify(bytes.NewReader(m.bytes()))
	if err != nil || rep.Records != 5 {
		t.Errorf("Verify = %+v, %v; want 5 intact records", rep, err)
	}
}

// TestEnqueueAlone: records nobody waits for are written on their own
// after lazyDelay when no append takes them along.
func TestEnqueueAlone(t *testing.T) {
	m := &memFile{}
	l, err := newLedger("mem", fixedOptions, m)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Enqueue(context.Background(), "outcome", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * lazyDelay)
	for !bytes.Contains(m.bytes(), []byte(`{"n":1}`)) {
		if time.Now().After(deadline) {
			t.Fatalf("an enqueued record alone was not written within %v", 10*lazyDelay)
		}
		time.Sleep(lazyDelay / 5)
	}
}
