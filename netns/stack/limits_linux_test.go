//go:build linux

package stack

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	netstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// TestCloseEndsConnections: Close resets every relayed connection at
// once, records each one's NetClose with reason "session end", does not
// wait for a dial or a ClientHello in progress, and leaves the sandbox
// without a network.
func TestCloseEndsConnections(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"echo.test:80", "black.test:80", "tls.test:443"},
		map[string]string{"echo.test:80": up, "black.test:80": "block", "tls.test:443": up})
	addr := e.addr("echo.test", 80)
	for _, id := range []string{"a", "b"} {
		e.mustDo(cmd{Op: "dial", ID: id, Addr: addr})
		e.mustDo(cmd{Op: "send", ID: id, Data: "x"})
		e.mustDo(cmd{Op: "recv", ID: id, N: 1})
	}
	// A dial that never ends, and a TLS port that never gets its
	// ClientHello: both in flight when Close comes.
	e.mustDo(cmd{Op: "dialbg", ID: "black", Addr: e.addr("black.test", 80), MS: 10000})
	e.mustDo(cmd{Op: "dial", ID: "quiet", Addr: e.addr("tls.test", 443)})
	waitFor(t, "2 handshakes in flight", func() bool { return e.st.Stats().Handshakes == 2 })
	start := time.Now()
	if err := e.st.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close() took %v", d)
	}
	for _, id := range []string{"a", "b"} {
		r := e.do(cmd{Op: "readall", ID: id, MS: 3000})
		if r.Errno != "ECONNRESET" && r.Errno != "EOF" {
			t.Errorf("read %s after Close: %s (%s), want the connection ended", id, r.Errno, r.Err)
		}
	}
	closes := e.rec.closes()
	if len(closes) != 2 {
		t.Fatalf("NetClose records = %+v, want 2", closes)
	}
	for _, c := range closes {
		if c.Reason != "session end" || c.BytesOut != 1 || c.BytesIn != 1 {
			t.Errorf("NetClose = %+v, want reason session end, 1 byte each way", c)
		}
	}
	// Every goroutine of the stack has ended (the upstream's end soon
	// after, their connections closed).
	waitFor(t, "the goroutines of before Start", func() bool { return runtime.NumGoroutine() <= e.goroutines })
	// The device is gone with the stack: nothing routes out any more.
	if r := e.do(cmd{Op: "dial", Addr: addr, MS: 2000}); r.Errno == "" || r.Errno == "timeout" {
		t.Errorf("dial after Close: %s (%s), want an immediate error", r.Errno, r.Err)
	}
}

// TestCloseWithSegmentInFlight: Close returns while the link's reader is
// still handling a segment from the sandbox that needs the netstack's
// lock, as the ACKs and FINs of the connections Close resets do (a
// reset in answer needs a route). The netstack's Wait removes the NIC
// holding that lock and waits there for the readers, so a Close that
// left the readers to it never returned: BenchmarkHold1000, closing
// 1,000 connections at once, hung so now and then. The segment here is
// held on the packet path until Close waits for the readers, then let
// go: the deadlock every time, not now and then.
func TestCloseWithSegmentInFlight(t *testing.T) {
	const port = 9 // where the bare ACK goes; no connection there
	held := make(chan struct{})
	var once sync.Once
	testHookTCP = func(id netstack.TransportEndpointID, _ *netstack.PacketBuffer) {
		if id.LocalPort != port {
			return
		}
		once.Do(func() {
			close(held)
			// Until a goroutine waits for the link's readers (bounded,
			// should the netstack ever wait otherwise).
			for deadline := time.Now().Add(closeBound / 2); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if bytes.Contains(allStacks(), []byte("fdbased.(*endpoint).Wait(")) {
					return
				}
			}
		})
	}
	e := newEnv(t, egress.Limits{}, nil, nil)
	testHookTCP = nil // read by Start only
	e.mustDo(cmd{Op: "rawack", Addr: "192.0.2.9:" + strconv.Itoa(port)})
	select {
	case <-held:
	case <-time.After(answerMargin):
		t.Fatal("the bare ACK never reached the stack's TCP handler")
	}
	if err := closeWithin(e.st, closeBound); err != nil {
		t.Fatalf("Close() with a segment in flight: %v", err)
	}
}

// TestConnectionLimit: a SYN beyond Limits.Connections is refused and
// recorded; once a connection ends, the next goes through.
func TestConnectionLimit(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{Connections: 2}, []string{"echo.test:80"}, map[string]string{"echo.test:80": up})
	addr := e.addr("echo.test", 80)
	e.mustDo(cmd{Op: "dial", ID: "a", Addr: addr})
	e.mustDo(cmd{Op: "dial", ID: "b", Addr: addr})
	waitFor(t, "2 open connections", func() bool { return e.st.Stats().Open == 2 })
	if r := e.do(cmd{Op: "dial", Addr: addr}); r.Errno != "ECONNREFUSED" {
		t.Fatalf("third connection: %s (%s), want ECONNREFUSED", r.Errno, r.Err)
	}
	last := e.rec.connects()
	if l := last[len(last)-1]; l.Verdict != audit.VerdictDeny || l.Reason != "limit: 2 connections" || l.Name != "echo.test" {
		t.Errorf("last NetConnect = %+v, want deny for limit: 2 connections", l)
	}
	e.mustDo(cmd{Op: "close", ID: "a"})
	waitFor(t, "the first connection's end", func() bool { return len(e.rec.closes()) == 1 && e.st.Stats().Open == 1 })
	e.mustDo(cmd{Op: "dial", ID: "c", Addr: addr})
	if st := e.st.Stats(); st.RefusedConnections != 1 || st.RefusedPolicy != 0 {
		t.Errorf("Stats() = %+v, want 1 refused by the connection limit", st)
	}
}

// TestHandshakeLimit: a SYN beyond Limits.Handshakes in flight is
// refused and recorded; once the handshake in flight ends (its dial times
// out), the next goes through.
func TestHandshakeLimit(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{Handshakes: 1, DialTimeout: time.Second},
		[]string{"echo.test:80", "black.test:80"},
		map[string]string{"echo.test:80": up, "black.test:80": "block"})
	black, addr := e.addr("black.test", 80), e.addr("echo.test", 80)
	e.mustDo(cmd{Op: "dialbg", ID: "b", Addr: black})
	waitFor(t, "a handshake in flight", func() bool { return e.st.Stats().Handshakes == 1 })
	if r := e.do(cmd{Op: "dial", Addr: addr}); r.Errno != "ECONNREFUSED" {
		t.Fatalf("dial beside a handshake in flight: %s (%s), want ECONNREFUSED", r.Errno, r.Err)
	}
	last := e.rec.connects()
	if l := last[len(last)-1]; l.Reason != "limit: 1 handshakes in flight" {
		t.Errorf("last NetConnect = %+v, want deny for limit: 1 handshakes in flight", l)
	}
	if r := e.do(cmd{Op: "result", ID: "b"}); r.Errno != "ECONNREFUSED" {
		t.Errorf("dial to a black hole: %s (%s), want ECONNREFUSED after the dial timeout", r.Errno, r.Err)
	}
	waitFor(t, "no handshake in flight", func() bool { return e.st.Stats().Handshakes == 0 })
	e.mustDo(cmd{Op: "dial", Addr: addr})
	if st := e.st.Stats(); st.RefusedHandshakes != 1 || st.RefusedUpstream != 1 {
		t.Errorf("Stats() = %+v, want 1 refused by the handshake limit, 1 by the upstream", st)
	}
}

// TestBlackHoleStallsNothing: dials that never answer hold only their own
// connections, each refused after Limits.DialTimeout; another connection
// goes through meanwhile at once.
func TestBlackHoleStallsNothing(t *testing.T) {
	up := listen(t, echo)
	const timeout = 2 * time.Second
	e := newEnv(t, egress.Limits{DialTimeout: timeout},
		[]string{"echo.test:80", "black.test:80"},
		map[string]string{"echo.test:80": up, "black.test:80": "block"})
	black, addr := e.addr("black.test", 80), e.addr("echo.test", 80)
	ids := []string{"b1", "b2", "b3", "b4"}
	for _, id := range ids {
		e.mustDo(cmd{Op: "dialbg", ID: id, Addr: black, MS: 10000})
	}
	waitFor(t, "4 handshakes in flight", func() bool { return e.st.Stats().Handshakes == 4 })
	r := e.mustDo(cmd{Op: "dial", ID: "c", Addr: addr})
	if r.MS > 500 {
		t.Errorf("dial beside 4 black holes took %.1f ms", r.MS)
	}
	e.mustDo(cmd{Op: "send", ID: "c", Data: "ok"})
	e.mustDo(cmd{Op: "recv", ID: "c", N: 2})
	for _, id := range ids {
		r := e.do(cmd{Op: "result", ID: id, MS: 10000})
		if r.Errno != "ECONNREFUSED" || r.MS < float64(timeout.Milliseconds())*0.9 {
			t.Errorf("dial %s to a black hole: %s (%s) after %.0f ms, want ECONNREFUSED after %v", id, r.Errno, r.Err, r.MS, timeout)
		}
	}
	var n int
	for _, c := range e.rec.connects() {
		if c.Name == "black.test" && c.Verdict == audit.VerdictDeny && strings.HasPrefix(c.Reason, "upstream: no connection within") {
			n++
		}
	}
	if n != len(ids) {
		t.Errorf("%d dial timeouts recorded, want %d", n, len(ids))
	}
}

// TestIdleTimeout: traffic either way keeps a connection alive past
// Limits.IdleTimeout; silence for that long ends it, recorded.
func TestIdleTimeout(t *testing.T) {
	up := listen(t, echo)
	const idle = 400 * time.Millisecond
	e := newEnv(t, egress.Limits{IdleTimeout: idle}, []string{"echo.test:80"}, map[string]string{"echo.test:80": up})
	e.mustDo(cmd{Op: "dial", ID: "c", Addr: e.addr("echo.test", 80)})
	start := time.Now()
	for time.Since(start) < 3*idle {
		e.mustDo(cmd{Op: "send", ID: "c", Data: "."})
		e.mustDo(cmd{Op: "recv", ID: "c", N: 1})
		time.Sleep(idle / 4)
	}
	r := e.do(cmd{Op: "readall", ID: "c", MS: 5000})
	if r.Errno != "ECONNRESET" || r.MS > float64(3*idle.Milliseconds()) {
		t.Errorf("read on an idle connection: %s (%s) after %.0f ms, want ECONNRESET after about %v", r.Errno, r.Err, r.MS, idle)
	}
	waitFor(t, "NetClose", func() bool { return len(e.rec.closes()) == 1 })
	if c := e.rec.closes()[0]; c.Reason != "idle timeout" {
		t.Errorf("NetClose = %+v, want reason idle timeout", c)
	}
}

// TestECN: SYNs that ask for ECN (ECE and CWR set, as Linux sends them
// with net.ipv4.tcp_ecn=1) are answered, not reset, as old netstack
// builds did.
func TestECN(t *testing.T) {
	up := listen(t, echo)
	e := newEnv(t, egress.Limits{}, []string{"echo.test:80"}, map[string]string{"echo.test:80": up})
	e.mustDo(cmd{Op: "ecn"})
	e.mustDo(cmd{Op: "dial", ID: "c", Addr: e.addr("echo.test", 80)})
	e.mustDo(cmd{Op: "send", ID: "c", Data: "ecn"})
	if r := e.mustDo(cmd{Op: "recv", ID: "c", N: 3}); r.Data != "ecn" {
		t.Errorf("echo with ECN = %q, want ecn", r.Data)
	}
}
