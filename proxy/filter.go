package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// maxHints bounds the annotation cache; a server listing more tools than
// this gets no tightening for the rest, which only ever loosens its own
// constraints back to what the rules say.
const maxHints = 1 << 16

// callInfo extracts what the policy decides on from a client request.
// governed is false for methods no policy concerns. perr reports params
// the proxy cannot read: such a call is refused with -32602.
func callInfo(m *message) (call policy.CallInfo, args []byte, governed bool, perr error) {
	var kind policy.Kind
	key := "name"
	switch m.method {
	case "tools/call":
		kind = policy.KindTool
	case "prompts/get":
		kind = policy.KindPrompt
	case "resources/read", "resources/subscribe":
		kind, key = policy.KindResource, "uri"
	case "completion/complete":
		// Completing a prompt's arguments is asking about the prompt: it
		// is judged as getting it would be. Completions of a resource
		// template name no resource yet and pass.
		params, ok := objectMembers(m.params)
		ref, ok2 := objectMembers(params["ref"])
		if t, _ := decodeString(ref["type"]); !ok || !ok2 || t != "ref/prompt" {
			return call, nil, false, nil
		}
		name, err := decodeString(ref["name"])
		call.Kind = policy.KindPrompt
		if err != nil {
			return call, nil, true, errors.New("params.ref.name must be a string")
		}
		call.Name, call.Arguments = name, map[string]any{}
		return call, nil, true, nil
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
	if kind == policy.KindResource {
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

// judge runs the policy on a call and fills in its decision record; the
// arguments go in as sent (the ledger stores secrets among them as hashes
// of their real values). It does not record: see record.
func (p *proxy) judge(m *message, from string, call policy.CallInfo, args []byte, perr error, start time.Time) audit.Decision {
	var d audit.Decision
	if perr != nil {
		d = audit.Decision{Kind: string(call.Kind), Tool: call.Name, Verdict: policy.Deny, Rule: policy.RuleInvalid, Reason: perr.Error()}
	} else {
		d = p.policy.Decide(p.judgedCall(call))
		if call.Kind == policy.KindTool && d.Verdict != policy.Deny {
			// A changed tool is held to its pin (pinning.go).
			if v, reason := p.pinVerdict(call.Name); v != "" {
				d.Verdict, d.Rule, d.Matcher, d.Reason = v, RulePins, "", reason
			}
		}
		if d.Verdict == policy.Deny && p.policy.Observing() {
			d.Verdict = audit.VerdictWouldDeny
		}
	}
	d.Seq = p.seq.Add(1)
	d.From, d.Method = from, m.method
	d.RequestID = clone(m.id)
	if len(args) > 0 {
		d.Args = json.RawMessage(clone(args))
	}
	d.LatencyNS = int64(time.Since(start))
	return d
}

// judgedCall completes call with what the policy judges it against: the
// workspace, the bases of the moment, the tool's annotations.
func (p *proxy) judgedCall(call policy.CallInfo) policy.CallInfo {
	call.Workspace = p.cfg.Workspace
	call.Resolver = p.cfg.Resolver
	call.Bases, call.BasesPending = p.bases()
	if call.Kind == policy.KindTool {
		call.Annotations = p.hint(call.Name)
	}
	return call
}

// record makes d durable. If it cannot, d becomes a denial by
// policy.RuleLedger: vm-run denies what it cannot record.
func (p *proxy) record(ctx context.Context, d *audit.Decision) {
	if p.stopped.Load() {
		d.Verdict, d.Rule, d.Matcher = policy.Deny, policy.RuleLedger, ""
		d.Reason = "vm-run is shutting down"
		return
	}
	if err := p.cfg.Recorder.Record(ctx, *d); err != nil {
		p.recorderFailed(fmt.Errorf("record decision %d on %s %q: %w", d.Seq, d.Method, d.Tool, err))
		d.Verdict, d.Rule, d.Matcher = policy.Deny, policy.RuleLedger, ""
		d.Reason = fmt.Sprintf("the audit ledger could not record the decision (%v), and vm-run denies what it cannot record", err)
	}
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
	o := audit.Outcome{Seq: d.Seq, Kind: d.Kind, Name: d.Tool, Method: pd.method, Status: status, Code: code, Size: size, DurationNS: int64(time.Since(pd.start))}
	if err := p.cfg.Recorder.Queue(ctx, o); err != nil {
		err = fmt.Errorf("record outcome of decision %d: %w", d.Seq, err)
		p.recorderFailed(err)
		return err
	}
	return nil
}

// denialText is what the agent reads.
func denialText(d audit.Decision) string {
	return fmt.Sprintf("vm-run policy denied this request (rule %q): %s. "+
		"This is a policy decision, not a fault in the request: retrying it will be denied again. "+
		"If it is needed, ask the user to change the vm-run profile.", d.Rule, d.Reason)
}

func denialMeta(d audit.Decision) map[string]any {
	return map[string]any{"rule": d.Rule, "reason": d.Reason, "retryable": false}
}

// denial answers a denied client request. A tools/call gets a tool result
// with isError: true, which MCP clients show to the model (MCP 2025-06-18
// server/tools, "Error Handling": tool execution errors go in the result so
// the model can adapt); every other method gets a CodePolicyDenied error.
func denial(method string, id []byte, d audit.Decision) []byte {
	if method != "tools/call" {
		return errorResponse(id, denialError(d))
	}
	return resultResponse(id, map[string]any{
		"content": []any{map[string]any{"type": "text", "text": denialText(d)}},
		"isError": true,
		"_meta":   map[string]any{MetaKey: denialMeta(d)},
	})
}

func denialError(d audit.Decision) rpcError {
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
		out, err = p.filterList(m, "tools", "name", policy.KindTool)
	case "resources/list":
		out, err = p.filterList(m, "resources", "uri", policy.KindResource)
	case "prompts/list":
		out, err = p.filterList(m, "prompts", "name", policy.KindPrompt)
	case "tools/call", "prompts/get", "resources/read":
		var d *audit.Decision
		if d, err = p.inputRequests(ctx, m); d != nil {
			return denial(pd.method, pd.id, *d), audit.OutcomeInputDenied, nil
		}
		if err == nil {
			if d = p.embedded(ctx, pd, m); d != nil {
				return denial(pd.method, pd.id, *d), audit.OutcomeContentDenied, nil
			}
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
func (p *proxy) filterList(m *message, key, nameKey string, kind policy.Kind) ([]byte, error) {
	res, ok := objectMembers(m.result)
	if !ok {
		return nil, errors.New("result is not an object")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(res[key], &items); err != nil || res[key] == nil || string(res[key]) == "null" {
		return nil, fmt.Errorf("result.%s is not a list", key)
	}
	var withheld map[string]bool
	if kind == policy.KindTool {
		withheld = p.checkPins(items) // durable records first
	}
	kept := make([]json.RawMessage, 0, len(items))
	for i, raw := range items {
		item, ok := objectMembers(raw)
		name, err := decodeString(item[nameKey])
		if !ok || err != nil {
			p.logf("%s[%d] has no string %q; removed", key, i, nameKey)
			continue
		}
		var ann *policy.ToolAnnotations
		if kind == policy.KindTool {
			ann = p.learn(name, item["annotations"])
		}
		visible, rule := p.policy.VisibleRule(kind, name, ann)
		if !visible {
			p.hidden.add(kind, name, rule)
		} else if withheld[name] {
			visible = false // not the policy's: pinning.go said why
		}
		if visible || p.policy.Observing() {
			kept = append(kept, raw)
		}
	}
	p.hidden.page(kind, len(items), p.policy.Observing())
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
func (p *proxy) learn(name string, raw json.RawMessage) *policy.ToolAnnotations {
	var got policy.ToolAnnotations
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

func (p *proxy) hint(name string) *policy.ToolAnnotations {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hints[name]
}

// inputRequests checks the input a multi round-trip result asks the client
// for (MCP 2026-07-28, SEP-2322: resultType "input_required" with
// inputRequests); without this a server could reach sampling or
// elicitation through a tool result. It returns the first denial.
func (p *proxy) inputRequests(ctx context.Context, m *message) (*audit.Decision, error) {
	if !m.resultObject {
		return nil, errors.New("result is not an object")
	}
	raw := m.resInputReqs
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	reqs, ok := objectMembers(raw)
	if !ok {
		return nil, errors.New("inputRequests is not an object")
	}
	for _, key := range slices.Sorted(maps.Keys(reqs)) {
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
			d := audit.Decision{Verdict: policy.Deny, Rule: policy.RuleDefault, Tool: method, Reason: fmt.Sprintf("the result asks the client for %q, which vm-run does not forward", method)}
			return &d, nil
		}
		d := p.judge(in, "server", policy.CallInfo{Kind: kind, Name: method}, req["params"], nil, time.Now())
		p.record(ctx, &d)
		if !d.Allowed() {
			return &d, nil
		}
	}
	return nil, nil
}
