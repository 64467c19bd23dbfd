package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vm-run/vm-run/audit"
)

// Decide returns the verdict for one call. The same policy and CallInfo
// give the same Decision while the workspace does not change: path
// arguments are judged by where they lead on the file system
// (CallInfo.Resolver). Order of evaluation:
//
//  1. path arguments (tools) and URIs (resources) are checked and
//     resolved; one the proxy cannot interpret denies the call (RulePaths,
//     RuleURI): a path that leads out of the workspace, also through a
//     link, or a URI whose meaning is ambiguous;
//  2. any deny matcher of any rule denies: against the paths as spelled
//     and as resolved, against the normalised URI and its numeric variant;
//  3. a file with more than one hard link denies a call that may write it,
//     or that a deny or ask rule with paths could concern, since its
//     other names are not known;
//  4. any ask matcher of any rule asks (Verdict [Ask]), matching as deny
//     matchers do;
//  5. any allow matcher of any rule allows, where every resolved path must
//     be allowed on its own; a read-only class never allows a tool the
//     server annotates as writing;
//  6. the default for the kind (default_action, or deny) applies; an
//     allow default that an annotation vetoed denies.
//
// In observe mode a denial that an ask matcher or an ask default would
// otherwise meet is returned as the ask ([Mode]).
//
// The Decision carries the resolved paths (Paths) and the normalised URI
// (URI): what the server would really touch. For an ask, [Policy.AskRule]
// gives the rule's ttl and timeout and [GrantKey] the key of its grants.
func (p *Policy) Decide(call CallInfo) audit.Decision {
	d, j, c := p.decide(call)
	if d.Verdict == Deny && p.Observing() && c != nil {
		d, _ = c.observedAsk(d, j)
	}
	return d
}

// decide is Decide in enforce mode. It also returns the call as judged
// and the compiled policy, nil when the policy does not compile.
func (p *Policy) decide(call CallInfo) (audit.Decision, *judged, *compiled) {
	d := audit.Decision{Kind: string(call.Kind), Tool: call.Name}
	c, err := p.compiled()
	if err != nil {
		return deny(d, RuleDefault, "", fmt.Sprintf("the tool policy is invalid (%v), so everything is denied", err)), nil, nil
	}
	what := describe(call.Kind, call.Name)
	j := &judged{call: call, names: []string{call.Name}, what: what}
	var paths judgedPaths
	switch call.Kind {
	case KindTool:
		var perr *PathError
		paths, perr = c.pathArgs(call)
		if perr != nil {
			return deny(d, RulePaths, "", fmt.Sprintf("%s: %v; give a path inside the workspace %q", what, perr, call.Workspace)), j, c
		}
		d.Paths = paths.judged
	case KindResource:
		norm, err := NormalizeURI(call.Name)
		if err != nil {
			reason := err.Error()
			if ue, ok := err.(*URIError); ok {
				reason = "the URI " + ue.Reason
			}
			return deny(d, RuleURI, "", fmt.Sprintf("%s: %s", what, reason)), j, c
		}
		if norm != call.Name {
			d.URI = norm
		}
		call.Name = norm
		j.names = uriVariants(norm)
	}
	j.call = call
	j.touched = appendNew(slices.Clone(paths.judged), paths.spelled...)
	for i := range c.deny {
		m := &c.deny[i]
		for _, name := range j.names {
			named := call
			named.Name = name
			if hit, detail := c.match(m, named, j.touched, true); hit {
				reason := fmt.Sprintf("%s is denied by rule %q (%s)%s", what, m.rule.ID, m.src, detail)
				if name != call.Name {
					reason += fmt.Sprintf(" (the server may read it as %q)", name)
				}
				if m.rule.Reason != "" {
					reason += ": " + m.rule.Reason
				}
				return deny(d, m.rule.ID, m.src, reason), j, c
			}
		}
	}
	if len(paths.linked) > 0 && (c.mayWrite(call) || c.pathRules(call)) {
		return deny(d, RulePaths, "", fmt.Sprintf("%s: %q has %d hard links, and vm-run cannot tell which of its other names "+
			"a rule protects; work on a copy of the file instead", what, paths.linked[0], paths.links[0])), j, c
	}
	if a, ok := c.asked(d, j, false); ok {
		return a, j, c
	}
	// Allow: every path on its own must be allowed (read_multiple_files of
	// a and b is allowed when reading a and reading b would be).
	rels := paths.judged
	groups := [][]string{rels}
	if len(rels) > 1 {
		groups = groups[:0]
		for _, r := range rels {
			groups = append(groups, []string{r})
		}
	}
	var vetoed string
	var by []*compiledMatcher
	for _, g := range groups {
		m, veto := c.allowedBy(call, g)
		if vetoed == "" {
			vetoed = veto
		}
		if m == nil {
			by = nil
			break
		}
		by = append(by, m)
	}
	if by != nil {
		d.Verdict, d.Rule, d.Matcher = Allow, by[0].rule.ID, by[0].src
		d.Reason = fmt.Sprintf("%s is allowed by rule %q (%s)", what, by[0].rule.ID, by[0].src)
		for i, m := range by[1:] {
			if m != by[i] {
				d.Reason += fmt.Sprintf(", rule %q (%s)", m.rule.ID, m.src)
			}
		}
		return d, j, c
	}
	switch {
	case c.defaults[call.Kind] == Allow && vetoed == "":
		d.Verdict, d.Rule = Allow, RuleDefault
		d.Reason = fmt.Sprintf("%s is allowed by default", what)
		return d, j, c
	case c.defaults[call.Kind] == Allow:
		// A veto tightens even the default: the server itself says the tool
		// writes, and the only rule that named it allows reading.
		return deny(d, RuleDefault, "", fmt.Sprintf("%s is not allowed%s", what, vetoed)), j, c
	case c.defaults[call.Kind] == Ask:
		// A veto leaves the question to the person, who sees the reason.
		a, _ := c.asked(d, j, true)
		a.Reason += leadsTo(paths) + vetoed
		return a, j, c
	}
	return deny(d, RuleDefault, "", fmt.Sprintf("no rule allows %s%s and the policy denies by default%s", what, leadsTo(paths), vetoed)), j, c
}

// uriVariants are the spellings of a normalised URI that deny rules are
// matched against: the URI, the URI with its numbers in canonical form
// (servers that parse numbers read "01" and "0x1" as 1), and both without
// their query (a server may ignore it).
func uriVariants(norm string) []string {
	out := []string{norm}
	if v := NumericVariant(norm); v != norm {
		out = append(out, v)
	}
	for _, u := range slices.Clone(out) {
		if i := strings.IndexByte(u, '?'); i >= 0 && !slices.Contains(out, u[:i]) {
			out = append(out, u[:i])
		}
	}
	return out
}

// leadsTo names where the paths of a call lead when links took them
// elsewhere than they are spelled, for a denial's reason.
func leadsTo(j judgedPaths) string {
	var moved []string
	for _, r := range j.judged {
		if !slices.Contains(j.spelled, r) {
			moved = append(moved, strconv.Quote(r))
		}
	}
	if len(moved) == 0 {
		return ""
	}
	return fmt.Sprintf(" (its paths lead to %s through symbolic links)", strings.Join(moved, ", "))
}

// mayWrite reports whether a tool may change what its paths name: it is
// not in a read-only class only, or the server says it writes.
func (c *compiled) mayWrite(call CallInfo) bool {
	classes := c.classesOf(call.Name)
	if len(classes) == 0 {
		return true
	}
	for _, cl := range classes {
		if !cl.readOnly {
			return true
		}
	}
	_, writes := call.Annotations.mayWrite()
	return writes
}

// pathRules reports whether a deny or ask matcher with paths names the
// tool: a rule that a hard link's other names could escape.
func (c *compiled) pathRules(call CallInfo) bool {
	for _, list := range [][]compiledMatcher{c.deny, c.ask} {
		for i := range list {
			m := &list[i]
			if m.kind == KindTool && len(m.paths) > 0 && c.nameMatches(m, call.Name) {
				return true
			}
		}
	}
	return false
}

// allowedBy returns the first allow matcher that grants the call with the
// given paths, and a note on a matcher the server's annotations vetoed.
func (c *compiled) allowedBy(call CallInfo, rels []string) (*compiledMatcher, string) {
	vetoed := ""
	for i := range c.allow {
		m := &c.allow[i]
		if hit, _ := c.match(m, call, rels, false); !hit {
			continue
		}
		if claim, ok := c.vetoed(m, call); ok {
			if vetoed == "" {
				vetoed = fmt.Sprintf("; rule %q (%s) allows only read-only tools, and the server annotates %q with %s", m.rule.ID, m.src, call.Name, claim)
			}
			continue
		}
		return m, vetoed
	}
	return nil, vetoed
}

func deny(d audit.Decision, rule, matcher, reason string) audit.Decision {
	d.Verdict, d.Rule, d.Matcher, d.Reason = Deny, rule, matcher, reason
	return d
}

func (p *Policy) compiled() (*compiled, error) {
	if p == nil {
		return (&Policy{}).compile()
	}
	if p.c != nil {
		return p.c, nil
	}
	return p.compile()
}

func describe(k Kind, name string) string {
	switch k {
	case KindTool:
		return fmt.Sprintf("tool %q", name)
	case KindResource:
		return fmt.Sprintf("resource %q", name)
	case KindPrompt:
		return fmt.Sprintf("prompt %q", name)
	}
	return fmt.Sprintf("the server's %s request", k)
}

// classesOf returns the classes a tool belongs to.
func (c *compiled) classesOf(tool string) []*compiledClass {
	var out []*compiledClass
	for i := range c.classes {
		for _, re := range c.classes[i].tools {
			if re.MatchString(tool) {
				out = append(out, &c.classes[i])
				break
			}
		}
	}
	return out
}

// match reports whether m selects the call. For deny matchers (deny true) a
// path argument touching a pattern is enough and an argument no pattern can
// describe counts as a match; allow matchers need every path under a
// pattern and every constrained argument to match.
func (c *compiled) match(m *compiledMatcher, call CallInfo, rels []string, deny bool) (bool, string) {
	if m.kind != call.Kind {
		return false, ""
	}
	if !c.nameMatches(m, call.Name) {
		return false, ""
	}
	detail := ""
	if len(m.paths) > 0 {
		if len(rels) == 0 {
			return false, ""
		}
		hits := 0
		for _, rel := range rels {
			for _, g := range m.paths {
				covered, overlaps := g.relation(rel)
				if (deny && overlaps) || (!deny && covered) {
					hits++
					if detail == "" {
						detail = fmt.Sprintf(": path %q falls under %q", rel, g.src)
					}
					break
				}
			}
		}
		if deny && hits == 0 || !deny && hits < len(rels) {
			return false, ""
		}
	}
	for _, a := range m.args {
		v, present := call.Arguments[a.name]
		if !present {
			return false, ""
		}
		ss, ok := argStrings(v)
		switch {
		case deny && !ok:
			continue
		case !ok || len(ss) == 0:
			return false, ""
		}
		n := 0
		for _, s := range ss {
			if a.re.MatchString(s) {
				n++
			}
		}
		if deny && n == 0 || !deny && n < len(ss) {
			return false, ""
		}
	}
	return true, detail
}

func (c *compiled) nameMatches(m *compiledMatcher, name string) bool {
	switch {
	case m.class != "":
		for _, cl := range c.classesOf(name) {
			if cl.name == m.class {
				return true
			}
		}
		return false
	case m.name != nil:
		return m.name.MatchString(name)
	}
	return true
}

// vetoed reports whether an allow matcher yields to the server's claim that
// the tool writes.
func (c *compiled) vetoed(m *compiledMatcher, call CallInfo) (string, bool) {
	if m.class == "" {
		return "", false
	}
	for i := range c.classes {
		if c.classes[i].name == m.class && c.classes[i].readOnly {
			return call.Annotations.mayWrite()
		}
	}
	return "", false
}

// Visible reports whether an item of a tools/list, resources/list or
// prompts/list result stays in the list: whether some call to it could be
// allowed. A deny matcher that constrains neither paths nor arguments hides
// the item; otherwise an allow or ask matcher naming it, or an allow or ask
// default, keeps it.
func (p *Policy) Visible(kind Kind, name string, ann *ToolAnnotations) bool {
	ok, _ := p.VisibleRule(kind, name, ann)
	return ok
}

// VisibleRule is [Policy.Visible], and when the item is hidden the id of
// the rule that hides it: a deny rule's, or RuleDefault when no allow
// matcher keeps it.
func (p *Policy) VisibleRule(kind Kind, name string, ann *ToolAnnotations) (bool, string) {
	ok, rule := p.visible(kind, name, ann)
	if !ok && rule == "" {
		rule = RuleDefault
	}
	return ok, rule
}

func (p *Policy) visible(kind Kind, name string, ann *ToolAnnotations) (bool, string) {
	c, err := p.compiled()
	if err != nil {
		return false, ""
	}
	call := CallInfo{Kind: kind, Name: name, Annotations: ann}
	if kind == KindResource {
		norm, err := NormalizeURI(name)
		if err != nil {
			return false, RuleURI
		}
		call.Name, name = norm, norm
	}
	for i := range c.deny {
		m := &c.deny[i]
		if m.kind == kind && len(m.paths) == 0 && len(m.args) == 0 && c.nameMatches(m, name) {
			return false, m.rule.ID
		}
	}
	for i := range c.ask {
		if m := &c.ask[i]; m.kind == kind && c.nameMatches(m, name) {
			return true, ""
		}
	}
	if c.defaults[kind] == Ask {
		return true, ""
	}
	vetoed := false
	for i := range c.allow {
		m := &c.allow[i]
		if m.kind != kind || !c.nameMatches(m, name) {
			continue
		}
		if _, v := c.vetoed(m, call); !v {
			return true, ""
		}
		vetoed = true
	}
	return c.defaults[kind] == Allow && !vetoed, ""
}
