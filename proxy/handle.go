package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// Methods the proxy knows, by direction (MCP 2025-06-18, 2025-11-25 and
// 2026-07-28 schemas). A request for any other method is answered with
// -32601 by the proxy and never forwarded; any other notification is
// dropped: a method the proxy does not know is one the policy cannot judge.
var (
	clientRequests = set(
		"initialize", "ping", "server/discover",
		"tools/list", "tools/call",
		"resources/list", "resources/templates/list", "resources/read",
		"resources/subscribe", "resources/unsubscribe", "subscriptions/listen",
		"prompts/list", "prompts/get",
		"completion/complete", "logging/setLevel",
		"tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
	)
	clientNotifications = set(
		"notifications/initialized", "notifications/cancelled", "notifications/progress",
		"notifications/roots/list_changed", "notifications/tasks/status",
	)
	serverRequests = set(
		"ping", "sampling/createMessage", "elicitation/create", "roots/list",
		"tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
	)
	serverNotifications = set(
		"notifications/cancelled", "notifications/progress", "notifications/message",
		"notifications/resources/updated", "notifications/resources/list_changed",
		"notifications/tools/list_changed", "notifications/prompts/list_changed",
		"notifications/elicitation/complete", "notifications/tasks/status",
		"notifications/subscriptions/acknowledged",
	)
)

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, e := range s {
		m[e] = true
	}
	return m
}

// clientLine handles one line from the client.
func (p *proxy) clientLine(ctx context.Context, line []byte) {
	start := time.Now()
	m, bad := parseMessage(line)
	if bad != nil {
		if bad.response {
			p.logf("client sent a malformed response; dropped: %s", bad.Message)
			return
		}
		p.logf("client message refused: %s", bad.Message)
		p.replyClient(bad.id, bad.rpcError)
		return
	}
	switch m.typ {
	case msgResponse:
		pd := p.take(p.fromServer, m.idKey)
		if pd == nil {
			p.logf("client answered unknown request id %s; dropped", m.id)
			return
		}
		if pd.method == "roots/list" {
			line = p.rootsAnswered(ctx, pd, m)
			if line == nil {
				return
			}
		}
		if pd.decision != nil {
			if err := p.outcome(ctx, pd, statusOf(m), codeOf(m), len(line)); err != nil {
				p.replyServer(pd.id, rpcError{Code: CodeInternalError, Message: "vm-run: the audit ledger could not record the outcome, so the answer is withheld"})
				return
			}
		}
		p.forwardServer(line)
	case msgNotification:
		if !clientNotifications[m.method] {
			p.logf("client sent unknown notification %q; dropped", m.method)
			return
		}
		if m.method == "notifications/cancelled" {
			p.cancelled(ctx, p.fromClient, m)
		}
		p.forwardServer(line)
	case msgRequest:
		p.clientRequest(ctx, m, start)
	}
}

func (p *proxy) clientRequest(ctx context.Context, m *message, start time.Time) {
	if !clientRequests[m.method] {
		p.logf("client called unknown method %q; refused", m.method)
		p.replyClient(m.id, rpcError{Code: CodeMethodNotFound, Message: fmt.Sprintf("Method not found: %q is not an MCP method vm-run forwards", m.method)})
		return
	}
	line, err := p.rootsInInput(ctx, m)
	if err != nil {
		p.logf("client request %s refused: %v", m.id, err)
		p.replyClient(m.id, rpcError{Code: CodeInternalError, Message: "vm-run could not check the roots in inputResponses: " + err.Error()})
		return
	}
	m.line = line
	if e := p.admit(p.fromClient, m); e != nil {
		p.logf("client request %s refused: %s", m.id, e.Message)
		p.replyClient(m.id, *e)
		return
	}
	pd := &pending{id: clone(m.id), method: m.method}
	if call, args, governed, perr := callInfo(m); governed {
		d := p.decide(ctx, m, "client", call, args, perr, start)
		if !d.Allowed() {
			if perr != nil && d.Rule == policy.RuleInvalid {
				p.replyClient(m.id, rpcError{Code: CodeInvalidParams, Message: "Invalid params: " + perr.Error()})
			} else {
				p.sendClient(denial(m.method, m.id, d))
			}
			return
		}
		pd.decision = &d
	}
	p.track(p.fromClient, m.idKey, pd)
	if err := p.toServer.writeLine(m.line); err != nil {
		p.logf("write to server: %v", err)
		if p.take(p.fromClient, m.idKey) == pd {
			p.outcome(ctx, pd, audit.OutcomeServerGone, CodeInternalError, 0)
			p.replyClient(m.id, rpcError{Code: CodeInternalError, Message: "the MCP server is not reading its input (it may have exited)"})
		}
		return
	}
	// The timer starts once the request is written, so that the server
	// never sees its cancellation before the request itself.
	p.arm(m.idKey, pd)
}

// arm starts the CallTimeout timer of a client request still in flight.
func (p *proxy) arm(key string, pd *pending) {
	if p.cfg.CallTimeout <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fromClient[key] == pd && pd.timer == nil {
		pd.timer = time.AfterFunc(p.cfg.CallTimeout, func() { p.timeout(key, pd) })
	}
}

// admit refuses a request whose id is already in flight in the same
// direction, or that would exceed MaxPending.
func (p *proxy) admit(table map[string]*pending, m *message) *rpcError {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := table[m.idKey]; dup {
		return &rpcError{Code: CodeInvalidRequest, Message: fmt.Sprintf("Invalid Request: id %s is already in flight", m.id)}
	}
	if len(table) >= p.cfg.MaxPending {
		return &rpcError{Code: CodeInternalError, Message: fmt.Sprintf("more than %d requests in flight", p.cfg.MaxPending)}
	}
	return nil
}

// track records a request about to be forwarded. Client requests get
// their CallTimeout timer from arm once written; the client runs its own
// timers for server requests.
func (p *proxy) track(table map[string]*pending, key string, pd *pending) {
	pd.start = time.Now()
	p.mu.Lock()
	table[key] = pd
	p.mu.Unlock()
}

func (p *proxy) take(table map[string]*pending, key string) *pending {
	p.mu.Lock()
	defer p.mu.Unlock()
	pd := table[key]
	delete(table, key)
	if pd != nil {
		pd.stop()
	}
	return pd
}

// timeout answers a client request the server sat on, and tells the server
// to stop (notifications/cancelled, MCP basic/utilities/cancellation).
func (p *proxy) timeout(key string, pd *pending) {
	p.mu.Lock()
	cur := p.fromClient[key]
	if cur == pd {
		delete(p.fromClient, key)
	}
	p.mu.Unlock()
	if cur != pd {
		return
	}
	msg := fmt.Sprintf("the MCP server did not answer within %v", p.cfg.CallTimeout)
	p.outcome(context.Background(), pd, audit.OutcomeTimeout, CodeInternalError, 0)
	p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: msg})
	cancel := notification("notifications/cancelled", map[string]any{"requestId": json.RawMessage(pd.id), "reason": "vm-run: " + msg})
	if err := p.toServer.writeLine(cancel); err != nil && !errors.Is(err, errWriterClosed) {
		p.logf("write to server: %v", err)
	}
}

// cancelled forgets a request the peer cancelled: its answer, if one still
// comes, is dropped as the cancellation utility says it should be ignored.
func (p *proxy) cancelled(ctx context.Context, table map[string]*pending, m *message) {
	params, ok := objectMembers(m.params)
	if !ok {
		return
	}
	key, ok := canonicalID(params["requestId"])
	if !ok {
		return
	}
	if pd := p.take(table, key); pd != nil {
		if pd.method == "roots/list" {
			p.mu.Lock()
			p.rootsAnsweredLocked()
			p.mu.Unlock()
		}
		p.outcome(ctx, pd, audit.OutcomeCancelled, 0, 0)
	}
}

func (p *proxy) forwardServer(line []byte) {
	if err := p.toServer.writeLine(line); err != nil && !errors.Is(err, errWriterClosed) {
		p.logf("write to server: %v", err)
	}
}

// serverLine handles one line from the server.
func (p *proxy) serverLine(ctx context.Context, line []byte) {
	start := time.Now()
	m, bad := parseMessage(line)
	if bad != nil {
		p.logf("server message refused: %s", bad.Message)
		if bad.response || bad.idKey != "" {
			// It may be the answer a client request waits for: the client
			// gets an error instead of waiting forever.
			if pd := p.take(p.fromClient, bad.idKey); pd != nil {
				p.outcome(ctx, pd, audit.OutcomeInvalid, CodeInternalError, len(line))
				p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: "the MCP server sent a malformed answer: " + bad.Message})
				return
			}
		}
		if !bad.response {
			p.replyServer(bad.id, bad.rpcError)
		}
		return
	}
	switch m.typ {
	case msgResponse:
		p.serverResponse(ctx, m)
	case msgNotification:
		if !serverNotifications[m.method] {
			p.logf("server sent unknown notification %q; dropped", m.method)
			return
		}
		if m.method == "notifications/cancelled" {
			p.cancelled(ctx, p.fromServer, m)
		}
		p.sendClient(line)
	case msgRequest:
		p.serverRequest(ctx, m, start)
	}
}

func (p *proxy) serverRequest(ctx context.Context, m *message, start time.Time) {
	if !serverRequests[m.method] {
		p.logf("server called unknown method %q; refused", m.method)
		p.replyServer(m.id, rpcError{Code: CodeMethodNotFound, Message: fmt.Sprintf("Method not found: %q", m.method)})
		return
	}
	if e := p.admit(p.fromServer, m); e != nil {
		p.logf("server request %s refused: %s", m.id, e.Message)
		p.replyServer(m.id, *e)
		return
	}
	pd := &pending{id: clone(m.id), method: m.method}
	if kind, ok := serverKinds[m.method]; ok {
		call := policy.CallInfo{Kind: kind, Name: m.method, Workspace: p.cfg.Workspace}
		d := p.decide(ctx, m, "server", call, m.params, nil, start)
		if !d.Allowed() {
			p.replyServer(m.id, denialError(d))
			return
		}
		pd.decision = &d
	}
	if m.method == "roots/list" {
		p.mu.Lock()
		p.rootsAskedLocked()
		p.mu.Unlock()
	}
	p.track(p.fromServer, m.idKey, pd)
	p.sendClient(m.line)
}

var serverKinds = map[string]policy.Kind{
	"sampling/createMessage": policy.KindSampling,
	"elicitation/create":     policy.KindElicitation,
}

// serverResponse forwards the server's answer to a client request, filtered
// where the policy concerns it.
func (p *proxy) serverResponse(ctx context.Context, m *message) {
	pd := p.take(p.fromClient, m.idKey)
	if pd == nil {
		p.logf("server answered unknown request id %s; dropped", m.id)
		return
	}
	out, status, err := p.filterResponse(ctx, pd, m)
	if err != nil {
		p.logf("server answer to %s %s refused: %v", pd.method, m.id, err)
		p.outcome(ctx, pd, audit.OutcomeInvalid, CodeInternalError, len(m.line))
		p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: fmt.Sprintf("the MCP server sent a malformed %s result: %v", pd.method, err)})
		return
	}
	if pd.decision != nil {
		if status == "" {
			status = statusOf(m)
		}
		if err := p.outcome(ctx, pd, status, codeOf(m), len(m.line)); err != nil {
			p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: "vm-run: the audit ledger could not record the outcome, so the result is withheld"})
			return
		}
	}
	p.sendClient(out)
}

func statusOf(m *message) string {
	if m.errRaw != nil {
		return audit.OutcomeError
	}
	if res, ok := objectMembers(m.result); ok && string(res["isError"]) == "true" {
		return audit.OutcomeToolError
	}
	return audit.OutcomeOK
}

func codeOf(m *message) int {
	if m.errRaw != nil {
		return errorCode(m.errRaw)
	}
	return 0
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
