package policy

import (
	"cmp"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/vm-run/vm-run/audit"
)

// Use is one call of a recorded session, as its ledger has it: what was
// asked for, what the session's policy decided, and how an allowed call
// ended. [Generate] turns uses into a policy.
type Use struct {
	Call    CallInfo
	Verdict Action // the session's decision
	Rule    string // the rule that made it
	Reason  string
	// Status is how an allowed call ended (OutcomeOK, OutcomeToolError,
	// ...), or "" when the ledger holds no outcome for it.
	Status string
	// Approval says who let an asked call go ahead, as the ledger's
	// approval_granted record has it ("cli uid=1000 pid=42"); "" when no
	// person was asked. A call a person approved has Verdict Allow and
	// the ask rule as its Rule.
	Approval string
}

// Used reports whether the call counts as used: allowed and answered with a
// result. A call the server failed, or that never got an answer, may have
// been a mistake of the agent; it is offered for review, not allowed.
func (u Use) Used() bool { return u.Verdict == Allow && u.Status == audit.OutcomeOK }

// GenerateOptions tune [Generate].
type GenerateOptions struct {
	// Classes are the classes, beyond the built-in ones, of the profile
	// the generated policy is for (the one it extends): they decide which
	// arguments of a tool hold paths. The generated policy uses them
	// without restating them.
	Classes map[string]Class
}

// Entry is one matcher of a generated policy, or one offered for review,
// with the calls it stands for.
type Entry struct {
	Rule    string // rule id of a matcher in Generated.Policy; "" for offers
	Matcher Matcher
	Uses    []Use
	// Allowed is set on an offer when the generated policy already allows
	// at least one of Uses: its rules constrain paths, not other
	// arguments, and a path may fall under a generalised "DIR/*".
	Allowed bool
}

// Skip is a call for which no matcher is written, and why.
type Skip struct {
	Use Use
	Why string
}

// Generated is a tool policy made from a session's uses.
type Generated struct {
	// Policy allows every used call [Generate] did not skip, and nothing
	// the matchers in Allow do not describe. Its default_action is deny.
	// It is compiled with GenerateOptions.Classes, which it does not
	// restate.
	Policy *Policy
	// Allow holds the allow matchers of Policy.Rules, in order: first
	// those for calls the session's policy allowed (rules used-*), then
	// those for calls a person approved (rules approved-*).
	Allow []Entry
	// Denied offers a matcher, with exact paths, for each call the session
	// denied; Failed for each call it allowed that was not answered with a
	// result.
	Denied, Failed []Entry
	Skipped        []Skip
}

// Rule ids of a generated policy, by kind.
var generatedRuleIDs = map[Kind]string{
	KindTool:        "used-tools",
	KindResource:    "used-resources",
	KindPrompt:      "used-prompts",
	KindSampling:    "used-sampling",
	KindElicitation: "used-elicitation",
}

// Rule ids of a generated policy for calls a person approved, by kind:
// kept apart, so that a reviewer sees which allows stand for a person's
// yes rather than for the policy's.
var approvedRuleIDs = map[Kind]string{
	KindTool:        "approved-tools",
	KindResource:    "approved-resources",
	KindPrompt:      "approved-prompts",
	KindSampling:    "approved-sampling",
	KindElicitation: "approved-elicitation",
}

// fileTools are the tools of @modelcontextprotocol/server-filesystem whose
// path arguments always name files. Only they share a rule through their
// class ("read(docs/a.md)" also lets read_media_file read docs/a.md): a
// class matcher on a directory would grant every tool of the class the
// whole subtree, so list_directory of docs would let read_file read all of
// it. Every other tool gets matchers of its own ("list_directory(./docs)").
var fileTools = map[string]string{
	"read_file":           "read",
	"read_text_file":      "read",
	"read_media_file":     "read",
	"read_multiple_files": "read",
	"write_file":          "write",
	"edit_file":           "write",
}

// Generate returns a tool policy that allows what a session used: every
// call in uses that was allowed and answered with a result (see
// [Use.Used]). It is pure: the same uses and options give the same result.
//
// Tool calls are matched by tool name and path arguments; other arguments
// are not constrained. The file tools of server-filesystem share their
// class's matcher ("read(PATH)"), other tools get their own
// ("list_directory(PATH)", or the bare name when a call had no path
// argument). Paths, relative to the session's workspace, are generalised
// only within one directory: when two or more paths of a directory other
// than the workspace root were used by the same matcher, they become
// "DIR/*", unless that would also match a call the session denied. Nothing
// else is widened: a single path stays exact, and no pattern reaches above
// the directory of a used path. Resources are matched by URI and prompts
// by name, exactly; sampling and elicitation by kind. Matchers that others
// make redundant are left out.
//
// Calls a person approved under an ask rule (Use.Approval) and that were
// answered with a result get allow matchers of their own, in the rules
// approved-*, after the used-* rules and made the same way; one that a
// used-* matcher already allows gets none. The policy a generated profile
// extends may still ask for them: inherited ask rules outrank any allow.
//
// Calls that cannot be expressed are skipped: malformed requests, paths or
// URIs the proxy refuses before any rule (no rule can allow them), and
// arguments the ledger redacted or cut.
func Generate(uses []Use, o GenerateOptions) (*Generated, error) {
	g := &generator{extra: o.Classes, classes: mergeClasses(builtinClasses, o.Classes)}
	c, err := (&Policy{Classes: o.Classes}).compile()
	if err != nil {
		return nil, fmt.Errorf("classes: %w", err)
	}
	g.c = c
	out := &Generated{}
	var used, approved, denied, failed []observed
	for _, u := range uses {
		if u.Call.Resolver == nil {
			// A ledger may come from another machine: its calls are
			// judged as written, never against this file system.
			u.Call.Resolver = Lexical
		}
		ob, why := g.observe(u)
		if why != "" {
			out.Skipped = append(out.Skipped, Skip{Use: u, Why: why})
			continue
		}
		switch {
		case u.Used() && u.Approval != "":
			approved = append(approved, ob)
		case u.Used():
			used = append(used, ob)
		case u.Verdict == Deny:
			denied = append(denied, ob)
		default:
			failed = append(failed, ob)
		}
	}
	if out.Allow, err = g.allow(used, denied, generatedRuleIDs); err != nil {
		return nil, err
	}
	if len(approved) > 0 {
		more, err := g.allow(approved, denied, approvedRuleIDs)
		if err != nil {
			return nil, err
		}
		if out.Allow, err = g.prune(append(out.Allow, more...), len(out.Allow)); err != nil {
			return nil, err
		}
		used = append(used, approved...)
	}
	if out.Policy, err = g.policy(out.Allow); err != nil {
		return nil, err
	}
	for _, ob := range used {
		if d := out.Policy.Decide(ob.use.Call); !d.Allowed() {
			return nil, fmt.Errorf("generated policy denies a used call (%s); this is a bug", d.Reason)
		}
	}
	out.Denied = g.offers(denied, out.Policy)
	out.Failed = g.offers(failed, out.Policy)
	return out, nil
}

type generator struct {
	extra   map[string]Class // GenerateOptions.Classes
	classes map[string]Class // built-in and extra classes, merged
	c       *compiled        // the classes alone, for path arguments
}

// observed is a use with the matcher subject it falls under and its path
// arguments, normalised against the workspace.
type observed struct {
	use  Use
	subj subject
	rels []string
}

// subject is what one family of matchers names: a class (with paths), a
// tool (with paths or bare), a resource, a prompt or a request kind.
type subject struct {
	kind  Kind
	class string
	name  string
	paths bool
}

func (g *generator) observe(u Use) (observed, string) {
	call := u.Call
	if u.Verdict == Deny {
		switch u.Rule {
		case RuleInvalid:
			return observed{}, "the request was malformed"
		case RulePaths, RuleURI:
			return observed{}, "the proxy refuses it before any rule, so no rule can allow it"
		}
	}
	ob := observed{use: u, subj: subject{kind: call.Kind, name: call.Name}}
	switch call.Kind {
	case KindTool:
		if call.Name == "" {
			return ob, "the call names no tool"
		}
		paths, perr := g.c.pathArgs(call)
		rels := paths.judged
		if perr != nil && perr.Reason == "is not a string" {
			return ob, perr.Error() + " (the ledger may hold it redacted or cut)"
		}
		if perr != nil {
			return ob, perr.Error()
		}
		ob.rels = slices.Compact(slices.Sorted(slices.Values(rels)))
		ob.subj.paths = len(rels) > 0
		if cls, ok := fileTools[call.Name]; ok && ob.subj.paths {
			ob.subj.class, ob.subj.name = cls, ""
		}
	case KindResource:
		if _, err := NormalizeURI(call.Name); err != nil {
			return ob, err.Error()
		}
	case KindPrompt:
		if call.Name == "" {
			return ob, "the call names no prompt"
		}
	case KindSampling, KindElicitation:
		ob.subj.name = ""
	default:
		return ob, fmt.Sprintf("unknown kind %q", call.Kind)
	}
	return ob, ""
}

// allow builds the allow entries for the used calls, in rule order, with
// the rule ids of ids.
func (g *generator) allow(used, denied []observed, ids map[Kind]string) ([]Entry, error) {
	bySubj := map[subject][]observed{}
	var subjs []subject
	for _, ob := range used {
		if _, ok := bySubj[ob.subj]; !ok {
			subjs = append(subjs, ob.subj)
		}
		bySubj[ob.subj] = append(bySubj[ob.subj], ob)
	}
	var entries []Entry
	for _, s := range subjs {
		obs := bySubj[s]
		if !s.paths {
			entries = append(entries, g.entry(s, "", obs))
			continue
		}
		for _, pat := range g.patterns(s, obs, denied) {
			entries = append(entries, g.entry(s, pat, obs))
		}
	}
	slices.SortStableFunc(entries, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(kindOrder(a.Matcher), kindOrder(b.Matcher)),
			strings.Compare(a.Matcher.String(), b.Matcher.String()))
	})
	// Two subjects never make the same matcher; should they, the uses add up.
	for i := 1; i < len(entries); {
		if entries[i].Matcher.String() != entries[i-1].Matcher.String() {
			i++
			continue
		}
		entries[i-1].Uses = append(entries[i-1].Uses, entries[i].Uses...)
		entries = slices.Delete(entries, i, i+1)
	}
	for i := range entries {
		entries[i].Rule = ids[matcherKind(entries[i].Matcher)]
	}
	return g.prune(entries, 0)
}

// entry makes the entry for subject s and path pattern pat ("" for none),
// standing for the calls of obs it matches.
func (g *generator) entry(s subject, pat string, obs []observed) Entry {
	e := Entry{Matcher: g.matcher(s, pat)}
	var glob *pathGlob
	if pat != "" {
		glob, _ = compilePathGlob(pat)
	}
	for _, ob := range obs {
		if glob == nil || slices.ContainsFunc(ob.rels, func(r string) bool { c, _ := glob.relation(r); return c }) {
			e.Uses = append(e.Uses, ob.use)
		}
	}
	return e
}

// patterns returns the path patterns for the used calls of a subject: each
// directory (but the workspace root) from which two or more paths were used
// becomes "DIR/*" unless that would match a denied call; other paths stay
// exact.
func (g *generator) patterns(s subject, used, denied []observed) []string {
	byDir := map[string][]string{}
	for _, ob := range used {
		for _, rel := range ob.rels {
			dir := path.Dir(rel)
			if !slices.Contains(byDir[dir], rel) {
				byDir[dir] = append(byDir[dir], rel)
			}
		}
	}
	var out []string
	for _, dir := range sortedKeys(byDir) {
		rels := byDir[dir]
		if dir != "." && len(rels) >= 2 {
			pat := dirPattern(dir)
			if !g.matchesAny(g.matcher(s, pat), denied) {
				out = append(out, pat)
				continue
			}
		}
		for _, rel := range rels {
			out = append(out, exactPattern(rel))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchesAny reports whether an allow matcher m would allow any of obs.
func (g *generator) matchesAny(m Matcher, obs []observed) bool {
	if len(obs) == 0 {
		return false
	}
	p := &Policy{Classes: g.extra, Rules: []Rule{{ID: "candidate", Allow: []Matcher{m}}}}
	if p.Compile() != nil {
		return true // cannot tell: do not widen
	}
	for _, ob := range obs {
		if p.Decide(ob.use.Call).Allowed() {
			return true
		}
	}
	return false
}

// prune drops matchers from entries[from:] whose calls the others allow,
// handing their uses to the matcher that now allows them.
func (g *generator) prune(entries []Entry, from int) ([]Entry, error) {
	for i := from; i < len(entries); {
		rest := slices.Concat(entries[:i], entries[i+1:])
		p, err := g.policy(rest)
		if err != nil {
			return nil, err
		}
		redundant := true
		for _, u := range entries[i].Uses {
			if !p.Decide(u.Call).Allowed() {
				redundant = false
				break
			}
		}
		if !redundant {
			i++
			continue
		}
		for _, u := range entries[i].Uses {
			by := p.Decide(u.Call).Matcher
			for j := range rest {
				if rest[j].Matcher.String() == by && !slices.ContainsFunc(rest[j].Uses, func(v Use) bool { return reflect.DeepEqual(u, v) }) {
					rest[j].Uses = append(rest[j].Uses, u)
				}
			}
		}
		entries = rest
	}
	return entries, nil
}

// policy assembles entries into a compiled policy: default deny for every
// kind, one rule per kind.
func (g *generator) policy(entries []Entry) (*Policy, error) {
	p := &Policy{DefaultAction: Deny}
	for _, e := range entries {
		if n := len(p.Rules); n > 0 && p.Rules[n-1].ID == e.Rule {
			p.Rules[n-1].Allow = append(p.Rules[n-1].Allow, e.Matcher)
			continue
		}
		p.Rules = append(p.Rules, Rule{ID: e.Rule, Allow: []Matcher{e.Matcher}})
	}
	// The extra classes are needed to compile; the generated policy does
	// not define them (the profile it extends does).
	check := Merge(&Policy{Classes: g.extra}, p)
	if err := check.Compile(); err != nil {
		return nil, fmt.Errorf("generated policy: %w", err)
	}
	p.c = check.c
	return p, nil
}

// offers returns one entry, with an exact path, for each distinct matcher
// that would allow calls of obs; Allowed says whether p allows any already.
func (g *generator) offers(obs []observed, p *Policy) []Entry {
	var out []Entry
	index := map[string]int{}
	add := func(m Matcher, u Use) {
		key := m.String()
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, Entry{Matcher: m})
		}
		out[i].Uses = append(out[i].Uses, u)
		if p.Decide(u.Call).Allowed() {
			out[i].Allowed = true
		}
	}
	for _, ob := range obs {
		if !ob.subj.paths {
			add(g.matcher(ob.subj, ""), ob.use)
			continue
		}
		for _, rel := range ob.rels {
			add(g.matcher(ob.subj, exactPattern(rel)), ob.use)
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(kindOrder(a.Matcher), kindOrder(b.Matcher)),
			strings.Compare(a.Matcher.String(), b.Matcher.String()))
	})
	return out
}

// matcher returns the matcher for subject s and path pattern pat ("" for
// none), in its string form when that parses back to the same matcher
// (given the classes in force), else in the mapping form.
func (g *generator) matcher(s subject, pat string) Matcher {
	var m Matcher
	var specs []string
	var paths []string
	if pat != "" {
		paths = []string{pat}
	}
	switch s.kind {
	case KindTool:
		if s.class != "" {
			m = Matcher{Class: s.class, Paths: paths}
			specs = []string{s.class + "(" + pat + ")"}
			break
		}
		name := escapeGlob(s.name)
		m = Matcher{Tool: name, Paths: paths}
		if pat != "" {
			specs = []string{name + "(" + pat + ")"}
		} else {
			specs = []string{name, "tool(" + name + ")"}
		}
	case KindResource:
		m = Matcher{Resource: escapeGlob(s.name)}
		specs = []string{"resource(" + m.Resource + ")"}
	case KindPrompt:
		m = Matcher{Prompt: escapeGlob(s.name)}
		specs = []string{"prompt(" + m.Prompt + ")"}
	default:
		m = Matcher{Kind: s.kind}
		specs = []string{string(s.kind)}
	}
	for _, spec := range specs {
		parsed, err := parseMatcherSpec(spec, g.classes)
		if err != nil {
			continue
		}
		parsed.Spec = ""
		if reflect.DeepEqual(parsed, m) {
			m.Spec = spec
			break
		}
	}
	return m
}

// escapeGlob quotes the characters name, URI and path globs give meaning
// to, so that the glob matches s alone.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// exactPattern is the path pattern for rel (a cleaned workspace-relative
// path) and what lies beneath it. A single name is anchored with "./":
// without it, it would match at any depth.
func exactPattern(rel string) string {
	if rel == "." {
		return "."
	}
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = escapeGlob(s)
	}
	if len(segs) == 1 {
		return "./" + segs[0]
	}
	return strings.Join(segs, "/")
}

// dirPattern is the pattern for every entry of dir, a cleaned
// workspace-relative directory other than ".": anchored, since it holds a
// "/".
func dirPattern(dir string) string {
	return strings.TrimPrefix(exactPattern(dir), "./") + "/*"
}

// matcherKind is the kind of call a matcher made by generator.matcher
// selects.
func matcherKind(m Matcher) Kind {
	switch {
	case m.Resource != "":
		return KindResource
	case m.Prompt != "":
		return KindPrompt
	case m.Kind != "":
		return m.Kind
	}
	return KindTool
}

func kindOrder(m Matcher) int { return slices.Index(kinds, matcherKind(m)) }
