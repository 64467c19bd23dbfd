package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// This file reads one recorded session from the ledger for vm-run policy
// generate: its session_start, its decision records and the outcome records
// that say how allowed calls ended, each with the type package audit writes
// it with (audit.ReadEvent).

// recordedSession is what the ledger holds of one session.
type recordedSession struct {
	ledger        string
	id            string
	profile, hash string
	argv          []string
	workdir       string
	first, last   time.Time
	uses          []policy.Use
	used          int // uses that count as used
	skippedLines  int
	decisions     int
}

// kindOfMethod is the kind of a decision written before decisions carried
// one.
var kindOfMethod = map[string]policy.Kind{
	"tools/call":             policy.KindTool,
	"resources/read":         policy.KindResource,
	"resources/subscribe":    policy.KindResource,
	"prompts/get":            policy.KindPrompt,
	"sampling/createMessage": policy.KindSampling,
	"elicitation/create":     policy.KindElicitation,
}

// readSession reads the ledger twice: once to find the session (the one
// whose id starts with prefix, or the one that made the last decision),
// then to collect its records, so that memory holds one session, not the
// whole ledger.
func readSession(path, prefix string) (*recordedSession, error) {
	var ids []string
	err := scanLedger(path, func(r audit.Record) {
		if prefix == "" {
			if r.Event == audit.EventDecision || isNetEvent(r.Event) {
				ids = []string{r.Session}
			}
		} else if strings.HasPrefix(r.Session, prefix) && !slices.Contains(ids, r.Session) {
			ids = append(ids, r.Session)
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case len(ids) == 0 && prefix == "":
		return nil, &hintError{err: fmt.Errorf("ledger %q records no decisions and no network traffic", path),
			hint: "record a session first: run the server under vm-run (not --no-proxy) and use it, then generate"}
	case len(ids) == 0:
		return nil, &hintError{err: fmt.Errorf("ledger %q has no session %q", path, prefix),
			hint: fmt.Sprintf("list the sessions with: vm-run audit stats --ledger %s", path)}
	case len(ids) > 1:
		return nil, fmt.Errorf("session %q is ambiguous in ledger %q: %s", prefix, path, strings.Join(ids[:min(len(ids), 5)], ", "))
	}
	s := &recordedSession{ledger: path, id: ids[0]}
	var decisions []audit.Decision
	network := false
	status := map[uint64]string{}
	var asked approvals
	var skipped skippedLines
	err = scanLedger(path, func(r audit.Record) {
		if r.Session != s.id {
			return
		}
		if s.first.IsZero() {
			s.first = r.Time
		}
		s.last = r.Time
		if s.profile == "" {
			s.profile, s.hash = r.Profile, r.ProfileHash
		}
		network = network || isNetEvent(r.Event)
		switch r.Event {
		case audit.EventSessionStart:
			if st, err := audit.ReadEvent[audit.SessionStart](r); err == nil {
				s.argv, s.workdir = st.Argv, st.Workdir
			}
		case audit.EventDecision:
			if d, err := audit.ReadEvent[audit.Decision](r); err == nil {
				decisions = append(decisions, d)
			}
		case audit.EventOutcome:
			if o, err := audit.ReadEvent[audit.Outcome](r); err == nil {
				status[o.Seq] = o.Status
			}
		case audit.EventApprovalRequested, audit.EventApprovalGranted:
			asked.add(r)
		}
	}, &skipped)
	if err != nil {
		return nil, err
	}
	skipped.report(path)
	s.skippedLines = skipped.n
	s.decisions = len(decisions)
	if len(decisions) == 0 && !network {
		return nil, fmt.Errorf("session %s in ledger %q made no decisions and used no network (was it run with --no-proxy?)", s.id, path)
	}
	for _, d := range decisions {
		u := s.use(d, status)
		if d.Verdict == audit.VerdictAsk {
			if by, ok := asked.granted(d.Seq); ok {
				u.Verdict, u.Approval = policy.Allow, by
			}
		}
		if u.Used() {
			s.used++
		}
		s.uses = append(s.uses, u)
	}
	return s, nil
}

// use turns a decision record into a policy.Use.
func (s *recordedSession) use(d audit.Decision, status map[uint64]string) policy.Use {
	kind := policy.Kind(d.Kind)
	if kind == "" {
		kind = kindOfMethod[d.Method]
	}
	args, _ := d.Args.(map[string]any) // not an object: no arguments
	u := policy.Use{
		Call:    policy.CallInfo{Kind: kind, Name: d.Tool, Arguments: args, Workspace: s.workdir},
		Verdict: policy.Deny,
		Rule:    d.Rule,
		Reason:  d.Reason,
	}
	// A call observe mode forwarded because no rule allowed it (would_deny
	// by the default) was used like an allowed one: what the generated
	// policy is for. One a deny rule or a path check would have refused
	// stays a denial, listed for review, never turned into an allow.
	if d.Verdict == audit.VerdictAllow || d.Verdict == audit.VerdictWouldDeny && d.Rule == policy.RuleDefault {
		u.Verdict = policy.Allow
	}
	if d.Seq != 0 {
		u.Status = status[d.Seq]
	}
	return u
}

// scanLedger calls fn for every record of the ledger at path, in order.
// Lines that are not records are counted in skipped, if given.
func scanLedger(path string, fn func(audit.Record), skipped *skippedLines) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	defer f.Close()
	return audit.ReadRecords(f, func(n int, _ []byte, r audit.Record, err error) error {
		if err != nil {
			if skipped != nil {
				skipped.add(n, err)
			}
			return nil
		}
		fn(r)
		return nil
	})
}

// hintError is an error with advice for the user (see report).
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

// isNetEvent reports whether a record is one of network mode egress's.
func isNetEvent(event string) bool {
	return event == audit.EventNetDNS || event == audit.EventNetConnect || event == audit.EventNetClose
}

// approvals links the calls a session asked a person about to the answers
// that let them go ahead, for vm-run policy generate: an
// approval_requested record names the decision (its Seq) and the question
// (its ID), an approval_granted record answers the question.
type approvals struct {
	seqOf map[string]uint64 // question id → Decision.Seq
	by    map[uint64]string // Decision.Seq → who granted it
}

func (a *approvals) add(r audit.Record) {
	if a.seqOf == nil {
		a.seqOf, a.by = map[string]uint64{}, map[uint64]string{}
	}
	switch r.Event {
	case audit.EventApprovalRequested:
		if q, err := audit.ReadEvent[audit.ApprovalRequested](r); err == nil && q.Seq != 0 {
			a.seqOf[q.ID] = q.Seq
		}
	case audit.EventApprovalGranted:
		g, err := audit.ReadEvent[audit.ApprovalGranted](r)
		if err != nil {
			return
		}
		if seq, ok := a.seqOf[g.ID]; ok {
			a.by[seq] = grantedBy(g)
		}
	}
}

// granted says who let the call of decision seq go ahead, if anyone did.
func (a *approvals) granted(seq uint64) (string, bool) {
	if seq == 0 {
		return "", false
	}
	by, ok := a.by[seq]
	return by, ok
}

// grantedBy names a grant for a comment: the channel and who answered,
// and the scope when it was for the rule's ttl.
func grantedBy(g audit.ApprovalGranted) string {
	s := g.Channel
	if g.By != "" {
		s += " " + g.By
	}
	if g.Scope == audit.ScopeTTL {
		s += " (for the rule's ttl)"
	}
	return s
}
