//go:build linux

package stack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	netstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// nicID is the stack's only NIC, the TUN device.
const nicID tcpip.NICID = 1

// closeRecordTimeout bounds the records written while the stack shuts
// down, when the stack's own context is already cancelled: a ledger that
// hangs must not keep Close from returning.
const closeRecordTimeout = 10 * time.Second

// Stack is the parent's TCP/IP stack on the sandbox's TUN device: every
// packet the sandbox sends ends here, and nothing is forwarded at the IP
// level. Safe for concurrent use.
type Stack struct {
	cfg egress.Config
	lim egress.Limits
	tun *os.File
	ns  *netstack.Stack
	// link is the NIC's link endpoint, the guard over the TUN device's.
	link *guard
	stub *egress.Stub

	// ctx ends with Close: it cancels dials, DNS answers and records in
	// progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// closed is set by Close; no goroutine joins wg after it.
	closed bool
	// handshakes counts the connections being decided, read (SNI) or
	// dialled; conns counts those plus the connections relayed.
	handshakes, conns int
	relays            map[*relay]struct{}
	wg                sync.WaitGroup

	dnsUDP *gonet.UDPConn
	dnsTCP *gonet.TCPListener
	// udpDenials carries the records of refused UDP datagrams from the
	// packet path, which must not block on the ledger, to one writer.
	udpDenials chan audit.NetConnect

	connSeq atomic.Uint64
	n       counters

	closeOnce sync.Once
}

// counters are the running totals behind [Stats].
type counters struct {
	total, refusedPolicy, refusedUpstream, refusedUnrecorded atomic.Uint64
	refusedConns, refusedHandshakes                          atomic.Uint64
	dnsQueries, dnsDropped, udpDropped, udpUnrecorded        atomic.Uint64
	bytesOut, bytesIn                                        atomic.Uint64
}

// Start runs the stack on tun, a TUN device opened with IFF_TUN|IFF_NO_PI
// (raw IPv4 packets, no Ethernet header) whose other end is the sandbox's
// tun0. Start takes ownership of tun: it is closed by Close, or before
// Start returns an error. cfg must have every field but Limits set
// (zero Limits fields take their defaults); nothing is forwarded without
// a policy, a dialer and a recorder.
func Start(tun *os.File, cfg egress.Config) (*Stack, error) {
	if tun == nil {
		return nil, errors.New("start network stack: no TUN device")
	}
	if cfg.Policy == nil || cfg.Names == nil || cfg.Dialer == nil || cfg.Recorder == nil {
		tun.Close()
		return nil, errors.New("start network stack: the egress config lacks a policy, names, a dialer or a recorder")
	}
	lim := cfg.Limits.WithDefaults()
	if lim.Connections < 1 || lim.Handshakes < 1 || lim.Buffer < tcp.MinBufferSize || lim.IdleTimeout <= 0 || lim.DialTimeout <= 0 {
		tun.Close()
		return nil, fmt.Errorf("start network stack: limits out of range: %+v (buffer at least %d bytes)", lim, tcp.MinBufferSize)
	}
	s := &Stack{
		cfg:        cfg,
		lim:        lim,
		tun:        tun,
		stub:       egress.NewStub(cfg.Policy, cfg.Names, cfg.Recorder),
		relays:     map[*relay]struct{}{},
		udpDenials: make(chan audit.NetConnect, 256),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.build(); err != nil {
		s.cancel()
		if s.ns != nil {
			s.ns.Close()
			s.waitNetstack()
		}
		tun.Close()
		return nil, fmt.Errorf("start network stack: %w", err)
	}
	s.wg.Add(3)
	go s.serveDNSUDP()
	go s.serveDNSTCP()
	go s.writeUDPDenials()
	return s, nil
}

// build makes the netstack: one NIC on the TUN device that accepts every
// destination, a default route through it, the forwarders and the DNS
// stub's endpoints.
func (s *Stack) build() error {
	// fdbased.New makes the descriptor non-blocking and polls it; Fd()
	// has already put the os.File in blocking mode, so the runtime's
	// poller no longer touches it.
	link, err := fdbased.New(&fdbased.Options{
		FDs: []int{int(s.tun.Fd())},
		MTU: egress.MTU,
		// The TUN device hands over what the sandbox's kernel built;
		// without IFF_VNET_HDR there is no GSO (fdbased offers it only on
		// sockets) and every packet arrives with its checksums complete
		// (TUN advertises no checksum offload until TUNSETOFFLOAD,
		// drivers/net/tun.c), so the stack can skip verifying them. A
		// forged checksum could only corrupt its sender's own stream.
		RXChecksumOffload: true,
		// Packets are handled in the goroutine that reads them, not
		// handed to another: one wake-up less per packet, about 50 µs
		// less per connection set up here (BenchmarkConnect), and the
		// same bulk throughput on 2 cores.
		ProcessorsPerChannel: 1,
	})
	if err != nil {
		return fmt.Errorf("link on TUN device: %w", err)
	}
	s.ns = netstack.New(netstack.Options{
		NetworkProtocols:   []netstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []netstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	buf := s.lim.Buffer
	opts := []tcpip.SettableTransportProtocolOption{
		ptr(tcpip.TCPSACKEnabled(true)),
		// A connection the upstream closed first waits in TIME_WAIT on
		// the stack's side; the sandbox's kernel may reuse the port
		// sooner and its SYN would then stall. The stack is a proxy on a
		// point-to-point link with no stray segments to outwait.
		ptr(tcpip.TCPTimeWaitTimeoutOption(time.Second)),
		// Min, default and cap of each connection's buffers; receive
		// buffer auto-tuning stays within the cap.
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: buf, Max: buf},
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: buf, Max: buf},
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
	}
	for _, o := range opts {
		if terr := s.ns.SetTransportProtocolOption(tcp.ProtocolNumber, o); terr != nil {
			return fmt.Errorf("set TCP option %T: %s", o, terr)
		}
	}
	// Handlers first: a packet that arrives before them would be answered
	// by the stack's defaults (a reset, an ICMP error) and go unrecorded.
	// The forwarder's own cap is a backstop above Limits.Handshakes: SYNs
	// beyond it are dropped silently (and counted in Stats.SYNsDropped);
	// below it each SYN is answered and recorded by handleSYN.
	fwd := tcp.NewForwarder(s.ns, buf, 2*s.lim.Handshakes+16, s.handleSYN)
	tcpHandler := fwd.HandlePacket
	if hook := testHookTCP; hook != nil {
		tcpHandler = func(id netstack.TransportEndpointID, pkt *netstack.PacketBuffer) bool {
			hook(id, pkt)
			return fwd.HandlePacket(id, pkt)
		}
	}
	s.ns.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpHandler)
	s.ns.SetTransportProtocolHandler(udp.ProtocolNumber, s.handleUDP)

	s.link = newGuard(link, s)
	if terr := s.ns.CreateNIC(nicID, s.link); terr != nil {
		return fmt.Errorf("create NIC: %s", terr)
	}
	// The stub's address is the stack's own, so that its endpoints can
	// bind; every other destination is accepted by promiscuous mode and
	// answered from (spoofing).
	stub := tcpip.AddrFrom4(egress.StubAddr.As4())
	if terr := s.ns.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: stub, PrefixLen: 32},
	}, netstack.AddressProperties{}); terr != nil {
		return fmt.Errorf("add stub address: %s", terr)
	}
	if terr := s.ns.SetPromiscuousMode(nicID, true); terr != nil {
		return fmt.Errorf("promiscuous mode: %s", terr)
	}
	if terr := s.ns.SetSpoofing(nicID, true); terr != nil {
		return fmt.Errorf("spoofing: %s", terr)
	}
	s.ns.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})

	dns := tcpip.FullAddress{NIC: nicID, Addr: stub, Port: 53}
	if s.dnsUDP, err = gonet.DialUDP(s.ns, &dns, nil, ipv4.ProtocolNumber); err != nil {
		return fmt.Errorf("bind DNS stub on UDP: %w", err)
	}
	if s.dnsTCP, err = gonet.ListenTCP(s.ns, dns, ipv4.ProtocolNumber); err != nil {
		s.dnsUDP.Close()
		return fmt.Errorf("listen DNS stub on TCP: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// testHookTCP, when a test sets it before Start, runs on the packet path
// for each TCP segment that no endpoint of the stack claimed, before the
// forwarder sees it.
var testHookTCP func(netstack.TransportEndpointID, *netstack.PacketBuffer)

// Close stops the stack: dials and handshakes in progress are refused,
// every relayed connection is reset on both sides and ends with its
// audit.NetClose (reason "session end"), the DNS stub stops, and Close
// returns once every goroutine of the stack has, closing the TUN device
// last. Later calls do nothing.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		relays := make([]*relay, 0, len(s.relays))
		for r := range s.relays {
			relays = append(relays, r)
		}
		s.mu.Unlock()
		s.cancel()
		for _, r := range relays {
			r.end("session end")
		}
		s.dnsTCP.Close()
		s.dnsUDP.Close()
		// Aborts every endpoint left, handshakes and ClientHello reads
		// included, so the goroutines blocked on them return.
		s.ns.Close()
		s.wg.Wait()
		s.waitNetstack()
	})
	return s.tunClose()
}

// waitNetstack waits for the netstack's goroutines, once ns.Close has
// aborted its endpoints. The link's readers are stopped first, holding
// no lock of the netstack's: ns.Wait removes the NIC while it holds the
// netstack's lock and waits there for the readers, and a reader still
// handling a packet may need that lock (the route of a reset to a
// segment of a connection just reset, the NIC's name for the IP layer's
// hooks), so that neither ever returns. At Close the sandbox's kernel
// is still sending: the FINs and ACKs of the connections Close resets.
func (s *Stack) waitNetstack() {
	if s.link != nil {
		// nil detaches the link: fdbased stops its readers and waits for
		// them; the NIC's removal in ns.Wait then finds them gone.
		s.link.Attach(nil)
	}
	// Removes the NIC.
	s.ns.Wait()
}

// tunClose closes the device once; the sandbox's tun0 disappears with
// it, so the sandbox is left with its loopback only.
func (s *Stack) tunClose() error {
	err := s.tun.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// enter registers a goroutine of the stack; false once Close has begun.
func (s *Stack) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// recordCtx is the context of a record that must be written even while
// the stack shuts down (NetClose, refusals seen at Close).
func (s *Stack) recordCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), closeRecordTimeout)
}

// addrOf converts a netstack IPv4 address.
func addrOf(a tcpip.Address) netip.Addr {
	if a.Len() != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4(a.As4())
}

// Stats reports the stack's counters since Start.
func (s *Stack) Stats() Stats {
	s.mu.Lock()
	open, hs := len(s.relays), s.handshakes
	s.mu.Unlock()
	return Stats{
		Open:               uint64(open),
		Handshakes:         uint64(hs),
		Total:              s.n.total.Load(),
		RefusedPolicy:      s.n.refusedPolicy.Load(),
		RefusedUpstream:    s.n.refusedUpstream.Load(),
		RefusedUnrecorded:  s.n.refusedUnrecorded.Load(),
		RefusedConnections: s.n.refusedConns.Load(),
		RefusedHandshakes:  s.n.refusedHandshakes.Load(),
		SYNsDropped:        s.ns.Stats().TCP.ForwardMaxInFlightDrop.Value(),
		DNSQueries:         s.n.dnsQueries.Load(),
		DNSDropped:         s.n.dnsDropped.Load(),
		UDPDropped:         s.n.udpDropped.Load(),
		UDPUnrecorded:      s.n.udpUnrecorded.Load(),
		BytesOut:           s.n.bytesOut.Load(),
		BytesIn:            s.n.bytesIn.Load(),
	}
}
