package egress_test

import (
	"fmt"
	"net/netip"

	"github.com/vm-run/vm-run/netns/egress"
)

func ExampleAllowlist() {
	var rules []egress.Rule
	for _, s := range []string{"api.github.com:443", "*.slack.com:443", "host-loopback:8080"} {
		r, err := egress.ParseRule(s)
		if err != nil {
			panic(err)
		}
		rules = append(rules, r)
	}
	policy, err := egress.NewAllowlist(rules)
	if err != nil {
		panic(err)
	}
	_, ok := policy.Name("slack.com")
	fmt.Println("slack.com resolves:", ok)
	rule, _ := policy.Connect("files.slack.com", netip.Addr{}, 443)
	fmt.Println("files.slack.com:443 allowed by", rule)
	_, reason := policy.Connect("api.github.com", netip.Addr{}, 80)
	fmt.Println(reason)
	_, reason = policy.Connect("", netip.MustParseAddr("169.254.169.254"), 80)
	fmt.Println(reason)
	reason, _ = egress.Permitted(netip.MustParseAddr("10.0.0.7"), rule)
	fmt.Println("files.slack.com resolves to", reason)
	// Output:
	// slack.com resolves: false
	// files.slack.com:443 allowed by *.slack.com:443
	// no rule allows api.github.com:80; its rules allow ports 443
	// 169.254.169.254:80 is an address literal no rule lists
	// files.slack.com resolves to 10.0.0.7, a private address (the rule *.slack.com:443 does not say private: true)
}
