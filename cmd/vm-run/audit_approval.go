package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
)

// This file renders the records of a person in the loop (audit/approval.go)
// for `vm-run audit show`, `tail` and `stats`: the questions an ask rule
// put to a person and their answers, and tool definitions that changed
// since they were pinned; secrets.go renders the secret records. As
// everywhere in audit.go, every string taken from the ledger goes through
// [textsafe.Escape]: tool names and arguments come from the sandboxed
// server's side, and a person's reason from a client.

// recordColumns returns the TOOL and VERDICT columns of a record that is
// not a decision: the network records' verdicts, and for the approval
// records the name asked about and what became of the question (ask,
// granted, denied, expired). ok is false for any other record.
func recordColumns(r audit.Record) (tool, verdict string, ok bool) {
	if v, ok := netVerdict(r); ok { // audit_net.go
		return "-", v, true
	}
	switch r.Event {
	case audit.EventApprovalRequested:
		q, err := audit.ReadEvent[audit.ApprovalRequested](r)
		return orDash(textsafe.Escape(q.Name)), string(audit.VerdictAsk), err == nil
	case audit.EventApprovalGranted:
		g, err := audit.ReadEvent[audit.ApprovalGranted](r)
		return orDash(textsafe.Escape(g.Name)), "granted", err == nil
	case audit.EventApprovalDenied:
		return "-", "denied", true
	case audit.EventApprovalExpired:
		return "-", "expired", true
	}
	return "", "", false
}

// otherDetail summarises the records audit.go does not know in one line
// for the DETAIL column; ok is false when r is none of them, or its data
// does not decode.
func otherDetail(r audit.Record) (string, bool) {
	if d, ok := netDetail(r); ok { // audit_net.go
		return d, true
	}
	if d, ok := secretDetail(r); ok { // secrets.go
		return d, true
	}
	return approvalDetail(r)
}

// approvalDetail summarises an approval or tool_changed record:
//
//	question q1 about decision 7: rule review: tool "write_file" needs ... ; via elicitation, cli; waits 2m0s; ttl 15m0s
//	question q1: granted by cli uid=1000 pid=42 for the rule's ttl (15m0s)
//	question q2: denied by elicitation claude-code 2.1: not that one
//	question q3: expired (timeout)
//	write_file: description changed [description]; pinned 1a2b3c4d5e6f, seen 6f5e4d3c2b1a; on_change ask
func approvalDetail(r audit.Record) (string, bool) {
	esc := textsafe.Escape
	switch r.Event {
	case audit.EventApprovalRequested:
		q, err := audit.ReadEvent[audit.ApprovalRequested](r)
		if err != nil {
			return "", false
		}
		s := "question " + esc(q.ID)
		if q.Seq != 0 {
			s += fmt.Sprintf(" about decision %d", q.Seq)
		}
		s += ": rule " + orDash(esc(q.Rule))
		if q.Reason != "" {
			s += ": " + esc(q.Reason)
		}
		s += fmt.Sprintf("; via %s; waits %s", orDash(esc(strings.Join(q.Channels, ", "))), time.Duration(q.TimeoutNS))
		if q.TTLNS > 0 {
			s += fmt.Sprintf("; ttl %s", time.Duration(q.TTLNS))
		}
		return s, true
	case audit.EventApprovalGranted:
		g, err := audit.ReadEvent[audit.ApprovalGranted](r)
		if err != nil {
			return "", false
		}
		s := fmt.Sprintf("question %s: granted by %s", esc(g.ID), answeredBy(g.Channel, g.By))
		if g.Scope == audit.ScopeTTL {
			s += fmt.Sprintf(" for the rule's ttl (%s)", time.Duration(g.TTLNS))
		} else {
			s += " once"
		}
		return s, true
	case audit.EventApprovalDenied:
		a, err := audit.ReadEvent[audit.ApprovalDenied](r)
		if err != nil {
			return "", false
		}
		s := fmt.Sprintf("question %s: denied by %s", esc(a.ID), answeredBy(a.Channel, a.By))
		if a.Reason != "" {
			s += ": " + esc(a.Reason)
		}
		return s, true
	case audit.EventApprovalExpired:
		e, err := audit.ReadEvent[audit.ApprovalExpired](r)
		if err != nil {
			return "", false
		}
		return fmt.Sprintf("question %s: expired (%s)", esc(e.ID), orDash(esc(e.Reason))), true
	case audit.EventToolChanged:
		c, err := audit.ReadEvent[audit.ToolChanged](r)
		if err != nil {
			return "", false
		}
		return fmt.Sprintf("%s: %s [%s]; pinned %s, seen %s; on_change %s", orDash(esc(c.Tool)), orDash(esc(c.Summary)),
			esc(strings.Join(c.Changed, ", ")), shortHash(esc(c.Pinned)), shortHash(esc(c.Seen)), orDash(esc(c.Action))), true
	}
	return "", false
}

func answeredBy(channel, by string) string {
	s := orDash(textsafe.Escape(channel))
	if by != "" {
		s += " " + textsafe.Escape(by)
	}
	return s
}

// shortHash keeps the first 12 hex digits of a hash, as git does: enough
// to tell two definitions apart in a table.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return orDash(h)
}

// approvalStats is the line `vm-run audit stats` prints after the verdicts
// when the records hold questions to a person or changed tools, else "".
func approvalStats(st *audit.Stats) string {
	e := st.Events
	asked, granted, denied, expired := e[audit.EventApprovalRequested], e[audit.EventApprovalGranted],
		e[audit.EventApprovalDenied], e[audit.EventApprovalExpired]
	var parts []string
	if asked+granted+denied+expired > 0 {
		parts = append(parts, fmt.Sprintf("approvals: %d asked, %d granted, %d denied, %d expired", asked, granted, denied, expired))
	}
	if n := e[audit.EventToolChanged]; n > 0 {
		parts = append(parts, fmt.Sprintf("tools changed since pinned: %d", n))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + "\n"
}
