package proxy

import (
	"context"
	"fmt"
	"sync"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// Decisions of client calls go to the Recorder from one goroutine at a
// time, which takes every decision waiting when it starts and hands them
// over together (BatchRecorder): sixteen calls in flight cost one write and
// one sync, and one wake-up of the goroutine, not sixteen. What each
// decision was for (the call leaving the outbox, or its denial) runs when
// its record is durable, or has failed.
//
//	reader: judge A ─▶ recq [A]        (starts the recording goroutine)
//	reader: judge B ─▶ recq [A B]
//	recording: takes [A B] ─▶ RecordAll ─▶ durable ─▶ then(A), then(B)
//	                                                 (the outbox writes A, B)

// recJob is a decision waiting for its record, and what follows it.
type recJob struct {
	d    *audit.Decision
	then func()
}

// recQueue holds the decisions waiting; guarded by its own mutex.
type recQueue struct {
	mu   sync.Mutex
	jobs []recJob
	busy bool // the recording goroutine runs
}

// recordAsync records d on the recording goroutine and then runs then;
// d is a denial by policy.RuleLedger by then if it could not be recorded.
func (p *proxy) recordAsync(ctx context.Context, d *audit.Decision, then func()) {
	q := &p.recq
	q.mu.Lock()
	q.jobs = append(q.jobs, recJob{d, then})
	if q.busy {
		q.mu.Unlock()
		return
	}
	q.busy = true
	p.recorders.Add(1)
	q.mu.Unlock()
	go p.recordLoop(ctx)
}

// recordLoop records what waits, in batches, until nothing does.
func (p *proxy) recordLoop(ctx context.Context) {
	defer p.recorders.Done()
	q := &p.recq
	for {
		q.mu.Lock()
		jobs := q.jobs
		q.jobs = nil
		if len(jobs) == 0 {
			q.busy = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		p.recordAll(ctx, jobs)
		// The calls these decisions let through leave together.
		p.toServer.hold.Store(true)
		for _, j := range jobs {
			j.then()
		}
		p.toServer.batch(!p.quiet.Load())
	}
}

// recordAll records the decisions of jobs, together when the Recorder can.
func (p *proxy) recordAll(ctx context.Context, jobs []recJob) {
	br, ok := p.cfg.Recorder.(BatchRecorder)
	if !ok || len(jobs) == 1 || p.stopped.Load() {
		for _, j := range jobs {
			p.record(ctx, j.d)
		}
		return
	}
	evs := make([]audit.Event, len(jobs))
	for i, j := range jobs {
		evs[i] = *j.d
	}
	for i, err := range br.RecordAll(ctx, evs) {
		if err != nil {
			d := jobs[i].d
			p.recorderFailed(fmt.Errorf("record decision %d on %s %q: %w", d.Seq, d.Method, d.Tool, err))
			d.Verdict, d.Rule, d.Matcher = policy.Deny, policy.RuleLedger, ""
			d.Reason = fmt.Sprintf("the audit ledger could not record the decision (%v), and vm-run denies what it cannot record", err)
		}
	}
}
