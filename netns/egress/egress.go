package egress

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// The sandbox's side of the link. The init stage gives Device the address
// SandboxAddr (in SyntheticPrefix, with a default route through the
// device) and names StubAddr as the only nameserver in /etc/resolv.conf;
// the stack answers DNS there and hands out the rest of SyntheticPrefix
// as the addresses of allowed names.
var (
	SandboxAddr     = netip.MustParseAddr("198.18.0.2")
	StubAddr        = netip.MustParseAddr("198.18.0.1")
	SyntheticPrefix = netip.MustParsePrefix("198.18.0.0/15") // RFC 2544
)

// Link settings of the TUN device. A large MTU and queue keep a bulk
// stream from overflowing the device's queue (EGRESS.md: 60-130 MB/s and
// drops at 1500/500, 650-750 MB/s at these).
const (
	Device     = "tun0"
	MTU        = 65520
	TxQueueLen = 5000
)

// HostLoopback is the Host of a rule for the host's own loopback
// (127.0.0.1), written "host-loopback:8080". Nothing else reaches it.
const HostLoopback = "host-loopback"

// Rule is one entry of a profile's network.allow.
type Rule struct {
	// Host is a name in lower-case ASCII without a trailing dot
	// ("api.github.com"), a wildcard that matches the name's subdomains
	// but not the name itself ("*.slack.com"), an IPv4 address literal
	// ("10.0.0.5"), or HostLoopback.
	Host string `json:"host"`
	// Ports are the TCP ports allowed, at least one.
	Ports []uint16 `json:"ports"`
	// Private lets a name resolve to addresses that are not public:
	// loopback, private (RFC 1918), shared (CGNAT, RFC 6598). Link-local,
	// multicast and the synthetic range stay refused; an address literal
	// rule is the way to reach one of those.
	Private bool `json:"private,omitempty"`
	// NoSNI turns the SNI check of port 443 off for this rule, for
	// clients that send no server name (written sni: false).
	NoSNI bool `json:"no_sni,omitempty"`
	// RequireSNI checks the server name on every port of the rule, not
	// only 443: for TLS services on other ports (written sni: true).
	RequireSNI bool `json:"require_sni,omitempty"`
}

// Policy decides what the sandbox may reach. Implementations are safe
// for concurrent use and pure: the same question always gets the same
// answer, and a Policy never does I/O.
type Policy interface {
	// Name reports whether a DNS name (normalised: lower case, ASCII, no
	// trailing dot) may resolve inside the sandbox, and the first rule
	// that names it. A name no rule names is answered NXDOMAIN and never
	// asked of any resolver.
	Name(name string) (rule *Rule, ok bool)
	// Connect decides a TCP connection to port of name (a name the stub
	// handed out a synthetic address for) or, when name is empty, of the
	// address literal addr. It returns the rule that allows it, or nil
	// and the reason it is refused, in words for the ledger.
	Connect(name string, addr netip.Addr, port uint16) (rule *Rule, reason string)
}

// Recorder writes the stack's records (audit.NetDNS, audit.NetConnect,
// audit.NetClose) to the ledger. For a decision (NetDNS, NetConnect)
// Record returns once ev is on disk, or with the error that kept it off;
// the caller then refuses what ev records, so nothing happens
// unrecorded. An audit.NetClose follows what it records and gates
// nothing: Record may return once it is queued, to become durable with
// the next decision's sync (or the ledger's close). Safe for concurrent
// use; concurrent records share a sync.
type Recorder interface {
	Record(ctx context.Context, ev audit.Event) error
}

// LedgerRecorder is the Recorder on a session's ledger: decisions are
// appended and synced (audit.Ledger.Log), a NetClose is queued
// (audit.Ledger.Enqueue), so that a connection's end never costs a sync
// that the next connection's decision would wait behind.
func LedgerRecorder(l *audit.Ledger) Recorder { return ledgerRecorder{l} }

type ledgerRecorder struct{ l *audit.Ledger }

func (r ledgerRecorder) Record(ctx context.Context, ev audit.Event) error {
	if _, ok := ev.(audit.NetClose); ok {
		return r.l.Enqueue(ctx, ev.EventType(), ev)
	}
	_, err := r.l.Log(ctx, ev)
	return err
}

// Dialer connects to an allowed destination on the host's network.
type Dialer interface {
	// Dial connects to port of name, or of addr when name is empty, for
	// rule. A name is resolved on the host now, and every address it
	// resolves to is checked against rule (so a name that rebinds to a
	// private or link-local address is refused); the dial goes through
	// the upstream proxy when there is one. It returns the connection,
	// the address dialled ("ip:port") and the proxy used, without
	// credentials ("" for none). A refusal by the checks is a *Refusal;
	// an upstream that refuses or cannot be reached is any other error.
	Dial(ctx context.Context, name string, addr netip.Addr, port uint16, rule *Rule) (c net.Conn, dialed, via string, err error)
}

// Refusal is a destination refused by policy, with the reason for the
// ledger.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

// Limits bound what a hostile sandbox can make the stack hold. Zero
// fields take the defaults of [Limits.WithDefaults].
type Limits struct {
	// Connections is the most TCP connections open at once.
	Connections int `json:"connections,omitempty"`
	// Handshakes is the most connections being decided and dialled at
	// once; a SYN beyond it is refused (and counted), never queued.
	Handshakes int `json:"handshakes,omitempty"`
	// Buffer is the TCP receive and send buffer of each connection inside
	// the stack, in bytes.
	Buffer int `json:"buffer,omitempty"`
	// IdleTimeout closes a connection with no traffic either way for so
	// long.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	// DialTimeout bounds one upstream dial, name lookup included, so that
	// a black-holed destination fails on its own and stalls nothing else.
	DialTimeout time.Duration `json:"dial_timeout,omitempty"`
}

// WithDefaults fills in zero fields: 1024 connections, 128 handshakes,
// 256 KiB buffers, 5 minutes idle, 10 seconds per dial.
func (l Limits) WithDefaults() Limits {
	if l.Connections == 0 {
		l.Connections = 1024
	}
	if l.Handshakes == 0 {
		l.Handshakes = 128
	}
	if l.Buffer == 0 {
		l.Buffer = 256 << 10
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = 5 * time.Minute
	}
	if l.DialTimeout == 0 {
		l.DialTimeout = 10 * time.Second
	}
	return l
}

// Config is what the stack (package netns/stack) needs beside the device.
type Config struct {
	Policy   Policy
	Names    *Names
	Dialer   Dialer
	Recorder Recorder
	Limits   Limits
}
