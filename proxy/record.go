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

// Ledger returns the Recorder that appends to l: Record is [audit.Ledger.Log]
// (synced), Queue is [audit.Ledger.AppendQueued] (synced by the next record).
func Ledger(l *audit.Ledger) Recorder { return ledgerRecorder{l} }

type ledgerRecorder struct{ l *audit.Ledger }

func (r ledgerRecorder) Record(ctx context.Context, ev audit.Event) error {
	_, err := r.l.Log(ctx, ev)
	return err
}

func (r ledgerRecorder) Queue(ctx context.Context, ev audit.Event) error {
	_, err := r.l.AppendQueued(ctx, ev.EventType(), ev)
	return err
}

// Discard is a Recorder that keeps nothing, for running without a ledger.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(context.Context, audit.Event) error { return nil }
func (discard) Queue(context.Context, audit.Event) error  { return nil }
