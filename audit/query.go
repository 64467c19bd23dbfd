package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// DecisionFields returns the fields `vm-run audit show` and `stats` read
// from a record's data: tool, verdict, rule and reason. ok is false when the
// data has no tool.
func (r Record) DecisionFields() (d Decision, ok bool) {
	var f struct {
		Tool    string `json:"tool"`
		Verdict string `json:"verdict"`
		Rule    string `json:"rule"`
		Reason  string `json:"reason"`
	}
	if json.Unmarshal(r.Data, &f) != nil || f.Tool == "" {
		return Decision{}, false
	}
	return Decision{Tool: f.Tool, Verdict: Verdict(f.Verdict), Rule: f.Rule, Reason: f.Reason}, true
}

// Filter selects records; a zero field matches every record.
type Filter struct {
	Session string // a prefix of the session id
	Event   string // the event type, or a glob (path.Match) of types: "approval_*"
	Tool    string // a glob (path.Match) on the tool name
	// Verdict selects decisions, and the net_dns and net_connect records
	// ([NetDNS], [NetConnect]) when Tool is empty, by their verdict.
	Verdict string
	Since   time.Time // records at or after
	Until   time.Time // records before
}

// Validate checks the tool and event globs.
func (f Filter) Validate() error {
	if _, err := path.Match(f.Tool, ""); err != nil {
		return fmt.Errorf("tool pattern %q: %w", f.Tool, err)
	}
	if _, err := path.Match(f.Event, ""); err != nil {
		return fmt.Errorf("event pattern %q: %w", f.Event, err)
	}
	return nil
}

// Match reports whether r passes the filter.
func (f Filter) Match(r Record) bool {
	switch {
	case f.Session != "" && !strings.HasPrefix(r.Session, f.Session),
		f.Event != "" && r.Event != f.Event && !eventMatch(f.Event, r.Event),
		!f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	}
	if f.Tool == "" && f.Verdict == "" {
		return true
	}
	if f.Tool == "" && (r.Event == EventNetDNS || r.Event == EventNetConnect) {
		// The network records' verdicts are those of decisions; they
		// name no tool.
		var v struct {
			Verdict string `json:"verdict"`
		}
		return json.Unmarshal(r.Data, &v) == nil && v.Verdict == f.Verdict
	}
	d, ok := r.DecisionFields()
	if !ok {
		return false
	}
	if f.Tool != "" {
		if m, _ := path.Match(f.Tool, d.Tool); !m {
			return false
		}
	}
	return f.Verdict == "" || string(d.Verdict) == f.Verdict
}

func eventMatch(pattern, event string) bool {
	ok, _ := path.Match(pattern, event)
	return ok
}

// ReadRecords calls fn for every line of r, with the record ParseLine makes
// of it or the reason it could not. Line numbers count from 1. It stops at
// the first error fn returns.
func ReadRecords(r io.Reader, fn func(line int, raw []byte, rec Record, err error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineSize+1)
	n := 0
	for sc.Scan() {
		n++
		rec, err := ParseLine(sc.Bytes())
		if err := fn(n, sc.Bytes(), rec, err); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read ledger line %d: %w", n+1, err)
	}
	return nil
}

// LastLines returns up to n complete lines from the end of the first size
// bytes of f, oldest first, reading backwards; with keep, only lines keep
// accepts count. A final line without a newline is left out: it may be a
// write in progress.
func LastLines(f io.ReaderAt, size int64, n int, keep func([]byte) bool) ([][]byte, error) {
	const step = 64 << 10
	var out [][]byte
	var buf []byte // bytes [pos, pos+len(buf)) of f, not yet looked at
	pos := size
	read := func() error {
		k := min(pos, step)
		chunk := make([]byte, int(k)+len(buf))
		if _, err := f.ReadAt(chunk[:k], pos-k); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read ledger: %w", err)
		}
		copy(chunk[k:], buf)
		buf, pos = chunk, pos-k
		if len(buf) > MaxLineSize+2*step {
			return fmt.Errorf("read ledger: a line near byte %d is longer than %d bytes", pos, MaxLineSize)
		}
		return nil
	}
	trimmed := false // the unterminated final line, if any, is dropped
	for len(out) < n {
		if !trimmed {
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				buf, trimmed = buf[:i+1], true
				continue
			}
		}
		if !trimmed || len(buf) == 0 {
			if pos == 0 {
				break
			}
			if err := read(); err != nil {
				return nil, err
			}
			continue
		}
		j := bytes.LastIndexByte(buf[:len(buf)-1], '\n')
		if j < 0 && pos > 0 {
			if err := read(); err != nil {
				return nil, err
			}
			continue
		}
		if line := buf[j+1 : len(buf)-1]; len(line) > 0 && (keep == nil || keep(line)) {
			out = append(out, bytes.Clone(line))
		}
		buf = buf[:j+1]
	}
	slices.Reverse(out)
	return out, nil
}

// Stats aggregates records for `vm-run audit stats`.
type Stats struct {
	Records  int                      `json:"records"`
	First    time.Time                `json:"first"`
	Last     time.Time                `json:"last"`
	Events   map[string]int           `json:"events"`
	Verdicts map[string]int           `json:"verdicts"`
	Sessions map[string]*SessionStats `json:"sessions"`
	Tools    map[string]*ToolStats    `json:"tools"`
	// Network counts the network records (net_dns, net_connect,
	// net_close), when there are any.
	Network *NetStats `json:"network,omitempty"`

	argv map[string][]string // commands by session, from session_start
}

// SessionStats aggregates the records of one session.
type SessionStats struct {
	Session string `json:"session"`
	Host    string `json:"host"`
	Profile string `json:"profile"`
	// Argv is the command the session ran, from its session_start record
	// (empty when the filter or the ledger left that record out).
	Argv      []string  `json:"argv,omitempty"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Records   int       `json:"records"`
	Decisions int       `json:"decisions"`
	Denied    int       `json:"denied"`
}

// ToolStats aggregates the decisions about one tool.
type ToolStats struct {
	Tool      string         `json:"tool"`
	Decisions int            `json:"decisions"`
	Allowed   int            `json:"allowed"`
	Denied    int            `json:"denied"`
	Asked     int            `json:"asked,omitempty"`      // held for a person (VerdictAsk)
	WouldDeny int            `json:"would_deny,omitempty"` // observe mode
	DenyRules map[string]int `json:"deny_rules"`           // denials by rule
}

// NewStats returns empty Stats.
func NewStats() *Stats {
	return &Stats{Events: map[string]int{}, Verdicts: map[string]int{},
		Sessions: map[string]*SessionStats{}, Tools: map[string]*ToolStats{}}
}

// Add counts r.
func (s *Stats) Add(r Record) {
	s.Records++
	if s.First.IsZero() || r.Time.Before(s.First) {
		s.First = r.Time
	}
	if r.Time.After(s.Last) {
		s.Last = r.Time
	}
	s.Events[r.Event]++
	ss := s.Sessions[r.Session]
	if ss == nil {
		ss = &SessionStats{Session: r.Session, Host: r.Host, Profile: r.Profile, First: r.Time, Argv: s.argv[r.Session]}
		s.Sessions[r.Session] = ss
	}
	ss.Records++
	ss.Last = r.Time
	s.Command(r)
	switch r.Event {
	case EventNetDNS, EventNetConnect, EventNetClose:
		if s.Network == nil {
			s.Network = newNetStats()
		}
		s.Network.add(r)
		return
	}
	d, ok := r.DecisionFields()
	if !ok || r.Event != EventDecision {
		return
	}
	s.Verdicts[string(d.Verdict)]++
	ss.Decisions++
	ts := s.Tools[d.Tool]
	if ts == nil {
		ts = &ToolStats{Tool: d.Tool, DenyRules: map[string]int{}}
		s.Tools[d.Tool] = ts
	}
	ts.Decisions++
	switch d.Verdict {
	case VerdictAllow:
		ts.Allowed++
	case VerdictDeny:
		ts.Denied++
		ss.Denied++
		ts.DenyRules[d.Rule]++
	case VerdictWouldDeny:
		ts.WouldDeny++
	case VerdictAsk:
		ts.Asked++
	}
}

// Command notes the command of r's session if r is its session_start.
// Add does so for the records it counts; a reader that filters records
// may pass it the others, so that sessions still show their command.
func (s *Stats) Command(r Record) {
	if r.Event != EventSessionStart {
		return
	}
	st, err := ReadEvent[SessionStart](r)
	if err != nil {
		return
	}
	if s.argv == nil {
		s.argv = map[string][]string{}
	}
	s.argv[r.Session] = st.Argv
	if ss := s.Sessions[r.Session]; ss != nil {
		ss.Argv = st.Argv
	}
}

// SessionList returns the sessions, earliest first.
func (s *Stats) SessionList() []*SessionStats {
	out := make([]*SessionStats, 0, len(s.Sessions))
	for _, ss := range s.Sessions {
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b *SessionStats) int {
		return cmp.Or(a.First.Compare(b.First), strings.Compare(a.Session, b.Session))
	})
	return out
}

// ToolList returns the tools, most decisions first.
func (s *Stats) ToolList() []*ToolStats {
	out := make([]*ToolStats, 0, len(s.Tools))
	for _, ts := range s.Tools {
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b *ToolStats) int {
		return cmp.Or(b.Decisions-a.Decisions, strings.Compare(a.Tool, b.Tool))
	})
	return out
}

// MostDenied returns up to n tools with denials, most denials first.
func (s *Stats) MostDenied(n int) []*ToolStats {
	var out []*ToolStats
	for _, ts := range s.Tools {
		if ts.Denied > 0 {
			out = append(out, ts)
		}
	}
	slices.SortFunc(out, func(a, b *ToolStats) int {
		return cmp.Or(b.Denied-a.Denied, strings.Compare(a.Tool, b.Tool))
	})
	return out[:min(n, len(out))]
}

// TopRule returns the rule behind most of the tool's denials.
func (t *ToolStats) TopRule() string {
	best, n := "", 0
	for r, c := range t.DenyRules {
		if c > n || (c == n && r < best) {
			best, n = r, c
		}
	}
	return best
}
