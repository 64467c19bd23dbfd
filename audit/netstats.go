package audit

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// NetStats aggregates the network records of a ledger (net_dns,
// net_connect, net_close) for `vm-run audit stats`. Denials counted
// include the identical ones the stack refused without a record of their
// own (the records' Suppressed), so that rate limiting hides nothing from
// the counts; Suppressed says how many of them there were.
type NetStats struct {
	// Connections counts the connections the sandbox opened: Allowed,
	// WouldDeny and Denied together.
	Connections int `json:"connections"`
	Allowed     int `json:"allowed"`
	// WouldDeny counts connections a policy in observe mode let through.
	WouldDeny  int `json:"would_deny,omitempty"`
	Denied     int `json:"denied"`
	Suppressed int `json:"suppressed,omitempty"`
	// Closed counts net_close records; the bytes are their sums, of TCP
	// payload, out from the sandbox and in to it.
	Closed   int    `json:"closed"`
	BytesOut uint64 `json:"bytes_out"`
	BytesIn  uint64 `json:"bytes_in"`
	// DNSQuestions counts the questions the stub answered (DNSAnswered)
	// and refused with NXDOMAIN (DNSDenied, suppressed included).
	DNSQuestions  int `json:"dns_questions"`
	DNSAnswered   int `json:"dns_answered"`
	DNSDenied     int `json:"dns_denied"`
	DNSSuppressed int `json:"dns_suppressed,omitempty"`
	// Destinations are keyed by [NetConnect.Destination]: "name:port", or
	// the address of a connection to an address literal.
	Destinations map[string]*DestStats `json:"destinations"`
	// DeniedNames are the names the stub refused, keyed by name.
	DeniedNames map[string]*NameStats `json:"denied_names"`

	// open maps the session and number of each allowed connection not
	// yet closed to its destination, for a close record without a name.
	open map[connKey]string
}

// DestStats aggregates the connections to one destination.
type DestStats struct {
	Destination string `json:"destination"`
	Allowed     int    `json:"allowed"`
	WouldDeny   int    `json:"would_deny,omitempty"`
	Denied      int    `json:"denied"`
	Suppressed  int    `json:"suppressed,omitempty"`
	Closed      int    `json:"closed"`
	BytesOut    uint64 `json:"bytes_out"`
	BytesIn     uint64 `json:"bytes_in"`
	// DurationNS is the connections' lives added up.
	DurationNS int64 `json:"duration_ns"`
	// Reasons counts the denials by reason.
	Reasons map[string]int `json:"reasons,omitempty"`
}

// NameStats aggregates the refused DNS questions about one name.
type NameStats struct {
	Name       string `json:"name"`
	Denied     int    `json:"denied"`
	Suppressed int    `json:"suppressed,omitempty"`
	// Types counts the questions by type ("A", "AAAA", ...).
	Types map[string]int `json:"types"`
}

type connKey struct {
	session string
	conn    uint64
}

func newNetStats() *NetStats {
	return &NetStats{Destinations: map[string]*DestStats{}, DeniedNames: map[string]*NameStats{}, open: map[connKey]string{}}
}

// add counts r, a network record. A record whose data does not decode is
// counted in Stats.Events only.
func (n *NetStats) add(r Record) {
	switch r.Event {
	case EventNetDNS:
		d, err := ReadEvent[NetDNS](r)
		if err != nil {
			return
		}
		n.DNSQuestions += 1 + d.Suppressed
		if d.Verdict != VerdictDeny {
			n.DNSAnswered++
			return
		}
		n.DNSDenied += 1 + d.Suppressed
		n.DNSSuppressed += d.Suppressed
		ns := n.DeniedNames[d.Name]
		if ns == nil {
			ns = &NameStats{Name: d.Name, Types: map[string]int{}}
			n.DeniedNames[d.Name] = ns
		}
		ns.Denied += 1 + d.Suppressed
		ns.Suppressed += d.Suppressed
		ns.Types[d.Type] += 1 + d.Suppressed
	case EventNetConnect:
		c, err := ReadEvent[NetConnect](r)
		if err != nil {
			return
		}
		ds := n.dest(c.Destination())
		n.Connections += 1 + c.Suppressed
		switch c.Verdict {
		case VerdictAllow, VerdictWouldDeny:
			if c.Verdict == VerdictAllow {
				n.Allowed++
				ds.Allowed++
			} else {
				n.WouldDeny++
				ds.WouldDeny++
			}
			if c.Conn != 0 {
				n.open[connKey{r.Session, c.Conn}] = ds.Destination
			}
		default:
			n.Denied += 1 + c.Suppressed
			n.Suppressed += c.Suppressed
			ds.Denied += 1 + c.Suppressed
			ds.Suppressed += c.Suppressed
			if ds.Reasons == nil {
				ds.Reasons = map[string]int{}
			}
			ds.Reasons[c.Reason] += 1 + c.Suppressed
		}
	case EventNetClose:
		c, err := ReadEvent[NetClose](r)
		if err != nil {
			return
		}
		key := connKey{r.Session, c.Conn}
		dest, ok := n.open[key]
		if ok {
			delete(n.open, key)
		} else {
			// Its connect record is filtered out, or was never written.
			dest = c.Name + ":" + strconv.FormatUint(uint64(c.Port), 10)
		}
		ds := n.dest(dest)
		n.Closed++
		n.BytesOut += c.BytesOut
		n.BytesIn += c.BytesIn
		ds.Closed++
		ds.BytesOut += c.BytesOut
		ds.BytesIn += c.BytesIn
		ds.DurationNS += c.DurationNS
	}
}

func (n *NetStats) dest(d string) *DestStats {
	ds := n.Destinations[d]
	if ds == nil {
		ds = &DestStats{Destination: d}
		n.Destinations[d] = ds
	}
	return ds
}

// TopDestinations returns up to limit destinations, most connections
// first, then most bytes, then by name.
func (n *NetStats) TopDestinations(limit int) []*DestStats {
	out := make([]*DestStats, 0, len(n.Destinations))
	for _, ds := range n.Destinations {
		out = append(out, ds)
	}
	conns := func(d *DestStats) int { return d.Allowed + d.WouldDeny + d.Denied }
	slices.SortFunc(out, func(a, b *DestStats) int {
		return cmp.Or(conns(b)-conns(a), cmp.Compare(b.BytesIn+b.BytesOut, a.BytesIn+a.BytesOut),
			strings.Compare(a.Destination, b.Destination))
	})
	return out[:min(max(limit, 0), len(out))]
}

// TopDeniedNames returns up to limit refused names, most refusals first.
func (n *NetStats) TopDeniedNames(limit int) []*NameStats {
	out := make([]*NameStats, 0, len(n.DeniedNames))
	for _, ns := range n.DeniedNames {
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b *NameStats) int {
		return cmp.Or(b.Denied-a.Denied, strings.Compare(a.Name, b.Name))
	})
	return out[:min(max(limit, 0), len(out))]
}

// TopReason returns the reason behind most of the destination's denials.
func (d *DestStats) TopReason() string { return topKey(d.Reasons) }

// TypeList returns the question types asked about the name, in order.
func (s *NameStats) TypeList() []string {
	out := make([]string, 0, len(s.Types))
	for t := range s.Types {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// topKey returns the key with the highest count, the least such key on a
// tie.
func topKey(m map[string]int) string {
	best, n := "", 0
	for k, c := range m {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}
