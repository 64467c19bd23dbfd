// Package stack is the parent's user-space TCP/IP stack on the sandbox's
// TUN device, for network mode egress: every packet the sandbox sends
// ends in it, nothing is routed at the IP level, and each TCP connection
// is decided, recorded and, when allowed, relayed to a connection vm-run
// dials itself. It is built on gVisor's netstack
// (gvisor.dev/gvisor/pkg/tcpip); package egress supplies the policy, the
// names, the DNS stub, the dialer and the ledger's records.
//
//	tun := ... // from the init stage over the sandbox's socketpair
//	st, err := stack.Start(tun, egress.Config{
//		Policy: allow, Names: egress.NewNames(), Dialer: dialer,
//		Recorder: rec, Limits: prof.Network.Limits,
//	})
//	if err != nil {
//		return err // exit 125: no network rather than the host's
//	}
//	defer st.Close() // every connection ends with its net_close
//
// # The link
//
// [Start] runs one NIC on the TUN descriptor (link/fdbased, raw IPv4 with
// no Ethernet header, MTU [egress.MTU]). The NIC is promiscuous and may
// spoof, so it accepts a packet to any destination and answers from that
// destination; the default route points at it. The stub's address,
// [egress.StubAddr], is the stack's own. IPv4 only: IPv6 packets find no
// protocol and are dropped. There is no GSO (fdbased offers it only on
// sockets, and TUN without IFF_VNET_HDR carries none), and incoming
// checksums are not verified again: the sandbox's kernel computed them
// and the device copies memory, it does not cross a wire. Each TCP
// connection inside gets send and receive buffers of Limits.Buffer
// bytes, which receive-buffer auto-tuning never exceeds; SACK is on.
//
// # One SYN
//
// What happens to a SYN from the sandbox to 198.18.0.5:443, where the
// stub gave 198.18.0.5 to api.github.com:
//
//	sandbox             Stack (goroutine of the SYN)            ledger    upstream
//	   |-- SYN ------------>|                                        |          |
//	   |                    | handshakes >= Limits.Handshakes or    |          |
//	   |                    | connections >= Limits.Connections?    |          |
//	   |                    |   yes: NetConnect deny "limit: ..." ->|          |
//	   |<-- RST ------------|   (ECONNREFUSED inside)               |          |
//	   |                    | port 53 elsewhere than the stub?      |          |
//	   |                    |   yes: deny, as below                 |          |
//	   |                    | Names.Lookup(198.18.0.5)              |          |
//	   |                    |   = api.github.com (unknown: deny     |          |
//	   |                    |   "synthetic address never handed out")          |
//	   |                    | Policy.Connect(api.github.com, 443)   |          |
//	   |                    |   nil: NetConnect deny, reason ------>|          |
//	   |<-- RST ------------|   (ECONNREFUSED inside)               |          |
//	   |                    | rule checks SNI (port 443, sni on):   |          |
//	   |<-- SYN-ACK --------|   handshake inside first              |          |
//	   |-- ClientHello ---->|   read until egress.ServerName        |          |
//	   |                    |   answers (5 s at most); name refused:|          |
//	   |<-- RST ------------|   NetConnect deny ------------------->|          |
//	   |                    | Dialer.Dial, Limits.DialTimeout --------------->|
//	   |                    |   refused, unreachable, timed out:    |          |
//	   |<-- RST ------------|   NetConnect deny "upstream: ..." --->|          |
//	   |                    | NetConnect allow (Conn n, Dialed) --->|          |
//	   |                    |   waits until on disk; error: RST     |          |
//	   |                    |   (no SNI check: the handshake inside |          |
//	   |<-- SYN-ACK --------|   completes only now)                 |          |
//	   |<=================== relay, both ways, half-close =====================>|
//	   |                    | both sides closed, an error, idle     |          |
//	   |                    | for Limits.IdleTimeout, or Close:     |          |
//	   |                    |   NetClose (bytes, duration) ------->|          |
//
// Without an SNI check the dial comes before the handshake inside, so an
// upstream that refuses looks refused to the program (ECONNREFUSED), not
// accepted and then reset. With one, the ClientHello can only be read
// after the handshake, so a refusal from then on is a reset
// (ECONNRESET). Whatever the path, the forwarder's request is completed
// (with or without a reset) before the SYN's goroutine returns, or its
// slot would leak.
//
// The allow record carries the address really dialled, so it is written
// after the dial and not beside it; only then does a byte flow (or, with
// no SNI check, does the handshake inside complete). A record that
// cannot be written refuses the connection ([Stats].RefusedUnrecorded).
// An upstream's failure is recorded as a deny whose Rule is the rule
// that allowed it and whose Reason starts with "upstream: ". Denials are
// recorded before the reset is sent, and refuse even if the record
// fails. Conn numbers the allowed connections from 1.
//
// # SNI
//
// The ClientHello's server name must be the name the program connected
// to, or another name that the same rule allows on that port: under
// "*.slack.com:443" a connection to a.slack.com may name b.slack.com,
// which it could have reached directly. A connection to an address
// literal names no host, so its ClientHello must carry no name (RFC 6066
// section 3 keeps literals out of SNI). A missing name, a name that is no
// host name, bytes that are not a ClientHello, or none within 5 seconds
// are refused. A rule with sni: false skips the check. The check narrows
// domain fronting (a name the policy allows, a Host header it does not)
// but cannot close it.
//
// # DNS and UDP
//
// The stub (egress.NewStub) answers UDP and TCP port 53 at StubAddr; over
// TCP each message is framed by its length in two bytes (RFC 7766
// section 8), several queries per connection, answered in order. At most
// 64 UDP queries are answered at once and 32 TCP connections served;
// more are dropped (Stats.DNSDropped) and the resolver asks again. Any
// other UDP datagram, DNS to another server included, is dropped and
// recorded as a NetConnect of proto udp, verdict deny; the records go
// through a queue of 256 so the packet path never waits on the ledger,
// and a datagram that finds it full is counted (Stats.UDPUnrecorded).
// TCP to port 53 anywhere but the stub is refused whatever the policy
// says: no DNS leaves the sandbox except through the stub.
//
// # Limits
//
// Limits.Handshakes bounds the connections being decided, read or
// dialled; Limits.Connections bounds those plus the connections relayed.
// A SYN over either is refused and recorded, and counted in [Stats]. The
// forwarder itself holds at most twice Limits.Handshakes (plus 16)
// requests, counting refusals being recorded; SYNs beyond that are
// dropped unanswered and counted (Stats.SYNsDropped), and the sandbox's
// kernel sends them again. Each SYN is decided and dialled in a
// goroutine of its own, the dial bounded by Limits.DialTimeout, so a
// black-holed destination holds only its own connection and handshake
// slot. A relay lends itself a copy buffer only while bytes move, never
// while it waits for them: 256 KiB ones for the first 64 reads in
// progress across the process, 16 KiB ones beyond, so idle connections
// cost no buffer and busy ones at most 16 MiB plus 16 KiB each.
//
// # Close
//
// [Stack.Close] cancels dials and records in progress, resets every
// relayed connection on both sides (each ends with its NetClose, reason
// "session end"), stops the DNS stub and the stack, waits for every
// goroutine, and closes the TUN descriptor last: the sandbox's tun0
// disappears with it, and the sandbox keeps only its loopback.
package stack
