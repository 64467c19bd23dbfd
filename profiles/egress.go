package profiles

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/netns/egress"
)

// Network mode egress: the profile side of package netns/egress. This
// file reads and writes network.allow's rules, checks the egress keys and
// offers what the CLI shows of them.
//
// An entry of network.allow has two forms, so the schema walkers stop at
// [egress.Rule] (as they stop at the tool policy) and call rule and
// encodeRule:
//
//	- api.github.com:443                 # the short form, egress.ParseRule's
//	- host: db.internal                  # the long form, a mapping
//	  ports: [5432, 5433]
//	  private: true
//	  sni: false
//
// The long form is checked and decoded as ruleForm, by the same walkers as
// the rest of the schema, so unknown keys, duplicate keys and wrong types
// are reported as anywhere else. Rules are never expanded: a host name
// holds no variable.

// ruleType is the type of one network.allow entry.
var ruleType = reflect.TypeFor[egress.Rule]()

// ruleWant says what a network.allow entry takes, for messages.
const ruleWant = "HOST:PORT (api.github.com:443) or a mapping with host and ports"

// ruleForm is the long form of a rule as written.
type ruleForm struct {
	Host    string   `yaml:"host" expand:"no"`
	Ports   []uint16 `yaml:"ports"`
	Private bool     `yaml:"private"`
	// SNI false turns the SNI check of port 443 off; true checks the
	// server name on every port of the rule; absent, port 443 only.
	SNI bool `yaml:"sni"`
}

var ruleFormType = reflect.TypeFor[ruleForm]()

// rule reads one network.allow entry n into a normalised rule. It checks
// the entry completely, so check and decode both call it.
func (st *state) rule(n *yaml.Node, path string) (egress.Rule, error) {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if strings.HasPrefix(n.Value, "!") {
			return egress.Rule{}, st.at(n).errorf(`%s: %q: rules are not removed one by one; `+
				`"allow: ~" drops the inherited list, then list the rules to keep`, path, n.Value)
		}
		r, err := egress.ParseRule(n.Value)
		if err != nil {
			return egress.Rule{}, st.at(n).errorf("%s: %v", path, err)
		}
		return r, nil
	case n.Kind == yaml.MappingNode:
	default:
		return egress.Rule{}, st.at(n).errorf("%s: want %s, got %s", path, ruleWant, got(n))
	}
	if err := st.check(n, ruleFormType, opts{}, path); err != nil {
		return egress.Rule{}, err
	}
	var f ruleForm
	d := newDecoder(st, Vars{}) // nothing in ruleForm is expanded
	if err := d.decode(n, reflect.ValueOf(&f).Elem(), opts{}, path); err != nil {
		return egress.Rule{}, err
	}
	host := mapValue(n, "host")
	if host == nil {
		return egress.Rule{}, st.at(n).errorf("%s: a rule needs host: NAME", path)
	}
	if len(f.Ports) == 0 {
		at := st.at(n)
		if p := mapValue(n, "ports"); p != nil {
			at = st.at(p)
		}
		return egress.Rule{}, at.errorf("%s: a rule needs ports: [PORT, ...], at least one", path)
	}
	for i, p := range f.Ports {
		if p == 0 {
			item := mapValue(n, "ports").Content[i]
			return egress.Rule{}, st.at(item).errorf("%s: want a port number from 1 to 65535, got 0",
				indexPath(joinPath(path, "ports"), i))
		}
	}
	r := egress.Rule{Host: f.Host, Ports: f.Ports, Private: f.Private,
		NoSNI: mapValue(n, "sni") != nil && !f.SNI, RequireSNI: mapValue(n, "sni") != nil && f.SNI}
	if err := r.Normalize(); err != nil {
		return egress.Rule{}, st.at(host).errorf("%s: %v", joinPath(path, "host"), err)
	}
	return r, nil
}

// encodeRule writes a rule in the short form where it has one: a single
// port and no flag.
func encodeRule(r egress.Rule) *yaml.Node {
	if len(r.Ports) == 1 && !r.Private && !r.NoSNI && !r.RequireSNI {
		return str(r.String())
	}
	ports := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, p := range r.Ports {
		ports.Content = append(ports.Content, formatNumber(uint64(p), opts{}))
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
		Content: []*yaml.Node{str("host"), str(r.Host), str("ports"), ports}}
	if r.Private {
		n.Content = append(n.Content, str("private"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if r.NoSNI || r.RequireSNI {
		n.Content = append(n.Content, str("sni"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(r.RequireSNI)})
	}
	return n
}

// egress checks the keys of mode egress (the mode itself is checked):
// they need the mode, and hold what vm-run can use.
func (d *decoder) egress(n *Network) error {
	if n.Limits != nil && *n.Limits == (NetLimits{}) {
		n.Limits = nil // "limits: {}" says nothing
	}
	if n.Mode != NetworkEgress {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"network.allow", len(n.Allow) > 0},
			{"network.upstream_proxy", n.UpstreamProxy != ""},
			{"network.resolver", n.Resolver != ""},
			{"network.limits", n.Limits != nil},
		} {
			if k.set {
				return d.errorf(d.keyAt(k.key), k.key, "needs network.mode %s; the mode is %s",
					NetworkEgress, n.Mode)
			}
		}
		return nil
	}
	n.Allow = dedupeRules(n.Allow)
	if n.UpstreamProxy != "" {
		if err := checkProxyURL(n.UpstreamProxy); err != nil {
			return d.errorf(d.at("network.upstream_proxy"), "network.upstream_proxy", "%v", err)
		}
	}
	if n.Resolver != "" {
		r, err := parseResolver(n.Resolver)
		if err != nil {
			return d.errorf(d.at("network.resolver"), "network.resolver", "%v", err)
		}
		n.Resolver = r
	}
	if n.Limits != nil {
		return d.netLimits(n.Limits)
	}
	return nil
}

// dedupeRules drops rules identical to an earlier one. Rules that differ
// only in flags or ports all stay: each says something of its own.
func dedupeRules(rules []egress.Rule) []egress.Rule {
	var out []egress.Rule
	for _, r := range rules {
		if !slices.ContainsFunc(out, func(o egress.Rule) bool { return sameRule(o, r) }) {
			out = append(out, r)
		}
	}
	return out
}

func sameRule(a, b egress.Rule) bool {
	return a.Host == b.Host && slices.Equal(a.Ports, b.Ports) && a.Private == b.Private && a.NoSNI == b.NoSNI && a.RequireSNI == b.RequireSNI
}

// checkProxyURL checks an upstream proxy: an http:// URL with a host and a
// port and nothing else but, optionally, credentials. Messages write the
// URL with its password hidden.
func checkProxyURL(s string) error {
	shown := RedactURL(s)
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("want http://HOST:PORT (http://proxy.corp:3128), got %q", shown)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%q: want an http:// proxy (HTTP CONNECT); scheme %q is not supported", shown, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("%q: a proxy URL is http://HOST:PORT, without path, query or fragment", shown)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || port == "" {
		return fmt.Errorf("%q: no port; write http://%s:3128, say", shown, u.Hostname())
	}
	if _, err := egress.ParsePort(port); err != nil {
		return fmt.Errorf("%q: %v", shown, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if _, err := egress.NormalizeName(host); err != nil {
			return fmt.Errorf("%q: %v", shown, err)
		}
	}
	return nil
}

// RedactURL returns s with the password of its userinfo written "xxxxx",
// as [url.URL.Redacted] does; s is returned as it is when it holds none.
// A string with an "@" that does not parse as a URL with userinfo
// ("user:pw@host:1" without a scheme, a bad escape) loses everything
// before its last "@" after the scheme, lest a malformed URL print its
// secret.
func RedactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); !has {
			return s
		}
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	} else {
		scheme += "://"
	}
	return scheme + "xxxxx" + rest[strings.LastIndex(rest, "@"):]
}

// parseResolver reads network.resolver, "IP:PORT", into canonical form.
func parseResolver(s string) (string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("want IP:PORT (10.1.2.3:53, [2001:db8::53]:53), got %q", s)
	}
	if ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return "", fmt.Errorf("%q names no server; want IP:PORT such as 10.1.2.3:53", s)
	}
	return ap.String(), nil
}

// Bounds of network.limits. The buffer bounds are those of the netstack's
// TCP (gvisor pkg/tcpip/transport/tcp/protocol.go, MinBufferSize and
// MaxBufferSize), beyond which it clamps silently; the counts bound what
// one session may ask of the host's file descriptors.
const (
	MinNetBuffer      = 4 << 10
	MaxNetBuffer      = 4 << 20
	MaxNetConnections = 1 << 16
)

func (d *decoder) netLimits(l *NetLimits) error {
	for _, c := range []struct {
		key      string
		v        *uint64
		min, max uint64
		unit     string
	}{
		{"connections", l.Connections, 1, MaxNetConnections, ""},
		{"handshakes", l.Handshakes, 1, MaxNetConnections, ""},
		{"buffer", l.Buffer, MinNetBuffer, MaxNetBuffer, "bytes"},
		{"idle_timeout", l.IdleTimeout, 1, math.MaxInt64 / uint64(time.Second), "seconds"},
		{"dial_timeout", l.DialTimeout, 1, math.MaxInt64 / uint64(time.Second), "seconds"},
	} {
		path := "network.limits." + c.key
		switch {
		case c.v == nil:
		case *c.v == Unlimited:
			return d.errorf(d.at(path), path, "cannot be unlimited: each bound keeps a hostile sandbox from exhausting vm-run; leave it out for the default")
		case *c.v < c.min || *c.v > c.max:
			return d.errorf(d.at(path), path, "want %s to %s, got %s", formatLimit(c.min, c.unit),
				formatLimit(c.max, c.unit), formatLimit(*c.v, c.unit))
		}
	}
	return nil
}

// EgressLimits returns network.limits as package netns/egress takes them:
// zero where the profile sets nothing, for [egress.Limits.WithDefaults].
func (n Network) EgressLimits() egress.Limits {
	var out egress.Limits
	l := n.Limits
	if l == nil {
		return out
	}
	count := func(v *uint64) int {
		if v == nil {
			return 0
		}
		return int(*v) // validated: at most MaxNetConnections or MaxNetBuffer
	}
	seconds := func(v *uint64) time.Duration {
		if v == nil {
			return 0
		}
		return time.Duration(*v) * time.Second // validated: no overflow
	}
	out.Connections, out.Handshakes, out.Buffer = count(l.Connections), count(l.Handshakes), count(l.Buffer)
	out.IdleTimeout, out.DialTimeout = seconds(l.IdleTimeout), seconds(l.DialTimeout)
	return out
}

// ErrLoopbackPorts is wrapped by [Profile.WithAllow]'s error for a profile
// in mode loopback with port rules, which mode egress would drop.
var ErrLoopbackPorts = errors.New("network mode loopback has port rules, which egress mode replaces")

// WithAllow returns a copy of p in mode egress with rules added to its
// network.allow, as vm-run's --allow-net does: each rule normalised, those
// already listed left out. A profile in mode none or loopback switches to
// egress; one in mode loopback with connect_tcp, bind_tcp or any_port is
// refused with [ErrLoopbackPorts] rather than have its port rules silently
// stop applying.
func (p *Profile) WithAllow(rules ...egress.Rule) (*Profile, error) {
	q := *p
	n := &q.Network
	if len(n.ConnectTCP) > 0 || len(n.BindTCP) > 0 || n.AnyPort {
		return nil, fmt.Errorf("profile %q: %w", p.Name, ErrLoopbackPorts)
	}
	n.Mode = NetworkEgress
	n.Allow = slices.Clone(n.Allow)
	for _, r := range rules {
		r.Ports = slices.Clone(r.Ports)
		if err := r.Normalize(); err != nil {
			return nil, err
		}
		n.Allow = append(n.Allow, r)
	}
	n.Allow = dedupeRules(n.Allow)
	return &q, nil
}

// DescribeRule writes a rule in its short form with what it allows beyond
// the obvious: "*.slack.com:443 (subdomains of slack.com only; SNI
// checked)", "db.internal:5432 (private addresses too)".
func DescribeRule(r egress.Rule) string {
	var notes []string
	switch {
	case r.Host == egress.HostLoopback:
		notes = append(notes, "the host's own 127.0.0.1, by the name host-loopback inside")
	case strings.HasPrefix(r.Host, "*."):
		notes = append(notes, "subdomains of "+strings.TrimPrefix(r.Host, "*.")+" only")
	}
	if _, err := netip.ParseAddr(r.Host); err == nil {
		notes = append(notes, "an address literal")
	}
	if r.Private {
		notes = append(notes, "private addresses too")
	}
	if r.RequireSNI {
		notes = append(notes, "SNI checked on every port")
	} else if slices.Contains(r.Ports, 443) {
		if r.SNIChecked(443) {
			notes = append(notes, "SNI checked on 443")
		} else {
			notes = append(notes, "SNI not checked, sni: false")
		}
	}
	if len(notes) == 0 {
		return r.String()
	}
	return r.String() + " (" + strings.Join(notes, "; ") + ")"
}

// DescribeLimits writes the limits in force, defaults filled in and marked:
// "connections=1024 (default) handshakes=64 buffer=256KiB (default) ...".
func (n Network) DescribeLimits() string {
	set := n.EgressLimits()
	eff := set.WithDefaults()
	var out []string
	add := func(key string, v, given uint64, unit string) {
		s := key + "=" + formatLimit(v, unit)
		if given == 0 {
			s += " (default)"
		}
		out = append(out, s)
	}
	add("connections", uint64(eff.Connections), uint64(set.Connections), "")
	add("handshakes", uint64(eff.Handshakes), uint64(set.Handshakes), "")
	add("buffer", uint64(eff.Buffer), uint64(set.Buffer), "bytes")
	add("idle_timeout", uint64(eff.IdleTimeout/time.Second), uint64(set.IdleTimeout), "seconds")
	add("dial_timeout", uint64(eff.DialTimeout/time.Second), uint64(set.DialTimeout), "seconds")
	return strings.Join(out, " ")
}

// formatLimit writes a number as the schema does: sizes in binary units,
// times in the largest of h, m and s that divides them.
func formatLimit(v uint64, unit string) string {
	switch unit {
	case "bytes":
		return formatNumber(v, opts{unit: unit}).Value
	case "seconds":
		switch {
		case v != 0 && v%3600 == 0:
			return strconv.FormatUint(v/3600, 10) + "h"
		case v != 0 && v%60 == 0:
			return strconv.FormatUint(v/60, 10) + "m"
		}
		return strconv.FormatUint(v, 10) + "s"
	}
	return strconv.FormatUint(v, 10)
}
