package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/proxy/approval"
)

// A call under an ask rule waits for a person, and the proxy goes on
// serving everything else meanwhile: the call leaves the outbox (nothing
// the client sends later queues behind it), its question goes to a channel
// on a goroutine of its own, and only a grant puts it back, at the end of
// the outbox, to be judged again as any call is.
//
//	reader                 asking goroutine                 person
//	  judge C: ask ──▶ record decision (ask), approval_requested
//	  (reads on: pings,                 Ask(question) ──────────▶ shown
//	   other calls)                                 ◀──────────── approve
//	                       record approval_granted
//	                       push C at the outbox's end, schedule C
//	  judge C again: the grant covers it ──▶ decision (allow) durable ──▶ C sent
//
// The second judgement is the one that counts: the paths are resolved
// anew, and the grant covers the call only when its grant key (the same
// kind, name, rule, arguments and resolved paths: policy.GrantKey) is the
// one the person approved. A call whose paths now lead elsewhere is
// denied; asking again would let a client swap links under a question.
//
// A question ends without an answer when its rule's timeout passes
// (approval_expired "timeout", the call denied), when the client cancels
// the call (approval_expired "cancelled", nothing sent to anyone), or when
// the session ends (approval_expired "session end"). A grant for the rule's
// TTL is remembered for the session: the same call again within it is
// allowed without a question, recorded as approval_granted through
// audit.ChannelRemembered.

// Causes of a question's end without an answer.
var (
	errAskTimeout   = errors.New("timeout")
	errAskCancelled = errors.New("cancelled")
	errAskEnd       = errors.New("session end")
)

// asking is the state of a call waiting for a person, on its pending.
type asking struct {
	cancel context.CancelCauseFunc
}

// grant is a person's yes for a rule's TTL; guarded by proxy.mu.
type grant struct {
	id    string
	until time.Time
}

// askState is the proxy's approvals; guarded by proxy.mu.
type askState struct {
	// grants are the TTL grants of the session, by grant key.
	grants map[string]grant
	// elicit is the client's elicitation channel, once the client has
	// declared the capability (elicit.go).
	elicit *elicitor
}

// newQuestionID returns a question ID: short enough to type, too random
// to guess (40 bits).
func newQuestionID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// approver returns the channel a question goes to: the client itself when
// it declared elicitation, else Config.Approver; nil when there is none.
func (p *proxy) approver() approval.Approver {
	if e := p.elicitor(); e != nil {
		return e
	}
	if p.cfg.Approver != nil {
		return p.cfg.Approver
	}
	return nil
}

// remembered turns an ask decision into an allow when a grant of this
// session covers the call: the person's answer to this very call (job.granted),
// or a TTL grant for the same call still running. It records the grant of a
// remembered one first. It reports false when the call must be asked.
func (p *proxy) remembered(ctx context.Context, job *judgeJob, d *audit.Decision) bool {
	key := policy.GrantKey(*d, p.judgedCall(job.call))
	if job.granted != nil {
		if job.granted.key != key {
			d.Verdict = policy.Deny
			d.Reason = "what the call leads to changed while it waited for approval (" + d.Reason + "); it was not sent"
			return true
		}
		d.Verdict = policy.Allow
		d.Reason = fmt.Sprintf("approved by %s (question %s)", job.granted.by, job.granted.id)
		return true
	}
	p.mu.Lock()
	g, ok := p.ask.grants[key]
	p.mu.Unlock()
	if !ok || !time.Now().Before(g.until) {
		return false
	}
	ev := audit.ApprovalGranted{ID: g.id, Channel: audit.ChannelRemembered, By: g.id, Scope: audit.ScopeTTL,
		TTLNS: int64(time.Until(g.until)), Kind: d.Kind, Name: d.Tool, Args: d.Args, Rule: d.Rule}
	if err := p.cfg.Recorder.Record(ctx, ev); err != nil {
		p.recorderFailed(fmt.Errorf("record remembered grant %s: %w", g.id, err))
		d.Verdict, d.Rule, d.Matcher = policy.Deny, policy.RuleLedger, ""
		d.Reason = fmt.Sprintf("the audit ledger could not record the grant (%v), and vm-run denies what it cannot record", err)
		return true
	}
	d.Verdict = policy.Allow
	d.Reason = fmt.Sprintf("approved for the rule's ttl by question %s, until %s", g.id, g.until.UTC().Format(time.RFC3339))
	return true
}

// askPerson handles a call the policy holds for a person: it records the
// decision and the question, puts the question on a goroutine of its own,
// and returns at once. The call is no longer in the outbox.
func (p *proxy) askPerson(ctx context.Context, job *judgeJob, d audit.Decision) {
	params, ok := p.policy.AskRule(d.Rule)
	if d.Rule == RulePins {
		// A changed tool's call (pinning.go): once only, and the
		// default timeout.
		params, ok = policy.AskParams{Timeout: policy.DefaultAskTimeout}, true
	}
	ap := p.approver()
	switch {
	case !ok:
		// policy.AskRule's contract: an ask it cannot explain is a denial.
		d.Verdict = policy.Deny
		d.Reason = "vm-run found no ask rule " + d.Rule + " to put the question with (" + d.Reason + ")"
	case ap == nil:
		d.Verdict = policy.Deny
		d.Reason = "this call needs a person's approval (" + d.Reason + "), but the client cannot be asked " +
			"(it did not declare elicitation) and no approval channel is open (`vm-run approvals`)"
	}
	if d.Verdict != audit.VerdictAsk {
		p.take(p.fromClient, job.key)
		p.recordAsync(ctx, &d, func() { p.deny(job.msg.method, job.pd.id, d, nil) })
		return
	}
	ttl, timeout := params.TTL, params.Timeout
	args, hidden := shownArgs(d.Args)
	q := approval.Question{ID: newQuestionID(), Server: p.cfg.ServerName, Kind: d.Kind, Name: d.Tool,
		Args: args, Hidden: hidden, Paths: d.Paths, Rule: d.Rule, Reason: d.Reason, TTL: ttl, Deadline: time.Now().Add(timeout)}
	qctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	qctx, stopTimer := context.WithDeadlineCause(qctx, q.Deadline, errAskTimeout)
	p.mu.Lock()
	live := p.fromClient[job.key] == job.pd
	if live {
		job.pd.asking = &asking{cancel: cancel}
	}
	p.mu.Unlock()
	if !live {
		stopTimer()
		cancel(errAskCancelled)
		return
	}
	line := clone(job.it.line)
	p.recorders.Add(1)
	go func() {
		defer p.recorders.Done()
		defer cancel(nil)
		defer stopTimer()
		p.waitForPerson(ctx, qctx, ap, job, d, q, line)
	}()
}

// waitForPerson runs on a question's goroutine: it records the question,
// asks, records the answer, and then forwards (by scheduling the call
// again) or denies.
func (p *proxy) waitForPerson(ctx, qctx context.Context, ap approval.Approver, job *judgeJob, d audit.Decision, q approval.Question, line []byte) {
	p.record(ctx, &d)
	if d.Verdict != audit.VerdictAsk {
		p.answerDenied(job, d)
		return
	}
	req := audit.ApprovalRequested{ID: q.ID, Seq: d.Seq, Kind: q.Kind, Name: q.Name, Args: d.Args, Paths: q.Paths,
		Rule: q.Rule, Reason: q.Reason, Channels: []string{channelOf(ap)}, TimeoutNS: int64(time.Until(q.Deadline)), TTLNS: int64(q.TTL)}
	if err := p.cfg.Recorder.Record(ctx, req); err != nil {
		p.recorderFailed(fmt.Errorf("record question %s: %w", q.ID, err))
		d.Verdict, d.Rule = policy.Deny, policy.RuleLedger
		d.Reason = fmt.Sprintf("the audit ledger could not record the question (%v), and vm-run denies what it cannot record", err)
		p.answerDenied(job, d)
		return
	}
	ans, err := ap.Ask(qctx, q)
	if err == nil && qctx.Err() != nil {
		// An answer that raced the end of the question does not count.
		err = context.Cause(qctx)
	}
	var ev audit.Event
	switch {
	case err != nil:
		reason := "unanswered"
		if c := context.Cause(qctx); c != nil && qctx.Err() != nil {
			reason = c.Error()
		} else {
			reason = "the approval channel failed: " + err.Error()
		}
		ev = audit.ApprovalExpired{ID: q.ID, Reason: reason}
		d.Verdict = policy.Deny
		d.Reason = fmt.Sprintf("no one approved this call (%s; question %s); it was not sent", reason, q.ID)
	case !ans.Granted:
		ev = audit.ApprovalDenied{ID: q.ID, Channel: ans.Channel, By: ans.By, Reason: ans.Reason}
		d.Verdict = policy.Deny
		d.Reason = fmt.Sprintf("%s denied this call through %s (question %s)", ans.By, ans.Channel, q.ID)
		if ans.Reason != "" {
			d.Reason += ": " + ans.Reason
		}
	default:
		scope := audit.ScopeOnce
		if ans.Scope == audit.ScopeTTL && q.TTL > 0 {
			scope = audit.ScopeTTL
		}
		g := audit.ApprovalGranted{ID: q.ID, Channel: ans.Channel, By: ans.By, Scope: scope,
			Kind: q.Kind, Name: q.Name, Args: d.Args, Rule: q.Rule}
		if scope == audit.ScopeTTL {
			g.TTLNS = int64(q.TTL)
		}
		ev = g
	}
	if rerr := p.cfg.Recorder.Record(ctx, ev); rerr != nil {
		p.recorderFailed(fmt.Errorf("record the answer to question %s: %w", q.ID, rerr))
		d.Verdict, d.Rule = policy.Deny, policy.RuleLedger
		d.Reason = fmt.Sprintf("the audit ledger could not record the answer (%v), and vm-run denies what it cannot record", rerr)
	}
	if errors.Is(context.Cause(qctx), errAskCancelled) || errors.Is(context.Cause(qctx), errAskEnd) {
		return // withdrawn: the requester is answered, or gone
	}
	if d.Verdict != audit.VerdictAsk {
		p.askFailed(ctx, job, d)
		return
	}
	g := ev.(audit.ApprovalGranted)
	key := policy.GrantKey(d, p.judgedCall(job.call))
	if g.Scope == audit.ScopeTTL {
		p.mu.Lock()
		if p.ask.grants == nil {
			p.ask.grants = map[string]grant{}
		}
		p.ask.grants[key] = grant{id: q.ID, until: time.Now().Add(q.TTL)}
		p.mu.Unlock()
	}
	p.mu.Lock()
	live := p.fromClient[job.key] == job.pd
	if live {
		job.pd.asking = nil
	}
	p.mu.Unlock()
	if !live {
		return
	}
	job.granted = &granted{key: key, id: q.ID, by: g.By}
	job.start = time.Now()
	job.it = &outItem{line: line, sent: job.it.sent}
	p.out.push(job.it, true)
	p.schedule(ctx, job)
}

// askFailed records the denial a question ended in, as a decision of its
// own (so that every call the client sent ends in an allow or a deny in
// the ledger), and answers the call with it.
func (p *proxy) askFailed(ctx context.Context, job *judgeJob, d audit.Decision) {
	d.Seq = p.seq.Add(1)
	d.LatencyNS = int64(time.Since(job.start))
	p.record(ctx, &d)
	p.answerDenied(job, d)
}

// answerDenied answers a call denied while it waited for a person.
func (p *proxy) answerDenied(job *judgeJob, d audit.Decision) {
	if p.take(p.fromClient, job.key) == job.pd {
		p.deny(job.msg.method, job.pd.id, d, nil)
	}
}

// withdrawLocked ends the question of a call that leaves the table.
// Call with p.mu held.
func (pd *pending) withdrawLocked(cause error) {
	if pd.asking != nil {
		pd.asking.cancel(cause)
		pd.asking = nil
	}
}

// channelOf names an approver's channel for the ledger.
func channelOf(ap approval.Approver) string {
	if _, ok := ap.(*elicitor); ok {
		return audit.ChannelElicitation
	}
	return audit.ChannelCLI
}

// granted is the person's yes to a call, carried by its job to the second
// judgement.
type granted struct {
	key, id, by string
}

// shownArgs are a call's arguments as a person sees them in a question:
// whole, however long (a person approves what they can read, not its
// first 4 KiB), except the members whose keys name secrets, which are
// shown as the ledger stores them, as a hash (audit.Redact); hidden names
// those, so that the question can say what the person cannot see.
func shownArgs(args any) (any, []string) {
	raw, ok := args.(json.RawMessage)
	if !ok {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, nil
	}
	shown := audit.Redact(v, audit.DefaultRedactKeys, -1)
	var hidden []string
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		switch a := a.(type) {
		case map[string]any:
			bm, _ := b.(map[string]any)
			for k, e := range a {
				if isHash(bm[k]) && !isHash(e) {
					hidden = append(hidden, path+k)
					continue
				}
				walk(path+k+".", e, bm[k])
			}
		case []any:
			bl, _ := b.([]any)
			for i, e := range a {
				if i < len(bl) {
					walk(fmt.Sprintf("%s%d.", path, i), e, bl[i])
				}
			}
		}
	}
	walk("", v, shown)
	slices.Sort(hidden)
	return shown, hidden
}

// isHash reports whether v is what audit.Redact puts in a hidden value's
// place.
func isHash(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m["redacted_sha256"] != nil
}
