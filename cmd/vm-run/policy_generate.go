package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

type policyCmd struct {
	Generate policyGenerateCmd `cmd:"" help:"Write a profile whose tool policy and network allow list allow what a recorded session used, for a person to review before use."`
}

// policyGenerateCmd is the "generate" step of record, generate, approve: run
// a server under a profile, let vm-run write a profile that allows what the
// session used, read it, then run with it.
type policyGenerateCmd struct {
	Ledger  string `help:"Ledger to read (default: $$VMRUN_LEDGER, else the --profile's audit.ledger, else ~/.local/state/vm-run/ledger.jsonl, or /var/log/vm-run/ledger.jsonl as root)." placeholder:"PATH" type:"path"`
	Session string `help:"The session: its id, or a prefix of it (default: the latest session in the ledger that made decisions)." placeholder:"ID"`
	Profile string `short:"p" default:"strict" help:"The profile the generated one extends, for its sandbox and its classes (default: strict); the generated tool policy replaces its own." placeholder:"NAME|PATH"`
	Output  string `short:"o" help:"Write the profile to FILE instead of standard output." placeholder:"FILE" type:"path"`
	Force   bool   `help:"Replace FILE if it exists."`
}

func (c *policyGenerateCmd) Run(stdout io.Writer) error {
	if c.Output != "" && !c.Force {
		if _, err := os.Lstat(c.Output); err == nil {
			return fmt.Errorf("%q exists; pass --force to replace it", c.Output)
		}
	}
	ws, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	vars := profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir}
	base, err := profiles.Load(c.Profile, vars)
	if err != nil {
		return err
	}
	path, err := audit.ResolvePath(c.Ledger, base.Audit.Ledger)
	if err != nil {
		return err
	}
	sess, err := readSession(path, c.Session)
	if err != nil {
		return err
	}
	gen, err := policy.Generate(sess.uses, policy.GenerateOptions{Classes: base.Tools.Classes})
	if err != nil {
		return fmt.Errorf("generate tool policy: %w", err)
	}
	network, err := readNetwork(path, sess.id) // policy_generate_net.go
	if err != nil {
		return err
	}
	network.base = base.Network
	extends := c.Profile
	if isProfilePath(extends) {
		// extends: paths are relative to the extending file, which is not
		// where the user named this one from.
		if extends, err = filepath.Abs(extends); err != nil {
			return fmt.Errorf("profile path %q: %w", c.Profile, err)
		}
	}
	// Render, load as vm-run --profile would, and say in the header what
	// the loaded profile holds beyond the generated rules, if anything.
	var data []byte
	var extra *inForce
	for range 2 {
		if data, err = renderProfile(sess, base.Name, extends, gen, network, extra); err != nil {
			return err
		}
		p, err := loadGenerated(data, c.Output, vars)
		if err != nil {
			return err
		}
		if extra != nil {
			break
		}
		if extra = beyond(p.Tools, gen); len(network.allowed) > 0 {
			extra.netRules = netBeyond(p.Network.Allow, network)
		}
		if extra.empty() {
			break
		}
	}
	if c.Output == "" {
		_, err = stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(c.Output, data); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vm-run: wrote %s: %s for %s of session %s; %s and %s listed for review\n",
		c.Output, plural(uint64(len(gen.Allow)), "matcher", "matchers"), plural(uint64(sess.used), "used call", "used calls"), clean(sess.id),
		plural(uint64(len(gen.Denied)), "denied call", "denied calls"), plural(uint64(len(gen.Failed)), "failed call", "failed calls"))
	if !network.empty() {
		fmt.Fprintf(os.Stderr, "vm-run: network: %s allowed; %s and %s listed for review\n",
			plural(uint64(len(network.allowed)), "host", "hosts"), plural(uint64(len(network.refused)), "refused destination", "refused destinations"),
			plural(uint64(len(network.names)), "refused name", "refused names"))
	}
	fmt.Fprintf(os.Stderr, "vm-run: hint: review it, then run: vm-run --profile %s -- COMMAND\n", c.Output)
	return nil
}

// isProfilePath says whether profiles.Load reads ref as a path.
func isProfilePath(ref string) bool {
	return strings.Contains(ref, "/") || strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")
}

// inForce is what the tool policy of a loaded generated profile holds
// beyond the generated rules: rules and allowing defaults it inherits from
// the profile it extends, and the used calls that those deny.
type inForce struct {
	rules    []policy.Rule
	defaults []string // kinds allowed by default
	denied   []policy.Use
	// netRules are network rules inherited beside the generated ones.
	netRules []egress.Rule
}

func (f *inForce) empty() bool { return f.toolsEmpty() && (f == nil || len(f.netRules) == 0) }

func (f *inForce) toolsEmpty() bool {
	return f == nil || len(f.rules) == 0 && len(f.defaults) == 0 && len(f.denied) == 0
}

// beyond compares the policy of the loaded profile with the generated one.
func beyond(loaded *policy.Policy, g *policy.Generated) *inForce {
	f := &inForce{}
	for _, r := range loaded.Rules {
		if !slices.ContainsFunc(g.Policy.Rules, func(o policy.Rule) bool { return o.ID == r.ID }) {
			f.rules = append(f.rules, r)
		}
	}
	for _, k := range []policy.Kind{policy.KindTool, policy.KindResource, policy.KindPrompt, policy.KindSampling, policy.KindElicitation} {
		a, ok := loaded.Defaults[k]
		if !ok {
			a = loaded.DefaultAction
		}
		if a == policy.Allow {
			f.defaults = append(f.defaults, string(k))
		}
	}
	for _, e := range g.Allow {
		for _, u := range e.Uses {
			if !loaded.Decide(u.Call).Allowed() && !slices.ContainsFunc(f.denied, func(v policy.Use) bool { return reflect.DeepEqual(u, v) }) {
				f.denied = append(f.denied, u)
			}
		}
	}
	return f
}

// renderProfile writes the generated profile: a header for the reviewer,
// the profile, and the calls and connections not allowed, commented out.
// extra, if not empty, is what the loaded profile holds beyond the
// generated rules.
func renderProfile(s *recordedSession, baseName, extends string, g *policy.Generated, network *netUsage, extra *inForce) ([]byte, error) {
	var b bytes.Buffer
	line := func(format string, args ...any) {
		if format == "" {
			b.WriteString("#\n")
			return
		}
		fmt.Fprintf(&b, "# "+format+"\n", args...)
	}
	line("REVIEW BEFORE USE. vm-run policy generate wrote this profile from what one")
	line("recorded session did, which is not the same as what it should be allowed to do.")
	line("")
	line("ledger:    %s", clean(s.ledger))
	line("session:   %s, %s to %s", clean(s.id), s.first.UTC().Format(time.RFC3339), s.last.UTC().Format(time.RFC3339))
	line("ran under: profile %s (%s)", clean(s.profile), clean(s.hash))
	if len(s.argv) > 0 {
		line("command:   %s", clean(shellQuote(s.argv)))
	}
	line("workspace: %s (the paths below are relative to the workspace)", clean(s.workdir))
	line("")
	line("The rules below allow the %d calls (of %d) that the session used: those its", s.used, s.decisions)
	line("policy allowed and the server answered with a result. Paths are exact, but")
	line("two or more files used from one directory (not the workspace root) became")
	line(`"DIR/*", unless that would also match a call the session denied. Other`)
	line("arguments are not constrained. Calls that were denied, or allowed but not")
	line("answered with a result, are listed at the end, commented out: move a matcher")
	line("into an allow list to permit it.")
	if approvedRules(g) {
		line("")
		line("The approved-* rules stand for calls that an ask rule held and a person")
		line("approved (approval_granted in the ledger); the used-* rules for calls the")
		line("policy itself allowed. An ask rule this profile inherits still asks.")
	}
	line("")
	if extra.toolsEmpty() {
		line("This profile extends %s for its sandbox only: the tools: section", clean(extends))
		line("below is the whole tool policy in force; the allow rules and default of")
		line("%s do not apply, and it has no deny rules, which would.", clean(baseName))
	} else {
		line("This profile extends %s for its sandbox. WARNING: loaded, its tool", clean(extends))
		line("policy holds more than the rules below (deny rules are inherited and stay")
		line("in force):")
		for _, r := range extra.rules {
			line("  inherited rule %s", clean(describeRule(r)))
		}
		if len(extra.defaults) > 0 {
			line("  allowed by default: %s", strings.Join(extra.defaults, ", "))
		}
		for _, u := range extra.denied[:min(len(extra.denied), 10)] {
			line("  a used call that an inherited rule denies: %s", clean(describeCall(u.Call)))
		}
	}
	netHeader(line, network, extra) // policy_generate_net.go
	if len(g.Skipped) > 0 {
		line("")
		line("No rule below stands for these calls (%d):", len(g.Skipped))
		for _, sk := range g.Skipped[:min(len(g.Skipped), 20)] {
			line("  %s: %s", clean(describeCall(sk.Use.Call)), clean(sk.Why))
		}
	}
	if s.skippedLines > 0 {
		line("")
		line("WARNING: %d lines of the ledger are not records; run vm-run audit verify.", s.skippedLines)
	}
	b.WriteString("\n")

	tools := &yaml.Node{}
	if err := tools.Encode(g.Policy); err != nil {
		return nil, fmt.Errorf("encode tool policy: %w", err)
	}
	commentRules(tools, g.Allow)
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		scalar("description"), scalar(fmt.Sprintf("tool calls used by session %s (generated; review before use)", s.id)),
		scalar("extends"), scalar(extends),
		scalar("tools"), tools,
	}}
	if n := netSection(network); n != nil {
		doc.Content = append(doc.Content, scalar("network"), n)
	}
	quoteOdd(doc)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode profile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode profile: %w", err)
	}
	if err := commentedOffers(&b, "Denied in this session:", g.Denied); err != nil {
		return nil, err
	}
	if err := commentedOffers(&b, "Allowed in this session but not answered with a result:", g.Failed); err != nil {
		return nil, err
	}
	netOffers(&b, network)
	return b.Bytes(), nil
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// commentRules puts a note on each allow matcher of the encoded policy
// saying which calls it stands for.
func commentRules(tools *yaml.Node, entries []policy.Entry) {
	rules := mapNode(tools, "rules")
	if rules == nil {
		return
	}
	i := 0
	for _, r := range rules.Content {
		allow := mapNode(r, "allow")
		if allow == nil {
			continue
		}
		for _, m := range allow.Content {
			if i < len(entries) {
				m.LineComment = "# " + clean(summarize(entries[i].Uses)+approvedBy(entries[i].Uses))
			}
			i++
		}
	}
}

func mapNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// commentedOffers writes offered matchers as a commented-out allow list,
// each with the calls it stands for.
func commentedOffers(b *bytes.Buffer, title string, offers []policy.Entry) error {
	if len(offers) == 0 {
		return nil
	}
	fmt.Fprintf(b, "\n# %s\n", title)
	for _, e := range offers {
		n := &yaml.Node{}
		if err := n.Encode([]policy.Matcher{e.Matcher}); err != nil {
			return fmt.Errorf("encode matcher %s: %w", e.Matcher, err)
		}
		quoteOdd(n)
		item, err := yaml.Marshal(n)
		if err != nil {
			return fmt.Errorf("encode matcher %s: %w", e.Matcher, err)
		}
		note := summarize(e.Uses)
		if rules := ruleList(e.Uses); rules != "" {
			note += ", denied by " + rules
		} else if st := statusList(e.Uses); st != "" {
			note += ", " + st
		}
		if e.Allowed {
			note += "; NOTE: this profile already allows some of these calls"
		}
		lines := strings.Split(strings.TrimSuffix(string(item), "\n"), "\n")
		for i, l := range lines {
			if i == 0 {
				l += "  # " + clean(note)
			}
			fmt.Fprintf(b, "#   %s\n", l)
		}
	}
	return nil
}

// summarize says which tools the uses called and how often:
// "read_text_file x2, read_file x1"; for other kinds, the matcher names
// the thing and the count is enough: "2 calls".
func summarize(uses []policy.Use) string {
	var names []string
	count := map[string]int{}
	for _, u := range uses {
		if u.Call.Kind != policy.KindTool {
			if len(uses) == 1 {
				return "1 call"
			}
			return fmt.Sprintf("%d calls", len(uses))
		}
		n := u.Call.Name
		if count[n] == 0 {
			names = append(names, n)
		}
		count[n]++
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s x%d", n, count[n])
	}
	return strings.Join(parts, ", ")
}

func ruleList(uses []policy.Use) string {
	var rules []string
	for _, u := range uses {
		if u.Verdict == policy.Deny && !slices.Contains(rules, strconv.Quote(u.Rule)) {
			rules = append(rules, strconv.Quote(u.Rule))
		}
	}
	return strings.Join(rules, ", ")
}

func statusList(uses []policy.Use) string {
	var out []string
	for _, u := range uses {
		st := u.Status
		if st == "" {
			st = "no outcome recorded"
		}
		if !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	return strings.Join(out, ", ")
}

func describeRule(r policy.Rule) string {
	var parts []string
	for _, l := range []struct {
		verb string
		ms   []policy.Matcher
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		if len(l.ms) == 0 {
			continue
		}
		ms := make([]string, len(l.ms))
		for i, m := range l.ms {
			ms[i] = m.String()
		}
		parts = append(parts, l.verb+" "+strings.Join(ms, ", "))
	}
	return r.ID + ": " + strings.Join(parts, "; ")
}

// describeCall names a call for a comment: the tool and its arguments, cut
// to keep the line short (a write_file carries the whole file).
func describeCall(c policy.CallInfo) string {
	if c.Kind != policy.KindTool || len(c.Arguments) == 0 {
		return fmt.Sprintf("%s %s", c.Kind, c.Name)
	}
	args, _ := json.Marshal(c.Arguments)
	if r := []rune(string(args)); len(r) > 120 {
		args = []byte(string(r[:120]) + "...")
	}
	return fmt.Sprintf("%s %s", c.Name, args)
}

// quoteOdd writes every scalar beneath n that holds a line break or other
// unprintable character in double quotes, with escapes, so that a name from
// the ledger stays on one line instead of becoming a block that reads like
// YAML of its own.
func quoteOdd(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && clean(n.Value) != n.Value {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		quoteOdd(c)
	}
}

// clean makes a string from the ledger safe to put in a YAML comment: one
// line of printable characters, else quoted with escapes.
func clean(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// loadGenerated loads the generated profile as vm-run --profile would, as
// if read from file. Failing is a bug, not something to write.
func loadGenerated(data []byte, file string, vars profiles.Vars) (*profiles.Profile, error) {
	if file == "" {
		file = "generated.yaml"
	}
	p, err := profiles.NewLoader().Parse(file, data, vars)
	if err != nil {
		return nil, fmt.Errorf("the generated profile does not load (a bug in vm-run): %w", err)
	}
	return p, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so that a reader never sees half a profile.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write profile: %w", err)
	}
	return nil
}

// approvedBy notes which of uses a person approved, and through what:
// "; approved by a person: 2 (cli uid=1000 pid=42)".
func approvedBy(uses []policy.Use) string {
	var by []string
	n := 0
	for _, u := range uses {
		if u.Approval == "" {
			continue
		}
		n++
		if !slices.Contains(by, u.Approval) {
			by = append(by, u.Approval)
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; approved by a person: %d (%s)", n, strings.Join(by, "; "))
}

// approvedRules reports whether the generated policy has rules for calls
// a person approved.
func approvedRules(g *policy.Generated) bool {
	return slices.ContainsFunc(g.Allow, func(e policy.Entry) bool { return strings.HasPrefix(e.Rule, "approved-") })
}
