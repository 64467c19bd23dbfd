package selftest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vm-run/vm-run/profiles"
)

// egressFixtures are the host-side targets of the attacks on network mode
// egress, all on the host's loopback, the only addresses the battery
// contacts itself.
type egressFixtures struct {
	// dns is a DNS server that counts the questions it is asked: the
	// profile's resolver while the battery runs, unless the profile names
	// its own, and the server the DNS attack reaches unsandboxed.
	dns *dnsFixture
	// udpAddr is a UDP server that answers every datagram with its token.
	udpAddr string
	// tcp6Addr is a listener on the host's IPv6 loopback, "" when the
	// host has none.
	tcp6Addr string
	// unlisted is a name no rule of the profile is meant to list.
	unlisted string
}

// startEgress starts the egress fixtures when the profile's network mode
// is egress.
func (fx *fixtures) startEgress(p *profiles.Profile) error {
	if p.Network.Mode != profiles.NetworkEgress {
		return nil
	}
	e := &fx.egress
	// RFC 6761 reserves .example: no real resolver answers under it, so
	// the name reaches nothing even where the stub is broken.
	e.unlisted = "vm-run-selftest-" + token() + ".example"
	fx.tokens["dns"] = token()
	d, err := startDNSFixture(fx.tokens["dns"])
	if err != nil {
		return err
	}
	e.dns = d
	fx.closers = append(fx.closers, d)

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on udp4 127.0.0.1: %w", err)
	}
	fx.closers = append(fx.closers, pc)
	e.udpAddr = pc.LocalAddr().String()
	fx.tokens["udp"] = token()
	go echoToken(pc, []byte(fx.tokens["udp"]+"\n"))

	// A host without IPv6 has no ::1: the IPv6 attack then proves what it
	// can without this listener.
	if l, err := fx.serve("tcp6", "[::1]:0", "tcp6"); err == nil {
		e.tcp6Addr = l.Addr().String()
	}
	return nil
}

// echoToken answers every datagram on pc with tok.
func echoToken(pc net.PacketConn, tok []byte) {
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(tok, from)
	}
}

// dnsFixture is a DNS server on the host's loopback, over UDP and TCP on
// one port. It answers a TXT question with its token and any other with
// NXDOMAIN, so that no address it gives can lead anywhere, and counts
// the questions by name.
type dnsFixture struct {
	addr  string // "127.0.0.1:PORT", the same for UDP and TCP
	token string
	pc    net.PacketConn
	ln    net.Listener

	mu    sync.Mutex
	asked map[string]int
}

func startDNSFixture(tok string) (*dnsFixture, error) {
	d := &dnsFixture{token: tok, asked: map[string]int{}}
	// A UDP port whose TCP twin is free: a few tries at most.
	var err error
	for range 20 {
		if d.pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("listen on udp4 127.0.0.1: %w", err)
		}
		if d.ln, err = net.Listen("tcp4", d.pc.LocalAddr().String()); err == nil {
			break
		}
		d.pc.Close()
		d.pc = nil
	}
	if d.pc == nil {
		return nil, fmt.Errorf("find a loopback port free for both UDP and TCP: %w", err)
	}
	d.addr = d.pc.LocalAddr().String()
	go d.serveUDP()
	go d.serveTCP()
	return d, nil
}

func (d *dnsFixture) serveUDP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			d.pc.WriteTo(out, from)
		}
	}
}

// serveTCP serves DNS over TCP, each message framed by its length in two
// bytes (RFC 7766 section 8).
func (d *dnsFixture) serveTCP() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out := d.answer(q)
				if out == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
					return
				}
			}
		}()
	}
}

func (d *dnsFixture) answer(q []byte) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || m.Header.Response || len(m.Questions) != 1 {
		return nil
	}
	qn := m.Questions[0]
	name := strings.TrimSuffix(strings.ToLower(qn.Name.String()), ".")
	d.mu.Lock()
	d.asked[name]++
	d.mu.Unlock()
	m.Header.Response, m.Header.RecursionAvailable = true, true
	m.Answers, m.Authorities, m.Additionals = nil, nil, nil
	if qn.Type == dnsmessage.TypeTXT {
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: qn.Name, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET},
			Body:   &dnsmessage.TXTResource{TXT: []string{d.token}},
		}}
	} else {
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// count returns how many questions for name the server was asked.
func (d *dnsFixture) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[strings.ToLower(name)]
}

// Close stops the server.
func (d *dnsFixture) Close() error {
	d.ln.Close()
	return d.pc.Close()
}
