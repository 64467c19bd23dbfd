package selftest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns/egress"
)

// The probes of network mode egress. Inside the sandbox everything but
// lo leads to vm-run's stack through tun0, so each probe says what it saw
// refused there (verdict.Refused), for the battery to find the stack's
// record of it. A refusal must arrive at once: a connection that hangs
// is a broken promise (the program would wait for nothing), and the probe
// reports it as an error, not as a block.

// Timeouts: a refusal by the stack takes well under a millisecond, so a
// few seconds of silence means no refusal came.
const (
	dialTimeout   = 5 * time.Second
	answerTimeout = 2 * time.Second
)

// nameservers returns the servers /etc/resolv.conf names, on port 53
// (resolv.conf(5)): inside the sandbox, vm-run's stub.
func nameservers() ([]netip.AddrPort, error) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.AddrPort
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a, 53))
			}
		}
	}
	return out, s.Err()
}

// dnsExchange asks server one question over network ("udp" or "tcp"),
// and returns the answer with the query's id. Over TCP each message is
// framed by its length in two bytes (RFC 7766 section 8).
func dnsExchange(network string, server netip.AddrPort, name string, qtype dnsmessage.Type, timeout time.Duration) (*dnsmessage.Message, error) {
	qname, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	var id [2]byte
	rand.Read(id[:])
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: binary.BigEndian.Uint16(id[:]), RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}},
	}
	msg, err := q.Pack()
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout(network, server.String(), timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var resp []byte
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		resp = make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			return nil, err
		}
	} else {
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		resp = buf[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		return nil, fmt.Errorf("unpack the answer: %w", err)
	}
	if !m.Header.Response || m.Header.ID != q.Header.ID {
		return nil, errors.New("an answer to another query")
	}
	return &m, nil
}

// aRecords returns the IPv4 addresses of an answer.
func aRecords(m *dnsmessage.Message) []netip.Addr {
	var out []netip.Addr
	for _, r := range m.Answers {
		if a, ok := r.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(a.A))
		}
	}
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refusals gathers what a probe saw, what the stack refused, and the
// mechanisms it could observe.
type refusals struct {
	notes, refused []string
	mech           string
}

func (r *refusals) note(format string, a ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

func (r *refusals) refuse(what string) {
	for _, w := range r.refused {
		if w == what {
			return
		}
	}
	r.refused = append(r.refused, what)
}

func (r *refusals) blocked() verdict {
	detail := strings.Join(r.notes, "; ")
	if detail == "" {
		detail = "nothing tried"
	}
	v := blocked(r.mech, "%s", detail)
	v.Refused = r.refused
	return v
}

// lookup asks the first nameserver for name's address over UDP, noting
// a refusal.
func (r *refusals) lookup(name string) (netip.Addr, bool) {
	servers, err := nameservers()
	if err != nil || len(servers) == 0 {
		r.note("no nameserver in /etc/resolv.conf (%v)", err)
		r.mech = joinMechanism(r.mech, "no resolver")
		return netip.Addr{}, false
	}
	m, err := dnsExchange("udp", servers[0], name, dnsmessage.TypeA, answerTimeout)
	switch {
	case err != nil:
		r.note("%s from %s: %s", name, servers[0].Addr(), errName(err))
		r.mech = joinMechanism(r.mech, "no answer from the resolver")
	case len(aRecords(m)) > 0:
		a := aRecords(m)[0]
		r.note("%s is %s", name, a)
		return a, true
	default:
		r.note("%s: %s from %s", name, m.Header.RCode, servers[0].Addr())
		r.refuse("dns " + strings.ToLower(name))
		r.mech = joinMechanism(r.mech, "egress stub ("+rcodeName(m.Header.RCode)+")")
	}
	return netip.Addr{}, false
}

func rcodeName(c dnsmessage.RCode) string {
	if c == dnsmessage.RCodeNameError {
		return "NXDOMAIN"
	}
	return strings.TrimPrefix(c.String(), "RCode")
}

// probeResolve: resolve name=N through the resolvers /etc/resolv.conf
// names, over UDP and TCP. Any address is an escape: N is a name no rule
// lists.
func probeResolve(ps params) verdict {
	name := ps.get("name")
	if name == "" {
		return broken("want name=N")
	}
	servers, err := nameservers()
	if err != nil || len(servers) == 0 {
		return broken("no nameserver in /etc/resolv.conf (%v)", err)
	}
	var r refusals
	for _, s := range servers {
		for _, network := range []string{"udp", "tcp"} {
			m, err := dnsExchange(network, s, name, dnsmessage.TypeA, answerTimeout)
			switch {
			case err != nil:
				r.note("%s over %s: %s", s.Addr(), network, errName(err))
				r.mech = joinMechanism(r.mech, "no answer")
			case len(aRecords(m)) > 0:
				return escaped("%s resolved to %s (%s over %s)", name, aRecords(m)[0], s.Addr(), network)
			default:
				r.note("%s over %s: %s", s.Addr(), network, rcodeName(m.Header.RCode))
				r.refuse("dns " + strings.ToLower(name))
				r.mech = joinMechanism(r.mech, "egress stub ("+rcodeName(m.Header.RCode)+")")
			}
		}
	}
	return r.blocked()
}

// probeDial: connect over TCP to each addr=IP:PORT, and to name=N at
// port=P when N resolves, after resolving each resolve=N first; read
// token=T. Any connection that completes reached a destination.
func probeDial(ps params) verdict {
	var r refusals
	var targets []netip.AddrPort
	for _, n := range ps["resolve"] {
		r.lookup(n)
	}
	if name := ps.get("name"); name != "" {
		port, err := strconv.ParseUint(ps.get("port"), 10, 16)
		if err != nil {
			return broken("port %q: %v", ps.get("port"), err)
		}
		if a, ok := r.lookup(name); ok {
			targets = append(targets, netip.AddrPortFrom(a, uint16(port)))
		}
	}
	for _, s := range ps["addr"] {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() {
			return broken("addr %q: want IPv4:PORT", s)
		}
		targets = append(targets, ap)
	}
	var hung []string
	for _, t := range targets {
		c, err := net.DialTimeout("tcp4", t.String(), dialTimeout)
		switch {
		case isTimeout(err):
			hung = append(hung, t.String())
			continue
		case err != nil:
			r.note("connect %s: %s", t, errName(err))
			if errnoOf(err) == unix.ECONNREFUSED {
				r.refuse("tcp " + t.String())
				r.mech = joinMechanism(r.mech, "egress policy (ECONNREFUSED)")
			} else {
				r.mech = joinMechanism(r.mech, filterMechanism(err, errName(err)))
			}
			continue
		}
		ok := connToken(c, ps.get("token"))
		c.Close()
		if ok {
			return escaped("connected to %s and read the battery's token (%s)", t, strings.Join(r.notes, "; "))
		}
		return escaped("connected to %s, which answered without the battery's token (%s)", t, strings.Join(r.notes, "; "))
	}
	if len(hung) > 0 {
		return broken("connect %s: no answer in %s; a refusal must be ECONNREFUSED, not a hang", strings.Join(hung, ", "), dialTimeout)
	}
	return r.blocked()
}

// connToken reads what the peer of c sends, for a few seconds at most,
// and reports whether it holds token.
func connToken(c net.Conn, token string) bool {
	c.SetReadDeadline(time.Now().Add(dialTimeout))
	b, _ := io.ReadAll(io.LimitReader(c, 256))
	return token != "" && bytes.Contains(b, []byte(token))
}

// probeUDP: send a datagram to each addr=IP:PORT (multicast included)
// and wait a moment for an answer. The battery's UDP fixture answers with
// token=T; an answer from any destination is an escape.
func probeUDP(ps params) verdict {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return blocked(filterMechanism(err, errName(err)), "socket(AF_INET, SOCK_DGRAM): %s", errName(err))
	}
	defer c.Close()
	var r refusals
	dsts := map[netip.AddrPort]bool{}
	payload := []byte("vm-run selftest " + ps.get("token") + "\n")
	tx, hasDev := txPackets(egress.Device)
	for _, s := range ps["addr"] {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() {
			return broken("addr %q: want IPv4:PORT", s)
		}
		if _, err := c.WriteToUDPAddrPort(payload, ap); err != nil {
			r.note("send to %s: %s", ap, errName(err))
			r.mech = joinMechanism(r.mech, filterMechanism(err, errName(err)))
			continue
		}
		dsts[ap] = true
	}
	if len(dsts) == 0 {
		return r.blocked()
	}
	c.SetReadDeadline(time.Now().Add(answerTimeout))
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if bytes.Contains(buf[:n], []byte(ps.get("token"))) || dsts[from] {
			return escaped("sent to %d destination(s); %s answered (%q)", len(dsts), from, bytes.TrimSpace(buf[:n]))
		}
	}
	for ap := range dsts {
		r.refuse("udp " + ap.String())
	}
	r.note("sent to %s; no answer in %s", strings.Join(r.refused, ", "), answerTimeout)
	if after, ok := txPackets(egress.Device); ok && hasDev {
		r.note("%s sent %d packet(s) meanwhile", egress.Device, after-tx)
	}
	r.mech = joinMechanism(r.mech, "datagram dropped (no answer)")
	return r.blocked()
}

// probeDNS: ask each server=IP:PORT for name=N's TXT record, over UDP and
// over TCP. Any answer is an escape; the battery's DNS fixture answers
// with token=T.
func probeDNS(ps params) verdict {
	name := ps.get("name")
	var r refusals
	for _, s := range ps["server"] {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() {
			return broken("server %q: want IPv4:PORT", s)
		}
		for _, network := range []string{"udp", "tcp"} {
			m, err := dnsExchange(network, ap, name, dnsmessage.TypeTXT, answerTimeout)
			switch {
			case err == nil:
				seen := ""
				if txtHolds(m, ps.get("token")) {
					seen = ", with the battery's token"
				}
				return escaped("%s answered over %s: %s%s", ap, network, rcodeName(m.Header.RCode), seen)
			case network == "udp" && isTimeout(err):
				r.note("%s over udp: no answer in %s", ap, answerTimeout)
				r.refuse("udp " + ap.String())
				r.mech = joinMechanism(r.mech, "datagram dropped (no answer)")
			case isTimeout(err):
				return broken("%s over tcp: no answer in %s; a refusal must be ECONNREFUSED, not a hang", ap, answerTimeout)
			case errnoOf(err) == unix.ECONNREFUSED:
				r.note("%s over %s: ECONNREFUSED", ap, network)
				r.refuse(network + " " + ap.String())
				r.mech = joinMechanism(r.mech, "egress stack (ECONNREFUSED)")
			default:
				r.note("%s over %s: %s", ap, network, errName(err))
				r.mech = joinMechanism(r.mech, filterMechanism(err, errName(err)))
			}
		}
	}
	return r.blocked()
}

func txtHolds(m *dnsmessage.Message, token string) bool {
	for _, r := range m.Answers {
		if t, ok := r.Body.(*dnsmessage.TXTResource); ok && token != "" && strings.Contains(strings.Join(t.TXT, ""), token) {
			return true
		}
	}
	return false
}

// probeIPv6: IPv6 addresses on any interface but lo (/proc/net/if_inet6,
// which shows the caller's network namespace), a route to 2001:db8::1
// (connecting a UDP socket only looks the route up, udp(7); the address
// is from the documentation prefix, RFC 3849), and a TCP connection to
// each addr=[IP]:PORT, reading token=T. Any of them is an escape.
func probeIPv6(ps params) verdict {
	var found, notes []string
	addrs, err := ipv6Addrs()
	missing := errors.Is(err, fs.ErrNotExist)
	switch {
	case missing:
		notes = append(notes, "no /proc/net/if_inet6")
	case err != nil:
		return broken("read /proc/net/if_inet6: %v", err)
	}
	for _, a := range addrs {
		if a.dev != "lo" {
			found = append(found, fmt.Sprintf("%s on %s", a.addr, a.dev))
		}
	}
	notes = append(notes, fmt.Sprintf("%d IPv6 address(es)", len(addrs)))
	if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		notes = append(notes, "socket(AF_INET6): "+errName(err))
	} else {
		dst := docIPv6.Addr().As16()
		err := unix.Connect(fd, &unix.SockaddrInet6{Port: 9, Addr: dst})
		if err == nil {
			found = append(found, "a route to "+docIPv6.Addr().String())
		} else {
			notes = append(notes, fmt.Sprintf("no route to %s (%s)", docIPv6.Addr(), errName(err)))
		}
		unix.Close(fd)
	}
	for _, s := range ps["addr"] {
		c, err := net.DialTimeout("tcp6", s, dialTimeout)
		switch {
		case err == nil:
			if connToken(c, ps.get("token")) {
				found = append(found, "connected to "+s+" and read the battery's token")
			} else {
				found = append(found, "connected to "+s)
			}
			c.Close()
		case isTimeout(err):
			notes = append(notes, fmt.Sprintf("connect %s: no answer in %s", s, dialTimeout))
		default:
			notes = append(notes, fmt.Sprintf("connect %s: %s", s, errName(err)))
		}
	}
	if len(found) > 0 {
		return escaped("%s (%s)", strings.Join(found, "; "), strings.Join(notes, "; "))
	}
	mech := "no IPv6 address or route"
	if n, ok := sysctlInt("net.ipv6.conf.all.disable_ipv6"); ok && n == 1 {
		mech = "IPv6 off (net.ipv6.conf.all.disable_ipv6 = 1)"
	}
	v := blocked(mech, "%s", strings.Join(notes, "; "))
	if missing {
		v = v.impossible("this kernel has no IPv6")
	}
	return v
}

// txPackets returns the packets dev has sent, from /proc/net/dev (the
// caller's network namespace): per device, after its name and a colon,
// eight receive counters, then transmitted bytes and packets.
func txPackets(dev string) (uint64, bool) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, counters, ok := strings.Cut(l, ":")
		f := strings.Fields(counters)
		if !ok || strings.TrimSpace(name) != dev || len(f) < 10 {
			continue
		}
		n, err := strconv.ParseUint(f[9], 10, 64)
		return n, err == nil
	}
	return 0, false
}

type ipv6Addr struct{ addr, dev string }

// ipv6Addrs parses /proc/net/if_inet6: per line the address in 32 hex
// digits, the interface index, prefix length, scope, flags and name.
func ipv6Addrs() ([]ipv6Addr, error) {
	b, err := os.ReadFile("/proc/net/if_inet6")
	if err != nil {
		return nil, err
	}
	var out []ipv6Addr
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || len(f[0]) != 32 {
			continue
		}
		var a [16]byte
		for i := range a {
			v, err := strconv.ParseUint(f[0][2*i:2*i+2], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("address %q", f[0])
			}
			a[i] = byte(v)
		}
		out = append(out, ipv6Addr{addr: netip.AddrFrom16(a).String(), dev: f[5]})
	}
	return out, nil
}
