//go:build linux

package stack

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// TestAllowedConnection: an allowed connection carries bytes both ways,
// half-closes both ways, and is recorded before (NetConnect) and after
// (NetClose), with the bytes counted.
func TestAllowedConnection(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"echo.test:80"}, map[string]string{"echo.test:80": up})
	addr := e.addr("echo.test", 80)

	e.mustDo(cmd{Op: "dial", ID: "c", Addr: addr})
	e.mustDo(cmd{Op: "send", ID: "c", Data: "hello "})
	if r := e.mustDo(cmd{Op: "recv", ID: "c", N: 6}); r.Data != "hello " {
		t.Fatalf("echo = %q, want %q", r.Data, "hello ")
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, many segments
	e.mustDo(cmd{Op: "send", ID: "c", Data: big})
	e.mustDo(cmd{Op: "shutwr", ID: "c"})
	r := e.do(cmd{Op: "readall", ID: "c"})
	if r.Errno != "EOF" || r.Data != big {
		t.Fatalf("after shutdown(SHUT_WR): read %d bytes, end %s (%s); want the %d sent back, then EOF", len(r.Data), r.Errno, r.Err, len(big))
	}
	e.mustDo(cmd{Op: "close", ID: "c"})

	var closes []audit.NetClose
	waitFor(t, "NetClose", func() bool { closes = e.rec.closes(); return len(closes) == 1 })
	conns := e.rec.connects()
	want := audit.NetConnect{Conn: 1, Proto: "tcp", Name: "echo.test", Address: addr, Port: 80, Verdict: audit.VerdictAllow, Rule: "echo.test:80", Dialed: up}
	if len(conns) != 1 || conns[0] != want {
		t.Errorf("NetConnect records = %+v, want [%+v]", conns, want)
	}
	n := uint64(6 + len(big))
	c := closes[0]
	if c.Conn != 1 || c.Name != "echo.test" || c.Port != 80 || c.BytesOut != n || c.BytesIn != n || c.DurationNS <= 0 || c.Reason != "" {
		t.Errorf("NetClose = %+v, want conn 1, echo.test, port 80, %d bytes each way, a duration, no reason", c, n)
	}
	st := e.st.Stats()
	if st.Total != 1 || st.Open != 0 || st.BytesOut != n || st.BytesIn != n {
		t.Errorf("Stats() = %+v, want total 1, open 0, %d bytes each way", st, n)
	}
}

// TestRefusals: each refusal is fast, looks refused (ECONNREFUSED), is
// recorded with its reason and dials nothing; each beside a probe to the
// same upstream that the policy allows.
func TestRefusals(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"echo.test:80", "192.0.2.7:80"}, map[string]string{
		"echo.test:80": up, "echo.test:81": up, "192.0.2.7:80": up, "192.0.2.8:80": up,
		"other.test:80": up,
	})
	name := e.addr("echo.test", 80)
	other := e.addr("other.test", 80)
	never := "198.18.1.200:80"
	if _, ok := e.names.Lookup(netipAddr(t, never)); ok {
		t.Fatalf("%s was handed out", never)
	}
	cases := []struct {
		what, probe, refused, reason string
	}{
		{"a port no rule lists", name, strings.TrimSuffix(name, "80") + "81", "no rule allows echo.test:81"},
		{"a name no rule lists", name, other, "no rule allows other.test:80"},
		{"an address literal no rule lists", "192.0.2.7:80", "192.0.2.8:80", "no rule allows 192.0.2.8:80"},
		{"a synthetic address never handed out", name, never, "synthetic address never handed out"},
		{"DNS over TCP elsewhere than the stub", name, "192.0.2.7:53", "DNS goes to the stub resolver at 198.18.0.1 only"},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			if r := e.do(cmd{Op: "dial", Addr: c.probe}); r.Errno != "" {
				t.Fatalf("probe %s: %s (%s), want a connection", c.probe, r.Errno, r.Err)
			}
			dials := e.dialer.dials.Load()
			r := e.do(cmd{Op: "dial", Addr: c.refused, MS: 3000})
			if r.Errno != "ECONNREFUSED" || r.MS > 1000 {
				t.Fatalf("dial %s: %s (%s) after %.1f ms, want ECONNREFUSED at once", c.refused, r.Errno, r.Err, r.MS)
			}
			if d := e.dialer.dials.Load() - dials; d != 0 {
				t.Errorf("a refused connection dialled upstream %d times", d)
			}
			last := e.rec.connects()
			if l := last[len(last)-1]; l.Verdict != audit.VerdictDeny || l.Reason != c.reason || l.Address != c.refused {
				t.Errorf("last NetConnect = %+v, want deny of %s for %q", l, c.refused, c.reason)
			}
		})
	}
	if st := e.st.Stats(); st.RefusedPolicy != uint64(len(cases)) {
		t.Errorf("Stats().RefusedPolicy = %d, want %d", st.RefusedPolicy, len(cases))
	}
}

// TestUpstreamRefuses: an allowed destination whose upstream refuses, or
// whose name the dialer refuses (rebinding to a refused address), is
// refused inside too; the same name reaches an upstream that answers.
func TestUpstreamRefuses(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"up.test:80"}, map[string]string{"up.test:80": up})
	addr := e.addr("up.test", 80)
	e.mustDo(cmd{Op: "dial", Addr: addr})

	for _, c := range []struct{ what, target, reason string }{
		{"upstream refuses", closedPort(t), "upstream: "},
		{"dialer refuses the address", "refuse:up.test resolves to 10.0.0.7, a private address", "up.test resolves to 10.0.0.7, a private address"},
	} {
		e.dialer.set("up.test:80", c.target)
		r := e.do(cmd{Op: "dial", Addr: addr})
		if r.Errno != "ECONNREFUSED" {
			t.Errorf("%s: dial = %s (%s), want ECONNREFUSED", c.what, r.Errno, r.Err)
		}
		last := e.rec.connects()
		if l := last[len(last)-1]; l.Verdict != audit.VerdictDeny || !strings.HasPrefix(l.Reason, c.reason) || l.Rule != "up.test:80" {
			t.Errorf("%s: last NetConnect = %+v, want deny under up.test:80 for %q", c.what, l, c.reason)
		}
	}
	if st := e.st.Stats(); st.RefusedUpstream != 1 || st.RefusedPolicy != 1 {
		t.Errorf("Stats() = %+v, want 1 refused by the upstream, 1 by the policy", st)
	}
}

// TestUnrecordedRefused: a connection whose allow record cannot be
// written is refused; the same connection goes through once the ledger
// works.
func TestUnrecordedRefused(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"echo.test:80"}, map[string]string{"echo.test:80": up})
	addr := e.addr("echo.test", 80)
	e.mustDo(cmd{Op: "dial", Addr: addr})
	e.rec.setFail(func(ev audit.Event) error {
		if c, ok := ev.(audit.NetConnect); ok && c.Verdict == audit.VerdictAllow {
			return errRecord
		}
		return nil
	})
	if r := e.do(cmd{Op: "dial", Addr: addr}); r.Errno != "ECONNREFUSED" {
		t.Errorf("dial with the ledger failing = %s (%s), want ECONNREFUSED", r.Errno, r.Err)
	}
	if st := e.st.Stats(); st.RefusedUnrecorded != 1 || st.Total != 1 {
		t.Errorf("Stats() = %+v, want 1 refused unrecorded, 1 relayed", st)
	}
}

func netipAddr(t testing.TB, hostport string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Addr()
}
