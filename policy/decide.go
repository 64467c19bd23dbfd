package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Decision is the verdict on one call, as handed to the [Recorder]. Decide
// fills the policy fields; the proxy adds the rest before recording.
type Decision struct {
	// Policy fields.
	Kind    Kind   `json:"kind"`
	Name    string `json:"name"`
	Verdict Action `json:"verdict"`
	RuleID  string `json:"rule"`
	// Matcher is the matcher that decided, as written in the profile.
	Matcher string `json:"matcher,omitempty"`
	// Reason explains the verdict in words an agent can act on.
	Reason string `json:"reason"`

	// Proxy fields.
	Seq       uint64          `json:"seq"`            // correlates with Outcome.Seq
	Time      time.Time       `json:"time"`           // when the request arrived
	From      string          `json:"from"`           // "client" or "server"
	Method    string          `json:"method"`         // JSON-RPC method
	RequestID json.RawMessage `json:"id,omitempty"`   // JSON-RPC id as sent
	Arguments json.RawMessage `json:"args,omitempty"` // redacted
	Latency   time.Duration   `json:"latency_ns"`     // arrival to verdict, recording excluded
}

// Allowed reports whether the call may go ahead.
func (d Decision) Allowed() bool { return d.Verdict == Allow }

// Decide returns the verdict for one call. It is pure: the same policy and
// CallInfo give the same Decision. Order of evaluation:
//
//  1. path arguments (tools) and URIs (resources) are checked; one the proxy
//     cannot interpret denies the call (RulePaths, RuleURI);
//  2. any deny matcher of any rule denies;
//  3. any allow matcher of any rule allows, except that a read-only class
//     never allows a tool the server annotates as writing;
//  4. the default for the kind (default_action, or deny) applies.
func (p *Policy) Decide(call CallInfo) Decision {
	d := Decision{Kind: call.Kind, Name: call.Name}
	c, err := p.compiled()
	if err != nil {
		return d.deny(RuleDefault, "", fmt.Sprintf("the tool policy is invalid (%v), so everything is denied", err))
	}
	what := describe(call.Kind, call.Name)
	var rels []string
	switch call.Kind {
	case KindTool:
		var perr *PathError
		rels, perr = c.pathArgs(call)
		if perr != nil {
			return d.deny(RulePaths, "", fmt.Sprintf("%s: %v; give a path inside the workspace %q", what, perr, call.Workspace))
		}
	case KindResource:
		if why := checkURI(call.Name); why != "" {
			return d.deny(RuleURI, "", fmt.Sprintf("%s: the URI %s", what, why))
		}
	}
	for i := range c.deny {
		m := &c.deny[i]
		if hit, detail := c.match(m, call, rels, true); hit {
			reason := fmt.Sprintf("%s is denied by rule %q (%s)%s", what, m.rule.ID, m.src, detail)
			if m.rule.Reason != "" {
				reason += ": " + m.rule.Reason
			}
			return d.deny(m.rule.ID, m.src, reason)
		}
	}
	// Allow: every path on its own must be allowed (read_multiple_files of
	// a and b is allowed when reading a and reading b would be).
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
		d.Verdict, d.RuleID, d.Matcher = Allow, by[0].rule.ID, by[0].src
		d.Reason = fmt.Sprintf("%s is allowed by rule %q (%s)", what, by[0].rule.ID, by[0].src)
		for i, m := range by[1:] {
			if m != by[i] {
				d.Reason += fmt.Sprintf(", rule %q (%s)", m.rule.ID, m.src)
			}
		}
		return d
	}
	if c.defaults[call.Kind] == Allow && vetoed == "" {
		d.Verdict, d.RuleID = Allow, RuleDefault
		d.Reason = fmt.Sprintf("%s is allowed by default", what)
		return d
	}
	if c.defaults[call.Kind] == Allow {
		// A veto tightens even the default: the server itself says the tool
		// writes, and the only rule that named it allows reading.
		return d.deny(RuleDefault, "", fmt.Sprintf("%s is not allowed%s", what, vetoed))
	}
	return d.deny(RuleDefault, "", fmt.Sprintf("no rule allows %s and the policy denies by default%s", what, vetoed))
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

func (d Decision) deny(rule, matcher, reason string) Decision {
	d.Verdict, d.RuleID, d.Matcher, d.Reason = Deny, rule, matcher, reason
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

// pathArgs normalises every path argument of a tool call.
func (c *compiled) pathArgs(call CallInfo) ([]string, *PathError) {
	var rels []string
	seen := map[string]bool{}
	for _, cl := range c.classesOf(call.Name) {
		for _, name := range cl.pathArgs {
			if seen[name] {
				continue
			}
			seen[name] = true
			v, ok := call.Arguments[name]
			if !ok {
				continue
			}
			var list []any
			switch v := v.(type) {
			case string:
				list = []any{v}
			case []any:
				list = v
			default:
				return nil, &PathError{Arg: name, Path: fmt.Sprint(v), Reason: "is not a string"}
			}
			for i, e := range list {
				arg := name
				if _, isList := v.([]any); isList {
					arg = fmt.Sprintf("%s[%d]", name, i)
				}
				s, ok := e.(string)
				if !ok {
					return nil, &PathError{Arg: arg, Path: fmt.Sprint(e), Reason: "is not a string"}
				}
				rel, why := normalizePath(call.Workspace, s)
				if why != "" {
					return nil, &PathError{Arg: arg, Path: s, Reason: why}
				}
				rels = append(rels, rel)
			}
		}
	}
	return rels, nil
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
// the item; otherwise an allow matcher naming it, or an allow default, keeps
// it.
func (p *Policy) Visible(kind Kind, name string, ann *ToolAnnotations) bool {
	c, err := p.compiled()
	if err != nil {
		return false
	}
	call := CallInfo{Kind: kind, Name: name, Annotations: ann}
	if kind == KindResource && checkURI(name) != "" {
		return false
	}
	for i := range c.deny {
		m := &c.deny[i]
		if m.kind == kind && len(m.paths) == 0 && len(m.args) == 0 && c.nameMatches(m, name) {
			return false
		}
	}
	vetoed := false
	for i := range c.allow {
		m := &c.allow[i]
		if m.kind != kind || !c.nameMatches(m, name) {
			continue
		}
		if _, v := c.vetoed(m, call); !v {
			return true
		}
		vetoed = true
	}
	return c.defaults[kind] == Allow && !vetoed
}

// checkURI refuses resource URIs whose meaning depends on how the server
// decodes or resolves them; "" means the URI is acceptable. Matching is on
// the URI as sent, so dot segments and percent-encoded dots, slashes,
// backslashes, percent signs and NULs (RFC 3986 section 5.2.4, 2.1) would let
// one resource pass for another.
func checkURI(uri string) string {
	switch {
	case uri == "":
		return "is empty"
	case !utf8.ValidString(uri) || strings.ContainsRune(uri, utf8.RuneError):
		return "is not valid UTF-8"
	case strings.IndexFunc(uri, unicode.IsControl) >= 0:
		return "contains a control character"
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Sprintf("does not parse (%v)", errors.Unwrap(err))
	}
	lower := strings.ToLower(u.EscapedPath() + "?" + u.RawQuery)
	for _, enc := range []string{"%2e", "%2f", "%5c", "%25", "%00"} {
		if strings.Contains(lower, enc) {
			return fmt.Sprintf("contains %q, which the proxy does not decode", enc)
		}
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("contains a %q segment", seg)
		}
	}
	return ""
}
