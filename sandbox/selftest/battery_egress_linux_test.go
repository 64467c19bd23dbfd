package selftest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
)

// requireTUN skips, or fails when CI=true, where this user cannot open
// the TUN device that network mode egress needs.
func requireTUN(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return
	}
	msg := fmt.Sprintf("network mode egress needs the TUN device /dev/net/tun open to uid %d: %v", os.Getuid(), err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// egressProfile writes a profile in network mode egress on top of strict:
// a name nothing resolves on the host, and host-loopback on a port where
// nothing listens, so that the allowlist is not empty and reaches nothing
// the battery attacks.
func egressProfile(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().(*net.TCPAddr).Port
	l.Close()
	path := filepath.Join(reachableDir(t), "strict-egress.yaml")
	bestEffort := ""
	if os.Getuid() != 0 {
		// strict's limits need a cgroup, which a user gets only where
		// one is delegated to it (not on every machine the tests run
		// on); without one strict refuses to start at all. The battery
		// tests the sandbox's isolation, which best effort leaves whole
		// on a kernel with every Landlock feature strict requires, and
		// any feature missing would show as an escape.
		bestEffort = "best_effort: true\n"
	}
	yaml := fmt.Sprintf(`name: strict-egress
description: strict, with network egress to a name and a host-loopback port that lead nowhere
extends: strict
%snetwork:
  mode: egress
  allow:
    - api.selftest.example:443
    - host-loopback:%d
`, bestEffort, dead)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBatteryEgress runs the whole battery, the egress attacks included,
// against strict with network mode egress: nothing may escape, every
// refusal of the stack must be in its records, and every attack must be
// proven possible without the sandbox (or without the allowlist) or shown
// impossible on this machine.
func TestBatteryEgress(t *testing.T) {
	requireTUN(t)
	bin := vmRunBinary(t)
	isolateHome(t)
	if inReachableCopy(t, bin) {
		return
	}
	rep, err := Run(context.Background(), Options{ProfileName: egressProfile(t), Self: bin, Env: []string{}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b bytes.Buffer
	rep.WriteTable(&b)
	b.WriteString("\n")
	rep.WriteDetails(&b)
	t.Log("\n" + b.String())
	want := len(battery()) + len(egressBattery())
	if len(rep.Rows) != want {
		t.Errorf("report has %d rows, want one per attack (%d)", len(rep.Rows), want)
	}
	egressRows := map[string]bool{}
	for _, a := range egressBattery() {
		egressRows[a.name] = true
	}
	for _, row := range rep.Rows {
		switch {
		case row.Got == GotSkipped && row.Why != "" && !egressRows[row.Attack]:
		case row.Got != GotBlocked:
			t.Errorf("%s: got %s, want %s: %s", row.Attack, row.Got, GotBlocked, row.Detail)
		}
		switch row.Baseline {
		case Proven, NotRun:
		case Impossible:
			if row.Why == "" {
				t.Errorf("%s: baseline impossible without a reason", row.Attack)
			}
		default:
			t.Errorf("%s: baseline %s, want %s: %s", row.Attack, row.Baseline, Proven, row.BaselineDetail)
		}
		// Every refusal by the stack must be in its records.
		if egressRows[row.Attack] && strings.Contains(row.Mechanism, "ECONNREFUSED") &&
			!strings.HasSuffix(row.Mechanism, ", deny recorded") {
			t.Errorf("%s: refused (%s) without a record of it: %s", row.Attack, row.Mechanism, row.Detail)
		}
	}
	if err := rep.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

// TestEvidence shows the parent's checks failing where they must: a
// refusal the stack did not record, a name the battery's resolver was
// asked for.
func TestEvidence(t *testing.T) {
	d, err := startDNSFixture("tok")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fx := &fixtures{egress: egressFixtures{dns: d, unlisted: "x.example"}}
	e := runEnv{fx: fx}
	deny := audit.NetConnect{Proto: "tcp", Address: "10.0.0.1:80", Port: 80, Verdict: audit.VerdictDeny, Reason: "no rule"}
	allow := deny
	allow.Verdict = audit.VerdictAllow
	dnsDeny := audit.NetDNS{Name: "x.example", Type: "A", Verdict: audit.VerdictDeny}
	tests := []struct {
		name    string
		check   func(runEnv, evidence) finding
		ev      evidence
		ask     bool // ask the resolver for the name first
		missing bool
		escaped bool
	}{
		{"recorded", checkRefusals(""), evidence{refused: []string{"tcp 10.0.0.1:80"}, records: []audit.Event{deny}}, false, false, false},
		{"not recorded", checkRefusals(""), evidence{refused: []string{"tcp 10.0.0.1:80"}}, false, true, false},
		{"recorded as allowed", checkRefusals(""), evidence{refused: []string{"tcp 10.0.0.1:80"}, records: []audit.Event{allow}}, false, true, false},
		{"another reason", checkRefusals("never handed out"), evidence{refused: []string{"tcp 10.0.0.1:80"}, records: []audit.Event{deny}}, false, true, false},
		{"name recorded, never forwarded", checkResolve, evidence{refused: []string{"dns x.example"}, records: []audit.Event{dnsDeny}, fx: fx, watched: true}, false, false, false},
		{"name forwarded", checkResolve, evidence{refused: []string{"dns x.example"}, records: []audit.Event{dnsDeny}, fx: fx, watched: true}, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ask {
				v, _ := runProbe(t, "dns", "server="+d.addr, "name=x.example", "token=tok")
				if !v.Escaped {
					t.Fatalf("asking the fixture directly = %+v, want an answer", v)
				}
			}
			f := tt.check(e, tt.ev)
			if (f.missing != "") != tt.missing || (f.escaped != "") != tt.escaped {
				t.Errorf("check = %+v, want missing %v, escaped %v", f, tt.missing, tt.escaped)
			}
		})
	}
}

// TestEgressProbesUnsandboxed runs the egress probes against the
// battery's loopback fixtures and against a port where nothing listens:
// each must see the fixture answer, and must report a refusal as one.
func TestEgressProbesUnsandboxed(t *testing.T) {
	fx := &fixtures{tokens: map[string]string{}}
	defer fx.close()
	l, err := fx.serve("tcp4", "127.0.0.1:0", "tcp")
	if err != nil {
		t.Fatal(err)
	}
	fx.tcpAddr = l.Addr().String()
	dead, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	if err := fx.startEgress(egressTestProfile()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		args        []string
		wantEscaped bool
		wantRefused string
	}{
		{"dial the listener", []string{"dial", "addr=" + fx.tcpAddr, "token=" + fx.tokens["tcp"]}, true, ""},
		{"dial a dead port", []string{"dial", "addr=" + deadAddr}, false, "tcp " + deadAddr},
		{"udp echo", []string{"udp", "addr=" + fx.egress.udpAddr, "token=" + fx.tokens["udp"]}, true, ""},
		{"dns fixture", []string{"dns", "server=" + fx.egress.dns.addr, "name=a.example", "token=" + fx.tokens["dns"]}, true, ""},
		{"dns on a dead port", []string{"dns", "server=" + deadAddr, "name=a.example"}, false, "tcp " + deadAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, code := runProbe(t, tt.args...)
			if code != 0 || v.Escaped != tt.wantEscaped {
				t.Fatalf("probe %q = %+v, exit %d; want escaped %v", tt.args, v, code, tt.wantEscaped)
			}
			if tt.wantRefused != "" && !strings.Contains(strings.Join(v.Refused, ","), tt.wantRefused) {
				t.Errorf("probe %q refused %q, want %q among them", tt.args, v.Refused, tt.wantRefused)
			}
		})
	}
	// The probe stops at the first answer, over UDP; TCP is asked alike.
	server := netip.MustParseAddrPort(fx.egress.dns.addr)
	for _, network := range []string{"udp", "tcp"} {
		m, err := dnsExchange(network, server, "b.example", dnsmessage.TypeTXT, answerTimeout)
		if err != nil || !txtHolds(m, fx.tokens["dns"]) {
			t.Errorf("dnsExchange(%q, %s) = %v, %v; want the fixture's token", network, server, m, err)
		}
	}
	if n := fx.egress.dns.count("a.example"); n != 1 {
		t.Errorf("the DNS fixture counted %d questions for a.example, want 1", n)
	}
	if n := fx.egress.dns.count("b.example"); n != 2 {
		t.Errorf("the DNS fixture counted %d questions for b.example, want 2 (UDP and TCP)", n)
	}
}

func egressTestProfile() *profiles.Profile {
	return &profiles.Profile{Network: profiles.Network{Mode: profiles.NetworkEgress}}
}
