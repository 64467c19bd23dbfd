package egress

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want Class
	}{
		{"1.1.1.1", Public},
		{"140.82.112.6", Public},
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"10.0.0.7", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"172.32.0.1", Public},
		{"192.168.1.1", Private},
		{"100.64.0.1", Shared},
		{"100.127.255.255", Shared},
		{"100.128.0.1", Public},
		{"169.254.169.254", LinkLocal},
		{"224.0.0.251", Multicast},
		{"239.255.255.250", Multicast},
		{"240.0.0.1", Reserved},
		{"255.255.255.255", Reserved},
		{"192.0.2.1", Reserved},
		{"198.51.100.1", Reserved},
		{"203.0.113.5", Reserved},
		{"192.0.0.8", Reserved},
		{"0.0.0.0", Unspecified},
		{"0.1.2.3", Unspecified},
		{"198.18.0.1", Synthetic},
		{"198.19.255.255", Synthetic},
		{"198.20.0.1", Public},
		{"::ffff:10.0.0.1", Private},
		{"::ffff:169.254.169.254", LinkLocal},
		{"::1", IPv6},
		{"2606:4700::1111", IPv6},
	}
	for _, tt := range tests {
		if got := Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Classify(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if got := Classify(netip.Addr{}); got != IPv6 {
		t.Errorf("Classify(zero Addr) = %v, want %v", got, IPv6)
	}
}

func TestPermitted(t *testing.T) {
	name := &Rule{Host: "api.example.com", Ports: []uint16{443}}
	private := &Rule{Host: "db.internal", Ports: []uint16{5432}, Private: true}
	literal := &Rule{Host: "10.0.0.5", Ports: []uint16{5432}}
	metadata := &Rule{Host: "169.254.169.254", Ports: []uint16{80}}
	loop := &Rule{Host: HostLoopback, Ports: []uint16{8080}}
	tests := []struct {
		addr   string
		rule   *Rule
		ok     bool
		reason string // a substring of the reason
	}{
		{"140.82.112.6", name, true, ""},
		{"::ffff:140.82.112.6", name, true, ""},
		// Each refusal of a name rule beside the rule that permits it.
		{"10.0.0.7", name, false, "10.0.0.7, a private address (the rule api.example.com:443 does not say private: true)"},
		{"10.0.0.7", private, true, ""},
		{"::ffff:10.0.0.7", name, false, "10.0.0.7, a private address"},
		{"127.0.0.1", name, false, "a loopback address"},
		{"127.0.0.1", private, true, ""},
		{"100.64.1.1", name, false, "a shared (CGNAT) address"},
		{"100.64.1.1", private, true, ""},
		{"169.254.169.254", private, false, "169.254.169.254, a link-local address"},
		{"169.254.169.254", metadata, true, ""},
		{"224.0.0.1", private, false, "a multicast address"},
		{"198.18.0.9", private, false, "synthetic"},
		{"0.0.0.0", private, false, "unspecified"},
		{"240.0.0.1", private, false, "reserved"},
		{"192.0.2.1", name, false, "reserved"},
		{"2606:4700::1111", name, false, "IPv6 is off"},
		// Address literal rules: exactly their address.
		{"10.0.0.5", literal, true, ""},
		{"::ffff:10.0.0.5", literal, true, ""},
		{"10.0.0.6", literal, false, "10.0.0.6, not the rule's address 10.0.0.5"},
		{"127.0.0.1", loop, true, ""},
		{"127.0.0.2", loop, false, "not the host loopback address"},
		{"10.0.0.5", nil, false, "no rule"},
	}
	for _, tt := range tests {
		reason, ok := Permitted(netip.MustParseAddr(tt.addr), tt.rule)
		if ok != tt.ok || !strings.Contains(reason, tt.reason) || ok != (reason == "") {
			t.Errorf("Permitted(%s, %s) = %q, %v, want %v and a reason holding %q", tt.addr, ruleString(tt.rule), reason, ok, tt.ok, tt.reason)
		}
	}
	// Defence in depth: a literal rule that NewAllowlist would refuse
	// reaches nothing even when Permitted is handed one.
	for _, h := range []string{"0.0.0.0", "224.0.0.1", "198.18.0.9"} {
		if reason, ok := Permitted(netip.MustParseAddr(h), &Rule{Host: h, Ports: []uint16{1}}); ok {
			t.Errorf("Permitted(%s, literal rule %s) = ok, want refused", h, h)
		} else if !strings.Contains(reason, "no rule reaches") {
			t.Errorf("Permitted(%s, literal rule) reason %q", h, reason)
		}
	}
}
