package audit

import "strconv"

// Records of the sandbox's network traffic in network mode egress (package
// netns/egress decides, package netns/stack carries the traffic). Each
// is written, and on disk, before what it records takes effect: the DNS
// answer sent, the connection completed inside or refused.

// Event types of the egress records.
const (
	EventNetDNS     = "net_dns"
	EventNetConnect = "net_connect"
	EventNetClose   = "net_close"
)

// NetDNS is one DNS question the sandbox asked vm-run's stub resolver.
// An allowed name is answered with a synthetic address (never the real
// one, which is looked up only when a connection is dialled); any other
// name gets NXDOMAIN and is asked of no resolver at all.
type NetDNS struct {
	// Name is the name asked, normalised: lower case, no trailing dot,
	// escaped as the ledger escapes any text.
	Name string `json:"name"`
	// Type is the question's type: "A", "AAAA", "HTTPS", ... or "TYPE65534".
	Type    string  `json:"type"`
	Verdict Verdict `json:"verdict"`
	// Rule is the allowlist entry that names the name, as written in the
	// profile ("*.slack.com:443").
	Rule string `json:"rule,omitempty"`
	// Answer is the synthetic address given, when one was.
	Answer string `json:"answer,omitempty"`
	// Suppressed counts identical denials before this one that were
	// refused without a record of their own (rate limiting).
	Suppressed int `json:"suppressed,omitempty"`
}

// EventType implements [Event].
func (NetDNS) EventType() string { return EventNetDNS }

// NetConnect is the decision on one connection the sandbox opened.
type NetConnect struct {
	// Conn numbers the session's connections from 1; the NetClose of an
	// allowed connection carries the same number.
	Conn uint64 `json:"conn,omitempty"`
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
	// Name is the name the sandbox resolved to the address it connected
	// to; empty when it connected to an address literal.
	Name string `json:"name,omitempty"`
	// Address is the destination the sandbox asked for, "ip:port" as
	// seen inside (a synthetic address when Name is set).
	Address string `json:"address"`
	// Port is the destination port.
	Port    uint16  `json:"port"`
	Verdict Verdict `json:"verdict"`
	// Rule is the allowlist entry that allowed it, as written.
	Rule string `json:"rule,omitempty"`
	// Reason says why a connection was refused ("no rule allows
	// example.com:80", "resolves to 10.0.0.7, a private address", "limit:
	// 256 connections", "SNI evil.com does not match api.github.com").
	Reason string `json:"reason,omitempty"`
	// SNI is the server name of the TLS ClientHello, when it was read.
	SNI string `json:"sni,omitempty"`
	// Dialed is the address vm-run really connected to, "ip:port".
	Dialed string `json:"dialed,omitempty"`
	// Via is the upstream HTTP proxy the connection went through, without
	// its credentials.
	Via string `json:"via,omitempty"`
	// Suppressed counts identical denials before this one that were
	// refused without a record of their own.
	Suppressed int `json:"suppressed,omitempty"`
}

// EventType implements [Event].
func (NetConnect) EventType() string { return EventNetConnect }

// NetClose ends an allowed connection.
type NetClose struct {
	Conn uint64 `json:"conn"`
	Name string `json:"name,omitempty"`
	Port uint16 `json:"port"`
	// BytesOut is what the sandbox sent to the upstream, BytesIn what it
	// received, in bytes of TCP payload.
	BytesOut uint64 `json:"bytes_out"`
	BytesIn  uint64 `json:"bytes_in"`
	// DurationNS is the connection's life from the decision to the close.
	DurationNS int64 `json:"duration_ns"`
	// Reason says why vm-run ended it, when it did: "idle timeout",
	// "session end", an upstream error.
	Reason string `json:"reason,omitempty"`
}

// EventType implements [Event].
func (NetClose) EventType() string { return EventNetClose }

// Destination names what a connection was to, "name:port" ("api.github.com:443"),
// or the address the sandbox asked for when it connected to an address
// literal ("10.0.0.5:5432"): what `vm-run audit stats` counts by and
// `vm-run policy generate` proposes.
func (c NetConnect) Destination() string {
	if c.Name != "" || c.Address == "" {
		return c.Name + ":" + strconv.FormatUint(uint64(c.Port), 10)
	}
	return c.Address
}

// The network records are written once per DNS question and connection,
// the most frequent records after decisions, so Append encodes them by
// hand too (see encode.go). Each writes its members in the order of its
// fields, with the omitempty rules of their json tags.

func (e *dataEncoder) netDNS(d *NetDNS) {
	e.member('{', "name")
	e.string(d.Name)
	e.member(',', "type")
	e.string(d.Type)
	e.member(',', "verdict")
	e.string(string(d.Verdict))
	e.omitEmpty("rule", d.Rule)
	e.omitEmpty("answer", d.Answer)
	e.omitZero("suppressed", int64(d.Suppressed))
	e.buf = append(e.buf, '}')
}

func (e *dataEncoder) netConnect(c *NetConnect) {
	// Conn is the only member that may be left out before Proto, which
	// never is.
	sep := byte('{')
	if c.Conn != 0 {
		e.member(sep, "conn")
		e.buf = strconv.AppendUint(e.buf, c.Conn, 10)
		sep = ','
	}
	e.member(sep, "proto")
	e.string(c.Proto)
	e.omitEmpty("name", c.Name)
	e.member(',', "address")
	e.string(c.Address)
	e.member(',', "port")
	e.buf = strconv.AppendUint(e.buf, uint64(c.Port), 10)
	e.member(',', "verdict")
	e.string(string(c.Verdict))
	e.omitEmpty("rule", c.Rule)
	e.omitEmpty("reason", c.Reason)
	e.omitEmpty("sni", c.SNI)
	e.omitEmpty("dialed", c.Dialed)
	e.omitEmpty("via", c.Via)
	e.omitZero("suppressed", int64(c.Suppressed))
	e.buf = append(e.buf, '}')
}

func (e *dataEncoder) netClose(c *NetClose) {
	e.member('{', "conn")
	e.buf = strconv.AppendUint(e.buf, c.Conn, 10)
	e.omitEmpty("name", c.Name)
	e.member(',', "port")
	e.buf = strconv.AppendUint(e.buf, uint64(c.Port), 10)
	e.member(',', "bytes_out")
	e.buf = strconv.AppendUint(e.buf, c.BytesOut, 10)
	e.member(',', "bytes_in")
	e.buf = strconv.AppendUint(e.buf, c.BytesIn, 10)
	e.member(',', "duration_ns")
	e.buf = strconv.AppendInt(e.buf, c.DurationNS, 10)
	e.omitEmpty("reason", c.Reason)
	e.buf = append(e.buf, '}')
}

// omitZero appends an integer member that is not the first of its object,
// unless it is 0 (a json tag's omitempty).
func (e *dataEncoder) omitZero(name string, n int64) {
	if n != 0 {
		e.member(',', name)
		e.buf = strconv.AppendInt(e.buf, n, 10)
	}
}
