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

// clientLine handles one line from the client. Everything for the server
// goes through the outbox, in the client's order.
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
		if p.answered(m) {
			return
		}
		pd := p.take(p.fromServer, m.idKey)
		if pd == nil {
			p.logf("client answered unknown request id %s; dropped", m.id)
			return
		}
		if pd.method == "roots/list" {
			p.rootsAnswered(ctx, pd, m)
			return
		}
		if pd.decision != nil {
			if err := p.outcome(ctx, pd, statusOf(m), codeOf(m), len(line)); err != nil {
				p.replyServer(pd.id, rpcError{Code: CodeInternalError, Message: "vm-run: the audit ledger could not record the outcome, so the answer is withheld"})
				return
			}
		}
		// Answers to the server's requests do not queue behind the
		// client's calls (order.go): one of those may be waiting for
		// this very answer.
		p.forwarded(p.toServer.writeLine(line))
	case msgNotification:
		if !clientNotifications[m.method] {
			p.logf("client sent unknown notification %q; dropped", m.method)
			return
		}
		if m.method == "notifications/cancelled" && (p.questionCancelled(m.params) || p.cancelled(ctx, p.fromClient, m)) {
			// A question of vm-run's own the client dismissed, or a call
			// that was waiting for a person: the server never saw either.
			return
		}
		p.out.push(&outItem{line: line, ready: true, sent: p.forwarded}, p.parked())
	case msgRequest:
		p.clientRequest(ctx, m, start)
	}
}

// clientRequest admits a request of the client, judges it if the policy
// concerns it, and queues it for the server. A judged call's record goes
// to the ledger on a goroutine of its own, so that the reader can take the
// next line while the ledger syncs; the call leaves the outbox once its
// record is durable, or is answered with a denial.
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
	if m.method == "initialize" {
		p.declared(m.params)
	}
	pd := &pending{id: clone(m.id), method: m.method}
	if e := p.admit(p.fromClient, m, pd); e != nil {
		p.logf("client request %s refused: %s", m.id, e.Message)
		p.replyClient(m.id, *e)
		return
	}
	key := m.idKey
	if pk := progressKey(m.params); pk != "" {
		p.mu.Lock()
		if p.progress[pk] == nil {
			pd.progressKey = pk
			p.progress[pk] = pd
		}
		p.mu.Unlock()
	}
	it := &outItem{line: m.line, sent: func(err error) { p.requestSent(key, pd, err) }}
	call, args, governed, perr := callInfo(m)
	if !governed {
		it.ready = true
		p.out.push(it, p.parked())
		return
	}
	job := &judgeJob{msg: message{method: m.method, id: pd.id}, key: key, call: call, args: clone(args),
		perr: perr, start: start, pd: pd, it: it}
	if perr == nil {
		job.paths, job.relative, job.writes = p.policy.Touches(call)
	}
	if p.tryInline(ctx, job) {
		return
	}
	p.out.push(it, p.parked())
	p.schedule(ctx, job)
}

// deny answers a denied client request.
func (p *proxy) deny(method string, id []byte, d audit.Decision, perr error) {
	if perr != nil && d.Rule == policy.RuleInvalid {
		p.replyClient(id, rpcError{Code: CodeInvalidParams, Message: "Invalid params: " + perr.Error()})
		return
	}
	p.sendClient(denial(method, id, d))
}

// requestSent follows the write of a client request to the server: the
// timer starts, so that the server never sees the cancellation before the
// request; a failed write answers the request at once.
func (p *proxy) requestSent(key string, pd *pending, err error) {
	if err == nil {
		p.arm(key, pd)
		return
	}
	p.forwarded(err)
	if p.take(p.fromClient, key) == pd {
		p.outcome(context.Background(), pd, audit.OutcomeServerGone, CodeInternalError, 0)
		p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: "the MCP server is not reading its input (it may have exited)"})
	}
}

// forwarded logs a failed write to the server.
func (p *proxy) forwarded(err error) {
	if err != nil && !errors.Is(err, errWriterClosed) {
		p.logf("write to server: %v", err)
	}
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
// direction, or that would exceed MaxPending; else it enters pd in the
// table, where a duplicate id finds it from now on.
func (p *proxy) admit(table map[string]*pending, m *message, pd *pending) *rpcError {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := table[m.idKey]; dup {
		return &rpcError{Code: CodeInvalidRequest, Message: fmt.Sprintf("Invalid Request: id %s is already in flight", m.id)}
	}
	if len(table) >= p.cfg.MaxPending {
		return &rpcError{Code: CodeInternalError, Message: fmt.Sprintf("more than %d requests in flight", p.cfg.MaxPending)}
	}
	pd.start = time.Now()
	table[m.idKey] = pd
	return nil
}

func (p *proxy) take(table map[string]*pending, key string) *pending {
	pd, _ := p.takeAsking(table, key)
	return pd
}

// takeAsking is take, and also reports whether the request was waiting
// for a person (its question is withdrawn), as one step: a grant cannot
// come in between.
func (p *proxy) takeAsking(table map[string]*pending, key string) (*pending, bool) {
	p.mu.Lock()
	pd := table[key]
	delete(table, key)
	asking := false
	if pd != nil {
		pd.stop()
		p.leftLocked(pd)
		asking = pd.asking != nil
		pd.withdrawLocked(errAskCancelled)
	}
	p.mu.Unlock()
	if pd != nil {
		p.release()
	}
	return pd, asking
}

// timeout answers a client request the server sat on, and tells the server
// to stop (notifications/cancelled, MCP basic/utilities/cancellation).
func (p *proxy) timeout(key string, pd *pending) {
	p.mu.Lock()
	cur := p.fromClient[key]
	if cur == pd {
		delete(p.fromClient, key)
		p.leftLocked(pd)
	}
	p.mu.Unlock()
	if cur != pd {
		return
	}
	p.release()
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
// A call waiting for a person has its question withdrawn; cancelled
// reports whether it was one, which the server never saw.
func (p *proxy) cancelled(ctx context.Context, table map[string]*pending, m *message) (asked bool) {
	params, ok := objectMembers(m.params)
	if !ok {
		return false
	}
	key, ok := canonicalID(params["requestId"])
	if !ok {
		return false
	}
	pd, asked := p.takeAsking(table, key)
	if pd != nil {
		if pd.method == "roots/list" {
			p.mu.Lock()
			p.rootsAnsweredLocked()
			p.mu.Unlock()
		}
		p.outcome(ctx, pd, audit.OutcomeCancelled, 0, 0)
	}
	return asked
}

// serverLine handles one line from the server.
func (p *proxy) serverLine(ctx context.Context, line []byte) {
	start := time.Now()
	if p.cfg.Scrubber != nil {
		if line = p.scrubServer(ctx, line); line == nil {
			return
		}
	}
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
		switch m.method {
		case "notifications/cancelled":
			if params, ok := objectMembers(m.params); ok && ourID(params["requestId"]) {
				p.logf("server cancelled one of vm-run's questions to the client; dropped")
				return
			}
			p.cancelled(ctx, p.fromServer, m)
		case "notifications/progress":
			p.progressed(m)
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
	if ourID(m.id) {
		p.logf("server request %s uses vm-run's own id space; refused", m.id)
		p.replyServer(m.id, rpcError{Code: CodeInvalidRequest, Message: "Invalid Request: ids beginning " + idPrefix + " are vm-run's own"})
		return
	}
	pd := &pending{id: clone(m.id), method: m.method}
	if e := p.admit(p.fromServer, m, pd); e != nil {
		p.logf("server request %s refused: %s", m.id, e.Message)
		p.replyServer(m.id, *e)
		return
	}
	if kind, ok := serverKinds[m.method]; ok {
		// Rare, and the client is waiting for the server anyway: the
		// server's reader records the decision itself.
		call := policy.CallInfo{Kind: kind, Name: m.method, Workspace: p.cfg.Workspace}
		d := p.judge(m, "server", call, m.params, nil, start)
		p.record(ctx, &d)
		if !d.Allowed() {
			p.take(p.fromServer, m.idKey)
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
	if m.resultObject && string(m.resIsError) == "true" {
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
