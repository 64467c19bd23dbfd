package proxy

import (
	"context"

	"github.com/vm-run/vm-run/audit"
)

// Recorder receives the proxy's records: a [audit.Decision] for every
// judged call, an [audit.Roots] for every roots answer it passes on, and an
// [audit.Outcome] for how every allowed call ended. The audit ledger is the
// production Recorder ([Ledger]).
type Recorder interface {
	// Record returns only when ev is durable. The proxy calls it before
	// the decision takes effect (the call forwarded, the denial sent, the
	// roots passed on); if it fails, the call is denied ([policy.RuleLedger])
	// or the roots answer withheld, and the failure reported.
	Record(ctx context.Context, ev audit.Event) error
	// Queue writes ev and may return before it is durable: the proxy uses
	// it for outcomes, whose call has already happened at the server; the
	// next Record makes them durable. If it fails, the requester gets an
	// error instead of the answer.
	Queue(ctx context.Context, ev audit.Event) error
}

// BatchRecorder is a Recorder that can make several records durable at
// once. When the decisions of concurrent calls wait together, the proxy
// hands them over in one RecordAll, so that they share a write and a sync.
type BatchRecorder interface {
	Recorder
	// RecordAll makes evs durable, in order, as Record each would, and
	// returns an error per event (nil where it is durable).
	RecordAll(ctx context.Context, evs []audit.Event) []error
}

// Ledger returns the Recorder that appends to l: Record is [audit.Ledger.Log]
// (synced), Queue is [audit.Ledger.Enqueue] (written with the next batch,
// synced by the next record, never waited on).
func Ledger(l *audit.Ledger) Recorder { return ledgerRecorder{l} }

type ledgerRecorder struct{ l *audit.Ledger }

func (r ledgerRecorder) Record(ctx context.Context, ev audit.Event) error {
	_, err := r.l.Log(ctx, ev)
	return err
}

func (r ledgerRecorder) RecordAll(ctx context.Context, evs []audit.Event) []error {
	return r.l.LogAll(ctx, evs)
}

func (r ledgerRecorder) Queue(ctx context.Context, ev audit.Event) error {
	return r.l.Enqueue(ctx, ev.EventType(), ev)
}

// Discard is a Recorder that keeps nothing, for running without a ledger.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(context.Context, audit.Event) error { return nil }
func (discard) Queue(context.Context, audit.Event) error  { return nil }
