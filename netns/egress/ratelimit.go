package egress

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// Limited is a [Recorder] that writes a denial at most once a window for
// each kind of denial, so that a sandbox repeating a refused attempt in a
// loop cannot flood the ledger, and counts the ones it leaves out. Make
// one with [RateLimit]. Safe for concurrent use.
//
// Two denials are of a kind when they agree on the record's type, the
// protocol or DNS type, the name, the port, the rule and the reason: what
// a reader of the ledger needs to know what was refused and why. The
// connection number, the address seen inside and the SNI are left out
// (an address literal and an SNI are part of the reason of their
// refusals anyway). A denial of a kind already written within the window
// is not written; Record returns nil for it, and the caller refuses what
// it records as it would have. The next one of the kind written, after
// the window, carries in Suppressed the number left out before it, and
// [Limited.Flush] writes the counts still pending at the session's end.
// Every other record, allowed connections and answers included, is
// written as it comes.
type Limited struct {
	rec    Recorder
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	kinds map[denialKind]*denials
	// The budget of denial records per window, all kinds together, and
	// the denials left out for want of it (over), whose count is
	// written with the last of them.
	budgetStart time.Time
	budgetUsed  int
	over        denials
}

// MaxDenialRecords is the most denial records written per window, all
// kinds together: a sandbox that tries ever new names, ports or
// addresses makes a new kind each time, and would otherwise fill the
// ledger. The ones beyond are counted, and written as one record carrying
// the count (at the next window, and at Flush).
const MaxDenialRecords = 200

// denialKind is what makes two denials identical; see [Limited].
type denialKind struct {
	event, proto, name string
	port               uint16
	rule, reason       string
}

// denials is the state of one kind: when it was last written, and how
// many were left out since, the last of which is kept for Flush.
type denials struct {
	written time.Time
	skipped int
	last    audit.Event
}

// sweepAt is the number of kinds above which Record forgets the kinds
// whose window has passed with nothing left out, so that a sandbox that
// tries ever new names does not grow the table without bound.
const sweepAt = 4096

// RateLimit returns r with identical denials written at most once a
// window.
func RateLimit(r Recorder, window time.Duration) *Limited {
	return &Limited{rec: r, window: window, now: time.Now, kinds: map[denialKind]*denials{}}
}

// Record implements [Recorder].
func (l *Limited) Record(ctx context.Context, ev audit.Event) error {
	k, ok := kindOf(ev)
	if !ok {
		return l.rec.Record(ctx, ev)
	}
	l.mu.Lock()
	now := l.now()
	d := l.kinds[k]
	if d != nil && now.Sub(d.written) < l.window {
		d.skipped++
		d.last = ev
		l.mu.Unlock()
		return nil
	}
	var overN int
	var overEv audit.Event
	if now.Sub(l.budgetStart) >= l.window {
		l.budgetStart, l.budgetUsed = now, 0
		overN, overEv = l.over.skipped, l.over.last
		l.over.skipped, l.over.last = 0, nil
	}
	if l.budgetUsed >= MaxDenialRecords {
		l.over.skipped++
		l.over.last = ev
		l.mu.Unlock()
		return nil
	}
	l.budgetUsed++
	if d == nil {
		if len(l.kinds) >= sweepAt {
			l.sweep(now)
		}
		d = &denials{}
		l.kinds[k] = d
	}
	prev, n := d.written, d.skipped
	d.written, d.skipped, d.last = now, 0, nil
	l.mu.Unlock()

	if overN > 0 {
		l.recordOver(ctx, overEv, overN)
	}

	err := l.rec.Record(ctx, withSuppressed(ev, n))
	if err != nil {
		// Not written: the next denial of the kind is written again,
		// with the count this one should have carried.
		l.mu.Lock()
		d.written = prev
		d.skipped += n
		l.mu.Unlock()
	}
	return err
}

// sweep forgets the kinds whose window has passed with none left out.
// Called with l.mu held.
func (l *Limited) sweep(now time.Time) {
	for k, d := range l.kinds {
		if d.skipped == 0 && now.Sub(d.written) >= l.window {
			delete(l.kinds, k)
		}
	}
}

// Flush writes, for each kind with denials left out since its last
// record, the last one left out, carrying their count in Suppressed. It
// is called at the session's end, so that the ledger's counts add up. It
// returns the first error of the recorder; the counts not written stay
// pending for another Flush.
func (l *Limited) Flush(ctx context.Context) error {
	l.mu.Lock()
	overN, overEv := l.over.skipped, l.over.last
	l.over.skipped, l.over.last = 0, nil
	l.mu.Unlock()
	if overN > 0 {
		if err := l.recordOver(ctx, overEv, overN); err != nil {
			return err
		}
	}
	l.mu.Lock()
	var todo []*denials
	for _, d := range l.kinds {
		if d.skipped > 0 {
			todo = append(todo, d)
		}
	}
	l.mu.Unlock()
	for _, d := range todo {
		l.mu.Lock()
		n, ev := d.skipped, d.last
		d.skipped, d.last = 0, nil
		l.mu.Unlock()
		if n == 0 {
			continue
		}
		if err := l.rec.Record(ctx, withSuppressed(ev, n-1)); err != nil {
			l.mu.Lock()
			d.skipped += n
			if d.last == nil {
				d.last = ev
			}
			l.mu.Unlock()
			return err
		}
	}
	return nil
}

// kindOf returns the kind of a denial, and false for any other record.
func kindOf(ev audit.Event) (denialKind, bool) {
	switch e := ev.(type) {
	case *audit.NetDNS:
		if e == nil {
			return denialKind{}, false
		}
		return kindOf(*e)
	case *audit.NetConnect:
		if e == nil {
			return denialKind{}, false
		}
		return kindOf(*e)
	case audit.NetDNS:
		if e.Verdict != audit.VerdictDeny {
			return denialKind{}, false
		}
		return denialKind{event: audit.EventNetDNS, proto: e.Type, name: e.Name, rule: e.Rule}, true
	case audit.NetConnect:
		if e.Verdict != audit.VerdictDeny {
			return denialKind{}, false
		}
		return denialKind{event: audit.EventNetConnect, proto: e.Proto, name: e.Name, port: e.Port, rule: e.Rule, reason: e.Reason}, true
	}
	return denialKind{}, false
}

// withSuppressed returns a copy of the denial ev with Suppressed set to n.
// A record written by Flush is itself one of the denials left out, so it
// carries the count of the others.
func withSuppressed(ev audit.Event, n int) audit.Event {
	switch e := ev.(type) {
	case *audit.NetDNS:
		c := *e
		c.Suppressed = n
		return c
	case *audit.NetConnect:
		c := *e
		c.Suppressed = n
		return c
	case audit.NetDNS:
		e.Suppressed = n
		return e
	case audit.NetConnect:
		e.Suppressed = n
		return e
	}
	return ev
}

// recordOver writes the last of n denials left out for want of budget,
// carrying the count of the others (a connection's reason says they were
// of any kind; a DNS record has no reason to say it in); a write that
// fails puts them back.
func (l *Limited) recordOver(ctx context.Context, ev audit.Event, n int) error {
	note := fmt.Sprintf(" (and %d other denials of any kind beyond the %d records a window)", n-1, MaxDenialRecords)
	out := withSuppressed(ev, n-1)
	switch e := out.(type) {
	case audit.NetConnect:
		e.Reason += note
		out = e
	}
	err := l.rec.Record(ctx, out)
	if err != nil {
		l.mu.Lock()
		l.over.skipped += n
		if l.over.last == nil {
			l.over.last = ev
		}
		l.mu.Unlock()
	}
	return err
}
