package profiles

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/vm-run/vm-run/policy"
	"gopkg.in/yaml.v3"
)

// The tools: section is the tool policy of package policy, which owns its
// schema, decoder and semantics. This file is the seam: the schema walkers
// of this package stop at [policy.Policy] and call the functions below.
//
//   - check: the section's YAML form follows the profile rules (no anchors,
//     aliases, merge keys or tags) and holds no ${VAR}; then policy decodes
//     it, so a broken section is reported even if a child drops it.
//   - merge: each file's tools: node is kept, base first (mergeTools).
//   - decode: policy decodes each file's section; this package checks that
//     the child can extend what it inherits (extendConflict) and combines
//     them with [policy.Merge].
//   - validate: an absent policy or default_action becomes deny.
//   - encode: yaml.v3 encodes the Policy (Matcher writes its string form).
//
// Variables are not expanded in tools:. Its path patterns are relative to
// the workspace by design and absolute ones are refused, so ${WORKSPACE}
// could only produce an error; ${HOME} and ${TMPDIR} name places the tool
// policy cannot name; and "$" is a regexp anchor in args. A known
// variable in the section is an error, so that "write(${WORKSPACE}/src/*)"
// is not silently a pattern for a directory called "${WORKSPACE}".

// policyType is the type of the delegated section.
var policyType = reflect.TypeFor[policy.Policy]()

// policyLabel names a path in the tool policy in messages; "" is the top of
// a --policy file.
func policyLabel(path string) string {
	if path == "" {
		return "tool policy"
	}
	return path
}

// checkTools checks one file's tools: section on its own. A class the
// section names but does not define may come from a profile it extends, so
// such names are taken as defined here; decoding the chain checks them.
func (st *state) checkTools(n *yaml.Node, path string) error {
	if n.Kind != yaml.MappingNode {
		return st.at(n).errorf("%s: want a mapping, got %s", policyLabel(path), got(n))
	}
	if err := st.checkToolsYAML(n, path); err != nil {
		return err
	}
	_, err := st.decodeTools(n, referencedClasses(n), path)
	return err
}

// checkToolsYAML holds the tool policy to the YAML rules of profiles, which
// policy's decoder does not enforce, and refuses variables.
func (st *state) checkToolsYAML(n *yaml.Node, path string) error {
	at := st.at(n)
	switch {
	case n.Kind == yaml.AliasNode:
		return at.errorf("%s: aliases (*%s) are not supported", policyLabel(path), n.Value)
	case n.Anchor != "":
		return at.errorf("%s: anchors (&%s) are not supported", policyLabel(path), n.Anchor)
	case !slices.Contains(knownTags, n.ShortTag()):
		return at.errorf("%s: YAML tag %s is not supported", policyLabel(path), n.ShortTag())
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				return st.at(k).errorf("%s: merge keys (<<) are not supported", policyLabel(path))
			}
			if err := st.checkToolsYAML(k, path); err != nil {
				return err
			}
			if err := st.checkToolsYAML(v, joinPath(path, k.Value)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			if err := st.checkToolsYAML(e, indexPath(path, i)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if i := strings.Index(n.Value, "${secret:"); i >= 0 {
			return st.offsetPos(n, i).errorf("%v", errLiteralSecret(policyLabel(path)))
		}
		for _, name := range varNames {
			if i := strings.Index(n.Value, "${"+name+"}"); i >= 0 {
				return st.offsetPos(n, i).errorf(`%s: ${%s} is not expanded in tools: path patterns are `+
					`relative to the workspace already ("docs/*" means ${WORKSPACE}/docs/*)`,
					policyLabel(path), name)
			}
		}
	}
	return nil
}

// className is what policy accepts as a class name.
var className = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// referencedClasses lists the classes that mapping matchers of n name
// ("class: NAME") and that n does not define and are not built in: names
// only an extended profile can define.
func referencedClasses(n *yaml.Node) []string {
	defined := policy.BuiltinClasses()
	if c := mapValue(n, "classes"); c != nil && c.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(c.Content); i += 2 {
			defined[c.Content[i].Value] = policy.Class{}
		}
	}
	for _, k := range []policy.Kind{policy.KindTool, policy.KindResource, policy.KindPrompt,
		policy.KindSampling, policy.KindElicitation} {
		defined[string(k)] = policy.Class{} // reserved: let policy say so
	}
	var out []string
	rules := mapValue(n, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode {
		return nil
	}
	for _, r := range rules.Content {
		for _, key := range []string{"allow", "deny"} {
			list := mapValue(r, key)
			if list == nil || list.Kind != yaml.SequenceNode {
				continue
			}
			for _, m := range list.Content {
				c := mapValue(m, "class")
				if c == nil || c.Kind != yaml.ScalarNode || !className.MatchString(c.Value) {
					continue
				}
				if _, ok := defined[c.Value]; !ok && !slices.Contains(out, c.Value) {
					out = append(out, c.Value)
				}
			}
		}
	}
	return out
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if i := mapIndex(n, key); i >= 0 {
		return n.Content[i+1]
	}
	return nil
}

// mapKey returns the key node of key in mapping n, or nil.
func mapKey(n *yaml.Node, key string) *yaml.Node {
	if i := mapIndex(n, key); i >= 0 {
		return n.Content[i]
	}
	return nil
}

// mapIndex returns the index in n.Content of the first key node of key in
// mapping n, or -1.
func mapIndex(n *yaml.Node, key string) int {
	if n == nil || n.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return i
		}
	}
	return -1
}

// decodeTools has package policy decode one tools: node, with errors as *Error at
// file:line:col. known are classes to take as defined (by the profiles n
// extends, or as a guess, see checkTools): they are added to n's classes
// for policy's checks, empty, and taken out of the result.
func (st *state) decodeTools(n *yaml.Node, known []string, path string) (*policy.Policy, error) {
	file := st.origin[n]
	aug, added := withClasses(n, known)
	pol, err := policy.DecodePolicy(aug, func(line, col int, err error) error {
		msg := err.Error()
		if path != "" && !strings.HasPrefix(msg, path+":") {
			msg = path + ": " + msg
		}
		return &Error{File: file, Line: line, Column: col, Msg: msg, Err: err}
	})
	if err != nil {
		return nil, err
	}
	for _, name := range added {
		delete(pol.Classes, name)
	}
	// Empty mappings ("defaults: {}", "args: {}") say nothing; nil
	// keeps a policy equal to itself after YAML() leaves them out.
	if len(pol.Classes) == 0 {
		pol.Classes = nil
	}
	if len(pol.Defaults) == 0 {
		pol.Defaults = nil
	}
	for _, r := range pol.Rules {
		for _, list := range [][]policy.Matcher{r.Allow, r.Deny} {
			for i := range list {
				if len(list[i].Args) == 0 {
					list[i].Args = nil
				}
			}
		}
	}
	return pol, nil
}

// withClasses returns a copy of the mapping n whose classes: holds an empty
// class for each name in known it lacks, and the names added. n is
// unchanged.
func withClasses(n *yaml.Node, known []string) (*yaml.Node, []string) {
	if len(known) == 0 || n.Kind != yaml.MappingNode {
		return n, nil
	}
	out := *n
	out.Content = slices.Clone(n.Content)
	var classes *yaml.Node
	if i := mapIndex(&out, "classes") + 1; i > 0 {
		if out.Content[i].Kind != yaml.MappingNode {
			return n, nil // policy reports it
		}
		c := *out.Content[i]
		c.Content = slices.Clone(c.Content)
		classes, out.Content[i] = &c, &c
	} else {
		classes = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		out.Content = append(out.Content, str("classes"), classes)
	}
	var added []string
	for _, name := range known {
		if mapKey(classes, name) == nil {
			classes.Content = append(classes.Content, str(name), &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
			added = append(added, name)
		}
	}
	return &out, added
}

// mergeTools records that over's tools: section extends base's (nil when
// nothing is inherited). The policies are merged when decoded, by package policy's
// rules, so the node returned stands for the list of sections.
func (st *state) mergeTools(base, over *yaml.Node) *yaml.Node {
	var layers []*yaml.Node
	if base != nil {
		layers = st.layersOf(base)
	}
	out := st.like(over)
	out.Content = over.Content
	st.layers[out] = append(slices.Clip(layers), over)
	return out
}

// layersOf returns the tools: sections that the merged node n stands for.
func (st *state) layersOf(n *yaml.Node) []*yaml.Node {
	if l, ok := st.layers[n]; ok {
		return l
	}
	return []*yaml.Node{n}
}

// tools decodes the tools: sections of a profile chain, base first, and
// combines them by [policy.Inherit]: deny rules accumulate down the chain
// and cannot be removed; allow rules, default_action and defaults come from
// the nearest section, so that a profile extending strict and stating
// "allow reads in docs/" means that, not "strict's reads plus docs/";
// classes add up, so a child can use its base's. Each rule remembers the
// file it comes from.
func (d *decoder) tools(n *yaml.Node, path string) (*policy.Policy, error) {
	var acc *policy.Policy
	for _, layer := range d.st.layersOf(n) {
		pol, err := d.st.decodeTools(layer, userClasses(acc), path)
		if err != nil {
			return nil, err
		}
		pol.SetOrigin(d.st.origin[layer])
		if acc, err = policy.Inherit(acc, pol); err != nil {
			return nil, d.st.at(layer).errorf("tools: %v", err)
		}
	}
	return acc, nil
}

// ruleIDNode returns the id: value of rule i of a decoded tools: node.
func ruleIDNode(n *yaml.Node, i int) *yaml.Node {
	rules := mapValue(n, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode || i >= len(rules.Content) {
		return n
	}
	if id := mapValue(rules.Content[i], "id"); id != nil {
		return id
	}
	return rules.Content[i]
}

// userClasses lists the classes p defines beyond the built-in ones.
func userClasses(p *policy.Policy) []string {
	if p == nil {
		return nil
	}
	builtin := policy.BuiltinClasses()
	var out []string
	for name := range p.Classes {
		if _, ok := builtin[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// matcherWord is the WORD of a matcher written WORD or WORD(ARGUMENT), as
// package policy parses it.
func matcherWord(spec string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(spec), "(")
	return strings.TrimSpace(word)
}

// toolsDefault makes the policy explicit: deny when the profile chain has
// no tools: section or no default_action. It is compiled, so that errors
// surface at load and the proxy gets it ready to decide.
func (d *decoder) toolsDefault(p *Profile) error {
	if p.Tools == nil {
		p.Tools = &policy.Policy{}
	}
	if p.Tools.DefaultAction == "" {
		p.Tools.DefaultAction = policy.Deny
	}
	if err := p.Tools.Compile(); err != nil {
		return d.errorf(d.at("tools"), "tools", "%v", err)
	}
	return nil
}

// encodeTools writes the policy v (a policy.Policy) as yaml.v3 does; its
// strings are not escaped for variables, since tools: is not expanded.
func encodeTools(v reflect.Value) *yaml.Node {
	n := new(yaml.Node)
	if err := n.Encode(v.Interface()); err != nil {
		panic("profiles: encode tool policy: " + err.Error())
	}
	return n
}

// LoadPolicy reads a tool policy file, for vm-run's --policy flag. The file
// holds what a profile's tools: section holds (rules, default_action,
// defaults, classes), at its top level, in the same schema (see package
// policy). Errors in it are *Error values naming file:line:column. The
// policy is compiled; its rules name the file as their origin. Classes a
// matcher names as "class: NAME" must be built in or defined in the file;
// a string matcher "NAME(...)" reads NAME as a class if the profile it is
// added to defines one, as in a profile that extends it.
func LoadPolicy(path string) (*policy.Policy, error) {
	data, err := readFile("tool policy", path)
	if err != nil {
		return nil, err
	}
	return parsePolicy(path, data)
}

// parsePolicy parses a tool policy file's data; file names it in errors.
func parsePolicy(file string, data []byte) (*policy.Policy, error) {
	root, more, err := parseYAML(data)
	if err != nil {
		return nil, syntaxError(file, data, err)
	}
	if root == nil || len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty tool policy; write {} for one that denies everything"}
	}
	if more != nil {
		return nil, &Error{File: file, Line: more.Line, Column: more.Column,
			Msg: "a tool policy file holds one YAML document; this is a second"}
	}
	st := newState()
	st.lines[file] = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	n := root.Content[0]
	st.register(n, file)
	// The two mistakes a file copied from a profile or from the seeds'
	// example makes, named for what to do about them.
	if k := mapKey(n, "tools"); k != nil {
		return nil, st.at(k).errorf("tools: this file is a tools: section itself; " +
			"write its keys (rules, default_action, ...) at the top level")
	}
	if k := mapKey(n, "network"); k != nil {
		return nil, st.at(k).errorf("network: belongs in the profile (network: none), not in a tool policy")
	}
	if n.Kind != yaml.MappingNode {
		return nil, st.at(n).errorf("%s: want a mapping, got %s", policyLabel(""), got(n))
	}
	if err := st.checkToolsYAML(n, ""); err != nil {
		return nil, err
	}
	pol, err := st.decodeTools(n, nil, "")
	if err != nil {
		return nil, err
	}
	pol.SetOrigin(file)
	return pol, nil
}

// WithPolicy returns a copy of p whose tool policy is p's extended by
// extra, as a profile extending p with extra as its tools: section would
// have it ([policy.Inherit]): p's deny rules stay in force and extra adds
// its own; extra's allow rules, default_action (deny when unset) and
// defaults replace p's; its classes add to p's. This is how vm-run's
// --policy flag applies: the file is the nearest tools: section. p is not
// changed; a nil extra returns a copy of p.
func (p *Profile) WithPolicy(extra *policy.Policy) (*Profile, error) {
	q := *p
	if extra == nil {
		return &q, nil
	}
	merged, err := policy.Inherit(p.Tools, extra)
	if err != nil {
		return nil, fmt.Errorf("apply tool policy to profile %q: %w", p.Name, err)
	}
	if merged.DefaultAction == "" {
		merged.DefaultAction = policy.Deny
	}
	if err := merged.Compile(); err != nil {
		return nil, fmt.Errorf("apply tool policy to profile %q: %w", p.Name, err)
	}
	q.Tools = merged
	return &q, nil
}
