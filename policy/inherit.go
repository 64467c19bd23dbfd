package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Inherit returns the policy in force when the tools: section over extends
// the policy base (a profile's parent, or the profile a --policy file is
// given with). One rule, everywhere:
//
//   - deny and ask rules accumulate: every deny and ask matcher of base
//     stays in force, under its rule's id, reason, ttl, timeout and
//     origin, and nothing in over can remove, replace or lengthen it (a
//     rule of over with the id of an inherited deny or ask rule is an
//     error; an allow of over never outranks an inherited ask);
//   - allow rules, default_action and defaults (an ask default too) come
//     from over alone, the nearest section, so that a profile extending
//     strict that allows reading docs/ means that, not "strict's reads
//     plus docs/"; an unset default_action is deny;
//   - classes add up (tools and path arguments are added, read_only once
//     set stays set), so a child can use its parent's;
//   - an unset mode is inherited, and observe cannot follow an explicit
//     enforce ([Mode]).
//
// A nil over is no section: base is in force as it is. Neither argument is
// changed. The result is not compiled.
func Inherit(base, over *Policy) (*Policy, error) {
	if over == nil {
		if base == nil {
			return nil, nil
		}
		out := base.clone()
		return out, nil
	}
	out := over.clone()
	if base == nil {
		return out, nil
	}
	switch {
	case over.Mode == "":
		out.Mode = base.Mode
	case over.Mode == ModeObserve && base.Mode == ModeEnforce:
		return nil, fmt.Errorf("mode: observe: an inherited policy says mode: enforce%s, which a later one cannot relax", originNote(" in", ruleOrigin(base)))
	}
	var inherited []Rule
	for _, r := range base.Rules {
		if len(r.Deny) == 0 && len(r.Ask) == 0 {
			continue
		}
		if i := slices.IndexFunc(over.Rules, func(o Rule) bool { return o.ID == r.ID }); i >= 0 {
			return nil, fmt.Errorf("rule %q%s: a rule with this id is inherited%s and holds %s matchers, "+
				"which a later policy can neither replace nor remove; give this rule another id",
				r.ID, originNote(" in", over.Rules[i].Origin), originNote(" from", r.Origin), r.restrictions())
		}
		inherited = append(inherited, Rule{ID: r.ID, Reason: r.Reason, Ask: slices.Clone(r.Ask), Deny: slices.Clone(r.Deny),
			TTL: r.TTL, Timeout: r.Timeout, Origin: r.Origin})
	}
	out.Rules = append(inherited, out.Rules...)
	var err error
	if out.OnChange, err = inheritOnChange(base.OnChange, over.OnChange); err != nil {
		return nil, err
	}
	out.Classes = mergeClasses(base.Classes, over.Classes)
	if len(out.Classes) == 0 {
		out.Classes = nil
	}
	return out, nil
}

// ruleOrigin is where p's rules come from, if they say.
func ruleOrigin(p *Policy) string {
	for _, r := range p.Rules {
		if r.Origin != "" {
			return r.Origin
		}
	}
	return ""
}

func originNote(prep, origin string) string {
	if origin == "" {
		return ""
	}
	return prep + " " + origin
}

// clone returns a copy of p that shares no slice or map with it, without
// its compiled form.
func (p *Policy) clone() *Policy {
	out := &Policy{Mode: p.Mode, DefaultAction: p.DefaultAction, Defaults: maps.Clone(p.Defaults), Classes: maps.Clone(p.Classes), OnChange: p.OnChange}
	for _, r := range p.Rules {
		r.Allow, r.Ask, r.Deny = slices.Clone(r.Allow), slices.Clone(r.Ask), slices.Clone(r.Deny)
		out.Rules = append(out.Rules, r)
	}
	return out
}

// SetOrigin records where p's rules come from (a profile file, a --policy
// file), for [Policy.Describe], `profiles show` and error messages. Rules
// that already name an origin keep it.
func (p *Policy) SetOrigin(origin string) {
	for i := range p.Rules {
		if p.Rules[i].Origin == "" {
			p.Rules[i].Origin = origin
		}
	}
}

// MarshalYAML writes a rule with a comment naming where it comes from, so
// that `vm-run profiles show` says which file each rule in force is from.
func (r Rule) MarshalYAML() (any, error) {
	type plain Rule
	var n yaml.Node
	if err := n.Encode(plain(r)); err != nil {
		return nil, err
	}
	if r.Origin != "" {
		n.HeadComment = "from " + r.Origin
	}
	return &n, nil
}

// Describe writes the effective policy in words, one rule a line with its
// origin: what `vm-run profiles show` prints before the YAML.
func (p *Policy) Describe() string {
	var b strings.Builder
	def := p.DefaultAction
	if def == "" {
		def = Deny
	}
	fmt.Fprintf(&b, "default: %s", def)
	for _, k := range slices.Sorted(maps.Keys(p.Defaults)) {
		fmt.Fprintf(&b, ", %s: %s", k, p.Defaults[k])
	}
	if p.asksByDefault() {
		fmt.Fprintf(&b, "; ask by default: once only, timeout %s", DefaultAskTimeout)
	}
	if p.Observing() {
		b.WriteString("; mode: observe (denials are recorded as would_deny, not enforced; asks still ask)")
	}
	b.WriteString("\n")
	for _, r := range p.Rules {
		for _, l := range []struct {
			verb string
			ms   []Matcher
		}{{"deny", r.Deny}, {"ask", r.Ask}, {"allow", r.Allow}} {
			if len(l.ms) == 0 {
				continue
			}
			specs := make([]string, len(l.ms))
			for i, m := range l.ms {
				specs[i] = m.String()
			}
			fmt.Fprintf(&b, "%-5s %s: %s", l.verb, r.ID, strings.Join(specs, ", "))
			if l.verb == "ask" {
				fmt.Fprintf(&b, "  (%s)", r.askTerms())
			}
			if r.Origin != "" {
				fmt.Fprintf(&b, "  (from %s)", r.Origin)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
