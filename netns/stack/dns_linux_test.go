//go:build linux

package stack

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// TestDNS: the stub answers over UDP and TCP (several queries on one
// connection) with the names' synthetic addresses, NXDOMAIN for names no
// rule lists; DNS to any other server gets nothing, recorded.
func TestDNS(t *testing.T) {
	e := newEnv(t, egress.Limits{}, []string{"api.test:443", "*.w.test:443"}, nil)
	for _, network := range []string{"udp", "tcp"} {
		r := e.mustDo(cmd{Op: "resolve", Name: "api.test", Net: network})
		want := strings.Split(e.addr("api.test", 0), ":")[0]
		if !slices.Equal(r.Addrs, []string{want}) {
			t.Errorf("resolve api.test over %s = %v, want [%s]", network, r.Addrs, want)
		}
		if r := e.do(cmd{Op: "resolve", Name: "evil.test", Net: network}); r.Errno != "NXDOMAIN" {
			t.Errorf("resolve evil.test over %s: %s (%s), want NXDOMAIN", network, r.Errno, r.Err)
		}
	}
	r := e.mustDo(cmd{Op: "dnstcp", Name: "a.w.test,evil.test,api.test"})
	wantAddrs := []string{
		"1:" + strings.Split(e.addr("a.w.test", 0), ":")[0],
		"2:RCodeNameError",
		"3:" + strings.Split(e.addr("api.test", 0), ":")[0],
	}
	if !slices.Equal(r.Addrs, wantAddrs) {
		t.Errorf("three queries on one TCP connection: %v, want %v", r.Addrs, wantAddrs)
	}
	if st := e.st.Stats(); st.DNSQueries < 7 {
		t.Errorf("Stats().DNSQueries = %d, want at least 7", st.DNSQueries)
	}

	// The same question to another server is dropped: the resolver
	// times out (probe: the stub answered it above).
	if r := e.do(cmd{Op: "resolve", Name: "api.test", Addr: "192.0.2.53:53", MS: 1500}); r.Errno == "" {
		t.Errorf("resolve through 192.0.2.53: %v, want no answer", r.Addrs)
	}
	waitFor(t, "the UDP refusal's record", func() bool {
		for _, c := range e.rec.connects() {
			if c.Proto == "udp" && c.Address == "192.0.2.53:53" && c.Verdict == audit.VerdictDeny && strings.HasPrefix(c.Reason, "DNS goes to the stub") {
				return true
			}
		}
		return false
	})
}

// TestUDPRefused: UDP other than DNS to the stub is dropped and recorded,
// with the name of a synthetic destination.
func TestUDPRefused(t *testing.T) {
	e := newEnv(t, egress.Limits{}, []string{"api.test:443"}, nil)
	addr := e.addr("api.test", 443)
	e.mustDo(cmd{Op: "udp", Addr: addr, Data: "quic?"})
	e.mustDo(cmd{Op: "udp", Addr: "192.0.2.9:9999", Data: "hello"})
	waitFor(t, "2 UDP refusals recorded", func() bool { return len(e.rec.connects()) == 2 })
	got := e.rec.connects()
	want := []audit.NetConnect{
		{Proto: "udp", Name: "api.test", Address: addr, Port: 443, Verdict: audit.VerdictDeny, Reason: "UDP other than DNS to the stub resolver is refused"},
		{Proto: "udp", Address: "192.0.2.9:9999", Port: 9999, Verdict: audit.VerdictDeny, Reason: "UDP other than DNS to the stub resolver is refused"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("NetConnect records = %+v, want %+v", got, want)
	}
	if st := e.st.Stats(); st.UDPDropped != 2 {
		t.Errorf("Stats().UDPDropped = %d, want 2", st.UDPDropped)
	}
}

// TestSNI: on port 443 the ClientHello is read before anything is
// dialled, and its server name must be the name connected to, or one the
// same rule allows; each refusal beside a probe that the same rule lets
// through.
func TestSNI(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello over TLS"))
	}))
	t.Cleanup(srv.Close)
	up := strings.TrimPrefix(srv.URL, "https://")
	e := newEnv(t, egress.Limits{}, []string{"tls.test:443", "*.w.test:443", "nosni.test:443 nosni"}, map[string]string{
		"tls.test:443": up, "a.w.test:443": up, "nosni.test:443": up,
	})
	ok := func(url, sni string) {
		t.Helper()
		r := e.do(cmd{Op: "get", Addr: url, Name: sni})
		if r.Errno != "" || r.Status != 200 || r.Data != "hello over TLS" {
			t.Fatalf("GET %s with SNI %q: %s (%s) status %d, want 200", url, sni, r.Errno, r.Err, r.Status)
		}
	}
	refused := func(url, sni, reason string) {
		t.Helper()
		dials := e.dialer.dials.Load()
		r := e.do(cmd{Op: "get", Addr: url, Name: sni})
		if r.Errno != "ECONNRESET" && r.Errno != "EOF" {
			t.Errorf("GET %s with SNI %q: %s (%s) status %d, want the connection reset", url, sni, r.Errno, r.Err, r.Status)
		}
		if d := e.dialer.dials.Load() - dials; d != 0 {
			t.Errorf("GET %s with SNI %q dialled upstream %d times", url, sni, d)
		}
		last := e.rec.connects()
		if l := last[len(last)-1]; l.Verdict != audit.VerdictDeny || !strings.HasPrefix(l.Reason, reason) {
			t.Errorf("last NetConnect = %+v, want deny for %q", l, reason)
		}
	}
	ok("https://tls.test/", "")
	refused("https://tls.test/", "evil.test", "SNI evil.test does not match tls.test")
	refused("https://tls.test/", "a.w.test", "SNI a.w.test does not match tls.test")
	refused("https://tls.test/", "-", "no SNI in the ClientHello to tls.test")
	refused("http://tls.test:443/", "", "not a TLS ClientHello")
	ok("https://a.w.test/", "b.w.test") // the same rule allows both
	ok("https://nosni.test/", "-")      // sni: false

	var allowed []audit.NetConnect
	for _, c := range e.rec.connects() {
		if c.Verdict == audit.VerdictAllow {
			allowed = append(allowed, c)
		}
	}
	want := []string{"tls.test", "b.w.test", ""}
	if len(allowed) != len(want) {
		t.Fatalf("allowed connections = %+v, want %d", allowed, len(want))
	}
	for i, c := range allowed {
		if c.SNI != want[i] {
			t.Errorf("allowed connection %d: SNI %q, want %q", i, c.SNI, want[i])
		}
	}
}
