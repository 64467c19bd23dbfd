package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vm-run/vm-run/internal/textsafe"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy/approval"
)

// serverName describes the sandboxed server in the questions of ask
// rules: the command as run and the profile it runs under, escaped so
// that a control character in an argument cannot dress up a question.
func serverName(profile string, argv []string) string {
	cmd := strings.Join(argv, " ")
	if len(cmd) > 200 {
		cmd = cmd[:200] + "…"
	}
	return textsafe.Escape(cmd) + " (profile " + textsafe.Escape(profile) + ")"
}

// openApprovals opens this session's approval socket, through which
// `vm-run approvals` answers the questions the MCP client cannot be asked
// (package approval). Every proxied session has one: a tool whose pinned
// definition changed may need a person under any profile. When it cannot
// be opened the session goes on without it, and the questions it would
// have carried are denied (or go to the client, when it can be asked);
// vm-run says so on w when the profile asks anything itself. dir is
// approvalsDir's answer, made once for the launch.
func openApprovals(p *profiles.Profile, dir []string, w io.Writer) *approval.Socket {
	o := approval.Options{Logf: func(format string, args ...any) {
		fmt.Fprintf(w, "vm-run: approvals: "+format+"\n", args...)
	}}
	if len(dir) > 0 {
		o.Dir = dir[0]
	}
	s, err := approval.Listen(o)
	if err == nil {
		return s
	}
	if asksAnything(p) {
		fmt.Fprintf(w, "vm-run: warning: no approval socket: %v; calls under ask rules are denied unless the MCP client can be asked (elicitation)\n", err)
		var de *approval.DirError
		if errors.As(err, &de) {
			fmt.Fprintf(w, "vm-run: hint: %s\n", de.Hint())
		}
	}
	return nil
}

// asksAnything reports whether the profile itself may put a question to
// a person: an ask rule or default in its tool policy, or a secret under
// approve: ask.
func asksAnything(p *profiles.Profile) bool {
	for _, s := range p.Secrets {
		if s.Approve == profiles.ApproveAsk {
			return true
		}
	}
	return p.Tools.Asks()
}

// approvalsDir is the approvals directory (sockets, remembered grants of
// secrets), for the sandbox's Protect list; none when it cannot be made,
// and then nothing is kept there.
func approvalsDir() []string {
	dir, err := approval.Dir()
	if err != nil {
		return nil
	}
	return []string{dir}
}
