package policy

import (
	"errors"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// ErrorHook turns an error at a position of the YAML being decoded into the
// error DecodePolicy returns; the profile loader uses it to prefix the file
// name, giving "file:line:col: ...".
type ErrorHook func(line, column int, err error) error

// PositionError is what DecodePolicy returns without a hook.
type PositionError struct {
	Line, Column int
	Err          error
}

func (e *PositionError) Error() string { return fmt.Sprintf("%d:%d: %v", e.Line, e.Column, e.Err) }
func (e *PositionError) Unwrap() error { return e.Err }

// UnmarshalYAML lets a profile embed a Policy as a field; errors are
// *PositionError values.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	got, err := DecodePolicy(n, nil)
	if err != nil {
		return err
	}
	*p = *got
	return nil
}

// MarshalYAML writes a matcher in its string form when it has one.
func (m Matcher) MarshalYAML() (any, error) {
	if m.Spec != "" {
		return m.Spec, nil
	}
	type plain Matcher
	return plain(m), nil
}

// DecodePolicy decodes the `tools:` section of a profile strictly: unknown
// keys, duplicate keys, wrong types and bad patterns are errors at the
// offending node. The result is compiled. hook, if not nil, builds each
// error from its position.
func DecodePolicy(n *yaml.Node, hook ErrorHook) (*Policy, error) {
	if hook == nil {
		hook = func(line, col int, err error) error { return &PositionError{Line: line, Column: col, Err: err} }
	}
	d := &policyDecoder{hook: hook}
	p, err := d.policy(n)
	if err != nil {
		return nil, err
	}
	if err := p.Compile(); err != nil {
		return nil, d.at(n, err) // unreachable if the checks above are complete
	}
	return p, nil
}

type policyDecoder struct {
	hook ErrorHook
}

func (d *policyDecoder) at(n *yaml.Node, err error) error { return d.hook(n.Line, n.Column, err) }

func (d *policyDecoder) errorf(n *yaml.Node, format string, args ...any) error {
	return d.at(n, fmt.Errorf(format, args...))
}

// resolve follows aliases (bounded, so a cycle cannot loop) and documents.
func (d *policyDecoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n != nil; i++ {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) != 1 {
				return n
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return n
}

// mapping iterates over a mapping's pairs, refusing duplicate and unknown
// keys. known lists the keys allowed; nil allows any.
func (d *policyDecoder) mapping(n *yaml.Node, what string, known []string, f func(k, v *yaml.Node) error) error {
	n = d.resolve(n)
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, "%s: want a mapping", what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return d.errorf(k, "%s: keys must be plain strings", what)
		}
		if seen[k.Value] {
			return d.errorf(k, "%s: key %q given twice", what, k.Value)
		}
		seen[k.Value] = true
		if known != nil && !contains(known, k.Value) {
			return d.errorf(k, "%s: unknown key %q (want one of %v)", what, k.Value, known)
		}
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (d *policyDecoder) str(n *yaml.Node, what string) (string, error) {
	n = d.resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "") {
		return "", d.errorf(n, "%s: want a string", what)
	}
	return n.Value, nil
}

func (d *policyDecoder) strs(n *yaml.Node, what string) ([]string, error) {
	n = d.resolve(n)
	if n.Kind == yaml.ScalarNode {
		s, err := d.str(n, what)
		return []string{s}, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.errorf(n, "%s: want a list of strings", what)
	}
	var out []string
	for _, e := range n.Content {
		s, err := d.str(e, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (d *policyDecoder) action(n *yaml.Node, what string) (Action, error) {
	s, err := d.str(n, what)
	if err != nil {
		return "", err
	}
	if a := Action(s); validAction(a) {
		return a, nil
	}
	return "", d.errorf(n, "%s: %q: want allow, ask or deny", what, s)
}

func (d *policyDecoder) policy(n *yaml.Node) (*Policy, error) {
	p := &Policy{}
	n = d.resolve(n)
	if n == nil {
		return nil, errors.New("tool policy: empty YAML node")
	}
	// Classes first: whether "read(...)" names a class depends on them.
	var rulesNode *yaml.Node
	err := d.mapping(n, "tools", []string{"mode", "default_action", "defaults", "classes", "rules", "on_change"}, func(k, v *yaml.Node) error {
		var err error
		switch k.Value {
		case "mode":
			var s string
			if s, err = d.str(v, "mode"); err == nil {
				if p.Mode = Mode(s); p.Mode != ModeEnforce && p.Mode != ModeObserve {
					err = d.errorf(v, "mode: %q: want enforce or observe", s)
				}
			}
		case "default_action":
			p.DefaultAction, err = d.action(v, "default_action")
		case "on_change":
			p.OnChange, err = d.onChange(v)
		case "defaults":
			p.Defaults = map[Kind]Action{}
			err = d.mapping(v, "defaults", kindNames(), func(k, v *yaml.Node) error {
				a, err := d.action(v, "defaults: "+k.Value)
				p.Defaults[Kind(k.Value)] = a
				return err
			})
		case "classes":
			p.Classes, err = d.classes(v)
		case "rules":
			rulesNode = v
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if rulesNode != nil {
		classes := mergeClasses(builtinClasses, p.Classes)
		if p.Rules, err = d.rules(rulesNode, classes); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func kindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

func (d *policyDecoder) classes(n *yaml.Node) (map[string]Class, error) {
	out := map[string]Class{}
	err := d.mapping(n, "classes", nil, func(k, v *yaml.Node) error {
		if err := checkName("class", k.Value); err != nil {
			return d.at(k, err)
		}
		if contains(kindNames(), k.Value) {
			return d.errorf(k, "class %q: the name is reserved", k.Value)
		}
		var c Class
		what := "class " + k.Value
		err := d.mapping(v, what, []string{"tools", "path_args", "read_only"}, func(k, v *yaml.Node) error {
			var err error
			switch k.Value {
			case "tools":
				if c.Tools, err = d.strs(v, what+": tools"); err == nil {
					for _, t := range c.Tools {
						if _, gerr := compileStringGlob(t, 0); gerr != nil {
							return d.at(v, gerr)
						}
					}
				}
			case "path_args":
				c.PathArgs, err = d.strs(v, what+": path_args")
			case "read_only":
				if v.Kind != yaml.ScalarNode || v.Decode(&c.ReadOnly) != nil || v.Tag != "!!bool" {
					err = d.errorf(v, "%s: read_only: want true or false", what)
				}
			}
			return err
		})
		out[k.Value] = c
		return err
	})
	return out, err
}

func (d *policyDecoder) rules(n *yaml.Node, classes map[string]Class) ([]Rule, error) {
	n = d.resolve(n)
	if n.Kind != yaml.SequenceNode {
		return nil, d.errorf(n, "rules: want a list")
	}
	var out []Rule
	ids := map[string]bool{}
	for _, rn := range n.Content {
		r := Rule{}
		var idNode, ttlNode, timeoutNode *yaml.Node
		var lists [3][]*yaml.Node // allow, ask, deny
		err := d.mapping(rn, "rule", []string{"id", "reason", "allow", "ask", "deny", "ttl", "timeout"}, func(k, v *yaml.Node) error {
			var err error
			switch k.Value {
			case "id":
				idNode = v
				r.ID, err = d.str(v, "rule id")
			case "reason":
				r.Reason, err = d.str(v, "reason")
			case "ttl":
				ttlNode = v
				r.TTL, err = d.duration(v, "ttl")
			case "timeout":
				timeoutNode = v
				r.Timeout, err = d.duration(v, "timeout")
			case "allow", "ask", "deny":
				v = d.resolve(v)
				if v.Kind != yaml.SequenceNode {
					return d.errorf(v, "%s: want a list of matchers", k.Value)
				}
				lists[slices.Index([]string{"allow", "ask", "deny"}, k.Value)] = v.Content
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		rn = d.resolve(rn)
		if idNode == nil {
			return nil, d.errorf(rn, "rule: missing id")
		}
		if err := checkName("rule id", r.ID); err != nil {
			return nil, d.at(idNode, err)
		}
		if ids[r.ID] {
			return nil, d.errorf(idNode, "rule id %q is used twice", r.ID)
		}
		ids[r.ID] = true
		if len(lists[0]) == 0 && len(lists[1]) == 0 && len(lists[2]) == 0 {
			return nil, d.errorf(rn, "rule %q: give allow, ask or deny matchers", r.ID)
		}
		if err := d.askParams(&r, len(lists[1]) > 0, ttlNode, timeoutNode); err != nil {
			return nil, err
		}
		for i, list := range lists {
			for _, mn := range list {
				m, err := d.matcher(mn)
				if err != nil {
					return nil, err
				}
				if _, err := compileMatcher(&r, m, classes); err != nil {
					return nil, d.at(d.resolve(mn), fmt.Errorf("rule %q: %w", r.ID, err))
				}
				switch i {
				case 0:
					r.Allow = append(r.Allow, m)
				case 1:
					r.Ask = append(r.Ask, m)
				default:
					r.Deny = append(r.Deny, m)
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (d *policyDecoder) matcher(n *yaml.Node) (Matcher, error) {
	n = d.resolve(n)
	if n.Kind == yaml.ScalarNode {
		s, err := d.str(n, "matcher")
		return Matcher{Spec: s}, err
	}
	var m Matcher
	keys := []string{"tool", "class", "resource", "prompt", "kind", "paths", "args"}
	err := d.mapping(n, "matcher", keys, func(k, v *yaml.Node) error {
		var err error
		switch k.Value {
		case "tool":
			m.Tool, err = d.str(v, "tool")
		case "class":
			m.Class, err = d.str(v, "class")
		case "resource":
			m.Resource, err = d.str(v, "resource")
		case "prompt":
			m.Prompt, err = d.str(v, "prompt")
		case "kind":
			var s string
			s, err = d.str(v, "kind")
			m.Kind = Kind(s)
		case "paths":
			m.Paths, err = d.strs(v, "paths")
		case "args":
			m.Args = map[string]ArgMatch{}
			err = d.mapping(v, "args", nil, func(k, v *yaml.Node) error {
				var a ArgMatch
				what := "argument " + k.Value
				err := d.mapping(v, what, []string{"glob", "regex"}, func(k, v *yaml.Node) error {
					var err error
					if k.Value == "glob" {
						a.Glob, err = d.str(v, what+": glob")
					} else {
						a.Regex, err = d.str(v, what+": regex")
					}
					return err
				})
				m.Args[k.Value] = a
				return err
			})
		}
		return err
	})
	return m, err
}
