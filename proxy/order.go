package proxy

import (
	"context"
	"slices"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// The policy judges a path by where it leads when the call is judged, and
// the server acts on it later. A client that pipelines its calls could use
// that gap: a move_file that puts a link in place, then, before it has run,
// a write through where the link will be, judged while the link is not
// there yet; or a roots change that gives a relative path judged against
// the workspace another base before the server resolves it. So the proxy
// orders the calls whose paths it judges (policy.Policy.Touches):
//
//   - a call with path arguments is judged only once every earlier call
//     that may write has been answered (or timed out, or was cancelled);
//   - a call with a relative path is judged only while no roots change is
//     under way (a roots/list of the server awaits the client's answer, or
//     an answer is held);
//   - the client's answer to a roots/list is passed on only once every
//     call with a relative path in flight has been answered: until then the
//     server keeps the roots those calls were judged against.
//
// Until then such a call is parked, in the client's order; the outbox keeps
// its place, so nothing the client sent after it overtakes it. Calls
// without paths (most tools of most servers) are never parked, and the
// client's answers to the server's requests never wait behind a parked call
// (they go to the server at once: the call a server request belongs to may
// be the one everybody waits for).
//
//	reader                         answer to W arrives
//	  W move_file (writes)  ──▶ judged, in flight: writers=1
//	  R write docs/y/…      ──▶ parked
//	                                take(W): writers=0 ──▶ release: judge R
//	                                (R sees the link W made, and is judged by
//	                                 where it really leads)

// orderState is what the ordering needs; guarded by proxy.mu.
type orderState struct {
	writers  int // judged, allowed calls that may write, not yet answered
	relative int // judged, allowed calls with relative paths, not yet answered
	parked   []*judgeJob
	// releasing: a goroutine is working through parked calls and held
	// roots; others leave it to that one.
	releasing bool
	held      *heldRoots
}

// heldRoots is the client's roots answer, checked and recorded, waiting for
// the calls with relative paths to be answered.
type heldRoots struct {
	line []byte
	dirs []string
}

// judgeJob is a client call the policy concerns, from the moment it is read
// to the moment it is judged.
type judgeJob struct {
	msg   message // method and id, copied
	key   string
	call  policy.CallInfo
	args  []byte // copied
	perr  error
	start time.Time
	pd    *pending
	it    *outItem
	// What its paths are (policy.Policy.Touches).
	paths, relative, writes bool
	// granted: a person approved the call, which is judged again (ask.go).
	granted *granted
}

// schedule judges job now, or parks it until the calls before it allow.
// The outbox already holds its place.
func (p *proxy) schedule(ctx context.Context, job *judgeJob) {
	p.mu.Lock()
	if len(p.order.parked) > 0 || !p.mayJudgeLocked(job) {
		p.order.parked = append(p.order.parked, job)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.judgeAndRecord(ctx, job, false)
}

// tryInline judges and records job on the reader's own goroutine, and
// reports whether it did: when the client has sent nothing more yet and
// nothing is queued for the server, there is nothing to overlap the ledger's
// sync with, and handing the record to another goroutine would only add a
// wake-up to every call (a call alone is where latency shows).
//
// A large call is always recorded inline, once what is queued before it has
// gone: queued, it would have to be copied, and the proxy holds one large
// message at a time.
func (p *proxy) tryInline(ctx context.Context, job *judgeJob) bool {
	switch {
	case len(job.it.line) > outboxBytes/4 && !p.parked():
		p.out.waitEmpty()
	case !p.quiet.Load() || !p.out.empty():
		return false
	}
	p.mu.Lock()
	ok := len(p.order.parked) == 0 && p.mayJudgeLocked(job)
	p.mu.Unlock()
	if ok {
		p.judgeAndRecord(ctx, job, true)
	}
	return ok
}

// mayJudgeLocked reports whether nothing in flight holds job back. Call with
// p.mu held.
func (p *proxy) mayJudgeLocked(job *judgeJob) bool {
	switch {
	case job.paths && p.order.writers > 0:
		return false
	case job.relative && (p.roots.asked > 0 || p.order.held != nil):
		return false
	}
	return true
}

// judgeAndRecord judges a call and sends its record to the ledger; the
// call leaves the outbox once the record is durable, or is answered with a
// denial. inline: the call is not in the outbox yet, and the record is
// made on this goroutine (tryInline).
func (p *proxy) judgeAndRecord(ctx context.Context, job *judgeJob, inline bool) {
	p.mu.Lock()
	live := p.fromClient[job.key] == job.pd
	p.mu.Unlock()
	if !live {
		// Cancelled, timed out or failed while parked: nothing to judge.
		p.out.finish(job.it, true)
		return
	}
	d := p.judge(&job.msg, "client", job.call, job.args, job.perr, job.start)
	if d.Verdict == audit.VerdictAsk && !p.remembered(ctx, job, &d) {
		if !inline {
			p.out.finish(job.it, true)
		}
		p.askPerson(ctx, job, d)
		return
	}
	if inline {
		p.recordInline(ctx, job, d)
		return
	}
	if !d.Allowed() {
		// Nothing to forward: the denial waits for its record alone.
		p.out.finish(job.it, true)
		p.take(p.fromClient, job.key)
		p.recordAsync(ctx, &d, func() { p.deny(job.msg.method, job.pd.id, d, job.perr) })
		return
	}
	job.pd.decision = &d
	p.count(job)
	p.recordAsync(ctx, job.pd.decision, func() {
		if job.pd.decision.Allowed() {
			p.out.finish(job.it, false)
			return
		}
		// The ledger failed: the call does not go.
		p.out.finish(job.it, true)
		if p.take(p.fromClient, job.key) == job.pd {
			p.deny(job.msg.method, job.pd.id, *job.pd.decision, nil)
		}
	})
}

// recordInline is judgeAndRecord's end for a call not in the outbox.
func (p *proxy) recordInline(ctx context.Context, job *judgeJob, d audit.Decision) {
	if d.Allowed() {
		p.count(job)
	}
	job.pd.decision = &d
	p.record(ctx, job.pd.decision)
	if job.pd.decision.Allowed() {
		job.it.ready = true
		p.out.push(job.it, true) // the queue is empty: written at once
		return
	}
	if p.take(p.fromClient, job.key) == job.pd {
		p.deny(job.msg.method, job.pd.id, *job.pd.decision, job.perr)
	}
}

// count enters an allowed call in orderState.
func (p *proxy) count(job *judgeJob) {
	p.mu.Lock()
	if job.writes {
		job.pd.writes = true
		p.order.writers++
	}
	if job.relative {
		job.pd.relative = true
		p.order.relative++
	}
	p.mu.Unlock()
}

// parked reports whether calls wait to be judged.
func (p *proxy) parked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.order.parked) > 0
}

// leftLocked notes that a client request left the table (answered, timed
// out, cancelled, failed). Call with p.mu held, then release without it.
func (p *proxy) leftLocked(pd *pending) {
	if pd.progressKey != "" {
		delete(p.progress, pd.progressKey)
		pd.progressKey = ""
	}
	if pd.writes {
		pd.writes = false
		p.order.writers--
	}
	if pd.relative {
		pd.relative = false
		p.order.relative--
	}
}

// deliverRoots passes the client's checked roots answer on to the server,
// or holds it while calls with relative paths are in flight. The roots
// become bases when the server is told them.
func (p *proxy) deliverRoots(line []byte, dirs []string) {
	p.mu.Lock()
	if p.order.relative > 0 {
		p.order.held = &heldRoots{line: clone(line), dirs: dirs}
		p.mu.Unlock()
		return
	}
	p.addBasesLocked(dirs)
	p.rootsAnsweredLocked()
	p.mu.Unlock()
	p.forwarded(p.toServer.writeLine(line))
	p.release()
}

func (p *proxy) addBasesLocked(dirs []string) {
	for _, d := range dirs {
		if !slices.Contains(p.roots.bases, d) {
			p.roots.bases = append(p.roots.bases, d)
		}
	}
}

// release passes a held roots answer on once no call with a relative path
// is in flight, and judges parked calls, in order, while nothing holds them
// back. Call it without p.mu after anything that may unblock them.
func (p *proxy) release() {
	p.mu.Lock()
	if p.order.releasing {
		p.mu.Unlock()
		return
	}
	p.order.releasing = true
	for {
		if h := p.order.held; h != nil && p.order.relative == 0 {
			p.order.held = nil
			p.addBasesLocked(h.dirs)
			p.rootsAnsweredLocked()
			p.mu.Unlock()
			p.forwarded(p.toServer.writeLine(h.line))
			p.mu.Lock()
			continue
		}
		if len(p.order.parked) == 0 || !p.mayJudgeLocked(p.order.parked[0]) {
			break
		}
		job := p.order.parked[0]
		p.order.parked[0] = nil
		p.order.parked = p.order.parked[1:]
		p.mu.Unlock()
		p.judgeAndRecord(p.ctx, job, false)
		p.mu.Lock()
	}
	p.order.releasing = false
	p.mu.Unlock()
}
