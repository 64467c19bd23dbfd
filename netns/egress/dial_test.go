package egress

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// testDNS is a DNS server on 127.0.0.1 (UDP) that answers A questions
// from a table and counts the questions it is asked.
type testDNS struct {
	addr  string
	mu    sync.Mutex
	names map[string][]string // "name." → IPv4 addresses
	asked map[string]int      // "name. TYPE" → questions
}

func startDNS(t *testing.T, names map[string][]string) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &testDNS{addr: pc.LocalAddr().String(), names: names, asked: map[string]int{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return d
}

func (d *testDNS) answer(msg []byte) []byte {
	var m dnsmessage.Message
	if m.Unpack(msg) != nil || len(m.Questions) != 1 {
		return nil
	}
	q := m.Questions[0]
	name := strings.ToLower(q.Name.String())
	d.mu.Lock()
	d.asked[name+" "+typeName(q.Type)]++
	addrs, ok := d.names[name]
	d.mu.Unlock()
	m.Response, m.RecursionAvailable, m.Additionals = true, true, nil
	if !ok {
		m.RCode = dnsmessage.RCodeNameError
	}
	if q.Type == dnsmessage.TypeA {
		for _, a := range addrs {
			m.Answers = append(m.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1},
				Body:   &dnsmessage.AResource{A: netip.MustParseAddr(a).As4()},
			})
		}
	}
	resp, _ := m.Pack()
	return resp
}

// questions returns the number of questions asked about name, of any type.
func (d *testDNS) questions(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k, v := range d.asked {
		if strings.HasPrefix(k, name+". ") {
			n += v
		}
	}
	return n
}

// startEcho runs a TCP server on 127.0.0.1 that greets with "hello\n" and
// echoes what it reads, and returns its port.
func startEcho(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello\n")
				io.Copy(c, c)
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// expectGreeting reads the echo server's greeting from c.
func expectGreeting(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("read greeting = %q, %v", line, err)
	}
}

func TestHostDialerNames(t *testing.T) {
	port := startEcho(t)
	dns := startDNS(t, map[string][]string{
		"up.test.":       {"127.0.0.1"},
		"second.test.":   {"127.0.0.2", "127.0.0.1"},
		"metadata.test.": {"127.0.0.1", "169.254.169.254"},
		"db.test.":       {"10.0.0.7"},
		"synth.test.":    {"198.18.0.5"},
	})
	h := &HostDialer{Resolver: dns.addr, Timeout: 5 * time.Second}
	rule := func(host string, private bool) *Rule {
		return &Rule{Host: host, Ports: []uint16{port}, Private: private}
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		rule    *Rule
		refusal string // "" for a connection, else a substring of the refusal
		dialed  string
	}{
		// The probe: a private name that resolves to the echo server.
		{"up.test", rule("up.test", true), "", "127.0.0.1"},
		{"up.test", rule("up.test", false), "up.test resolves to 127.0.0.1, a loopback address", ""},
		{"up.test", rule("*.test", true), "", "127.0.0.1"},
		// 127.0.0.2 refuses the connection; the next address is tried.
		{"second.test", rule("second.test", true), "", "127.0.0.1"},
		// Part of the answer is link-local: the whole name is refused,
		// even with private: true.
		{"metadata.test", rule("metadata.test", true), "metadata.test resolves to 169.254.169.254, a link-local address", ""},
		{"db.test", rule("db.test", false), "db.test resolves to 10.0.0.7, a private address", ""},
		{"synth.test", rule("synth.test", true), "resolves to 198.18.0.5, an address of vm-run's synthetic range", ""},
	}
	for _, tt := range tests {
		c, dialed, via, err := h.Dial(ctx, tt.name, netip.Addr{}, port, tt.rule)
		var ref *Refusal
		if tt.refusal != "" {
			if !errors.As(err, &ref) || !strings.Contains(ref.Reason, tt.refusal) || c != nil {
				t.Errorf("Dial(%s under %s) = %v, want a refusal saying %q", tt.name, tt.rule, err, tt.refusal)
			}
			continue
		}
		if err != nil {
			t.Errorf("Dial(%s under %s) = %v, want a connection", tt.name, tt.rule, err)
			continue
		}
		if want := net.JoinHostPort(tt.dialed, strconv.Itoa(int(port))); dialed != want || via != "" {
			t.Errorf("Dial(%s) dialed %q via %q, want %q directly", tt.name, dialed, via, want)
		}
		expectGreeting(t, c)
		c.Close()
	}
	// Names are looked up absolute (no search domain) and for A only.
	dns.mu.Lock()
	for k := range dns.asked {
		if !strings.HasSuffix(k, ". A") {
			t.Errorf("the resolver was asked %q; want only A questions", k)
		}
	}
	dns.mu.Unlock()

	// A refusal before the lookup asks the resolver nothing.
	before := dns.questions("up.test")
	if _, _, _, err := h.Dial(ctx, "up.test", netip.Addr{}, port+1, rule("up.test", true)); !errors.As(err, new(*Refusal)) {
		t.Errorf("Dial on a port the rule does not list = %v, want a refusal", err)
	}
	if _, _, _, err := h.Dial(ctx, "up.test", netip.Addr{}, port, nil); !errors.As(err, new(*Refusal)) {
		t.Errorf("Dial without a rule = %v, want a refusal", err)
	}
	if n := dns.questions("up.test"); n != before {
		t.Errorf("refused dials asked the resolver %d questions, want none", n-before)
	}
	// A name that does not resolve is an error, not a refusal.
	_, _, _, err := h.Dial(ctx, "gone.test", netip.Addr{}, port, rule("gone.test", true))
	if err == nil || errors.As(err, new(*Refusal)) {
		t.Errorf("Dial(gone.test) = %v, want a lookup error", err)
	}
	// An upstream that refuses is an error, not a refusal.
	dead := &Rule{Host: "up.test", Ports: []uint16{1}, Private: true}
	if _, _, _, err := h.Dial(ctx, "up.test", netip.Addr{}, 1, dead); err == nil || errors.As(err, new(*Refusal)) {
		t.Errorf("Dial(up.test:1) = %v, want a connection error", err)
	}
}

func TestHostDialerLiterals(t *testing.T) {
	port := startEcho(t)
	lo := netip.MustParseAddr("127.0.0.1")
	ps := []uint16{port}
	proxy, _ := url.Parse("http://127.0.0.1:1") // nothing listens there
	for _, h := range []*HostDialer{{Timeout: 5 * time.Second}, {Timeout: 5 * time.Second, Proxy: proxy}} {
		tests := []struct {
			addr    string
			rule    *Rule
			refusal string
		}{
			{"127.0.0.1", &Rule{Host: HostLoopback, Ports: ps}, ""},
			{"::ffff:127.0.0.1", &Rule{Host: HostLoopback, Ports: ps}, ""},
			{"127.0.0.1", &Rule{Host: "127.0.0.1", Ports: ps}, ""},
			{"127.0.0.2", &Rule{Host: HostLoopback, Ports: ps}, "127.0.0.2, not the host loopback address"},
			{"127.0.0.2", &Rule{Host: "127.0.0.1", Ports: ps}, "127.0.0.2, not the rule's address 127.0.0.1"},
		}
		for _, tt := range tests {
			c, dialed, via, err := h.Dial(context.Background(), "", netip.MustParseAddr(tt.addr), port, tt.rule)
			if tt.refusal != "" {
				var ref *Refusal
				if !errors.As(err, &ref) || !strings.Contains(ref.Reason, tt.refusal) {
					t.Errorf("Dial(%s under %s) = %v, want a refusal saying %q", tt.addr, tt.rule, err, tt.refusal)
				}
				continue
			}
			if err != nil {
				t.Errorf("Dial(%s under %s, proxy %v) = %v, want a direct connection", tt.addr, tt.rule, h.Proxy, err)
				continue
			}
			if dialed != netip.AddrPortFrom(lo, port).String() || via != "" {
				t.Errorf("Dial(%s) dialed %q via %q", tt.addr, dialed, via)
			}
			expectGreeting(t, c)
			c.Close()
		}
	}
	// An address handed to a name rule is refused, even one the name
	// might resolve to.
	if _, _, _, err := (&HostDialer{}).Dial(context.Background(), "", lo, port, &Rule{Host: "localhost", Ports: ps, Private: true}); !errors.As(err, new(*Refusal)) {
		t.Errorf("Dial(127.0.0.1 under localhost:%d) = %v, want a refusal", port, err)
	}
	// A name handed to an address rule is refused.
	if _, _, _, err := (&HostDialer{}).Dial(context.Background(), "up.test", lo, port, &Rule{Host: HostLoopback, Ports: ps}); !errors.As(err, new(*Refusal)) {
		t.Errorf("Dial(name under host-loopback) = %v, want a refusal", err)
	}
}

// testProxy is an HTTP CONNECT proxy on 127.0.0.1 that wants Basic
// credentials and reaches names from its own table.
type testProxy struct {
	url      *url.URL
	mu       sync.Mutex
	requests []string // "CONNECT target" lines seen
}

func startProxy(t *testing.T, user, pass string, hosts map[string]string, answer string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &testProxy{url: &url.URL{Scheme: "http", User: url.UserPassword(user, pass), Host: ln.Addr().String()}}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				p.mu.Lock()
				p.requests = append(p.requests, req.Method+" "+req.Host)
				p.mu.Unlock()
				switch {
				case answer == "silent":
					io.Copy(io.Discard, br)
					return
				case answer != "":
					io.WriteString(c, answer)
					return
				case req.Method != http.MethodConnect || req.Header.Get("Proxy-Authorization") != want:
					io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
					return
				}
				target, ok := hosts[req.Host]
				if !ok {
					io.WriteString(c, "HTTP/1.1 403 Forbidden by "+user+":"+pass+"\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp4", target)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}()
		}
	}()
	return p
}

func TestHostDialerProxy(t *testing.T) {
	port := startEcho(t)
	echo := "127.0.0.1:" + strconv.Itoa(int(port))
	dns := startDNS(t, map[string][]string{})
	hosts := map[string]string{
		net.JoinHostPort("api.example.com", strconv.Itoa(int(port))): echo,
		net.JoinHostPort("10.0.0.5", strconv.Itoa(int(port))):        echo,
	}
	p := startProxy(t, "alice", "s3cret", hosts, "")
	h := &HostDialer{Resolver: dns.addr, Proxy: p.url, Timeout: 5 * time.Second}
	ctx := context.Background()
	name := &Rule{Host: "api.example.com", Ports: []uint16{port}}

	c, dialed, via, err := h.Dial(ctx, "api.example.com", netip.Addr{}, port, name)
	if err != nil {
		t.Fatalf("Dial through the proxy = %v", err)
	}
	expectGreeting(t, c)
	c.Write([]byte("ping\n"))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		t.Errorf("echo through the tunnel = %q, %v", line, err)
	}
	c.Close()
	if dialed != p.url.Host || via != "http://"+p.url.Host || strings.Contains(via, "s3cret") {
		t.Errorf("dialed %q via %q, want the proxy %s without credentials", dialed, via, p.url.Host)
	}
	// The host's resolver does not know the name: the proxy resolves it.
	if n := dns.questions("api.example.com"); n != 1 {
		t.Errorf("the host's resolver was asked %d questions, want 1 (the check before the proxy)", n)
	}
	// An address literal rule goes through the proxy too.
	lit := &Rule{Host: "10.0.0.5", Ports: []uint16{port}}
	if c, _, _, err := h.Dial(ctx, "", netip.MustParseAddr("10.0.0.5"), port, lit); err != nil {
		t.Errorf("Dial(10.0.0.5) through the proxy = %v", err)
	} else {
		expectGreeting(t, c)
		c.Close()
	}

	// The proxy's refusals are errors naming the status, never the
	// credentials, and never refusals of the policy.
	bad := *p.url
	bad.User = url.UserPassword("alice", "wrong")
	for _, tt := range []struct {
		h    *HostDialer
		name string
		want string
	}{
		{&HostDialer{Proxy: &bad, Timeout: 5 * time.Second}, "api.example.com", "407 Proxy Authentication Required"},
		{h, "other.example.com", "403 Forbidden"},
	} {
		rule := &Rule{Host: tt.name, Ports: []uint16{port}}
		_, _, via, err := tt.h.Dial(ctx, tt.name, netip.Addr{}, port, rule)
		if err == nil || errors.As(err, new(*Refusal)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Dial(%s) = %v, want an error saying %q", tt.name, err, tt.want)
		} else if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") || strings.Contains(via, "alice") {
			t.Errorf("Dial(%s) error %q, via %q: credentials leaked", tt.name, err, via)
		}
	}
	p.mu.Lock()
	if len(p.requests) == 0 || p.requests[0] != "CONNECT api.example.com:"+strconv.Itoa(int(port)) {
		t.Errorf("the proxy saw %q, want CONNECT by name first", p.requests)
	}
	p.mu.Unlock()
}

func TestHostDialerProxyEdges(t *testing.T) {
	port := uint16(443)
	rule := &Rule{Host: "api.example.com", Ports: []uint16{port}}
	ctx := context.Background()

	// The upstream's first bytes may come with the proxy's answer.
	early := startProxy(t, "u", "p", nil, "HTTP/1.1 200 OK\r\n\r\nhello\n")
	c, _, _, err := (&HostDialer{Proxy: early.url, Timeout: 5 * time.Second}).Dial(ctx, "api.example.com", netip.Addr{}, port, rule)
	if err != nil {
		t.Fatalf("Dial through a proxy that answers with data = %v", err)
	}
	expectGreeting(t, c)
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Errorf("tunnel %T has no CloseWrite", c)
	}
	c.Close()

	// A proxy that never answers is given up on at the Timeout.
	silent := startProxy(t, "u", "p", nil, "silent")
	start := time.Now()
	_, _, _, err = (&HostDialer{Proxy: silent.url, Timeout: 300 * time.Millisecond}).Dial(ctx, "api.example.com", netip.Addr{}, port, rule)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial through a silent proxy = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial through a silent proxy took %v", d)
	}
	// So is a caller that cancels.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, _, _, err = (&HostDialer{Proxy: silent.url}).Dial(cctx, "api.example.com", netip.Addr{}, port, rule); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial through a silent proxy, cancelled = %v, want context.Canceled", err)
	}

	// Not an HTTP proxy at all.
	garbage := startProxy(t, "u", "p", nil, "SSH-2.0-OpenSSH_9.6\r\n")
	if _, _, _, err := (&HostDialer{Proxy: garbage.url, Timeout: 5 * time.Second}).Dial(ctx, "api.example.com", netip.Addr{}, port, rule); err == nil {
		t.Errorf("Dial through an SSH server = nil, want an error")
	}
}

func TestProxyFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want string // Redacted, or "error"
	}{
		{nil, ""},
		{[]string{"HTTP_PROXY=http://p:1"}, ""},
		{[]string{"HTTPS_PROXY=http://u:pw@proxy.corp:3128"}, "http://proxy.corp:3128"},
		{[]string{"https_proxy=proxy.corp:3128"}, "http://proxy.corp:3128"},
		{[]string{"https_proxy=http://lower:1", "HTTPS_PROXY=http://upper:2"}, "http://upper:2"},
		{[]string{"HTTPS_PROXY=", "https_proxy=http://lower:1"}, "http://lower:1"},
		{[]string{"HTTPS_PROXY=http://first:1", "HTTPS_PROXY=http://second:2"}, "http://first:1"},
		{[]string{"HTTPS_PROXY=socks5://u:pw@p:1080"}, "error"},
		{[]string{"HTTPS_PROXY=http://u:pw@"}, "error"},
		{[]string{"HTTPS_PROXY=http://u:pw@p:1%zz"}, "error"},
	} {
		u, err := ProxyFromEnv(tt.env)
		got := Redacted(u)
		if err != nil {
			got = "error"
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("ProxyFromEnv(%q) error %q shows the password", tt.env, err)
			}
		}
		if got != tt.want {
			t.Errorf("ProxyFromEnv(%q) = %q, %v, want %q", tt.env, got, err, tt.want)
		}
	}
	u, _ := ProxyFromEnv([]string{"HTTPS_PROXY=http://u:pw@proxy.corp:3128"})
	if pw, _ := u.User.Password(); pw != "pw" {
		t.Errorf("ProxyFromEnv kept password %q, want %q", pw, "pw")
	}
}
