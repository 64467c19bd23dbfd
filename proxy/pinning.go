package proxy

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/proxy/pins"
)

// RulePins is the rule of a decision that denies a call to a tool whose
// definition changed since it was pinned (Config.Pins, tools.on_change).
const RulePins = "vm-run:pins"

// maxPinned bounds the tools a session remembers listing; beyond it a
// call is judged by the pin file alone, as for a tool not yet listed.
const maxPinned = 1 << 16

// pinState is what the session knows of its tools' pins. Guarded by mu.
//
// A call to a tool is judged by the definition the client was shown: the
// tool's state from the last tools/list page that held it. A call to a
// tool no page of this session has held (a client that remembers a list
// from an earlier session) is judged by the pin file as last read: a tool
// whose last listing, in any session, differed from its pin and was not
// accepted is treated as changed; any other call is judged by the policy
// alone, as the proxy cannot compare what it has not seen.
type pinState struct {
	mu sync.Mutex
	// listed are the tools this session listed, with their state.
	listed map[string]*pinnedTool
	// recorded are the seen hashes recorded as tool_changed, by tool, so
	// that a client listing again does not record the same change again.
	recorded map[string]string
}

// pinnedTool is a listed tool's state against its pin.
type pinnedTool struct {
	changed      bool
	pinned, seen string
	// failure, if set, is why the tool could not be checked or its change
	// not recorded: it is withheld and denied whatever on_change says.
	failure string
}

// checkPins compares the tools of one tools/list page with their pins
// (Config.Pins), records each change not yet recorded this session as an
// [audit.ToolChanged] (durable before it returns, hence before the page
// reaches the client), and returns the tools to withhold: the changed
// ones unless tools.on_change is allow, and every tool of the page when
// the pin store or the ledger fails (fail closed).
func (p *proxy) checkPins(items []json.RawMessage) map[string]bool {
	set := p.cfg.Pins
	if set == nil {
		return nil
	}
	action := p.policy.ChangeAction()
	defs := make([]pins.Definition, 0, len(items))
	withheld := map[string]bool{}
	for _, raw := range items {
		d, err := pins.Parse(raw)
		if err != nil {
			// filterList removes an item without a name; a named one
			// that cannot be hashed cannot be trusted.
			if item, ok := objectMembers(raw); ok {
				if name, nerr := decodeString(item["name"]); nerr == nil {
					p.setPinned(name, &pinnedTool{changed: true, failure: "its definition could not be read: " + err.Error()})
					withheld[name] = true
				}
			}
			continue
		}
		defs = append(defs, d)
	}
	results, err := set.Check(defs)
	if err != nil {
		p.logf("pins: %v; the %d tools of this page are withheld and calls to them denied", err, len(defs))
		for _, d := range defs {
			p.setPinned(d.Name, &pinnedTool{changed: true, seen: d.SHA256,
				failure: "vm-run could not check its definition against the pin file: " + err.Error()})
			withheld[d.Name] = true
		}
		return withheld
	}
	pinnedNew := 0
	for _, r := range results {
		t := &pinnedTool{pinned: r.Pinned, seen: r.Seen}
		switch r.Status {
		case pins.New:
			pinnedNew++
		case pins.Changed, pins.Unpinnable:
			t.changed = true
			if err := p.recordChange(r, action); err != nil {
				t.failure = fmt.Sprintf("the audit ledger could not record the change (%v), and vm-run withholds what it cannot record", err)
			}
		}
		p.setPinned(r.Name, t)
		// Under ask a changed tool stays listed while someone can be
		// asked about its calls (ask.go); with no channel it is held
		// back as under deny.
		mayAsk := action == policy.OnChangeAsk && p.approver() != nil
		if t.failure != "" || t.changed && action != policy.OnChangeAllow && !mayAsk {
			withheld[r.Name] = true
		}
	}
	if pinnedNew > 0 {
		// First sight is quiet in the ledger: nothing was decided, and
		// the pin file says when each tool was pinned.
		p.logf("pins: pinned %d tool definitions seen for the first time (%s)", pinnedNew, set.Key().Command("list"))
	}
	return withheld
}

func (p *proxy) setPinned(name string, t *pinnedTool) {
	st := &p.pins
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.listed == nil {
		st.listed, st.recorded = map[string]*pinnedTool{}, map[string]string{}
	}
	if _, ok := st.listed[name]; ok || len(st.listed) < maxPinned {
		st.listed[name] = t
	}
}

// recordChange records a changed tool once per definition seen in this
// session, and tells the user on Config.Log.
func (p *proxy) recordChange(r pins.Result, action policy.OnChange) error {
	st := &p.pins
	st.mu.Lock()
	done := st.recorded != nil && st.recorded[r.Name] == r.Seen
	st.mu.Unlock()
	if done {
		return nil
	}
	ev := audit.ToolChanged{Tool: r.Name, Pinned: r.Pinned, Seen: r.Seen, Changed: r.Changed,
		Summary: r.Summary, Action: string(action)}
	if err := p.cfg.Recorder.Record(p.ctx, ev); err != nil {
		p.recorderFailed(fmt.Errorf("record tool_changed of %q: %w", r.Name, err))
		return err
	}
	st.mu.Lock()
	if st.recorded == nil {
		st.listed, st.recorded = map[string]*pinnedTool{}, map[string]string{}
	}
	if len(st.recorded) < maxPinned {
		st.recorded[r.Name] = r.Seen
	}
	st.mu.Unlock()
	effect := "it is hidden from the client and calls to it are denied"
	switch action {
	case policy.OnChangeAllow:
		effect = "it stays listed and callable, and keeps its old pin"
	case policy.OnChangeAsk:
		effect = "calls to it need a person's approval; without one it is hidden and denied"
	}
	key := p.cfg.Pins.Key()
	fmt.Fprintf(p.log, "vm-run: tool %s changed since it was pinned: %s; tools.on_change is %s, so %s\n",
		quoted(r.Name), r.Summary, action, effect)
	fmt.Fprintf(p.log, "vm-run: hint: review the change with `%s`; if it is expected, `%s`\n",
		key.Command("show", r.Name), key.Command("accept", r.Name))
	return nil
}

// quoted quotes a name the server chose, escaping what a terminal
// would act on.
func quoted(s string) string { return fmt.Sprintf("%+q", s) }

// pinnedState is the tool's state for a call: its listing this session,
// or the pin file's word for a tool not listed; nil when unchanged or
// when the proxy has no pins.
func (p *proxy) pinnedState(name string) *pinnedTool {
	if p.cfg.Pins == nil {
		return nil
	}
	st := &p.pins
	st.mu.Lock()
	t, listed := st.listed[name]
	st.mu.Unlock()
	if listed {
		return t
	}
	if pin := p.cfg.Pins.Lookup(name); pin != nil && pin.Changed() {
		return &pinnedTool{changed: true, pinned: pin.SHA256, seen: pin.Seen.SHA256}
	}
	return nil
}

// pinVerdict returns what the tool's pin makes of a call to it: deny or
// ask, with the reason, or "" when the pin does not stand in its way.
// Under on_change: ask the call is put to a person as an ask rule's is
// (ask.go), once only, with the default timeout; with no one to ask, it
// is denied.
func (p *proxy) pinVerdict(name string) (audit.Verdict, string) {
	t := p.pinnedState(name)
	if t == nil || !t.changed {
		return "", ""
	}
	if t.failure != "" {
		return policy.Deny, fmt.Sprintf("tool %s cannot be trusted: %s", quoted(name), t.failure)
	}
	action := p.policy.ChangeAction()
	key := p.cfg.Pins.Key()
	what := fmt.Sprintf("the definition of tool %s changed since it was pinned (pinned %s, now %s)",
		quoted(name), short(t.pinned), short(t.seen))
	review := fmt.Sprintf("A person must review it with `%s` and, if the change is expected, accept it with `%s`",
		key.Command("show", name), key.Command("accept", name))
	switch {
	case action == policy.OnChangeAllow:
		return "", ""
	case action == policy.OnChangeAsk && p.approver() != nil:
		return policy.Ask, fmt.Sprintf("%s; the profile's tools.on_change is ask: approve this call only if the new definition is expected. %s", what, review)
	case action == policy.OnChangeAsk:
		return policy.Deny, fmt.Sprintf("%s; the profile's tools.on_change is ask, and approval is needed, but the client cannot be asked (no elicitation) and no approval socket is open. %s", what, review)
	}
	return policy.Deny, fmt.Sprintf("%s; the profile's tools.on_change is deny. %s", what, review)
}

// short is the first 12 hex digits of a hash, as `vm-run pins` shows it.
func short(h string) string {
	if h == "" {
		return "unknown"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
