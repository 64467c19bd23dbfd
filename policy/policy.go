package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// Action is what a policy does with a call: the verdicts of the ledger's
// decision records, under the name the policy language gives them.
type Action = audit.Verdict

// Actions. Ask holds a call until a person answers (see [Policy.AskRule]).
const (
	Allow = audit.VerdictAllow
	Ask   = audit.VerdictAsk
	Deny  = audit.VerdictDeny
)

// Kind is what a call asks for. Tools, resources and prompts are asked for by
// the client; sampling and elicitation are requests the server makes of the
// client.
type Kind string

// Kinds the policy governs.
const (
	KindTool        Kind = "tool"        // tools/call
	KindResource    Kind = "resource"    // resources/read, resources/subscribe
	KindPrompt      Kind = "prompt"      // prompts/get
	KindSampling    Kind = "sampling"    // sampling/createMessage
	KindElicitation Kind = "elicitation" // elicitation/create
)

var kinds = []Kind{KindTool, KindResource, KindPrompt, KindSampling, KindElicitation}

// Rule IDs the policy itself reports; user rule IDs cannot contain ':'.
const (
	RuleDefault = "vm-run:default" // no rule matched; the default applied
	RulePaths   = "vm-run:paths"   // a path argument was refused (see PathError)
	RuleURI     = "vm-run:uri"     // a resource URI was refused
	RuleLedger  = "vm-run:ledger"  // the Recorder failed; the call is denied
	RuleInvalid = "vm-run:invalid" // the request was malformed (-32602)
)

// Policy is the tool policy: the `tools:` section of a profile. The zero
// Policy denies everything. See the package documentation for the YAML
// schema; build one with [DecodePolicy], [Strict] or a literal followed by
// [Policy.Compile].
type Policy struct {
	// Mode is enforce (the default) or observe; see [Mode].
	Mode Mode `yaml:"mode,omitempty" json:"mode,omitempty"`
	// DefaultAction applies when no rule matches; empty means deny.
	DefaultAction Action `yaml:"default_action,omitempty" json:"default_action,omitempty"`
	// Defaults overrides DefaultAction for one kind.
	Defaults map[Kind]Action `yaml:"defaults,omitempty" json:"defaults,omitempty"`
	// Classes name sets of tools; they add to the built-in classes.
	Classes map[string]Class `yaml:"classes,omitempty" json:"classes,omitempty"`
	Rules   []Rule           `yaml:"rules,omitempty" json:"rules,omitempty"`
	// OnChange is what the proxy does with a tool whose definition
	// changed since it was pinned; empty is [DefaultOnChange]. See
	// [OnChange] and [Policy.ChangeAction].
	OnChange OnChange `yaml:"on_change,omitempty" json:"on_change,omitempty"`

	c *compiled // set by Compile
}

// Mode says whether a policy's denials take effect.
//
// In observe mode the proxy forwards every call the policy denies and
// records its decision as it would have been (verdict would_deny, with
// the rule), and lists stay unfiltered: the learn-then-enforce workflow,
// followed by `vm-run policy generate`. Everything else holds as in
// enforce mode: the kernel sandbox, the ownership of roots, malformed
// requests refused, and nothing forwarded that the ledger did not record.
// A call vm-run cannot judge (a path argument that is not a string, an
// ambiguous URI) is a policy denial like any other: observed, it is
// recorded as would_deny and forwarded, and the server judges it.
//
// Observe relaxes, so configuration can only choose it where nothing
// before it said enforce: an explicit "mode: enforce" in a profile binds
// every profile, --policy file and --observe flag after it ([Inherit],
// [Policy.Observe]). An unset mode is inherited.
type Mode string

// Modes.
const (
	ModeEnforce Mode = "enforce"
	ModeObserve Mode = "observe"
)

// Observing reports whether p is in observe mode.
func (p *Policy) Observing() bool { return p != nil && p.Mode == ModeObserve }

// Observe switches p to observe mode, as the --observe flag does, unless
// p says mode: enforce. p must be compiled again after.
func (p *Policy) Observe() error {
	if p.Mode == ModeEnforce {
		return errors.New("the profile's tool policy says mode: enforce, which observe mode cannot relax; use a profile without it to observe a session")
	}
	p.Mode = ModeObserve
	return nil
}

// Class is a named set of tools, such as "read" and "write".
type Class struct {
	// Tools are tool-name globs.
	Tools []string `yaml:"tools" json:"tools"`
	// PathArgs name the arguments of these tools that hold paths (a string or
	// a list of strings). Each is normalised against the workspace before
	// any rule is consulted; one that cannot be is denied.
	PathArgs []string `yaml:"path_args,omitempty" json:"path_args,omitempty"`
	// ReadOnly marks a class whose allow rules yield to the server's own
	// annotations: a tool annotated readOnlyHint: false or destructiveHint:
	// true is never allowed through a read-only class.
	ReadOnly bool `yaml:"read_only,omitempty" json:"read_only,omitempty"`
}

// Rule is one entry of rules: a set of allow, ask and deny matchers under
// one ID that decisions and the ledger cite.
type Rule struct {
	ID string `yaml:"id" json:"id"`
	// Reason is shown to the agent (and recorded) when the rule denies,
	// and to the person asked when it asks.
	Reason string    `yaml:"reason,omitempty" json:"reason,omitempty"`
	Allow  []Matcher `yaml:"allow,omitempty" json:"allow,omitempty"`
	// Ask matchers hold a call until a person approves it; see [AskParams].
	Ask  []Matcher `yaml:"ask,omitempty" json:"ask,omitempty"`
	Deny []Matcher `yaml:"deny,omitempty" json:"deny,omitempty"`
	// TTL is how long a person's approval for a call under the rule's ask
	// matchers may be remembered for the same call ([GrantKey]); 0 offers
	// approval of this call only. Only a rule with ask matchers has one.
	TTL time.Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// Timeout is how long a question waits for an answer before the call
	// is denied; 0 is [DefaultAskTimeout].
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Origin says where the rule comes from (a profile or policy file);
	// see [Inherit]. It is not part of the YAML schema.
	Origin string `yaml:"-" json:"-"`
}

// Matcher selects calls. Written as a string ("read(docs/*)", "get_*",
// "tool(echo)", "resource(file:///docs/**)", "prompt(review)", "sampling")
// it is parsed into the fields below; written as a mapping, the fields are
// given directly. Exactly one of Tool, Class, Resource, Prompt and Kind is
// set.
type Matcher struct {
	Spec     string `yaml:"-" json:"spec,omitempty"`              // the string form, if any
	Tool     string `yaml:"tool,omitempty" json:"tool,omitempty"` // tool-name glob
	Class    string `yaml:"class,omitempty" json:"class,omitempty"`
	Resource string `yaml:"resource,omitempty" json:"resource,omitempty"` // URI glob
	Prompt   string `yaml:"prompt,omitempty" json:"prompt,omitempty"`     // prompt-name glob
	Kind     Kind   `yaml:"kind,omitempty" json:"kind,omitempty"`         // sampling or elicitation
	// Paths are path globs the tool's path arguments must fall under (allow)
	// or that they must not touch (deny).
	Paths []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	// Args constrain named arguments of a tool or prompt.
	Args map[string]ArgMatch `yaml:"args,omitempty" json:"args,omitempty"`
}

// ArgMatch constrains one argument: exactly one of Glob and Regex. A string
// value is matched as is; numbers and booleans as their JSON text; a list
// element by element. Regex must match the whole value (it is anchored).
type ArgMatch struct {
	Glob  string `yaml:"glob,omitempty" json:"glob,omitempty"`
	Regex string `yaml:"regex,omitempty" json:"regex,omitempty"`
}

// String returns the matcher as written in a profile.
func (m Matcher) String() string {
	if m.Spec != "" {
		return m.Spec
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// ToolAnnotations are the server's claims about a tool (MCP Tool.annotations).
// A nil field is a claim not made.
type ToolAnnotations struct {
	ReadOnlyHint    *bool `json:"readOnlyHint,omitempty"`
	DestructiveHint *bool `json:"destructiveHint,omitempty"`
}

// mayWrite reports whether the server claims the tool changes things.
func (a *ToolAnnotations) mayWrite() (string, bool) {
	switch {
	case a == nil:
		return "", false
	case a.DestructiveHint != nil && *a.DestructiveHint:
		return "destructiveHint: true", true
	case a.ReadOnlyHint != nil && !*a.ReadOnlyHint:
		return "readOnlyHint: false", true
	}
	return "", false
}

// CallInfo is one call to decide on.
type CallInfo struct {
	Kind Kind
	// Name is the tool or prompt name, the resource URI, or the method of a
	// sampling or elicitation request.
	Name string
	// Arguments are the decoded JSON arguments of a tool or prompt.
	Arguments map[string]any
	// Annotations are the tool's annotations from the server's tools/list,
	// or nil if the proxy has not seen any.
	Annotations *ToolAnnotations
	// Workspace is the absolute, symlink-free directory every path
	// argument must lead into, and that path patterns are relative to.
	Workspace string
	// Bases are the absolute directories inside the workspace that the
	// server may resolve a relative path against: its working directory
	// (the workspace) and every root it has been told. A relative path is
	// judged against each of them, and must be allowed under all. Empty
	// means the workspace alone.
	Bases []string
	// BasesPending says that the server is being told new roots: a
	// relative path cannot be judged until the proxy knows them.
	BasesPending bool
	// Resolver tells where a path really leads; nil is [FS].
	Resolver Resolver
}

// compiled is a Policy ready to decide.
type compiled struct {
	defaults map[Kind]Action
	classes  []compiledClass
	allow    []compiledMatcher
	ask      []compiledMatcher
	deny     []compiledMatcher
}

type compiledClass struct {
	name     string
	tools    []*regexp.Regexp
	pathArgs []string
	readOnly bool
}

type compiledMatcher struct {
	rule  *Rule
	src   string
	kind  Kind
	name  *regexp.Regexp // tool/prompt name or URI; nil matches any
	class string
	paths []*pathGlob
	args  []compiledArg
}

type compiledArg struct {
	name string
	re   *regexp.Regexp
}

// Compile checks the policy and prepares it for Decide. DecodePolicy and the
// built-in policies return compiled policies; a Policy built as a literal
// must be compiled before use (Decide compiles on every call otherwise).
func (p *Policy) Compile() error {
	c, err := p.compile()
	if err != nil {
		return err
	}
	p.c = c
	return nil
}

// Ready returns p compiled without changing p: p itself when it is, else a
// compiled copy, so that one policy can serve many proxies at once. A nil p
// is the zero Policy, which denies everything.
func (p *Policy) Ready() (*Policy, error) {
	if p != nil && p.c != nil {
		return p, nil
	}
	q := &Policy{}
	if p != nil {
		*q = *p
	}
	c, err := q.compile()
	if err != nil {
		return nil, err
	}
	q.c = c
	return q, nil
}

func (p *Policy) compile() (*compiled, error) {
	c := &compiled{defaults: map[Kind]Action{}}
	def := p.DefaultAction
	if def == "" {
		def = Deny
	}
	if !validAction(def) {
		return nil, fmt.Errorf("default_action %q: want allow, ask or deny", def)
	}
	for _, k := range kinds {
		c.defaults[k] = def
	}
	for k, a := range p.Defaults {
		if !slices.Contains(kinds, k) {
			return nil, fmt.Errorf("defaults: unknown kind %q", k)
		}
		if !validAction(a) {
			return nil, fmt.Errorf("defaults: %s: %q: want allow, ask or deny", k, a)
		}
		c.defaults[k] = a
	}
	classes := mergeClasses(builtinClasses, p.Classes)
	for _, name := range sortedKeys(classes) {
		if err := checkName("class", name); err != nil {
			return nil, err
		}
		cl := classes[name]
		cc := compiledClass{name: name, pathArgs: cl.PathArgs, readOnly: cl.ReadOnly}
		for _, t := range cl.Tools {
			re, err := compileStringGlob(t, 0)
			if err != nil {
				return nil, fmt.Errorf("class %q: %w", name, err)
			}
			cc.tools = append(cc.tools, re)
		}
		c.classes = append(c.classes, cc)
	}
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if err := checkName("rule id", r.ID); err != nil {
			return nil, err
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("rule id %q is used twice", r.ID)
		}
		seen[r.ID] = true
		if len(r.Allow) == 0 && len(r.Ask) == 0 && len(r.Deny) == 0 {
			return nil, fmt.Errorf("rule %q has no allow, ask or deny matchers", r.ID)
		}
		if err := checkAskParams(r); err != nil {
			return nil, err
		}
		for _, list := range []struct {
			ms  []Matcher
			out *[]compiledMatcher
		}{{r.Allow, &c.allow}, {r.Ask, &c.ask}, {r.Deny, &c.deny}} {
			for _, m := range list.ms {
				cm, err := compileMatcher(r, m, classes)
				if err != nil {
					return nil, fmt.Errorf("rule %q: %w", r.ID, err)
				}
				*list.out = append(*list.out, cm)
			}
		}
	}
	return c, nil
}

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return fmt.Errorf("%s %q: use letters, digits, '-', '_' and '.'", what, s)
		}
	}
	return nil
}

func compileMatcher(r *Rule, m Matcher, classes map[string]Class) (compiledMatcher, error) {
	if m.Spec != "" {
		parsed, err := parseMatcherSpec(m.Spec, classes)
		if err != nil {
			return compiledMatcher{}, err
		}
		m = parsed
	}
	cm := compiledMatcher{rule: r, src: m.String()}
	label := cm.src
	if m.Spec != "" {
		label = strconv.Quote(m.Spec)
	}
	set := 0
	var err error
	if m.Tool != "" {
		set++
		cm.kind = KindTool
		cm.name, err = compileStringGlob(m.Tool, 0)
	}
	if m.Class != "" {
		set++
		cm.kind, cm.class = KindTool, m.Class
		if _, ok := classes[m.Class]; !ok {
			err = fmt.Errorf("matcher %s: unknown class %q", label, m.Class)
		}
	}
	if m.Resource != "" {
		set++
		cm.kind = KindResource
		cm.name, err = compileStringGlob(normalizeURIPattern(m.Resource), '/')
	}
	if m.Prompt != "" {
		set++
		cm.kind = KindPrompt
		cm.name, err = compileStringGlob(m.Prompt, 0)
	}
	if m.Kind != "" {
		set++
		cm.kind = m.Kind
		if m.Kind != KindSampling && m.Kind != KindElicitation {
			err = fmt.Errorf("matcher %s: kind %q: want sampling or elicitation", label, m.Kind)
		}
	}
	if err != nil {
		if errors.Is(err, errPatternSyntax) {
			err = fmt.Errorf("matcher %s: %w", label, err)
		}
		return cm, err
	}
	if set != 1 {
		return cm, fmt.Errorf("matcher %s: give exactly one of tool, class, resource, prompt and kind", label)
	}
	if len(m.Paths) > 0 && cm.kind != KindTool {
		return cm, fmt.Errorf("matcher %s: paths apply to tools only", label)
	}
	if len(m.Args) > 0 && cm.kind != KindTool && cm.kind != KindPrompt {
		return cm, fmt.Errorf("matcher %s: args apply to tools and prompts only", label)
	}
	for _, p := range m.Paths {
		g, err := compilePathGlob(p)
		if err != nil {
			return cm, fmt.Errorf("matcher %s: %w", label, err)
		}
		cm.paths = append(cm.paths, g)
	}
	for _, name := range sortedKeys(m.Args) {
		a := m.Args[name]
		var re *regexp.Regexp
		switch {
		case a.Glob != "" && a.Regex != "", a.Glob == "" && a.Regex == "":
			return cm, fmt.Errorf("matcher %s: argument %q: give exactly one of glob and regex", label, name)
		case a.Glob != "":
			re, err = compileStringGlob(a.Glob, 0)
		default:
			re, err = compileAnchoredRegexp(a.Regex)
		}
		if err != nil {
			return cm, fmt.Errorf("matcher %s: argument %q: %w", label, name, err)
		}
		cm.args = append(cm.args, compiledArg{name: name, re: re})
	}
	return cm, nil
}

// normalizeURIPattern writes a resource pattern as [NormalizeURI] writes
// the URIs it is matched against, so that "DEMO://x/a%2Eb" matches what
// the server reads as demo://x/a.b. A pattern that is not a URI as it
// stands (glob classes, escapes) keeps its text, with its scheme and a
// host without glob characters lower-cased.
func normalizeURIPattern(p string) string {
	if norm, err := NormalizeURI(p); err == nil {
		return norm
	}
	scheme, rest, ok := strings.Cut(p, ":")
	if !ok || !uriSchemeRE.MatchString(scheme) {
		return p
	}
	out := strings.ToLower(scheme) + ":"
	if host, ok := strings.CutPrefix(rest, "//"); ok {
		h, path, _ := strings.Cut(host, "/")
		if !strings.ContainsAny(h, "*?[]\\") {
			h = strings.ToLower(h)
		}
		rest = "//" + h
		if strings.Contains(host, "/") {
			rest += "/" + path
		}
	}
	return out + rest
}

var uriSchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// parseMatcherSpec parses the string form of a matcher:
//
//	sampling | elicitation
//	tool(NAME) | resource(URI) | prompt(NAME)
//	CLASS | CLASS(PATH)
//	NAME | NAME(PATH)
//
// A word that names a class is the class; any other word is a tool-name
// glob. tool(NAME) names a tool even if a class has the same name.
func parseMatcherSpec(spec string, classes map[string]Class) (Matcher, error) {
	m := Matcher{Spec: spec}
	word, arg, hasArg := strings.Cut(strings.TrimSpace(spec), "(")
	word = strings.TrimSpace(word)
	if hasArg {
		var ok bool
		arg, ok = strings.CutSuffix(strings.TrimSpace(arg), ")")
		arg = strings.TrimSpace(arg)
		if !ok || arg == "" {
			return m, fmt.Errorf("matcher %q: want WORD or WORD(ARGUMENT)", spec)
		}
	}
	if word == "" {
		return m, fmt.Errorf("matcher %q: empty name", spec)
	}
	switch Kind(word) {
	case KindSampling, KindElicitation:
		if hasArg {
			return m, fmt.Errorf("matcher %q: %s takes no argument", spec, word)
		}
		m.Kind = Kind(word)
		return m, nil
	case KindTool, KindResource, KindPrompt:
		if !hasArg {
			return m, fmt.Errorf("matcher %q: %s needs an argument, as in %s(NAME)", spec, word, word)
		}
		switch Kind(word) {
		case KindTool:
			m.Tool = arg
		case KindResource:
			m.Resource = arg
		default:
			m.Prompt = arg
		}
		return m, nil
	}
	if _, ok := classes[word]; ok {
		m.Class = word
	} else {
		m.Tool = word
	}
	if hasArg {
		m.Paths = []string{arg}
	}
	return m, nil
}

// argStrings turns an argument value into the strings a glob or regexp sees.
// ok is false for values no pattern can describe (objects, null, nested
// lists): allow rules never match them and deny rules always do.
func argStrings(v any) (out []string, ok bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case bool:
		return []string{strconv.FormatBool(v)}, true
	case float64:
		return []string{strconv.FormatFloat(v, 'g', -1, 64)}, true
	case json.Number:
		return []string{v.String()}, true
	case []any:
		for _, e := range v {
			s, ok := argStrings(e)
			if !ok || len(s) != 1 {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, true
	}
	return nil, false
}
