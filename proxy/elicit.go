package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/proxy/approval"
)

// The client as an approval channel. A client that declares the
// elicitation capability in its initialize request (MCP 2025-06-18,
// client/elicitation) can be asked directly: vm-run sends an
// elicitation/create of its own, in the form mode, with one required
// choice. Its ids are strings in a space of vm-run's own,
// "vm-run-approval-" + a per-session nonce + a number, which the server
// never sees and may not use: a server request with such an id is refused,
// and a server's notifications/cancelled naming one is dropped, so the
// server can neither answer nor withdraw vm-run's questions.
//
//	proxy ──elicitation/create {id: "vm-run-approval-N-1"}──▶ client (person)
//	proxy ◀──result {action: accept, content: {decision: approve_once}}──
//	or, when the question ends first:
//	proxy ──notifications/cancelled {requestId: "vm-run-approval-N-1"}──▶ client

// idPrefix starts every id of vm-run's own requests to the client.
const idPrefix = "vm-run-approval-"

// Choices offered in the form.
const (
	choiceOnce = "approve_once"
	choiceTTL  = "approve_ttl"
	choiceDeny = "deny"
)

// elicitor asks through the client; an approval.Approver.
type elicitor struct {
	p *proxy
	// by names the client for the ledger: its clientInfo name and version.
	by string
	mu sync.Mutex
	// waiting are the questions sent, by canonical id.
	waiting map[string]chan []byte
}

// declared notes the client's initialize request: a client that declares
// elicitation (the form mode: an empty object, or one with "form") becomes
// the approval channel.
func (p *proxy) declared(params []byte) {
	var init struct {
		Capabilities struct {
			Elicitation *struct {
				Form json.RawMessage `json:"form"`
				URL  json.RawMessage `json:"url"`
			} `json:"elicitation"`
		} `json:"capabilities"`
		ClientInfo struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"clientInfo"`
	}
	if json.Unmarshal(params, &init) != nil || init.Capabilities.Elicitation == nil {
		return
	}
	el := init.Capabilities.Elicitation
	if el.Form == nil && el.URL != nil {
		return // URL mode only: no form to answer in
	}
	by := strings.TrimSpace(init.ClientInfo.Name + " " + init.ClientInfo.Version)
	if by == "" {
		by = "the MCP client"
	}
	e := &elicitor{p: p, by: "client " + by, waiting: map[string]chan []byte{}}
	p.mu.Lock()
	if p.ask.elicit == nil {
		p.ask.elicit = e
	}
	p.mu.Unlock()
}

// elicitor returns the client's channel, or nil.
func (p *proxy) elicitor() approval.Approver {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ask.elicit == nil {
		return nil
	}
	return p.ask.elicit
}

// ourID reports whether raw (an id as sent) is in vm-run's own id space,
// as the peer decodes it: "\u0076m-run-approval-..." is one of vm-run's
// ids too.
func ourID(raw []byte) bool {
	key, ok := canonicalID(raw)
	return ok && strings.HasPrefix(key, "s:"+idPrefix)
}

// questionCancelled handles the client's notifications/cancelled for one
// of vm-run's questions (the client dismissed it): the question ends as a
// person's "cancel" would end it, denied. It reports whether params named
// one; such a cancellation goes no further.
func (p *proxy) questionCancelled(params []byte) bool {
	members, ok := objectMembers(params)
	if !ok || !ourID(members["requestId"]) {
		return false
	}
	key, _ := canonicalID(members["requestId"])
	if ch := p.takeQuestion(key); ch != nil {
		ch <- marshalLine(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  any             `json:"result"`
		}{"2.0", members["requestId"], map[string]string{"action": "cancel"}})
	}
	return true
}

// answered takes the client's answer to one of vm-run's questions, and
// reports whether m was one.
func (p *proxy) answered(m *message) bool {
	if !ourID(m.id) {
		return false
	}
	ch := p.takeQuestion(m.idKey)
	if ch == nil {
		p.logf("client answered question %s, which is not waiting; dropped", m.id)
		return true
	}
	ch <- clone(m.line)
	return true
}

// takeQuestion removes the question of vm-run's with the canonical id key
// from those waiting for the client, and returns the channel its answer
// goes to; nil when no such question waits.
func (p *proxy) takeQuestion(key string) chan []byte {
	p.mu.Lock()
	e := p.ask.elicit
	p.mu.Unlock()
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.waiting[key]
	delete(e.waiting, key)
	return ch
}

// Ask implements approval.Approver.
func (e *elicitor) Ask(ctx context.Context, q approval.Question) (approval.Answer, error) {
	// Random per question: an id the client lets slip (say, in a
	// cancellation the proxy drops) tells the server nothing of the next.
	id := idPrefix + newQuestionID() + newQuestionID()
	raw, _ := json.Marshal(id)
	key, _ := canonicalID(raw)
	ch := make(chan []byte, 1)
	e.mu.Lock()
	e.waiting[key] = ch
	e.mu.Unlock()
	e.p.sendClient(marshalLine(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  any             `json:"params"`
	}{"2.0", raw, "elicitation/create", elicitParams(q)}))
	select {
	case line := <-ch:
		m, bad := parseMessage(line)
		if bad != nil {
			return approval.Answer{}, fmt.Errorf("the client's answer is malformed: %s", bad.Message)
		}
		if m.errRaw != nil {
			return approval.Answer{}, fmt.Errorf("the client refused the question: %s", m.errRaw)
		}
		a, err := parseElicitReply(m.result, q.TTL > 0)
		a.Channel, a.By = audit.ChannelElicitation, e.by
		return a, err
	case <-ctx.Done():
		e.p.takeQuestion(key)
		e.p.sendClient(notification("notifications/cancelled", map[string]any{
			"requestId": json.RawMessage(raw), "reason": "vm-run: the question ended: " + context.Cause(ctx).Error()}))
		return approval.Answer{}, ctx.Err()
	}
}

// elicitParams is the form of a question: a message that says which
// server, what call, with which (redacted) arguments, under which rule and
// why, and one required choice.
func elicitParams(q approval.Question) map[string]any {
	var b strings.Builder
	fmt.Fprintf(&b, "vm-run asks: may the sandboxed MCP server %s run %s %q", q.Server, q.Kind, q.Name)
	if q.Args != nil {
		if a, err := json.Marshal(q.Args); err == nil {
			fmt.Fprintf(&b, " with arguments %s", a)
		}
	}
	if len(q.Paths) > 0 {
		fmt.Fprintf(&b, " (it leads to %s)", strings.Join(q.Paths, ", "))
	}
	if len(q.Hidden) > 0 {
		fmt.Fprintf(&b, " HIDDEN from you, shown only as a hash because the name says secret: %s; approve only if you know what it holds.", strings.Join(q.Hidden, ", "))
	}
	fmt.Fprintf(&b, "? Rule %q asks a person", q.Rule)
	if q.Reason != "" {
		fmt.Fprintf(&b, ": %s", q.Reason)
	}
	fmt.Fprintf(&b, ". Question %s; unanswered, it is denied at %s.", q.ID, q.Deadline.Format("15:04:05"))
	choices := []string{choiceOnce, choiceDeny}
	names := []string{"Approve this call once", "Deny"}
	if q.TTL > 0 {
		choices = []string{choiceOnce, choiceTTL, choiceDeny}
		names = []string{"Approve this call once", fmt.Sprintf("Approve this same call for %v", q.TTL), "Deny"}
	}
	return map[string]any{
		"message": b.String(),
		"requestedSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"decision": map[string]any{
					"type": "string", "title": "Decision", "enum": choices, "enumNames": names,
				},
			},
			"required": []string{"decision"},
		},
	}
}

// parseElicitReply reads the result of an elicitation/create (MCP
// 2025-06-18: action accept with content, decline, or cancel). Decline and
// cancel are a person's no; anything else than a well-formed answer among
// the choices offered is an error, which denies the call all the same.
func parseElicitReply(result []byte, ttlOffered bool) (approval.Answer, error) {
	members, ok := objectMembers(result)
	if !ok {
		return approval.Answer{}, errors.New("the client's answer is not an object")
	}
	var action string
	if err := json.Unmarshal(members["action"], &action); err != nil {
		return approval.Answer{}, errors.New("the client's answer has no action")
	}
	switch action {
	case "decline":
		return approval.Answer{Reason: "declined"}, nil
	case "cancel":
		return approval.Answer{Reason: "dismissed"}, nil
	case "accept":
	default:
		return approval.Answer{}, fmt.Errorf("the client's answer has the unknown action %q", action)
	}
	content, ok := objectMembers(members["content"])
	if !ok {
		return approval.Answer{}, errors.New("the client accepted without content")
	}
	var choice string
	if err := json.Unmarshal(content["decision"], &choice); err != nil {
		return approval.Answer{}, errors.New("the client's answer has no decision")
	}
	switch {
	case choice == choiceOnce:
		return approval.Answer{Granted: true, Scope: audit.ScopeOnce}, nil
	case choice == choiceTTL && ttlOffered:
		return approval.Answer{Granted: true, Scope: audit.ScopeTTL}, nil
	case choice == choiceDeny:
		return approval.Answer{Reason: "denied"}, nil
	}
	return approval.Answer{}, fmt.Errorf("the client's answer %q is not among the choices offered", choice)
}
