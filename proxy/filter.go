package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxHints bounds the annotation cache; a server listing more tools than
// this gets no tightening for the rest, which only ever loosens its own
// constraints back to what the rules say.
const maxHints = 1 << 16

// callInfo extracts what the policy decides on from a client request.
// governed is false for methods no policy concerns. perr reports params
// the proxy cannot read: such a call is refused with -32602.
func callInfo(m *message) (call CallInfo, args []byte, governed bool, perr error) {
	var kind Kind
	key := "name"
	switch m.method {
	case "tools/call":
		kind = KindTool
	case "prompts/get":
		kind = KindPrompt
	case "resources/read", "resources/subscribe":
		kind, key = KindResource, "uri"
	default:
		return call, nil, false, nil
	}
	call.Kind = kind
	params, ok := objectMembers(m.params)
	if !ok {
		return call, nil, true, errors.New("params must be an object")
	}
	name, err := decodeString(params[key])
	if err != nil {
		return call, nil, true, fmt.Errorf("params.%s must be a string", key)
	}
	call.Name = name
	if kind == KindResource {
		return call, nil, true, nil
	}
	args = params["arguments"]
	if string(args) == "null" {
		args = nil
	}
	if call.Arguments, ok = decodeArguments(args); !ok {
		return call, nil, true, errors.New("params.arguments must be an object")
	}
	return call, args, true, nil
}

// decide runs the policy on a call and records the decision. It returns
// only once the Recorder has the decision, or with a denial if it failed.
func (p *proxy) decide(ctx context.Context, m *message, from string, call CallInfo, args []byte, perr error, start time.Time) Decision {
	var d Decision
	if perr != nil {
		d = Decision{Kind: call.Kind, Name: call.Name, Verdict: Deny, RuleID: RuleInvalid, Reason: perr.Error()}
	} else {
		call.Workspace = p.cfg.Workspace
		if call.Kind == KindTool {
			call.Annotations = p.hint(call.Name)
		}
		d = p.policy.Decide(call)
	}
	d.Seq = p.seq.Add(1)
	d.Time, d.From, d.Method = start, from, m.method
	d.RequestID = clone(m.id)
	d.Arguments = redact(args, p.cfg.Redact)
	d.Latency = time.Since(start)
	if p.stopped.Load() {
		d.Verdict, d.RuleID, d.Matcher = Deny, RuleLedger, ""
		d.Reason = "vm-run is shutting down"
		return d
	}
	if err := p.cfg.Recorder.Record(ctx, d); err != nil {
		p.recorderFailed(fmt.Errorf("record decision %d on %s %q: %w", d.Seq, d.Method, d.Name, err))
		d.Verdict, d.RuleID, d.Matcher = Deny, RuleLedger, ""
		d.Reason = fmt.Sprintf("the audit ledger could not record the decision (%v), and vm-run denies what it cannot record", err)
	}
	return d
}

func (p *proxy) recorderFailed(err error) {
	p.logf("ledger: %v", err)
	if p.cfg.OnRecorderError != nil {
		p.cfg.OnRecorderError(err)
	}
}

// outcome records how an allowed call ended; requests without a decision
// have nothing to record.
func (p *proxy) outcome(ctx context.Context, pd *pending, status string, code, size int) error {
	d := pd.decision
	if d == nil {
		return nil
	}
	o := Outcome{Seq: d.Seq, Kind: d.Kind, Name: d.Name, Method: pd.method, Status: status, Code: code, Size: size, Duration: time.Since(pd.start)}
	if err := p.cfg.Recorder.Outcome(ctx, o); err != nil {
		err = fmt.Errorf("record outcome of decision %d: %w", d.Seq, err)
		p.recorderFailed(err)
		return err
	}
	return nil
}

// denialText is what the agent reads.
func denialText(d Decision) string {
	return fmt.Sprintf("vm-run policy denied this request (rule %q): %s. "+
		"This is a policy decision, not a fault in the request: retrying it will be denied again. "+
		"If it is needed, ask the user to change the vm-run profile.", d.RuleID, d.Reason)
}

func denialMeta(d Decision) map[string]any {
	return map[string]any{"rule": d.RuleID, "reason": d.Reason, "retryable": false}
}

// denial answers a denied client request. A tools/call gets a tool result
// with isError: true, which MCP clients show to the model (MCP 2025-06-18
// server/tools, "Error Handling": tool execution errors go in the result so
// the model can adapt); every other method gets a CodePolicyDenied error.
func denial(method string, id []byte, d Decision) []byte {
	if method != "tools/call" {
		return errorResponse(id, denialError(d))
	}
	return resultResponse(id, map[string]any{
		"content": []any{map[string]any{"type": "text", "text": denialText(d)}},
		"isError": true,
		"_meta":   map[string]any{MetaKey: denialMeta(d)},
	})
}

func denialError(d Decision) rpcError {
	return rpcError{Code: CodePolicyDenied, Message: denialText(d), Data: map[string]any{MetaKey: denialMeta(d)}}
}

// filterResponse returns the line to send the client for a server answer:
// the line itself, or a rewrite when the policy removes list items or
// denies input the result asks for. status, if set, overrides the outcome.
func (p *proxy) filterResponse(ctx context.Context, pd *pending, m *message) (out []byte, status string, err error) {
	if m.errRaw != nil {
		return m.line, "", nil
	}
	switch pd.method {
	case "tools/list":
		out, err = p.filterList(m, "tools", "name", KindTool)
	case "resources/list":
		out, err = p.filterList(m, "resources", "uri", KindResource)
	case "prompts/list":
		out, err = p.filterList(m, "prompts", "name", KindPrompt)
	case "tools/call", "prompts/get", "resources/read":
		var d *Decision
		if d, err = p.inputRequests(ctx, m); d != nil {
			return denial(pd.method, pd.id, *d), OutcomeInputDenied, nil
		}
		out = m.line
	default:
		out = m.line
	}
	return out, "", err
}

// filterList removes the items the policy hides from one page of a list
// result; nextCursor and every other member pass unchanged, so pagination
// works as before. A page with nothing to remove is forwarded byte for byte.
func (p *proxy) filterList(m *message, key, nameKey string, kind Kind) ([]byte, error) {
	res, ok := objectMembers(m.result)
	if !ok {
		return nil, errors.New("result is not an object")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(res[key], &items); err != nil || res[key] == nil || string(res[key]) == "null" {
		return nil, fmt.Errorf("result.%s is not a list", key)
	}
	kept := make([]json.RawMessage, 0, len(items))
	for i, raw := range items {
		item, ok := objectMembers(raw)
		name, err := decodeString(item[nameKey])
		if !ok || err != nil {
			p.logf("%s[%d] has no string %q; removed", key, i, nameKey)
			continue
		}
		var ann *ToolAnnotations
		if kind == KindTool {
			ann = p.learn(name, item["annotations"])
		}
		if p.policy.Visible(kind, name, ann) {
			kept = append(kept, raw)
		}
	}
	if len(kept) == len(items) {
		return m.line, nil
	}
	res[key] = marshalLine(kept)
	return resultResponse(m.id, res), nil
}

// learn merges a tool's annotations into the cache and returns the merged
// claims. Claims only tighten: once the server says a tool writes, later
// listings saying otherwise do not undo it. A hint that is not a boolean is
// read as the worrying value.
func (p *proxy) learn(name string, raw json.RawMessage) *ToolAnnotations {
	var got ToolAnnotations
	if ann, ok := objectMembers(raw); ok {
		if v, present := ann["readOnlyHint"]; present {
			ro := string(v) == "true"
			got.ReadOnlyHint = &ro
		}
		if v, present := ann["destructiveHint"]; present {
			destructive := string(v) != "false"
			got.DestructiveHint = &destructive
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, seen := p.hints[name]
	if !seen && len(p.hints) >= maxHints {
		return &got
	}
	if old != nil {
		got.ReadOnlyHint = tighter(old.ReadOnlyHint, got.ReadOnlyHint, false)
		got.DestructiveHint = tighter(old.DestructiveHint, got.DestructiveHint, true)
	}
	p.hints[name] = &got
	return &got
}

// tighter merges two claims, preferring worry over the other value over
// no claim.
func tighter(a, b *bool, worry bool) *bool {
	switch {
	case a != nil && *a == worry:
		return a
	case b != nil:
		return b
	}
	return a
}

func (p *proxy) hint(name string) *ToolAnnotations {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hints[name]
}

// inputRequests checks the input a multi round-trip result asks the client
// for (MCP 2026-07-28, SEP-2322: resultType "input_required" with
// inputRequests); without this a server could reach sampling or
// elicitation through a tool result. It returns the first denial.
func (p *proxy) inputRequests(ctx context.Context, m *message) (*Decision, error) {
	res, ok := objectMembers(m.result)
	if !ok {
		return nil, errors.New("result is not an object")
	}
	raw, present := res["inputRequests"]
	if !present || string(raw) == "null" {
		return nil, nil
	}
	reqs, ok := objectMembers(raw)
	if !ok {
		return nil, errors.New("inputRequests is not an object")
	}
	for _, key := range sortedKeys(reqs) {
		req, _ := objectMembers(reqs[key])
		method, err := decodeString(req["method"])
		if err != nil {
			return nil, fmt.Errorf("inputRequests[%q] has no string method", key)
		}
		if method == "roots/list" {
			continue
		}
		kind, known := serverKinds[method]
		in := &message{method: method, id: marshalLine(key)}
		if !known {
			d := Decision{Verdict: Deny, RuleID: RuleDefault, Name: method, Reason: fmt.Sprintf("the result asks the client for %q, which vm-run does not forward", method)}
			return &d, nil
		}
		d := p.decide(ctx, in, "server", CallInfo{Kind: kind, Name: method}, req["params"], nil, time.Now())
		if !d.Allowed() {
			return &d, nil
		}
	}
	return nil, nil
}
