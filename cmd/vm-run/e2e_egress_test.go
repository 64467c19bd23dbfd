package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vm-run/vm-run/audit"
)

// The egress tests: upstream servers on the host's loopback, reached from
// inside the sandbox by names that the test's own DNS server (the
// profile's network.resolver) maps to 127.0.0.1. Every refusal is shown
// against a probe that reaches the same server without the policy.

// testResolver is a DNS server on loopback (UDP and TCP, one port) that
// answers A questions for the names it holds with 127.0.0.1 and counts
// every question by name.
type testResolver struct {
	addr  string
	names map[string]bool
	mu    sync.Mutex
	asked map[string]int
}

func newTestResolver(t *testing.T, names ...string) *testResolver {
	t.Helper()
	r := &testResolver{names: map[string]bool{}, asked: map[string]int{}}
	for _, n := range names {
		r.names[n] = true
	}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	r.addr = pc.LocalAddr().String()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := r.answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	go serveEach(ln, func(c net.Conn) {
		var l [2]byte
		for {
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			q := make([]byte, int(l[0])<<8|int(l[1]))
			if _, err := io.ReadFull(c, q); err != nil {
				return
			}
			out := r.answer(q)
			c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...))
		}
	})
	return r
}

func (r *testResolver) answer(q []byte) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	qn := m.Questions[0]
	name := strings.TrimSuffix(strings.ToLower(qn.Name.String()), ".")
	r.mu.Lock()
	r.asked[name]++
	r.mu.Unlock()
	m.Header.Response = true
	m.Header.RecursionAvailable = true
	if !r.names[name] {
		m.Header.RCode = dnsmessage.RCodeNameError
	} else if qn.Type == dnsmessage.TypeA {
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: qn.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
			Body:   &dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}},
		}}
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

func (r *testResolver) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[name]
}

// upstream serves "hello NAME" on the host's loopback, NAME being the Host
// header's name, and returns its port.
func upstream(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.Host, ":")
		fmt.Fprintf(w, "hello %s\n", host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// deadPort returns a loopback port nothing listens on.
func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// hostGet is the probe without vm-run: the same server, straight from the
// host.
func hostGet(t *testing.T, port int, host string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the probe without vm-run: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// netClient builds testdata/netclient where the sandbox's uid can run it;
// VMRUN_NETCLIENT is one built already, for a user without go.
func netClient(t *testing.T) string {
	t.Helper()
	if prebuilt := os.Getenv("VMRUN_NETCLIENT"); prebuilt != "" {
		return prebuilt
	}
	if _, err := exec.LookPath("go"); err != nil {
		failOnCI(t, "needs go to build testdata/netclient, or VMRUN_NETCLIENT: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "netclient")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/netclient")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build netclient: %v\n%s", err, out)
	}
	if err := searchable(dir); err != nil {
		t.Fatal(err)
	}
	return bin
}

// muslClient builds testdata/muslclient, statically with musl-gcc, where
// the sandbox's uid can run it; VMRUN_MUSLCLIENT is one built already, for
// a user without musl-gcc. Static, it needs nothing of the host's libraries
// inside the sandbox, and resolves names with musl's own resolver.
func muslClient(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VMRUN_MUSLCLIENT")
	if bin == "" {
		if _, err := exec.LookPath("musl-gcc"); err != nil {
			failOnCI(t, "needs musl-gcc (Debian's musl-tools) to build testdata/muslclient, or VMRUN_MUSLCLIENT: %v", err)
		}
		dir := t.TempDir()
		bin = filepath.Join(dir, "muslclient")
		cmd := exec.Command("musl-gcc", "-static", "-O2", "-o", bin, "./testdata/muslclient/main.c")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("musl-gcc muslclient: %v\n%s", err, out)
		}
		if err := searchable(dir); err != nil {
			t.Fatal(err)
		}
	}
	// Dynamically linked, it would be the host's loader and libc that
	// resolve, not musl's resolver linked in.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("muslclient: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("muslclient %s has an interpreter (PT_INTERP), want it static", bin)
		}
	}
	return bin
}

// requireTUN fails on CI, and skips elsewhere, where this user cannot
// open the TUN device network mode egress needs.
func requireTUN(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		failOnCI(t, "network mode egress needs the TUN device (/dev/net/tun) open to uid %d: %v", os.Getuid(), err)
	}
	f.Close()
}

func TestE2EEgress(t *testing.T) {
	e := setupE2E(t)
	requireTUN(t)
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			failOnCI(t, "the egress test runs %s inside the sandbox: %v", tool, err)
		}
	}
	res := newTestResolver(t, "api.test", "public.test", "x.wild.test", "other.test", "wild.test")
	web, other, dead := upstream(t), upstream(t), deadPort(t)
	client, musl := netClient(t), muslClient(t)
	b := newBox(t)
	profile := e.profile(t, b, "egress", fmt.Sprintf("  exec: [%q, %q]\n", filepath.Dir(client), filepath.Dir(musl)), fmt.Sprintf(`network:
  mode: egress
  resolver: %s
  allow:
    - {host: api.test, ports: [%d, %d], private: true}
    - {host: "*.wild.test", ports: [%d], private: true}
    - public.test:%d
    - host-loopback:%d
`, res.addr, web, dead, web, web, other))

	// The probes without the policy: every server answers from the host.
	for _, p := range []int{web, other} {
		if got := hostGet(t, p, "api.test"); got != "hello api.test\n" {
			t.Fatalf("probe of port %d: %q", p, got)
		}
	}

	script := b.file(t, "probe.sh", fmt.Sprintf(`#!/bin/bash
try() { echo "== $1"; shift; "$@" 2>&1; echo "exit $?"; }
# connect: bash's own TCP connect, which names the errno it got.
connect() { timeout 10 bash -c "exec 3<>/dev/tcp/$1/$2"; }
try allowed curl -sS --max-time 10 http://api.test:%[1]d/
try node node -e 'fetch("http://api.test:%[1]d/").then(r => r.text()).then(t => process.stdout.write(t), e => { console.log(String(e.cause || e)); process.exit(3) })'
try go %[5]s get http://api.test:%[1]d/
try python /usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://api.test:%[1]d/", timeout=10).read().decode(), end="")' 
try tcpdns %[5]s tcpdns api.test
try musl %[6]s api.test %[1]d /
try musl-unlisted-name %[6]s other.test %[1]d /
try wildcard curl -sS --max-time 10 http://x.wild.test:%[1]d/
try wildcard-apex curl -sS --max-time 10 http://wild.test:%[1]d/
try unlisted-name curl -sS --max-time 10 http://other.test:%[1]d/
try unlisted-port connect api.test %[2]d
try literal connect 198.51.100.7 %[1]d
try metadata connect 169.254.169.254 80
try rebinding connect public.test %[1]d
try host-loopback curl -sS --max-time 10 http://host-loopback:%[2]d/
try host-loopback-port connect host-loopback %[1]d
try upstream-refuses connect api.test %[3]d
try udp bash -c 'echo x > /dev/udp/203.0.113.7/9999'
try udp-dns-elsewhere bash -c 'echo x > /dev/udp/203.0.113.7/53'
try ipv6 curl -sS --max-time 5 -6 http://[2001:db8::1]:%[1]d/
true %[4]d
`, web, other, dead, 0, client, musl))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	cmd := exec.Command(e.bin, "--profile", profile, "--workspace", b.ws, "--ledger", ledger, "--no-proxy", "--", script)
	cmd.Env = cleanProxyEnv(os.Environ())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vm-run: %v\n%s", err, out)
	}
	t.Logf("the probes took %v", time.Since(start).Round(time.Millisecond))
	got := sections(string(out))
	want := map[string][]string{
		"allowed":            {"hello api.test", "exit 0"},
		"node":               {"hello api.test", "exit 0"},
		"go":                 {"hello api.test", "exit 0"},
		"python":             {"hello api.test", "exit 0"},
		"musl":               {"hello api.test", "exit 0"},
		"musl-unlisted-name": {"resolve other.test: Name does not resolve", "exit 2"},
		"tcpdns":             {"198.18.", "exit 0"},
		"wildcard":           {"hello x.wild.test", "exit 0"},
		"wildcard-apex":      {"resolve host", "exit 6"},
		"unlisted-name":      {"resolve host", "exit 6"},
		"unlisted-port":      {"Connection refused", "exit 1"},
		"literal":            {"Connection refused", "exit 1"},
		"metadata":           {"Connection refused", "exit 1"},
		"rebinding":          {"Connection refused", "exit 1"},
		"upstream-refuses":   {"Connection refused", "exit 1"},
		"host-loopback":      {"hello host-loopback", "exit 0"},
		"host-loopback-port": {"Connection refused", "exit 1"},
		"udp":                {"exit 0"}, // sent; the stack drops it and says so in the ledger
		"ipv6":               {"exit 7"},
	}
	for name, parts := range want {
		for _, p := range parts {
			if !strings.Contains(got[name], p) {
				t.Errorf("%s: %q, want %q in it", name, got[name], p)
			}
		}
	}
	if t.Failed() {
		t.Logf("vm-run's output:\n%s", out)
	}

	// Unlisted names never reached any resolver; listed ones only when a
	// connection was dialled.
	for _, n := range []string{"other.test", "wild.test"} {
		if c := res.count(n); c != 0 {
			t.Errorf("the host's resolver was asked %d times for %s, which no rule lists", c, n)
		}
	}
	if res.count("api.test") == 0 {
		t.Errorf("the host's resolver was never asked for api.test, which was dialled")
	}

	s := &e2eSession{ledger: ledger}
	var dns []audit.NetDNS
	for _, r := range s.records(t, audit.EventNetDNS) {
		ev, err := audit.ReadEvent[audit.NetDNS](r)
		if err != nil {
			t.Fatal(err)
		}
		dns = append(dns, ev)
	}
	if !hasDNS(dns, "api.test", audit.VerdictAllow) || !hasDNS(dns, "other.test", audit.VerdictDeny) {
		t.Errorf("net_dns records %+v: want api.test allowed and other.test denied", dns)
	}
	var conns []audit.NetConnect
	for _, r := range s.records(t, audit.EventNetConnect) {
		ev, err := audit.ReadEvent[audit.NetConnect](r)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ev)
	}
	for _, w := range []struct {
		what    string
		match   func(audit.NetConnect) bool
		verdict audit.Verdict
	}{
		{"api.test allowed, dialled on loopback", func(c audit.NetConnect) bool {
			return c.Name == "api.test" && c.Port == uint16(web) && c.Dialed == fmt.Sprintf("127.0.0.1:%d", web)
		}, audit.VerdictAllow},
		{"api.test's unlisted port", func(c audit.NetConnect) bool { return c.Name == "api.test" && c.Port == uint16(other) }, audit.VerdictDeny},
		{"the address literal", func(c audit.NetConnect) bool { return c.Name == "" && c.Address == fmt.Sprintf("198.51.100.7:%d", web) }, audit.VerdictDeny},
		{"the metadata address", func(c audit.NetConnect) bool { return strings.HasPrefix(c.Address, "169.254.169.254:") }, audit.VerdictDeny},
		{"public.test rebinding to loopback", func(c audit.NetConnect) bool { return c.Name == "public.test" }, audit.VerdictDeny},
		{"udp", func(c audit.NetConnect) bool { return c.Proto == "udp" && c.Port == 9999 }, audit.VerdictDeny},
	} {
		found := false
		for _, c := range conns {
			if w.match(c) && c.Verdict == w.verdict {
				found = true
			}
		}
		if !found {
			t.Errorf("no net_connect %s (%s) among %+v", w.verdict, w.what, conns)
		}
	}
	closes := s.records(t, audit.EventNetClose)
	var in uint64
	for _, r := range closes {
		ev, err := audit.ReadEvent[audit.NetClose](r)
		if err != nil {
			t.Fatal(err)
		}
		in += ev.BytesIn
	}
	if len(closes) == 0 || in == 0 {
		t.Errorf("%d net_close records with %d bytes in, want some of each", len(closes), in)
	}

	// policy generate proposes the destinations the session used.
	gen, err := exec.Command(e.bin, "policy", "generate", "--ledger", ledger).Output()
	if err != nil {
		t.Fatalf("policy generate: %v", err)
	}
	for _, want := range []string{"mode: egress", fmt.Sprintf("ports: [%d]", web), "host: api.test", fmt.Sprintf("host-loopback:%d", other)} {
		if !strings.Contains(string(gen), want) {
			t.Errorf("policy generate lacks %q:\n%s", want, gen)
		}
	}
}

func hasDNS(ds []audit.NetDNS, name string, v audit.Verdict) bool {
	for _, d := range ds {
		if d.Name == name && d.Verdict == v {
			return true
		}
	}
	return false
}

// sections splits the probe script's output at its "== NAME" lines.
func sections(out string) map[string]string {
	m := map[string]string{}
	name := ""
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "== "); ok {
			name = n
			continue
		}
		m[name] += l + "\n"
	}
	return m
}

// cleanProxyEnv drops proxy variables: the sandbox needs none, and the
// test must show it.
func cleanProxyEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// TestE2EEgressSNI: on a rule that checks the server name (sni: true, as
// port 443 is by default), a TLS connection whose ClientHello names
// another host is refused and recorded; the probe, the same connection
// under a rule that does not check, reaches the server.
func TestE2EEgressSNI(t *testing.T) {
	e := setupE2E(t)
	requireTUN(t)
	if _, err := exec.LookPath("curl"); err != nil {
		failOnCI(t, "the egress test runs curl inside the sandbox: %v", err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello tls %s\n", r.TLS.ServerName)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := newTestResolver(t, "tls.test", "plain.test")
	b := newBox(t)
	profile := e.profile(t, b, "egress-sni", "", fmt.Sprintf(`network:
  mode: egress
  resolver: %s
  allow:
    - {host: tls.test, ports: [%[2]d], private: true, sni: true}
    - {host: plain.test, ports: [%[2]d], private: true}
`, res.addr, port))
	script := b.file(t, "sni.sh", fmt.Sprintf(`#!/bin/bash
try() { echo "== $1"; shift; "$@" 2>&1; echo "exit $?"; }
try matching curl -sSk --max-time 10 https://tls.test:%[1]d/
try fronted curl -sSk --max-time 10 --connect-to evil.test:%[1]d:tls.test:%[1]d https://evil.test:%[1]d/
try unchecked curl -sSk --max-time 10 --connect-to evil.test:%[1]d:plain.test:%[1]d https://evil.test:%[1]d/
`, port))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	cmd := exec.Command(e.bin, "--profile", profile, "--workspace", b.ws, "--ledger", ledger, "--no-proxy", "--", script)
	cmd.Env = cleanProxyEnv(os.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vm-run: %v\n%s", err, out)
	}
	got := sections(string(out))
	for name, want := range map[string]string{
		"matching":  "hello tls tls.test\nexit 0",
		"unchecked": "hello tls evil.test\nexit 0",
		"fronted":   "exit 35", // the TLS handshake reset
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s: %q, want %q in it", name, got[name], want)
		}
	}
	s := &e2eSession{ledger: ledger}
	found := false
	for _, r := range s.records(t, audit.EventNetConnect) {
		c, err := audit.ReadEvent[audit.NetConnect](r)
		if err != nil {
			t.Fatal(err)
		}
		if c.Verdict == audit.VerdictDeny && c.Name == "tls.test" && c.SNI == "evil.test" && c.Dialed == "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no net_connect deny of tls.test with SNI evil.test, undialled, in the ledger\n%s", out)
	}
}

// TestE2EEgressUpstreamProxy: with upstream_proxy, vm-run reaches an
// allowed name through the HTTP CONNECT proxy (which the test runs on
// loopback and which resolves the name itself), with the credentials the
// profile gives; the sandbox sees neither the proxy nor its credentials,
// and the ledger names the proxy without them.
func TestE2EEgressUpstreamProxy(t *testing.T) {
	e := setupE2E(t)
	requireTUN(t)
	web := upstream(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var asked []string
	go serveEach(ln, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		mu.Lock()
		asked = append(asked, req.Method+" "+req.Host+" "+req.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		// The proxy's own resolver: api.test is this host.
		if req.Method != "CONNECT" || req.Host != fmt.Sprintf("api.test:%d", web) || req.Header.Get("Proxy-Authorization") != "Basic YW5uOnMzY3JldA==" {
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", web))
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go io.Copy(up, c)
		io.Copy(c, up)
	})
	proxyAddr := ln.Addr().String()
	b := newBox(t)
	profile := e.profile(t, b, "egress-proxy", "", fmt.Sprintf(`network:
  mode: egress
  upstream_proxy: http://ann:s3cret@%s
  allow:
    - api.test:%d
`, proxyAddr, web))
	script := b.file(t, "proxy.sh", fmt.Sprintf("#!/bin/bash\nenv | grep -i -e _proxy= -e s3cret\ncurl -sS --max-time 10 http://api.test:%d/\n", web))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	cmd := exec.Command(e.bin, "--profile", profile, "--workspace", b.ws, "--ledger", ledger, "--no-proxy", "--", script)
	cmd.Env = cleanProxyEnv(os.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "hello api.test\n" {
		t.Fatalf("vm-run: %v\n%s\nwant only the upstream's answer (no proxy variable, no credentials inside)", err, out)
	}
	mu.Lock()
	if len(asked) != 1 {
		t.Errorf("the proxy was asked %q, want one CONNECT", asked)
	}
	mu.Unlock()
	s := &e2eSession{ledger: ledger}
	ok := false
	for _, r := range s.records(t, audit.EventNetConnect) {
		c, err := audit.ReadEvent[audit.NetConnect](r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.Via, "s3cret") {
			t.Errorf("the ledger holds the proxy's password: %+v", c)
		}
		if c.Verdict == audit.VerdictAllow && c.Name == "api.test" && c.Via == "http://"+proxyAddr && c.Dialed == proxyAddr {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no net_connect allow of api.test via http://%s", proxyAddr)
	}
	if b, _ := os.ReadFile(ledger); strings.Contains(string(b), "s3cret") {
		t.Errorf("the ledger holds the proxy's password")
	}
}

// serveEach accepts connections on ln until it closes and handles each in
// a goroutine of its own, closing it afterwards.
func serveEach(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
