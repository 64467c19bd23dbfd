// Package egress decides what a sandbox in network mode egress may reach:
// which names resolve inside it, which connections go ahead, and to
// which real address vm-run then connects. It holds the policy and the
// parsers; package netns/stack carries the packets and asks it.
//
//	rules := []egress.Rule{
//		{Host: "api.github.com", Ports: []uint16{443}},
//		{Host: "*.slack.com", Ports: []uint16{443}},
//		{Host: "db.internal", Ports: []uint16{5432}, Private: true},
//	}
//	policy, err := egress.NewAllowlist(rules)
//	if err != nil {
//		return err // a rule no connection could use
//	}
//	names := egress.NewNames()
//	rec := egress.RateLimit(recorder, 10*time.Second)
//	defer rec.Flush(ctx)
//	stub := egress.NewStub(policy, names, rec)
//	answer := stub.Answer(ctx, query) // nil: send nothing
//	// ...a SYN to 198.18.0.3:443 arrives...
//	name, _ := names.Lookup(dst)
//	rule, reason := policy.Connect(name, dst, 443)
//	c, dialed, via, err := (&egress.HostDialer{Timeout: 10 * time.Second}).Dial(ctx, name, dst, 443, rule)
//
// # What is decided where
//
// A program inside asks the [Stub] for a name. A name no rule names gets
// NXDOMAIN, and is asked of no resolver: such names are never forwarded,
// and the host's resolver never hears of them. An allowed name's A question is answered with a
// synthetic address ([Names]); its other questions (AAAA, HTTPS, ...)
// with an empty answer. Every answer is recorded (audit.NetDNS) before it
// is sent.
//
// The program connects to the synthetic address. The stack maps it back
// to the name and asks [Policy.Connect] whether a rule allows the name on
// that port; a connection to any other address is an address literal,
// which only an address rule or host-loopback allows. For port 443 the
// stack then reads the TLS ClientHello ([ServerName]) and checks that the
// name the client sends is one the rule allows (unless the rule says
// sni: false). Only then does the [Dialer] resolve the name on the host
// and connect; the connection is completed inside only once the
// upstream has accepted, so a refusal looks like one (ECONNREFUSED).
//
// # Synthetic addresses
//
// Inside the sandbox an allowed name resolves to an address of
// SyntheticPrefix, 198.18.0.0/15 (set aside for benchmarking by RFC 2544,
// so it is nobody's real address), never to its real one. The parent
// always dials by the name the address stands for, which buys four
// things: an address shared by many names (a CDN's) cannot be used to
// reach a name not listed, since what is dialled is the name; the real
// addresses are checked in one place, at dial time, so a name that
// rebinds to 169.254.169.254 or 10.0.0.7 between two lookups is caught;
// the real address can change under a long session without harm; and a
// program with its own resolver (DNS over HTTPS, hard-coded addresses)
// ends up at an address literal, which no name rule allows.
//
// # Rules
//
// A rule ([Rule], [ParseRule]) names a host and the TCP ports allowed on
// it. "api.github.com:443" allows that name; "*.slack.com:443" allows
// every name under slack.com (a.slack.com, a.b.slack.com) but not
// slack.com itself; "10.0.0.5:5432" allows that address, and only when
// the program connects to it as a literal; "host-loopback:8080" allows
// the host's own 127.0.0.1:8080, which the sandbox reaches by the name
// host-loopback ("http://host-loopback:8080/"): inside, 127.0.0.1 is the
// sandbox's own loopback. Where
// several rules match, the first decides. A name rule reaches public
// addresses; with private: true also loopback, RFC 1918 and CGNAT ones.
// Link-local (cloud metadata), multicast, reserved, unspecified and
// synthetic addresses are never reached through a name ([Permitted]), and
// a name is refused whole when any address it resolves to is refused.
// IPv6 is off inside the sandbox and never dialled.
//
// Denials repeat: a program retrying a refused host in a loop would
// flood the ledger. [RateLimit] writes one record per kind of denial a
// window and counts the rest in the next record's Suppressed field, so
// that the records of a kind and their Suppressed counts add up to the
// number of denials.
//
// # Upstream proxy
//
// With [HostDialer.Proxy] set, every connection but the host's loopback
// goes through an HTTP CONNECT proxy, by name: the proxy resolves it, so
// the address checks are then the proxy's. The sandbox never sees the
// proxy or its credentials, and the ledger records the proxy without
// them.
//
// # What remains possible
//
// The allowlist narrows what a hostile server can reach; it does not
// make an allowed host safe.
//
//   - Domain fronting: a client may send an allowed name in the SNI and
//     another in the HTTP Host header inside TLS, and a CDN serving both
//     may route by the inner one. vm-run sees only the SNI. With
//     Encrypted Client Hello the SNI read is the outer, public name.
//   - Exfiltration to an allowed host's own tenants: an allowed
//     api.github.com carries any account's gists and repositories, an
//     allowed *.s3.amazonaws.com any bucket. Allow the narrowest names.
//   - A name allowed with private: true reaches whatever it resolves to
//     in those ranges, the host's loopback included.
//   - Through a proxy, a name this host cannot resolve is resolved by the
//     proxy, and what it resolves to is the proxy's business.
//   - A wildcard rule is a channel of its own through DNS: a name it
//     matches is looked up on the host when it is dialled, so the labels
//     of <data>.allowed.example reach the host's resolvers and the
//     domain's name servers. [MaxNames] bounds how many one session may
//     use; allow exact names where you can.
//
// Names no rule matches are no channel: they are answered NXDOMAIN from
// the allowlist alone and never forwarded, so a query for
// data.attacker.example leaves the sandbox's stub and goes no further.
package egress
