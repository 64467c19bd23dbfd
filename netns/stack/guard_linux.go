package stack

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	netstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// guard sits between the TUN device and the stack and takes the packets
// that no transport handler would see: the IPv4 stack drops multicast
// for groups the NIC never joined, and broadcast, before any handler
// (handleValidatedPacket in gVisor's network/ipv4), so they would leave
// no record. The guard records each as a denied datagram, through the
// same queue as handleUDP's, and drops it.
type guard struct {
	nested.Endpoint
	s *Stack
}

func newGuard(child netstack.LinkEndpoint, s *Stack) *guard {
	g := &guard{s: s}
	g.Init(child, g)
	return g
}

// subnetBroadcast is the last address of the sandbox's prefix.
var subnetBroadcast = func() netip.Addr {
	a := egress.SyntheticPrefix.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-egress.SyntheticPrefix.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}()

// DeliverNetworkPacket implements netstack.NetworkDispatcher.
func (g *guard) DeliverNetworkPacket(p tcpip.NetworkProtocolNumber, pkt *netstack.PacketBuffer) {
	if p == ipv4.ProtocolNumber {
		if ev, ok := groupDestination(pkt); ok {
			g.s.n.udpDropped.Add(1)
			if g.s.ctx.Err() == nil {
				select {
				case g.s.udpDenials <- ev:
				default:
					g.s.n.udpUnrecorded.Add(1)
				}
			}
			return
		}
	}
	g.Endpoint.DeliverNetworkPacket(p, pkt)
}

// groupDestination returns the record of a packet sent to a multicast or
// broadcast address (RFC 1112, RFC 919), and false for any other.
func groupDestination(pkt *netstack.PacketBuffer) (audit.NetConnect, bool) {
	h, ok := pkt.Data().PullUp(header.IPv4MinimumSize)
	if !ok {
		return audit.NetConnect{}, false
	}
	ip := header.IPv4(h)
	dst := netip.AddrFrom4(ip.DestinationAddress().As4())
	if !dst.IsMulticast() && dst != netip.AddrFrom4([4]byte{255, 255, 255, 255}) && dst != subnetBroadcast {
		return audit.NetConnect{}, false
	}
	ev := audit.NetConnect{Verdict: audit.VerdictDeny, Address: dst.String(),
		Reason: "multicast and broadcast leave nothing: they are refused"}
	switch ip.Protocol() {
	case uint8(header.UDPProtocolNumber):
		ev.Proto = "udp"
		hl := int(ip.HeaderLength())
		if b, ok := pkt.Data().PullUp(hl + header.UDPMinimumSize); ok {
			ev.Port = binary.BigEndian.Uint16(b[hl+2:])
			ev.Address = netip.AddrPortFrom(dst, ev.Port).String()
		}
	case uint8(header.TCPProtocolNumber):
		ev.Proto = "tcp"
	case uint8(header.IGMPProtocolNumber):
		ev.Proto = "igmp"
	default:
		ev.Proto = "ip"
	}
	return ev, true
}
