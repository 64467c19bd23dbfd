package stack

// Stats are a [Stack]'s counters: what it carries now and what it has
// carried and refused since Start. Counts are of TCP connections unless
// named otherwise.
type Stats struct {
	// Open is the number of connections relayed now.
	Open uint64
	// Handshakes is the number of connections being decided, read (the
	// TLS ClientHello) or dialled now.
	Handshakes uint64
	// Total is the number of connections allowed since Start (their
	// audit.NetConnect written).
	Total uint64
	// RefusedPolicy counts connections refused by the policy, the SNI
	// check, the dialer's address checks (*egress.Refusal) or the DNS
	// rule (port 53 elsewhere than the stub).
	RefusedPolicy uint64
	// RefusedUpstream counts allowed connections whose upstream refused,
	// could not be reached or did not answer within Limits.DialTimeout.
	RefusedUpstream uint64
	// RefusedUnrecorded counts allowed connections refused because their
	// audit.NetConnect could not be written.
	RefusedUnrecorded uint64
	// RefusedConnections counts SYNs refused because Limits.Connections
	// connections were open; RefusedHandshakes those refused because
	// Limits.Handshakes were in flight.
	RefusedConnections uint64
	RefusedHandshakes  uint64
	// SYNsDropped counts SYNs the netstack forwarder dropped without an
	// answer because twice Limits.Handshakes requests were already
	// waiting (refusals being recorded included): the sandbox's kernel
	// sends such a SYN again after a second.
	SYNsDropped uint64
	// DNSQueries counts DNS messages handed to the stub, over UDP and
	// TCP; DNSDropped those dropped unanswered because too many were
	// being answered at once.
	DNSQueries uint64
	DNSDropped uint64
	// UDPDropped counts UDP datagrams refused (anything but DNS to the
	// stub); UDPUnrecorded those among them whose audit.NetConnect was
	// not written because the ledger lagged too far behind.
	UDPDropped    uint64
	UDPUnrecorded uint64
	// BytesOut counts TCP payload sent by the sandbox to its upstreams,
	// BytesIn payload received from them.
	BytesOut uint64
	BytesIn  uint64
}
