//go:build linux

package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// attempt is one SYN on its way to a relay or a refusal. It is owned by
// the goroutine the forwarder started for the SYN.
type attempt struct {
	s    *Stack
	req  *tcp.ForwarderRequest
	dst  netip.Addr
	port uint16
	name string
	rule *egress.Rule
	sni  string
	// decided is when the policy allowed the connection; NetClose's
	// duration counts from it.
	decided time.Time
	// ep and conn are the connection inside once the handshake is done.
	ep   tcpip.Endpoint
	wq   *waiter.Queue
	conn *gonet.TCPConn
	// connNo is the number of the allow record, for NetClose.
	connNo uint64
	// completed: req.Complete was called. relayed: the slots passed to a
	// relay, which releases them.
	completed, relayed bool
}

// handleSYN is the forwarder's handler, run in a goroutine of its own for
// each SYN (one per 4-tuple at a time). Whatever happens, it completes the
// request before returning, or the forwarder's slot would leak.
func (s *Stack) handleSYN(req *tcp.ForwarderRequest) {
	id := req.ID()
	a := &attempt{s: s, req: req, dst: addrOf(id.LocalAddress), port: id.LocalPort}
	if !s.enter() {
		req.Complete(true)
		return
	}
	defer s.wg.Done()
	s.mu.Lock()
	reason := ""
	switch {
	case s.handshakes >= s.lim.Handshakes:
		reason = fmt.Sprintf("limit: %d handshakes in flight", s.lim.Handshakes)
		s.n.refusedHandshakes.Add(1)
	case s.conns >= s.lim.Connections:
		reason = fmt.Sprintf("limit: %d connections", s.lim.Connections)
		s.n.refusedConns.Add(1)
	default:
		s.handshakes++
		s.conns++
	}
	s.mu.Unlock()
	if reason != "" {
		a.name, _ = s.cfg.Names.Lookup(a.dst)
		a.refuse(reason)
		return
	}
	defer a.finish()
	s.forward(a)
}

// finish resets what the attempt left unfinished and gives back its
// slots unless a relay took them.
func (a *attempt) finish() {
	a.reset()
	if a.relayed {
		return
	}
	a.s.mu.Lock()
	a.s.handshakes--
	a.s.conns--
	a.s.mu.Unlock()
}

// reset refuses the connection inside: a reset in answer to the SYN
// (ECONNREFUSED for the program) or, after the handshake, a reset of
// the connection (ECONNRESET). Idempotent.
func (a *attempt) reset() {
	if !a.completed {
		a.completed = true
		a.req.Complete(true)
	}
	if a.conn != nil && !a.relayed {
		a.ep.Abort()
		a.conn.Close()
		a.conn = nil
	}
}

// forward decides the connection and carries it to a relay or a refusal.
func (s *Stack) forward(a *attempt) {
	if a.dst == egress.StubAddr && a.port == 53 {
		// Only before the stub's listener is bound, within Start.
		return
	}
	if a.port == 53 {
		a.deny("DNS goes to the stub resolver at " + egress.StubAddr.String() + " only")
		return
	}
	if egress.SyntheticPrefix.Contains(a.dst) {
		name, ok := s.cfg.Names.Lookup(a.dst)
		if !ok {
			a.deny("synthetic address never handed out")
			return
		}
		a.name = name
	}
	rule, reason := s.cfg.Policy.Connect(a.name, a.dst, a.port)
	if rule == nil {
		if reason == "" {
			reason = "refused by the policy"
		}
		a.deny(reason)
		return
	}
	a.rule, a.decided = rule, time.Now()
	if rule.SNIChecked(a.port) {
		s.forwardTLS(a)
		return
	}
	// Dial first and complete the handshake inside only once the upstream
	// answered, so that a refused upstream is refused inside too.
	up, dialed, via, err := s.dial(a)
	if err != nil {
		a.dialFailed(err)
		return
	}
	if !a.recordAllow(dialed, via) {
		up.Close()
		return
	}
	if err := a.accept(); err != nil {
		up.Close()
		reason := "sandbox: handshake: " + err.Error()
		if errors.Is(err, errSessionEnd) {
			reason = errSessionEnd.Error()
		}
		s.recordClose(a, 0, 0, reason)
		return
	}
	s.relay(a, up, nil)
}

// forwardTLS serves a port whose rule checks SNI: the handshake inside
// comes first, so that the ClientHello can be read before anything is
// dialled.
func (s *Stack) forwardTLS(a *attempt) {
	if err := a.accept(); err != nil {
		// The program gave up before the handshake ended: nothing was
		// reached, nothing to record.
		return
	}
	hello, sni, err := peekHello(a.conn, helloTimeout)
	if err != nil {
		a.deny(err.Error())
		return
	}
	if reason := s.checkSNI(a, sni); reason != "" {
		a.sni = sni
		a.deny(reason)
		return
	}
	a.sni = sni
	up, dialed, via, err := s.dial(a)
	if err != nil {
		a.dialFailed(err)
		return
	}
	if !a.recordAllow(dialed, via) {
		up.Close()
		return
	}
	s.relay(a, up, hello)
}

// accept completes the handshake inside and the forwarder request; once
// Close has begun it refuses instead (errSessionEnd). An endpoint made
// after ns.Close aborted the others would be left alone, and its
// handshake would outwait every SYN-ACK retransmission, a minute or
// two, since the ACK that ends it is no longer read; Close waits for
// it. Close cancels the context before it closes the netstack, so only
// an accept already past this check can still be that late.
func (a *attempt) accept() error {
	if a.s.ctx.Err() != nil {
		a.completed = true
		a.req.Complete(true)
		return errSessionEnd
	}
	wq := new(waiter.Queue)
	ep, terr := a.req.CreateEndpoint(wq)
	a.completed = true
	if terr != nil {
		a.req.Complete(true)
		return errors.New(terr.String())
	}
	a.req.Complete(false)
	// Relayed bytes leave as soon as they are read: the upstream side
	// (a Go net.TCPConn) has Nagle off too.
	ep.SocketOptions().SetDelayOption(false)
	a.ep, a.wq, a.conn = ep, wq, gonet.NewTCPConn(wq, ep)
	return nil
}

// dial connects upstream, in the SYN's own goroutine, bounded by
// Limits.DialTimeout and by Close: a black-holed destination holds only
// its own connection, never the others' (egress.Dialer honours its
// context). A dial in a goroutine of its own measured some 80 µs more
// per connection here (BenchmarkConnect), one more wake-up.
func (s *Stack) dial(a *attempt) (net.Conn, string, string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.lim.DialTimeout)
	defer cancel()
	c, dialed, via, err := s.cfg.Dialer.Dial(ctx, a.name, a.dst, a.port, a.rule)
	if err == nil && c == nil {
		err = errors.New("dialer returned no connection")
	}
	if err == nil && s.ctx.Err() != nil {
		c.Close()
		err = errSessionEnd
	}
	var ref *egress.Refusal
	switch {
	case err == nil, errors.As(err, &ref):
	case s.ctx.Err() != nil:
		err = errSessionEnd
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("no connection within %v", s.lim.DialTimeout)
	}
	return c, dialed, via, err
}

var errSessionEnd = errors.New("session end")

// dialFailed refuses a connection whose dial failed: a *egress.Refusal
// is the policy's (a name that resolves to a refused address), anything
// else the upstream's.
func (a *attempt) dialFailed(err error) {
	var ref *egress.Refusal
	switch {
	case errors.As(err, &ref):
		a.deny(ref.Reason)
	case errors.Is(err, errSessionEnd):
		a.reset()
	default:
		a.s.n.refusedUpstream.Add(1)
		a.refuse("upstream: " + err.Error())
	}
}

// deny refuses a connection the policy does not allow.
func (a *attempt) deny(reason string) {
	a.s.n.refusedPolicy.Add(1)
	a.refuse(reason)
}

// refuse records the refusal, then resets the connection inside. The
// record is waited for, so that the ledger holds it before the program
// sees the refusal; a refusal that cannot be recorded still refuses.
func (a *attempt) refuse(reason string) {
	ev := a.record(audit.VerdictDeny)
	ev.Reason = reason
	ctx, cancel := a.s.recordCtx()
	a.s.cfg.Recorder.Record(ctx, ev)
	cancel()
	a.reset()
}

// record returns the attempt's NetConnect with the given verdict.
func (a *attempt) record(v audit.Verdict) audit.NetConnect {
	ev := audit.NetConnect{
		Proto:   "tcp",
		Name:    a.name,
		Address: netip.AddrPortFrom(a.dst, a.port).String(),
		Port:    a.port,
		Verdict: v,
		SNI:     a.sni,
	}
	if a.rule != nil {
		ev.Rule = a.rule.String()
	}
	return ev
}

// recordAllow writes the allow record and waits for it: no byte flows
// before the ledger holds it. False, with the connection reset inside,
// when it could not be written.
func (a *attempt) recordAllow(dialed, via string) bool {
	ev := a.record(audit.VerdictAllow)
	ev.Conn = a.s.connSeq.Add(1)
	ev.Dialed, ev.Via = dialed, via
	if err := a.s.cfg.Recorder.Record(a.s.ctx, ev); err != nil {
		a.s.n.refusedUnrecorded.Add(1)
		a.reset()
		return false
	}
	a.connNo = ev.Conn
	a.s.n.total.Add(1)
	return true
}

// checkSNI returns why the ClientHello's server name is refused, or "".
//
// The name must be the one the program connected to (the name bound to
// the synthetic address), or another name that the same rule allows on
// the same port: under "*.slack.com:443" a connection to a.slack.com may
// name b.slack.com, since either could have been reached directly, but a
// connection to api.github.com may not name anything else. A connection
// to an address literal has no name to match, so its ClientHello must
// carry none (RFC 6066 section 3: literal addresses are not sent as
// SNI); a rule's sni: false turns the whole check off. A name that is
// missing, or not a host name, is refused.
func (s *Stack) checkSNI(a *attempt, sni string) string {
	if a.name == "" {
		if sni == "" {
			return ""
		}
		return fmt.Sprintf("SNI %q on a connection to the address %s, which names no host (sni: false on the rule lifts the check)", sni, a.dst)
	}
	if sni == "" {
		return fmt.Sprintf("no SNI in the ClientHello to %s (sni: false on the rule admits clients that send none)", a.name)
	}
	name, err := egress.NormalizeName(sni)
	if err != nil {
		return fmt.Sprintf("SNI %q is not a host name", sni)
	}
	if name == a.name {
		return ""
	}
	if r, _ := s.cfg.Policy.Connect(name, netip.Addr{}, a.port); r != nil && sameRule(r, a.rule) {
		return ""
	}
	return fmt.Sprintf("SNI %s does not match %s", name, a.name)
}

// sameRule reports whether two rules are the same entry of the allow
// list.
func sameRule(x, y *egress.Rule) bool {
	if x == y {
		return true
	}
	return x.String() == y.String() && x.Private == y.Private && x.NoSNI == y.NoSNI
}

// helloTimeout bounds the wait for a TLS ClientHello on a port whose rule
// checks SNI; a client that says nothing for so long is refused.
const helloTimeout = 5 * time.Second

// maxHello bounds the bytes read before the ClientHello yields its name:
// the 64 KiB egress.ServerName reassembles at most, and the headers of
// the records it may be split over (5 bytes each, RFC 8446 section 5.1).
// Real ClientHellos, post-quantum key shares included, are a few KiB.
const maxHello = 64<<10 + 5*8

// peekHello reads from c until the bytes hold a whole TLS ClientHello
// (egress.ServerName needs no more), and returns the bytes read (to be sent
// upstream first) and the name ("" when the ClientHello has none). The
// error is worded for the ledger.
func peekHello(c *gonet.TCPConn, timeout time.Duration) ([]byte, string, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxHello {
				return nil, "", fmt.Errorf("no server name in the first %d bytes", maxHello)
			}
			buf = append(buf, make([]byte, min(cap(buf), maxHello-len(buf)))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			name, perr := egress.ServerName(buf)
			switch {
			case perr == nil:
				return buf, name, nil
			case errors.Is(perr, egress.ErrNoSNI):
				return buf, "", nil
			case !errors.Is(perr, egress.ErrNeedMore):
				return nil, "", perr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil, "", errors.New("connection closed before a whole TLS ClientHello")
		case isTimeout(err):
			return nil, "", fmt.Errorf("no whole TLS ClientHello within %v", timeout)
		default:
			return nil, "", fmt.Errorf("read TLS ClientHello: %v", err)
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
