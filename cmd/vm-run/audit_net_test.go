package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
)

// netSession is what one session of a sandbox in egress mode records:
// what the stack of package netns/stack writes, as the records of
// audit/net.go.
func netSession(hostile string) []audit.Event {
	return []audit.Event{
		audit.NetDNS{Name: "api.github.com", Type: "A", Verdict: audit.VerdictAllow, Rule: "api.github.com:443", Answer: "198.18.0.4"},
		audit.NetDNS{Name: "api.github.com", Type: "AAAA", Verdict: audit.VerdictAllow, Rule: "api.github.com:443"},
		audit.NetConnect{Conn: 3, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: audit.VerdictAllow,
			Rule: "api.github.com:443", SNI: "api.github.com", Dialed: "140.82.112.5:443"},
		audit.NetClose{Conn: 3, Name: "api.github.com", Port: 443, BytesOut: 1200, BytesIn: 45000, DurationNS: 2.1e9},
		audit.NetConnect{Conn: 4, Proto: "tcp", Name: "files.slack.com", Address: "198.18.0.6:443", Port: 443, Verdict: audit.VerdictAllow,
			Rule: "*.slack.com:443", SNI: "files.slack.com", Dialed: "3.5.6.7:443"},
		audit.NetClose{Conn: 4, Name: "files.slack.com", Port: 443, BytesOut: 10, BytesIn: 20, DurationNS: 3e6, Reason: "idle timeout"},
		audit.NetConnect{Conn: 5, Proto: "tcp", Address: "10.0.0.5:5432", Port: 5432, Verdict: audit.VerdictAllow, Rule: "10.0.0.5:5432",
			Dialed: "10.0.0.5:5432"},
		audit.NetClose{Conn: 5, Port: 5432, BytesOut: 1, BytesIn: 2, DurationNS: 1e3},
		audit.NetConnect{Proto: "tcp", Name: "example.com", Address: "198.18.0.5:80", Port: 80, Verdict: audit.VerdictDeny,
			Reason: "no rule allows example.com:80"},
		audit.NetConnect{Proto: "tcp", Name: "example.com", Address: "198.18.0.5:80", Port: 80, Verdict: audit.VerdictDeny,
			Reason: "no rule allows example.com:80", Suppressed: 12},
		audit.NetDNS{Name: "telemetry.example", Type: "A", Verdict: audit.VerdictDeny, Suppressed: 4},
		// What a hostile program can put in the ledger: the names it asks
		// for, the SNI it sends, and, through them, the reasons.
		audit.NetDNS{Name: "evil" + hostile + ".example", Type: "A" + hostile, Verdict: audit.VerdictDeny},
		audit.NetConnect{Conn: 6, Proto: "tcp", Name: "evil" + hostile + ".example", Address: "198.18.0.9:443", Port: 443,
			Verdict: audit.VerdictDeny, Reason: "SNI " + hostile + " does not match", SNI: hostile},
		audit.NetClose{Conn: 7, Name: "evil" + hostile, Port: 443, Reason: hostile},
	}
}

// writeNetLedger writes one session with decisions and network records.
func writeNetLedger(t *testing.T, path, session string) {
	t.Helper()
	l, err := audit.Open(path, audit.Options{SessionID: session})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	evs := append([]audit.Event{
		audit.SessionStart{Argv: []string{"server"}, Profile: "egress"},
		audit.Decision{Tool: "fetch", Verdict: audit.VerdictAllow, Rule: "allow-fetch"},
	}, netSession(strings.Join(hostile, "|"))...)
	for _, ev := range append(evs, audit.NewSessionEnd(0, "", 0)) {
		if _, err := l.Log(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditShowNet: each network record prints as one escaped line that
// says what happened, and --event and --verdict select them.
func TestAuditShowNet(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	writeNetLedger(t, ledger, "0123456789abcdef")
	tests := []struct {
		args []string
		want []string // regular expressions, one a line after the header
	}{
		{[]string{"--event", "net_connect"}, []string{
			`net_connect +- +allow +#3 tcp api\.github\.com:443 \(198\.18\.0\.4\), rule api\.github\.com:443, dialed 140\.82\.112\.5:443, sni api\.github\.com$`,
			`net_connect +- +allow +#4 tcp files\.slack\.com:443 \(198\.18\.0\.6\), rule \*\.slack\.com:443, dialed 3\.5\.6\.7:443, sni files\.slack\.com$`,
			`net_connect +- +allow +#5 tcp 10\.0\.0\.5:5432, rule 10\.0\.0\.5:5432, dialed 10\.0\.0\.5:5432$`,
			`net_connect +- +deny +tcp example\.com:80 \(198\.18\.0\.5\): no rule allows example\.com:80$`,
			`net_connect +- +deny +tcp example\.com:80 \(198\.18\.0\.5\): no rule allows example\.com:80 \(\+12 identical denials suppressed\)$`,
			`net_connect +- +deny +#6 tcp evil\\x1b\]52;c;.*\.example:443 \(198\.18\.0\.9\): SNI \\x1b.* does not match, sni \\x1b`,
		}},
		{[]string{"--event", "net_dns"}, []string{
			`net_dns +- +allow +A api\.github\.com -> 198\.18\.0\.4, rule api\.github\.com:443$`,
			`net_dns +- +allow +AAAA api\.github\.com -> no address, rule api\.github\.com:443$`,
			`net_dns +- +deny +A telemetry\.example -> NXDOMAIN \(\+4 identical denials suppressed\)$`,
			`net_dns +- +deny +A\\x1b\]52;.* evil\\x1b.* -> NXDOMAIN$`,
		}},
		{[]string{"--event", "net_close"}, []string{
			`net_close +- +- +#3 api\.github\.com:443 out 1\.2 kB in 45 kB 2\.1s$`,
			`net_close +- +- +#4 files\.slack\.com:443 out 10 B in 20 B 3ms \(idle timeout\)$`,
			`net_close +- +- +#5 port 5432 out 1 B in 2 B 1µs$`,
			`net_close +- +- +#7 evil\\x1b.*:443 out 0 B in 0 B 0s \(\\x1b`,
		}},
		{[]string{"--verdict", "deny"}, []string{
			`net_connect .*example\.com:80.*no rule`,
			`net_connect .*example\.com:80.*suppressed`,
			`net_dns .*telemetry\.example`,
			`net_dns .*evil`,
			`net_connect .*evil`,
		}},
	}
	for _, tt := range tests {
		args := append([]string{"audit", "show", "--ledger", ledger}, tt.args...)
		stdout, stderr := vmRun(t, args...)
		checkTerminalSafe(t, "stdout", stdout)
		checkTerminalSafe(t, "stderr", stderr)
		lines := strings.Split(strings.TrimSuffix(string(stdout), "\n"), "\n")[1:]
		if len(lines) != len(tt.want) {
			t.Errorf("vm-run %q printed %d rows, want %d:\n%s", args, len(lines), len(tt.want), quoteLines(stdout))
			continue
		}
		for i, w := range tt.want {
			if !regexp.MustCompile(w).MatchString(lines[i]) {
				t.Errorf("vm-run %q row %d = %q, want a match for %q", args, i+1, lines[i], w)
			}
		}
	}
}

// TestAuditStatsNet: stats has a network section, counting suppressed
// denials, when there are network records, and none when there are not.
func TestAuditStatsNet(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	writeNetLedger(t, ledger, "0123456789abcdef")
	stdout, stderr := vmRun(t, "audit", "stats", "--ledger", ledger)
	checkTerminalSafe(t, "stdout", stdout)
	checkTerminalSafe(t, "stderr", stderr)
	for _, w := range []string{
		`(?m)^network: 18 connections: 3 allowed, 15 denied \(12 suppressed\); 4 closed, 1\.2 kB out, 45 kB in$`,
		`(?m)^dns: 8 questions: 2 answered, 6 refused \(4 suppressed\)$`,
		`(?m)^DESTINATION +ALLOWED +DENIED +CLOSED +OUT +IN +TOP DENIAL REASON$`,
		// Most connections first: the 1 + 12 denials of example.com.
		`(?m)^DESTINATION.*\nexample\.com:80 +0 +14 \(12 suppressed\) +0 +0 B +0 B +no rule allows example\.com:80\napi\.github\.com:443 +1 +0 +1 +1\.2 kB +45 kB +-$`,
		`(?m)^10\.0\.0\.5:5432 +1 +0 +1 +1 B +2 B +-$`,
		`(?m)^DENIED NAME +QUESTIONS +TYPES\ntelemetry\.example +5 \(4 suppressed\) +A\nevil\\x1b`,
	} {
		if !regexp.MustCompile(w).Match(stdout) {
			t.Errorf("audit stats lacks %q:\n%s", w, quoteLines(stdout))
		}
	}
	// --top bounds the lists.
	stdout, _ = vmRun(t, "audit", "stats", "--ledger", ledger, "--top", "1")
	if m := regexp.MustCompile(`(?m)^DESTINATION.*\n.*\n\n`).Match(stdout); !m {
		t.Errorf("audit stats --top 1 does not list one destination:\n%s", quoteLines(stdout))
	}

	var st struct {
		Network struct {
			Connections  int `json:"connections"`
			Denied       int `json:"denied"`
			Destinations map[string]struct {
				BytesIn uint64 `json:"bytes_in"`
			} `json:"destinations"`
			DeniedNames map[string]struct {
				Denied int `json:"denied"`
			} `json:"denied_names"`
		} `json:"network"`
		TopDestinations []struct {
			Destination string `json:"destination"`
		} `json:"top_destinations"`
	}
	out, _ := vmRun(t, "audit", "stats", "--json", "--ledger", ledger)
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	n := st.Network
	// The name as stored: JSON has each byte that is not UTF-8 as U+FFFD.
	var evil string
	if err := json.Unmarshal(must(json.Marshal("evil"+strings.Join(hostile, "|")+".example")), &evil); err != nil {
		t.Fatal(err)
	}
	if n.Connections != 18 || n.Denied != 15 || n.Destinations["api.github.com:443"].BytesIn != 45000 ||
		n.DeniedNames["telemetry.example"].Denied != 5 || n.DeniedNames[evil].Denied != 1 ||
		len(st.TopDestinations) == 0 || st.TopDestinations[0].Destination != "example.com:80" {
		t.Errorf("stats --json network = %+v, top %+v; want 18 connections, 15 denied, names as stored", n, st.TopDestinations)
	}

	// A ledger without network records has no network section.
	plain := filepath.Join(dir, "plain.jsonl")
	writeHostileLedger(t, plain)
	if out, _ := vmRun(t, "audit", "stats", "--ledger", plain); bytes.Contains(out, []byte("network:")) || bytes.Contains(out, []byte("DESTINATION")) {
		t.Errorf("stats of a ledger without network records shows a network section:\n%s", quoteLines(out))
	}
	if out, _ := vmRun(t, "audit", "stats", "--json", "--ledger", plain); bytes.Contains(out, []byte(`"network"`)) {
		t.Errorf("stats --json of a ledger without network records has a network member")
	}
}
