//go:build linux

package stack

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"time"

	netstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

const (
	// maxDNSAnswering bounds the UDP queries answered at once; a query
	// beyond it is dropped (the resolver inside asks again).
	maxDNSAnswering = 64
	// maxDNSConns bounds the DNS-over-TCP connections served at once; one
	// beyond it is closed at once.
	maxDNSConns = 32
	// dnsTCPIdle closes a DNS-over-TCP connection that sends no query for
	// so long (RFC 7766 section 6.2.3 leaves the timeout to the server
	// and suggests seconds).
	dnsTCPIdle = 10 * time.Second
	// maxUDPQuery is the largest UDP query read; a longer one is cut and
	// the stub finds it malformed. Queries are a name and an OPT record.
	maxUDPQuery = 4096
)

// serveDNSUDP answers the stub's UDP queries, each in a goroutine of its
// own (the stub waits for its ledger record before answering).
func (s *Stack) serveDNSUDP() {
	defer s.wg.Done()
	sem := make(chan struct{}, maxDNSAnswering)
	buf := make([]byte, maxUDPQuery)
	for {
		n, from, err := s.dnsUDP.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.n.dnsDropped.Add(1)
			continue
		}
		if !s.enter() {
			return
		}
		s.n.dnsQueries.Add(1)
		q := append([]byte(nil), buf[:n]...)
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			if resp := s.stub.Answer(s.ctx, q); resp != nil {
				s.dnsUDP.WriteTo(resp, from)
			}
		}()
	}
}

// serveDNSTCP accepts DNS-over-TCP connections to the stub; resolvers
// fall back to TCP for answers too long for UDP and some use it first.
func (s *Stack) serveDNSTCP() {
	defer s.wg.Done()
	sem := make(chan struct{}, maxDNSConns)
	for {
		c, err := s.dnsTCP.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.n.dnsDropped.Add(1)
			c.Close()
			continue
		}
		if !s.enter() {
			c.Close()
			return
		}
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			defer c.Close()
			s.serveDNSConn(c)
		}()
	}
}

// serveDNSConn answers the queries of one TCP connection in order, each
// framed by its length in two bytes (RFC 1035 section 4.2.2, RFC 7766
// section 8), until the client closes, stays idle for dnsTCPIdle, or a
// query goes unanswered.
func (s *Stack) serveDNSConn(c net.Conn) {
	var n [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		s.n.dnsQueries.Add(1)
		resp := s.stub.Answer(s.ctx, q)
		if resp == nil || len(resp) > 0xffff {
			// RFC 7766 section 6.2.4: a server may close a connection
			// it will not answer on.
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// handleUDP receives every UDP datagram no endpoint took, that is all but
// DNS to the stub: it drops the datagram and has it recorded as a denied
// connection. It runs on the packet path, so the record goes to a
// queue; a datagram that finds the queue full is dropped unrecorded and
// counted (the Recorder may itself rate-limit identical denials).
func (s *Stack) handleUDP(id netstack.TransportEndpointID, _ *netstack.PacketBuffer) bool {
	dst := addrOf(id.LocalAddress)
	if dst == egress.StubAddr && id.LocalPort == 53 {
		// Only before the stub's endpoint is bound, within Start.
		return true
	}
	s.n.udpDropped.Add(1)
	if s.ctx.Err() != nil {
		return true
	}
	ev := audit.NetConnect{
		Proto:   "udp",
		Address: netip.AddrPortFrom(dst, id.LocalPort).String(),
		Port:    id.LocalPort,
		Verdict: audit.VerdictDeny,
		Reason:  "UDP other than DNS to the stub resolver is refused",
	}
	if id.LocalPort == 53 {
		ev.Reason = "DNS goes to the stub resolver at " + egress.StubAddr.String() + " only"
	}
	if egress.SyntheticPrefix.Contains(dst) {
		ev.Name, _ = s.cfg.Names.Lookup(dst)
	}
	select {
	case s.udpDenials <- ev:
	default:
		s.n.udpUnrecorded.Add(1)
	}
	return true
}

// writeUDPDenials records the refused datagrams queued by handleUDP, and
// what is left in the queue when the stack closes.
func (s *Stack) writeUDPDenials() {
	defer s.wg.Done()
	for {
		select {
		case ev := <-s.udpDenials:
			s.cfg.Recorder.Record(s.ctx, ev)
		case <-s.ctx.Done():
			ctx, cancel := s.recordCtx()
			defer cancel()
			for {
				select {
				case ev := <-s.udpDenials:
					s.cfg.Recorder.Record(ctx, ev)
				default:
					return
				}
			}
		}
	}
}
