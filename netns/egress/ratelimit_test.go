package egress

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimited(window time.Duration) (*Limited, *fakeRecorder, *fakeClock) {
	rec := &fakeRecorder{}
	clock := &fakeClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	l := RateLimit(rec, window)
	l.now = clock.now
	return l, rec, clock
}

// suppressed returns the Suppressed field of a written record.
func suppressed(t *testing.T, ev audit.Event) int {
	t.Helper()
	switch e := ev.(type) {
	case audit.NetDNS:
		return e.Suppressed
	case audit.NetConnect:
		return e.Suppressed
	}
	t.Fatalf("record %T is not a denial", ev)
	return 0
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	l, rec, clock := newLimited(10 * time.Second)
	deny := func(conn uint64, addr string) audit.NetConnect {
		return audit.NetConnect{Conn: conn, Proto: "tcp", Name: "example.com", Address: addr, Port: 80,
			Verdict: audit.VerdictDeny, Reason: "no rule allows example.com:80"}
	}
	record := func(ev audit.Event) {
		t.Helper()
		if err := l.Record(ctx, ev); err != nil {
			t.Fatalf("Record(%+v) = %v", ev, err)
		}
	}
	// The first denial is written; four more within the window are not,
	// though they differ in Conn and Address.
	for i := range 5 {
		record(deny(uint64(i+1), "198.18.0.3:80"))
		clock.advance(time.Second)
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d records after 5 identical denials within the window, want 1", n)
	}
	// Denials of another kind, and allowed records, are written as they
	// come, within the window too.
	other := deny(6, "198.18.0.3:81")
	other.Port = 81
	other.Reason = "no rule allows example.com:81"
	record(other)
	dns := audit.NetDNS{Name: "example.com", Type: "A", Verdict: audit.VerdictDeny}
	record(dns)
	aaaa := dns
	aaaa.Type = "AAAA"
	record(aaaa)
	record(&audit.NetDNS{Name: "example.com", Type: "A", Verdict: audit.VerdictDeny}) // left out
	allow := audit.NetConnect{Conn: 7, Proto: "tcp", Name: "api.github.com", Port: 443, Verdict: audit.VerdictAllow, Rule: "api.github.com:443"}
	for range 3 {
		record(allow)
		record(&allow)
		record(audit.NetClose{Conn: 7, Port: 443})
	}
	if n := len(rec.all()); n != 1+3+9 {
		t.Fatalf("%d records, want 13: every other kind and every allowed record", n)
	}
	// After the window, the next one is written with the count left out.
	clock.advance(10 * time.Second)
	record(deny(8, "198.18.0.3:80"))
	evs := rec.all()
	last := evs[len(evs)-1].(audit.NetConnect)
	if last.Conn != 8 || last.Suppressed != 4 {
		t.Errorf("record after the window: conn %d, suppressed %d, want conn 8, 4 suppressed", last.Conn, last.Suppressed)
	}
	if first := evs[0].(audit.NetConnect); first.Suppressed != 0 || first.Conn != 1 {
		t.Errorf("first record %+v, want conn 1 with none suppressed", first)
	}
	// The window restarts at that record.
	clock.advance(9 * time.Second)
	record(deny(9, "198.18.0.3:80"))
	if n := len(rec.all()); n != 14 {
		t.Fatalf("%d records, want 14: the window restarted at the last one written", n)
	}
	// Flush writes the last of each kind left out, its count being the
	// others; the records and their counts add up to the denials.
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs = rec.all()
	if len(evs) != 16 {
		t.Fatalf("%d records after Flush, want 16", len(evs))
	}
	flushed := map[string]audit.Event{}
	for _, ev := range evs[14:] {
		flushed[ev.EventType()] = ev
	}
	if c, ok := flushed[audit.EventNetConnect].(audit.NetConnect); !ok || c.Conn != 9 || c.Suppressed != 0 {
		t.Errorf("Flush wrote %+v, want conn 9 with 0 suppressed", flushed[audit.EventNetConnect])
	}
	if d, ok := flushed[audit.EventNetDNS].(audit.NetDNS); !ok || d.Type != "A" || d.Suppressed != 0 {
		t.Errorf("Flush wrote %+v, want the A denial", flushed[audit.EventNetDNS])
	}
	denials := 0
	for _, ev := range evs {
		if c, ok := ev.(audit.NetConnect); ok && c.Verdict == audit.VerdictDeny && c.Port == 80 {
			denials += 1 + c.Suppressed
		}
	}
	if denials != 7 {
		t.Errorf("records and counts add up to %d port-80 denials, want 7", denials)
	}
	// Nothing is left for a second Flush.
	if err := l.Flush(ctx); err != nil || len(rec.all()) != 16 {
		t.Errorf("second Flush = %v with %d records, want nothing written", err, len(rec.all()))
	}
}

func TestRateLimitRecordFails(t *testing.T) {
	ctx := context.Background()
	l, rec, clock := newLimited(10 * time.Second)
	deny := audit.NetDNS{Name: "example.com", Type: "A", Verdict: audit.VerdictDeny}
	l.Record(ctx, deny)
	l.Record(ctx, deny)
	l.Record(ctx, deny)
	clock.advance(11 * time.Second)
	// The write that would carry the 2 left out fails: the caller is
	// told, and the next denial is written, carrying them and this one.
	rec.err = errDiskFull
	if err := l.Record(ctx, deny); err != errDiskFull {
		t.Fatalf("Record with a failing recorder = %v, want %v", err, errDiskFull)
	}
	rec.err = nil
	if err := l.Record(ctx, deny); err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	if len(evs) != 2 || suppressed(t, evs[1]) != 2 {
		t.Errorf("records %+v, want the second to carry 2 suppressed", evs)
	}
	// A failing Flush keeps its counts for the next.
	l.Record(ctx, deny)
	l.Record(ctx, deny)
	rec.err = errDiskFull
	if err := l.Flush(ctx); err != errDiskFull {
		t.Fatalf("Flush with a failing recorder = %v", err)
	}
	rec.err = nil
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs = rec.all()
	if len(evs) != 3 || suppressed(t, evs[2]) != 1 {
		t.Errorf("records %+v, want a third carrying 1 suppressed", evs)
	}
}

func TestRateLimitSweep(t *testing.T) {
	ctx := context.Background()
	l, _, clock := newLimited(time.Second)
	for i := range sweepAt {
		// A window per MaxDenialRecords kinds: the budget's.
		if i > 0 && i%MaxDenialRecords == 0 {
			clock.advance(time.Second)
		}
		l.Record(ctx, audit.NetConnect{Proto: "tcp", Port: uint16(i + 1), Verdict: audit.VerdictDeny})
	}
	// One kind with a count pending, which the sweep must keep.
	l.Record(ctx, audit.NetConnect{Proto: "tcp", Port: sweepAt, Verdict: audit.VerdictDeny})
	clock.advance(2 * time.Second)
	l.Record(ctx, audit.NetConnect{Proto: "tcp", Port: 65535, Verdict: audit.VerdictDeny})
	if n := len(l.kinds); n != 2 {
		t.Errorf("%d kinds after the sweep, want 2 (the new one and the one with a count)", n)
	}
}

// TestRateLimitBudget: denials of ever new kinds are written at most
// MaxDenialRecords a window; the rest are counted into one record that
// says so. The probe: the same number of denials spread over windows are
// all written.
func TestRateLimitBudget(t *testing.T) {
	ctx := context.Background()
	l, rec, _ := newLimited(time.Second)
	const n = 3 * MaxDenialRecords
	for i := range n {
		l.Record(ctx, audit.NetConnect{Proto: "udp", Port: uint16(i + 1), Verdict: audit.VerdictDeny, Reason: "r"})
	}
	if got := len(rec.all()); got != MaxDenialRecords {
		t.Fatalf("%d records in one window, want %d", got, MaxDenialRecords)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	last, ok := evs[len(evs)-1].(audit.NetConnect)
	if len(evs) != MaxDenialRecords+1 || !ok || last.Suppressed != n-MaxDenialRecords-1 || !strings.Contains(last.Reason, "other denials of any kind") {
		t.Errorf("after Flush: %d records, last %+v; want one more carrying %d", len(evs), evs[len(evs)-1], n-MaxDenialRecords-1)
	}

	// The probe: a window each, every one written.
	l2, rec2, clock2 := newLimited(time.Second)
	for i := range n {
		if i%MaxDenialRecords == 0 {
			clock2.advance(time.Second)
		}
		l2.Record(ctx, audit.NetConnect{Proto: "udp", Port: uint16(i + 1), Verdict: audit.VerdictDeny, Reason: "r"})
	}
	if got := len(rec2.all()); got != n {
		t.Errorf("spread over windows: %d records, want %d", got, n)
	}
}
