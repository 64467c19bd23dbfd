//go:build linux

package stack

// The commands the test sandbox runs: what programs inside a vm-run
// sandbox do with the network, written with Go's net package.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns/egress"
)

// client holds the sandbox's open connections and background dials by
// the test's ids.
type client struct {
	conns map[string]net.Conn
	bg    map[string]chan result
}

func newClient() *client {
	return &client{conns: map[string]net.Conn{}, bg: map[string]chan result{}}
}

func (c *client) run(req cmd) result {
	timeout := 5 * time.Second
	if req.MS > 0 {
		timeout = time.Duration(req.MS) * time.Millisecond
	}
	start := time.Now()
	r := c.op(req, timeout)
	if r.MS == 0 {
		r.MS = float64(time.Since(start).Microseconds()) / 1000
	}
	return r
}

func (c *client) op(req cmd, timeout time.Duration) result {
	switch req.Op {
	case "dial":
		conn, err := net.DialTimeout("tcp4", req.Addr, timeout)
		if err == nil && req.ID != "" {
			c.conns[req.ID] = conn
		} else if err == nil {
			conn.Close()
		}
		return fail(err)
	case "dialbg":
		ch := make(chan result, 1)
		c.bg[req.ID] = ch
		go func() {
			start := time.Now()
			conn, err := net.DialTimeout("tcp4", req.Addr, timeout)
			if err == nil {
				conn.Close()
			}
			r := fail(err)
			r.MS = float64(time.Since(start).Microseconds()) / 1000
			ch <- r
		}()
		return result{}
	case "result":
		select {
		case r := <-c.bg[req.ID]:
			return r
		case <-time.After(timeout):
			return result{Errno: "timeout", Err: "background dial still running"}
		}
	case "send":
		return fail(c.write(req.ID, []byte(req.Data)))
	case "recv":
		conn := c.conns[req.ID]
		conn.SetReadDeadline(time.Now().Add(timeout))
		b := make([]byte, req.N)
		n, err := io.ReadFull(conn, b)
		r := fail(err)
		r.Data = string(b[:n])
		return r
	case "shutwr":
		return fail(c.conns[req.ID].(*net.TCPConn).CloseWrite())
	case "readall":
		conn := c.conns[req.ID]
		conn.SetReadDeadline(time.Now().Add(timeout))
		b, err := io.ReadAll(conn)
		r := fail(err)
		if err == nil {
			r.Errno = "EOF"
		}
		r.Data = string(b)
		return r
	case "close":
		err := c.conns[req.ID].Close()
		delete(c.conns, req.ID)
		return fail(err)
	case "resolve":
		server := req.Addr
		if server == "" {
			server = net.JoinHostPort(egress.StubAddr.String(), "53")
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := resolver(req.Net, server).LookupNetIP(ctx, "ip4", req.Name)
		r := fail(err)
		for _, a := range addrs {
			r.Addrs = append(r.Addrs, a.String())
		}
		return r
	case "dnstcp":
		return dnsOverTCP(strings.Split(req.Name, ","), timeout)
	case "get":
		return httpGet(req.Addr, req.Name, timeout)
	case "udp":
		conn, err := net.Dial("udp4", req.Addr)
		if err != nil {
			return fail(err)
		}
		defer conn.Close()
		_, err = conn.Write([]byte(req.Data))
		return fail(err)
	case "ecn":
		// tcp_ecn 1: ask for ECN on outgoing connections, so every SYN
		// carries ECE and CWR (RFC 3168 section 6.1.1, ip-sysctl.rst).
		return fail(os.WriteFile("/proc/sys/net/ipv4/tcp_ecn", []byte("1"), 0))
	case "download":
		return download(req.Addr, req.N, timeout)
	case "downloads":
		// Data streams of N bytes each, at once.
		k, _ := strconv.Atoi(req.Data)
		done := make(chan result, k)
		for range k {
			go func() { done <- download(req.Addr, req.N, timeout) }()
		}
		var r result
		for range k {
			if d := <-done; d.Errno != "" {
				r = d
			}
		}
		return r
	case "hold":
		// Open N connections, keep them all open, then show each is
		// live: one byte there and back on every one.
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range req.N {
			conn, err := net.DialTimeout("tcp4", req.Addr, timeout)
			if err != nil {
				return fail(err)
			}
			held = append(held, conn)
		}
		b := []byte{1}
		for _, conn := range held {
			conn.SetDeadline(time.Now().Add(timeout))
			if _, err := conn.Write(b); err != nil {
				return fail(err)
			}
			if _, err := io.ReadFull(conn, b); err != nil {
				return fail(err)
			}
		}
		return result{Status: len(held)}
	case "rawack":
		// One bare ACK to Addr, of no connection: the segment a kernel
		// still sends on a connection the other side has just reset.
		return fail(sendBareACK(req.Addr))
	case "connects":
		var r result
		for range req.N {
			start := time.Now()
			conn, err := net.DialTimeout("tcp4", req.Addr, timeout)
			if err != nil {
				return fail(err)
			}
			r.Durs = append(r.Durs, float64(time.Since(start).Nanoseconds())/1000)
			conn.Close()
		}
		return r
	}
	return result{Errno: "other", Err: "unknown op " + req.Op}
}

func (c *client) write(id string, b []byte) error {
	conn, ok := c.conns[id]
	if !ok {
		return errors.New("no connection " + id)
	}
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := conn.Write(b)
	return err
}

// resolver asks server, over network "udp" or "tcp", as a program's own
// resolver reading /etc/resolv.conf would.
func resolver(network, server string) *net.Resolver {
	if network == "" {
		network = "udp"
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// httpGet fetches url through the stub resolver, as a program inside
// does by name; sni, when set, replaces the server name the TLS client
// sends ("-" for none).
func httpGet(url, sni string, timeout time.Duration) result {
	d := &net.Dialer{Resolver: resolver("udp", net.JoinHostPort(egress.StubAddr.String(), "53"))}
	tr := &http.Transport{
		DialContext:       d.DialContext,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: strings.TrimPrefix(sni, "-")},
		DisableKeepAlives: true,
	}
	if sni == "-" {
		// crypto/tls sends no SNI for an IP address (RFC 6066 section 3).
		tr.TLSClientConfig.ServerName = "192.0.2.1"
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout}
	resp, err := cl.Get(url)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := fail(err)
	r.Status, r.Data = resp.StatusCode, string(b)
	return r
}

// download reads n bytes from addr and reports how long they took.
func download(addr string, n int, timeout time.Duration) result {
	conn, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(timeout))
	start := time.Now()
	buf := make([]byte, 256<<10)
	for got := 0; got < n; {
		k, err := conn.Read(buf[:min(len(buf), n-got)])
		got += k
		if err != nil {
			return fail(err)
		}
	}
	return result{MS: float64(time.Since(start).Microseconds()) / 1000}
}

// sendBareACK sends one TCP segment with only ACK set, from the
// sandbox's address and port 40000 to addr, through a raw socket (the
// sandbox is root in its own user and network namespace).
func sendBareACK(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], ap.Port())
	binary.BigEndian.PutUint32(seg[4:], 1)
	binary.BigEndian.PutUint32(seg[8:], 1)
	seg[12] = 5 << 4 // header length, in 32-bit words
	seg[13] = 0x10   // ACK
	binary.BigEndian.PutUint16(seg[14:], 1024)
	// The checksum over the pseudo-header (RFC 793 section 3.1): a raw
	// socket leaves it to the sender.
	src, dst := egress.SandboxAddr.As4(), ap.Addr().As4()
	pseudo := append(append(append(src[:], dst[:]...), 0, unix.IPPROTO_TCP, 0, byte(len(seg))), seg...)
	var sum uint32
	for i := 0; i < len(pseudo); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return nil
}

// fail classifies err for the test.
func fail(err error) result {
	if err == nil {
		return result{}
	}
	r := result{Err: err.Error(), Errno: "other"}
	var dns *net.DNSError
	var nerr net.Error
	for e, name := range map[syscall.Errno]string{syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ECONNRESET: "ECONNRESET", syscall.EPIPE: "EPIPE"} {
		if errors.Is(err, e) {
			r.Errno = name
			return r
		}
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.Errno = "EOF"
	case errors.As(err, &dns) && dns.IsNotFound:
		r.Errno = "NXDOMAIN"
	case errors.As(err, &nerr) && nerr.Timeout():
		r.Errno = "timeout"
	}
	return r
}

// dnsOverTCP asks the stub for the A record of each name, all on one TCP
// connection, each message framed by its length (RFC 7766 section 8),
// and returns each answer's address or RCODE in Addrs.
func dnsOverTCP(names []string, timeout time.Duration) result {
	conn, err := net.DialTimeout("tcp4", net.JoinHostPort(egress.StubAddr.String(), "53"), timeout)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	var r result
	for i, name := range names {
		q := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: uint16(i + 1), RecursionDesired: true},
			Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		}
		b, err := q.AppendPack([]byte{0, 0})
		if err != nil {
			return fail(err)
		}
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
		if _, err := conn.Write(b); err != nil {
			return fail(err)
		}
	}
	for range names {
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return fail(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(conn, b); err != nil {
			return fail(err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(b); err != nil {
			return fail(err)
		}
		ans := m.RCode.String()
		for _, a := range m.Answers {
			if rr, ok := a.Body.(*dnsmessage.AResource); ok {
				ans = netip.AddrFrom4(rr.A).String()
			}
		}
		r.Addrs = append(r.Addrs, fmt.Sprintf("%d:%s", m.ID, ans))
	}
	return r
}
