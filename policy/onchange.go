package policy

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// OnChange is what the proxy does with a tool whose definition (name,
// title, description, schemas, annotations) differs from the one pinned for
// the profile and server command in an earlier session: the "rug pull",
// where a server approved with one description later presents another to
// the model. It is the `tools.on_change` setting of a profile:
//
//	tools:
//	  on_change: deny   # ask (the default) | deny | allow
//
// Whatever the setting, the change is recorded (audit.ToolChanged) before
// the listing reaches the client, and the pin stays as it was until a
// person runs `vm-run pins accept`. See package proxy/pins.
type OnChange string

// Actions on a changed tool, from the loosest to the strictest.
const (
	// OnChangeAllow lists and forwards the changed tool; the change is
	// recorded and the old pin kept, so every later session records it
	// again until it is accepted.
	OnChangeAllow OnChange = "allow"
	// OnChangeAsk holds calls to the changed tool for a person's approval;
	// where no approval channel is available it acts as OnChangeDeny.
	OnChangeAsk OnChange = "ask"
	// OnChangeDeny removes the changed tool from tools/list and denies
	// calls to it until its new definition is accepted.
	OnChangeDeny OnChange = "deny"
)

// DefaultOnChange is the action when no tools: section in the chain sets
// on_change; the built-in profiles leave it unset.
const DefaultOnChange = OnChangeAsk

// strictness orders the actions: a later section may only raise it.
func (o OnChange) strictness() int {
	switch o {
	case OnChangeAllow:
		return 1
	case OnChangeAsk:
		return 2
	case OnChangeDeny:
		return 3
	}
	return 0
}

// ChangeAction returns the action in force for a changed tool: the
// policy's on_change, [DefaultOnChange] where it is unset, and
// [OnChangeDeny] for a nil policy (a missing policy denies).
func (p *Policy) ChangeAction() OnChange {
	switch {
	case p == nil:
		return OnChangeDeny
	case p.OnChange == "":
		return DefaultOnChange
	}
	return p.OnChange
}

// onChange decodes the on_change value of a tools: section.
func (d *policyDecoder) onChange(n *yaml.Node) (OnChange, error) {
	s, err := d.str(n, "on_change")
	if err != nil {
		return "", err
	}
	if o := OnChange(s); o.strictness() > 0 {
		return o, nil
	}
	return "", d.errorf(n, "on_change: %q: want ask, deny or allow", s)
}

// inheritOnChange combines an inherited on_change with a later section's:
// an unset one is inherited, and a later one may tighten (allow → ask →
// deny) but never loosen what an earlier profile said, so that an
// administrator's "on_change: deny" binds every profile that extends it.
func inheritOnChange(base, over OnChange) (OnChange, error) {
	if over == "" {
		return base, nil
	}
	if base != "" && over.strictness() < base.strictness() {
		return "", fmt.Errorf("on_change: %s: an inherited policy says on_change: %s, which a later one can tighten but not loosen", over, base)
	}
	return over, nil
}
