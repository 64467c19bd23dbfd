package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
)

// This file renders the network records of egress mode (audit/net.go) for
// `vm-run audit show`, `tail` and `stats`. As everywhere in audit.go,
// every string taken from the ledger goes through [textsafe.Escape]: the
// names in these records are the ones the sandboxed program asked for.

// netVerdict returns the verdict of a net_dns or net_connect record, for
// the VERDICT column; ok is false for any other record.
func netVerdict(r audit.Record) (verdict string, ok bool) {
	switch r.Event {
	case audit.EventNetDNS:
		d, err := audit.ReadEvent[audit.NetDNS](r)
		return string(d.Verdict), err == nil
	case audit.EventNetConnect:
		c, err := audit.ReadEvent[audit.NetConnect](r)
		return string(c.Verdict), err == nil
	}
	return "", false
}

// netDetail summarises a network record in one line for the DETAIL
// column; ok is false when r is not one, or its data does not decode.
//
//	A api.github.com -> 198.18.0.4, rule api.github.com:443
//	A telemetry.example -> NXDOMAIN (+4 identical denials suppressed)
//	#3 tcp api.github.com:443 (198.18.0.4), rule api.github.com:443, dialed 140.82.112.5:443, sni api.github.com
//	tcp example.com:80 (198.18.0.5): no rule allows example.com:80 (+12 identical denials suppressed)
//	#3 api.github.com:443 out 1.2 kB in 45 kB 2.1s
func netDetail(r audit.Record) (string, bool) {
	esc := textsafe.Escape
	switch r.Event {
	case audit.EventNetDNS:
		d, err := audit.ReadEvent[audit.NetDNS](r)
		if err != nil {
			return "", false
		}
		answer := "NXDOMAIN"
		switch {
		case d.Answer != "":
			answer = esc(d.Answer)
		case d.Verdict != audit.VerdictDeny:
			answer = "no address"
		}
		s := fmt.Sprintf("%s %s -> %s", orDash(esc(d.Type)), orDash(esc(d.Name)), answer)
		if d.Rule != "" {
			s += ", rule " + esc(d.Rule)
		}
		return s + suppressed(d.Suppressed), true
	case audit.EventNetConnect:
		c, err := audit.ReadEvent[audit.NetConnect](r)
		if err != nil {
			return "", false
		}
		var b strings.Builder
		if c.Conn != 0 {
			fmt.Fprintf(&b, "#%d ", c.Conn)
		}
		b.WriteString(orDash(esc(c.Proto)) + " " + esc(c.Destination()))
		if c.Name != "" && c.Address != "" {
			// The synthetic address the name was given: its port is
			// the destination's.
			a := c.Address
			if ap, err := netip.ParseAddrPort(a); err == nil && ap.Port() == c.Port {
				a = ap.Addr().String()
			}
			b.WriteString(" (" + esc(a) + ")")
		}
		if c.Reason != "" {
			b.WriteString(": " + esc(c.Reason))
		}
		for _, f := range []struct{ label, v string }{
			{"rule", c.Rule}, {"dialed", c.Dialed}, {"sni", c.SNI}, {"via", c.Via},
		} {
			if f.v != "" {
				b.WriteString(", " + f.label + " " + esc(f.v))
			}
		}
		return b.String() + suppressed(c.Suppressed), true
	case audit.EventNetClose:
		c, err := audit.ReadEvent[audit.NetClose](r)
		if err != nil {
			return "", false
		}
		dest := "port " + strconv.Itoa(int(c.Port))
		if c.Name != "" {
			dest = esc(c.Name) + ":" + strconv.Itoa(int(c.Port))
		}
		s := fmt.Sprintf("#%d %s out %s in %s %s", c.Conn, dest, byteSize(c.BytesOut), byteSize(c.BytesIn),
			shortDuration(time.Duration(c.DurationNS)))
		if c.Reason != "" {
			s += " (" + esc(c.Reason) + ")"
		}
		return s, true
	}
	return "", false
}

// suppressed notes the identical denials a record stands for.
func suppressed(n int) string {
	switch {
	case n <= 0:
		return ""
	case n == 1:
		return " (+1 identical denial suppressed)"
	}
	return fmt.Sprintf(" (+%d identical denials suppressed)", n)
}

// byteSize writes n bytes in SI units, to two significant digits from
// 1 kB on: "999 B", "1.2 kB", "45 kB", "3.0 GB".
func byteSize(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	x := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB", "PB"} {
		x /= 1000
		if x < 999.5 || unit == "PB" {
			if x < 9.95 {
				return fmt.Sprintf("%.1f %s", x, unit)
			}
			return fmt.Sprintf("%.0f %s", x, unit)
		}
	}
	panic("unreachable")
}

// shortDuration rounds d to about three significant digits: "2.1s",
// "45.3ms", "812µs".
func shortDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// netTops returns the network's top lists for `vm-run audit stats --json`,
// as the text shows them (the whole counts are under "network"), or nil.
func netTops(n *audit.NetStats, top int) ([]*audit.DestStats, []*audit.NameStats) {
	if n == nil {
		return nil, nil
	}
	return n.TopDestinations(top), n.TopDeniedNames(top)
}

// printNetStats prints the network section of `vm-run audit stats`, when
// the records counted hold any network record, on the tabwriter of the
// rest of the tables.
func printNetStats(w io.Writer, n *audit.NetStats, top int) {
	if n == nil {
		return
	}
	esc := textsafe.Escape
	fmt.Fprintf(w, "\nnetwork: %s: %d allowed", plural(uint64(n.Connections), "connection", "connections"), n.Allowed)
	if n.WouldDeny > 0 {
		fmt.Fprintf(w, ", %d would be denied (observe mode)", n.WouldDeny)
	}
	fmt.Fprintf(w, ", %d denied", n.Denied)
	if n.Suppressed > 0 {
		fmt.Fprintf(w, " (%d suppressed)", n.Suppressed)
	}
	fmt.Fprintf(w, "; %d closed, %s out, %s in\n", n.Closed, byteSize(n.BytesOut), byteSize(n.BytesIn))
	fmt.Fprintf(w, "dns: %s: %d answered, %d refused", plural(uint64(n.DNSQuestions), "question", "questions"), n.DNSAnswered, n.DNSDenied)
	if n.DNSSuppressed > 0 {
		fmt.Fprintf(w, " (%d suppressed)", n.DNSSuppressed)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nDESTINATION\tALLOWED\tDENIED\tCLOSED\tOUT\tIN\tTOP DENIAL REASON")
	for _, d := range n.TopDestinations(top) {
		denied := strconv.Itoa(d.Denied)
		if d.Suppressed > 0 {
			denied += fmt.Sprintf(" (%d suppressed)", d.Suppressed)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", orDash(esc(d.Destination)), d.Allowed+d.WouldDeny, denied,
			d.Closed, byteSize(d.BytesOut), byteSize(d.BytesIn), orDash(esc(d.TopReason())))
	}
	if names := n.TopDeniedNames(top); len(names) > 0 {
		fmt.Fprintln(w, "\nDENIED NAME\tQUESTIONS\tTYPES")
		for _, s := range names {
			q := strconv.Itoa(s.Denied)
			if s.Suppressed > 0 {
				q += fmt.Sprintf(" (%d suppressed)", s.Suppressed)
			}
			types := s.TypeList()
			for i, t := range types {
				types[i] = orDash(esc(t))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", orDash(esc(s.Name)), q, strings.Join(types, " "))
		}
	}
}
