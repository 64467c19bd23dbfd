package egress

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestAllowlistName(t *testing.T) {
	a := mustAllowlist(t,
		"api.github.com:443",
		"*.slack.com:443",
		"files.slack.com:8443",
		"10.0.0.5:5432",
		"host-loopback:8080",
		"*.b.example.org:443",
	)
	tests := []struct {
		name string
		ok   bool
		rule string
	}{
		{"api.github.com", true, "api.github.com:443"},
		{"github.com", false, ""},
		{"x.api.github.com", false, ""},
		{"a.slack.com", true, "*.slack.com:443"},
		{"a.b.slack.com", true, "*.slack.com:443"},
		// The wildcard comes first in the list, so it is the rule named.
		{"files.slack.com", true, "*.slack.com:443"},
		{"slack.com", false, ""},
		{"evilslack.com", false, ""},
		{"slack.com.evil.net", false, ""},
		{"c.b.example.org", true, "*.b.example.org:443"},
		{"b.example.org", false, ""},
		// Address literal rules name no name; host-loopback rules name
		// the one name the host's loopback is reached by.
		{"10.0.0.5", false, ""},
		{"host-loopback", true, "host-loopback:8080"},
		{"x.host-loopback", false, ""},
		{"127.0.0.1", false, ""},
		// A "*" in a question is no wildcard.
		{"*.slack.com", false, ""},
		{"", false, ""},
		// Names are looked up as given: the caller normalises.
		{"API.GITHUB.COM", false, ""},
	}
	for _, tt := range tests {
		r, ok := a.Name(tt.name)
		if ok != tt.ok || ruleString(r) != tt.rule {
			t.Errorf("Name(%q) = %q, %v, want %q, %v", tt.name, ruleString(r), ok, tt.rule, tt.ok)
		}
	}
}

func TestAllowlistConnect(t *testing.T) {
	a := mustAllowlist(t,
		"api.github.com:443",
		"*.slack.com:443",
		"files.slack.com:8443",
		"10.0.0.5:5432",
		"host-loopback:8080",
		"127.0.0.1:9090",
	)
	var none netip.Addr
	tests := []struct {
		name   string
		addr   string
		port   uint16
		rule   string
		reason string // the whole reason when refused
	}{
		{"api.github.com", "", 443, "api.github.com:443", ""},
		{"api.github.com", "", 80, "", "no rule allows api.github.com:80; its rules allow ports 443"},
		{"example.com", "", 80, "", "no rule allows example.com:80"},
		{"a.slack.com", "", 443, "*.slack.com:443", ""},
		{"slack.com", "", 443, "", "no rule allows slack.com:443"},
		// The first rule with the port decides.
		{"files.slack.com", "", 443, "*.slack.com:443", ""},
		{"files.slack.com", "", 8443, "files.slack.com:8443", ""},
		{"files.slack.com", "", 22, "", "no rule allows files.slack.com:22; its rules allow ports 443, 8443"},
		// A name never matches an address rule, even when spelled as one.
		{"10.0.0.5", "", 5432, "", "no rule allows 10.0.0.5:5432"},
		{"", "10.0.0.5", 5432, "10.0.0.5:5432", ""},
		{"", "::ffff:10.0.0.5", 5432, "10.0.0.5:5432", ""},
		{"", "10.0.0.5", 5433, "", "10.0.0.5:5433 is an address literal no rule lists"},
		{"", "203.0.113.5", 443, "", "203.0.113.5:443 is an address literal no rule lists"},
		{"", "140.82.112.6", 443, "", "140.82.112.6:443 is an address literal no rule lists"},
		{"", "127.0.0.1", 8080, "host-loopback:8080", ""},
		{"", "127.0.0.1", 9090, "127.0.0.1:9090", ""},
		{"", "127.0.0.1", 22, "", "127.0.0.1:22 is an address literal no rule lists"},
		{"", "127.0.0.2", 8080, "", "127.0.0.2:8080 is an address literal no rule lists"},
		{"", "198.18.7.7", 443, "", "198.18.7.7:443 is a synthetic address the stub never gave out"},
	}
	for _, tt := range tests {
		addr := none
		if tt.addr != "" {
			addr = netip.MustParseAddr(tt.addr)
		}
		r, reason := a.Connect(tt.name, addr, tt.port)
		if ruleString(r) != tt.rule || reason != tt.reason || (r == nil) == (reason == "") {
			t.Errorf("Connect(%q, %s, %d) = %q, %q, want %q, %q", tt.name, tt.addr, tt.port, ruleString(r), reason, tt.rule, tt.reason)
		}
	}
}

func TestAllowlistFirstRuleWins(t *testing.T) {
	// host-loopback listed before a literal 127.0.0.1 rule for the same
	// port is the one named, and the other way round.
	lo := netip.MustParseAddr("127.0.0.1")
	for _, order := range [][]string{
		{"host-loopback:8080", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "host-loopback:8080"},
	} {
		a := mustAllowlist(t, order...)
		if r, _ := a.Connect("", lo, 8080); ruleString(r) != order[0] {
			t.Errorf("Connect(127.0.0.1:8080) under %q = %q, want %q", order, ruleString(r), order[0])
		}
	}
	for _, order := range [][]string{
		{"a.example.com:443", "*.example.com:443"},
		{"*.example.com:443", "a.example.com:443"},
		{"*.a.example.com:443", "*.example.com:443"},
		{"*.example.com:443", "*.a.example.com:443"},
	} {
		a := mustAllowlist(t, order...)
		name := "a.example.com"
		if strings.HasPrefix(order[0], "*.a.") || strings.HasPrefix(order[1], "*.a.") {
			name = "x.a.example.com"
		}
		if r, _ := a.Name(name); ruleString(r) != order[0] {
			t.Errorf("Name(%q) under %q = %q, want %q", name, order, ruleString(r), order[0])
		}
	}
}

func TestNewAllowlist(t *testing.T) {
	// NewAllowlist normalises a copy and leaves the caller's rules alone.
	in := []Rule{{Host: "API.GitHub.com.", Ports: []uint16{8443, 443, 443}}}
	a, err := NewAllowlist(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Rules()[0].String(); got != "api.github.com:443,8443" {
		t.Errorf("rule normalised to %q, want %q", got, "api.github.com:443,8443")
	}
	if in[0].Host != "API.GitHub.com." || len(in[0].Ports) != 3 || in[0].Ports[0] != 8443 {
		t.Errorf("NewAllowlist changed its argument: %+v", in[0])
	}
	for _, tt := range []struct {
		rule Rule
		want string
	}{
		{Rule{Host: "0.0.0.0", Ports: []uint16{80}}, "unspecified"},
		{Rule{Host: "224.0.0.1", Ports: []uint16{80}}, "multicast"},
		{Rule{Host: "198.18.0.9", Ports: []uint16{80}}, "synthetic"},
		{Rule{Host: "example.com"}, "no port"},
		{Rule{Host: "*.com", Ports: []uint16{443}}, "top-level"},
		{Rule{Host: "10.0.0.5", Ports: []uint16{5432}, Private: true}, "private applies to names"},
	} {
		if _, err := NewAllowlist([]Rule{tt.rule}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewAllowlist(%+v) error = %v, want one saying %q", tt.rule, err, tt.want)
		}
	}
	// The same literals a valid class away are accepted: the refusal
	// is the class, not the form.
	if _, err := NewAllowlist([]Rule{{Host: "10.0.0.9", Ports: []uint16{80}}, {Host: "169.254.169.254", Ports: []uint16{80}}}); err != nil {
		t.Errorf("NewAllowlist(10.0.0.9, 169.254.169.254) = %v, want nil", err)
	}
}

func TestParseRule(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"api.github.com:443", "api.github.com:443", ""},
		{" *.Slack.COM.:443 ", "*.slack.com:443", ""},
		{"host-loopback:8080", "host-loopback:8080", ""},
		{"10.0.0.5:5432", "10.0.0.5:5432", ""},
		{"bücher.de:443", "xn--bcher-kva.de:443", ""},
		{"api.github.com", "", "want HOST:PORT"},
		{"api.github.com:0", "", "from 1 to 65535"},
		{"api.github.com:65536", "", "from 1 to 65535"},
		{"[::1]:443", "", "want HOST:PORT"},
		{"a.*.com:443", "", "wildcard"},
		{"exa mple.com:443", "", "not a valid host name"},
	} {
		r, err := ParseRule(tt.in)
		got := ""
		if err == nil {
			got = r.String()
		}
		if got != tt.want || (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseRule(%q) = %q, %v, want %q, error holding %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestNames(t *testing.T) {
	n := NewNames()
	a1, ok1 := n.Addr("a.example.com")
	b1, _ := n.Addr("b.example.com")
	a2, _ := n.Addr("a.example.com")
	if !ok1 || a1 != a2 || a1 == b1 {
		t.Fatalf("Addr gave a %s then %s, b %s: want one stable address per name", a1, a2, b1)
	}
	for _, a := range []netip.Addr{a1, b1} {
		if !SyntheticPrefix.Contains(a) || a == StubAddr || a == SandboxAddr {
			t.Errorf("Addr gave %s: want one of %s other than the stub's and the sandbox's", a, SyntheticPrefix)
		}
	}
	if name, ok := n.Lookup(b1); !ok || name != "b.example.com" {
		t.Errorf("Lookup(%s) = %q, %v, want b.example.com", b1, name, ok)
	}
	if _, ok := n.Lookup(netip.MustParseAddr("198.18.7.7")); ok {
		t.Errorf("Lookup(198.18.7.7) found a name never given one")
	}
	// The range runs out at its broadcast address.
	n.next = netip.MustParseAddr("198.19.255.254")
	if a, ok := n.Addr("last.example.com"); !ok || a.String() != "198.19.255.254" {
		t.Errorf("Addr at the end of the range = %s, %v, want 198.19.255.254, true", a, ok)
	}
	if a, ok := n.Addr("more.example.com"); ok {
		t.Errorf("Addr past the range = %s, want none", a)
	}
}

// BenchmarkAllowlistConnect asks a list of 500 rules about names deep
// under its wildcards and names it does not hold.
func BenchmarkAllowlistConnect(b *testing.B) {
	var rules []string
	for i := range 250 {
		rules = append(rules, fmt.Sprintf("host%d.example.com:443", i), fmt.Sprintf("*.svc%d.example.net:443", i))
	}
	a := mustAllowlist(b, rules...)
	names := []string{"host249.example.com", "a.b.c.svc249.example.net", "nothing.example.org", "x.y.z.w.example.net"}
	b.ResetTimer()
	for i := range b.N {
		a.Connect(names[i%len(names)], netip.Addr{}, 443)
	}
}
