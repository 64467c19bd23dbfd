package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/audit"
)

// Bounds of a rule's ask parameters.
const (
	// DefaultAskTimeout is how long a question waits when its rule gives
	// no timeout.
	DefaultAskTimeout = 120 * time.Second
	// MinAskTimeout and MaxAskTimeout bound a rule's timeout: a person
	// needs a moment to read the question, and a call should not hang
	// longer than a client would wait for it.
	MinAskTimeout = time.Second
	MaxAskTimeout = time.Hour
	// MaxAskTTL bounds a rule's ttl: a grant outlives no working day.
	MaxAskTTL = 24 * time.Hour
)

// AskParams are what the proxy needs to put an ask decision to a person,
// from the rule that asks ([Policy.AskRule]).
type AskParams struct {
	// TTL is how long a grant "for the rule's ttl" holds for the same
	// call ([GrantKey]); 0 means the rule offers approval of this call
	// only (scope once).
	TTL time.Duration
	// Timeout is how long the question waits before the call is denied
	// (recorded as approval_expired); never 0.
	Timeout time.Duration
	// Origin is the file the rule comes from, if known.
	Origin string
}

// Scopes lists the grants a person may give: audit.ScopeOnce always, and
// audit.ScopeTTL when the rule has a ttl.
func (a AskParams) Scopes() []string {
	if a.TTL > 0 {
		return []string{audit.ScopeOnce, audit.ScopeTTL}
	}
	return []string{audit.ScopeOnce}
}

// AskRule returns the ask parameters of the rule with the given id: the
// Rule of an [audit.Decision] whose Verdict is [Ask]. For [RuleDefault] it
// returns ttl 0 and [DefaultAskTimeout] when default_action or a kind's
// default is ask. ok is false for an id that names no rule with ask
// matchers, nor an ask default: the proxy must then deny the call, never
// forward it.
//
// The contract with the proxy, for a call d := p.Decide(call):
//
//	switch {
//	case d.Allowed():                 // allow, or would_deny in observe mode
//		forward the call
//	case d.Verdict == policy.Ask:
//		params, ok := p.AskRule(d.Rule)   // !ok: deny
//		key := policy.GrantKey(d, call)   // a grant in force for key: forward
//		ask a person, for at most params.Timeout; offer params.Scopes()
//	default:
//		deny
//	}
//
// Decisions of one compiled policy name its own rules, so AskRule on the
// policy that decided never fails for an ask decision.
func (p *Policy) AskRule(id string) (AskParams, bool) {
	if p == nil {
		return AskParams{}, false
	}
	if id == RuleDefault {
		if !p.asksByDefault() {
			return AskParams{}, false
		}
		return AskParams{Timeout: DefaultAskTimeout}, true
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.ID != id || len(r.Ask) == 0 {
			continue
		}
		return AskParams{TTL: r.TTL, Timeout: r.askTimeout(), Origin: r.Origin}, true
	}
	return AskParams{}, false
}

// Asks reports whether the policy may ask a person about a call: an ask
// rule, or ask as a default.
func (p *Policy) Asks() bool {
	if p == nil {
		return false
	}
	for i := range p.Rules {
		if len(p.Rules[i].Ask) > 0 {
			return true
		}
	}
	return p.asksByDefault()
}

func (p *Policy) asksByDefault() bool {
	if p.DefaultAction == Ask {
		return true
	}
	for _, a := range p.Defaults {
		if a == Ask {
			return true
		}
	}
	return false
}

// askTimeout is the rule's timeout in force.
func (r *Rule) askTimeout() time.Duration {
	if r.Timeout == 0 {
		return DefaultAskTimeout
	}
	return r.Timeout
}

func validAction(a Action) bool { return a == Allow || a == Ask || a == Deny }

// checkAskParams checks a rule's ttl and timeout: only a rule that asks
// has them, and both are bounded.
func checkAskParams(r *Rule) error {
	if len(r.Ask) == 0 {
		switch {
		case r.TTL != 0:
			return fmt.Errorf("rule %q: ttl applies to ask matchers only, and the rule has none", r.ID)
		case r.Timeout != 0:
			return fmt.Errorf("rule %q: timeout applies to ask matchers only, and the rule has none", r.ID)
		}
		return nil
	}
	if err := checkTTL(r.TTL); err != nil {
		return fmt.Errorf("rule %q: %w", r.ID, err)
	}
	if err := checkTimeout(r.Timeout); err != nil {
		return fmt.Errorf("rule %q: %w", r.ID, err)
	}
	return nil
}

func checkTTL(d time.Duration) error {
	if d < 0 || d > MaxAskTTL {
		return fmt.Errorf("ttl %s: want 0 (approve once only) up to %s", d, MaxAskTTL)
	}
	return nil
}

func checkTimeout(d time.Duration) error {
	if d != 0 && (d < MinAskTimeout || d > MaxAskTimeout) {
		return fmt.Errorf("timeout %s: want %s up to %s (absent means %s)", d, MinAskTimeout, MaxAskTimeout, DefaultAskTimeout)
	}
	return nil
}

// judged is a call as Decide judged it, for the ask matchers: the name
// (normalised for resources), the names deny and ask matchers are tried
// against, and every path the call touches, as spelled and as resolved.
type judged struct {
	call    CallInfo
	names   []string
	touched []string
	what    string
}

// asked returns the ask decision for a call that an ask matcher names, or
// whose kind asks by default when dflt is set. Ask matchers select calls
// as deny matchers do: a path argument touching a pattern is enough, an
// argument no pattern can describe counts as a match, and names are tried
// in every spelling a server may read.
func (c *compiled) asked(d audit.Decision, j *judged, dflt bool) (audit.Decision, bool) {
	for i := range c.ask {
		m := &c.ask[i]
		for _, name := range j.names {
			named := j.call
			named.Name = name
			hit, detail := c.match(m, named, j.touched, true)
			if !hit {
				continue
			}
			reason := fmt.Sprintf("%s needs a person's approval under rule %q (%s)%s", j.what, m.rule.ID, m.src, detail)
			if name != j.call.Name {
				reason += fmt.Sprintf(" (the server may read it as %q)", name)
			}
			if m.rule.Reason != "" {
				reason += ": " + m.rule.Reason
			}
			d.Verdict, d.Rule, d.Matcher, d.Reason = Ask, m.rule.ID, m.src, reason
			return d, true
		}
	}
	if dflt && c.defaults[j.call.Kind] == Ask {
		d.Verdict, d.Rule, d.Matcher = Ask, RuleDefault, ""
		d.Reason = fmt.Sprintf("no rule allows %s, and the policy asks a person by default", j.what)
		return d, true
	}
	return d, false
}

// observedAsk is what observe mode makes of a denial: the proxy forwards
// what the policy denies, but never what the profile says a person must
// see first, so a denied call that an ask matcher names, or whose kind
// asks by default, is asked instead, and the reason keeps the denial.
func (c *compiled) observedAsk(denied audit.Decision, j *judged) (audit.Decision, bool) {
	a, ok := c.asked(denied, j, true)
	if !ok {
		return denied, false
	}
	a.Reason = strings.TrimSuffix(a.Reason, ".") + fmt.Sprintf("; in enforce mode it would be denied (rule %q: %s)", denied.Rule, denied.Reason)
	return a, true
}

// restrictions names the kinds of matchers of r that inheritance keeps.
func (r *Rule) restrictions() string {
	switch {
	case len(r.Deny) > 0 && len(r.Ask) > 0:
		return "deny and ask"
	case len(r.Ask) > 0:
		return "ask"
	}
	return "deny"
}

// askTerms says how long a grant of r lasts and how long its questions
// wait, for Describe: "ttl 15m0s, timeout 2m0s" or "once only, ...".
func (r *Rule) askTerms() string {
	ttl := "once only"
	if r.TTL > 0 {
		ttl = "ttl " + r.TTL.String()
	}
	return fmt.Sprintf("%s, timeout %s", ttl, r.askTimeout())
}

// duration decodes a rule's ttl or timeout: a Go duration such as "15m",
// "90s" or "1h30m", or 0.
func (d *policyDecoder) duration(n *yaml.Node, what string) (time.Duration, error) {
	n = d.resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "") {
		return 0, d.errorf(n, "%s: want a duration such as 90s, 15m or 1h", what)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, d.errorf(n, "%s: %q: want a duration such as 90s, 15m or 1h", what, n.Value)
	}
	return v, nil
}

// askParams checks a decoded rule's ttl and timeout at their nodes.
func (d *policyDecoder) askParams(r *Rule, asks bool, ttl, timeout *yaml.Node) error {
	switch {
	case !asks && ttl != nil:
		return d.errorf(ttl, "rule %q: ttl applies to ask matchers only, and the rule has none", r.ID)
	case !asks && timeout != nil:
		return d.errorf(timeout, "rule %q: timeout applies to ask matchers only, and the rule has none", r.ID)
	case ttl != nil:
		if err := checkTTL(r.TTL); err != nil {
			return d.at(ttl, fmt.Errorf("rule %q: %w", r.ID, err))
		}
	}
	if timeout != nil {
		if err := checkTimeout(r.Timeout); err != nil {
			return d.at(timeout, fmt.Errorf("rule %q: %w", r.ID, err))
		}
	}
	return nil
}

// grantKeyVersion starts every key's input, so that a change of what
// "same" means never matches a grant made under the old meaning.
const grantKeyVersion = "vm-run grant key v1"

// GrantKey returns the key under which a person's grant for the rule's ttl
// is remembered: two calls have the same key exactly when they are the
// same call in the sense of the package documentation ("# Asking a
// person"). d is the Decision [Policy.Decide] returned for call, which
// must be the CallInfo it was given. The key is the hex SHA-256 of the
// call's canonical form, so a table of grants holds no arguments.
//
// GrantKey returns "" for a decision that is not an ask: there is no
// grant to look up or to remember.
func GrantKey(d audit.Decision, call CallInfo) string {
	if d.Verdict != Ask {
		return ""
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for _, s := range []string{grantKeyVersion, string(call.Kind), call.Name, d.Rule, call.Workspace} {
		writeQuoted(&b, s)
		b.WriteByte(',')
	}
	bases := slices.Clone(call.Bases)
	slices.Sort(bases)
	writeStrings(&b, slices.Compact(bases))
	b.WriteByte(',')
	writeStrings(&b, d.Paths)
	b.WriteByte(',')
	if call.Arguments == nil {
		b.WriteString("null")
	} else {
		writeCanonical(&b, call.Arguments)
	}
	b.WriteByte(']')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

func writeStrings(b *bytes.Buffer, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		writeQuoted(b, s)
	}
	b.WriteByte(']')
}

// writeCanonical writes v, a decoded JSON value, in canonical form: object
// keys sorted by their bytes, no blanks, numbers by their text as sent
// (json.Number; the proxy decodes with UseNumber), strings exactly as
// decoded, without Unicode normalisation.
func writeCanonical(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeQuoted(b, v)
	case json.Number:
		// Tagged, so that the number 1 and the string "1" differ even
		// if a value's type were lost on the way.
		b.WriteString("#")
		b.WriteString(v.String())
	case float64:
		b.WriteString("#")
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeQuoted(b, k)
			b.WriteByte(':')
			writeCanonical(b, v[k])
		}
		b.WriteByte('}')
	default:
		// Not a decoded JSON value: its Go type and text, which no
		// decoded value can spell (they start with "!").
		fmt.Fprintf(b, "!%T:%#v", v, v)
	}
}

// writeQuoted writes s quoted so that different strings never give the
// same text: strconv.Quote keeps invalid UTF-8 as \x escapes, where JSON
// would turn every invalid byte into U+FFFD.
func writeQuoted(b *bytes.Buffer, s string) {
	b.WriteString(strconv.Quote(s))
}
