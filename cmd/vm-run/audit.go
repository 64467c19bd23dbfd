package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

type auditCmd struct {
	Verify auditVerifyCmd `cmd:"" help:"Check every line of the ledger: exit 0 if intact, 1 at the first bad line, 2 if it cannot be read."`
	Show   auditShowCmd   `cmd:"" help:"Print records, filtered, as a table or as JSON lines."`
	Tail   auditTailCmd   `cmd:"" help:"Print the last records, and with -f the ones that follow."`
	Stats  auditStatsCmd  `cmd:"" help:"Count records by session, tool, verdict and network destination, and show what was denied most."`
}

// ledgerFlags choose the ledger: --ledger, then $VMRUN_LEDGER, then the
// profile's audit.ledger, then the default (audit.ResolvePath).
type ledgerFlags struct {
	Ledger  string `help:"Ledger file (default: $$VMRUN_LEDGER, else the profile's audit.ledger, else ~/.local/state/vm-run/ledger.jsonl, or /var/log/vm-run/ledger.jsonl as root)." placeholder:"PATH" type:"path"`
	Profile string `short:"p" help:"Profile whose audit.ledger to read." placeholder:"NAME|PATH"`
}

func (f ledgerFlags) path() (string, error) {
	var fromProfile string
	if f.Ledger == "" && os.Getenv(audit.EnvLedger) == "" && f.Profile != "" {
		ws, _ := os.Getwd()
		home, _ := os.UserHomeDir()
		p, err := profiles.Load(f.Profile, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
		if err != nil {
			return "", err
		}
		fromProfile = p.Audit.Ledger
	}
	return audit.ResolvePath(f.Ledger, fromProfile)
}

// Exit statuses of `vm-run audit verify`.
const (
	verifyIntact     = 0
	verifyBad        = 1
	verifyUnreadable = 2
)

type auditVerifyCmd struct {
	ledgerFlags `embed:""`
	Anchor      []string `help:"A record known from elsewhere, as SEQ:HASH (say, the head an earlier verify printed): fail unless the ledger still holds it. Repeatable." placeholder:"SEQ:HASH"`
	JSON        bool     `help:"Print the report as JSON."`
}

func (c auditVerifyCmd) Run(stdout io.Writer) error {
	var opts audit.VerifyOptions
	for _, a := range c.Anchor {
		seq, hash, ok := strings.Cut(a, ":")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || err != nil || len(hash) != 64 {
			return &exitStatus{Code: verifyUnreadable, Err: fmt.Errorf("--anchor %q: want SEQ:HASH, a sequence number and 64 hex digits", a)}
		}
		opts.Anchors = append(opts.Anchors, audit.Anchor{Seq: n, Hash: strings.ToLower(hash)})
	}
	path, err := c.path()
	if err != nil {
		return &exitStatus{Code: verifyUnreadable, Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return &exitStatus{Code: verifyUnreadable, Err: fmt.Errorf("open ledger: %w", err)}
	}
	defer f.Close()
	rep, err := audit.VerifyWith(f, opts)
	var ve *audit.VerifyError
	if err != nil && !errors.As(err, &ve) {
		return &exitStatus{Code: verifyUnreadable, Err: fmt.Errorf("ledger %q: %w", path, err)}
	}
	if c.JSON {
		out := struct {
			Ledger string             `json:"ledger"`
			Intact bool               `json:"intact"`
			Report audit.Report       `json:"report"`
			Error  *audit.VerifyError `json:"error,omitempty"`
		}{path, ve == nil, rep, ve}
		b, jerr := json.MarshalIndent(out, "", "  ")
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printVerify(stdout, path, rep, ve)
	}
	if ve != nil {
		return &exitStatus{Code: verifyBad, Err: fmt.Errorf("ledger %q is not intact: %w", path, ve)}
	}
	return nil
}

// printVerify prints the report as text. The messages quote no ledger
// data today; they are escaped all the same, as every text renderer of the
// ledger is (see [textsafe]).
func printVerify(w io.Writer, path string, rep audit.Report, ve *audit.VerifyError) {
	path = textsafe.Escape(path)
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "warning: line %d (byte %d): %s\n", wn.Line, wn.Offset, textsafe.Escape(wn.Msg))
	}
	if ve != nil {
		fmt.Fprintf(w, "ledger %s: NOT INTACT at line %d: %s (%d records before it are intact)\n", path, ve.Line, textsafe.Escape(string(ve.Problem)), rep.Records)
		return
	}
	fmt.Fprintf(w, "ledger %s: intact: %d records, %d lines, %d bytes", path, rep.Records, rep.Lines, rep.Bytes)
	if rep.Recovered > 0 {
		fmt.Fprintf(w, ", %d torn write(s) recovered", rep.Recovered)
	}
	fmt.Fprintln(w)
	if rep.Records > 0 {
		fmt.Fprintf(w, "head: %d:%s\n", rep.HeadSeq, textsafe.Escape(rep.HeadHash))
	}
}

// filterFlags select records for show, tail and stats.
type filterFlags struct {
	Session string `help:"Only sessions whose id starts with this." placeholder:"ID"`
	Event   string `help:"Only this event type, or types matching a glob: session_start, session_end, decision, outcome, net_dns, net_connect, net_close, approval_* (requested, granted, denied, expired), secret_provided, secret_redacted, tool_changed, ledger_recovered, ..." placeholder:"TYPE"`
	Tool    string `help:"Only decisions about tools matching this glob." placeholder:"GLOB"`
	Verdict string `help:"Only decisions, and without --tool net_dns and net_connect records, with this verdict: allow, ask (held for a person), deny, or would_deny (observe mode)." placeholder:"VERDICT"`
	Since   string `help:"Only records at or after this time: RFC 3339, a date (2006-01-02), or a duration before now (90m, 24h)." placeholder:"TIME"`
	Until   string `help:"Only records before this time; the same forms as --since." placeholder:"TIME"`
}

func (f filterFlags) filter(now time.Time) (audit.Filter, error) {
	out := audit.Filter{Session: f.Session, Event: f.Event, Tool: f.Tool, Verdict: f.Verdict}
	switch audit.Verdict(f.Verdict) {
	case "", audit.VerdictAllow, audit.VerdictAsk, audit.VerdictDeny, audit.VerdictWouldDeny:
	default:
		return out, fmt.Errorf("--verdict %q: want allow, ask, deny or would_deny", f.Verdict)
	}
	var err error
	if out.Since, err = parseWhen(f.Since, now); err != nil {
		return out, fmt.Errorf("--since: %w", err)
	}
	if out.Until, err = parseWhen(f.Until, now); err != nil {
		return out, fmt.Errorf("--until: %w", err)
	}
	return out, out.Validate()
}

// parseWhen reads a time as RFC 3339, a local date or date and time, or a
// duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02, or a duration such as 24h)", s)
}

// openFiltered resolves the filter and opens the ledger the flags name.
func openFiltered(l ledgerFlags, ff filterFlags) (audit.Filter, *os.File, error) {
	filter, err := ff.filter(time.Now())
	if err != nil {
		return audit.Filter{}, nil, err
	}
	path, err := l.path()
	if err != nil {
		return audit.Filter{}, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return audit.Filter{}, nil, fmt.Errorf("open ledger: %w", err)
	}
	return filter, f, nil
}

type auditShowCmd struct {
	ledgerFlags `embed:""`
	filterFlags `embed:""`
	JSON        bool `help:"Print the matching lines as they are stored (JSON Lines)."`
}

func (c auditShowCmd) Run(stdout io.Writer) error {
	filter, f, err := openFiltered(c.ledgerFlags, c.filterFlags)
	if err != nil {
		return err
	}
	defer f.Close()
	out := newRecordPrinter(stdout, c.JSON)
	var skipped skippedLines
	err = audit.ReadRecords(f, func(n int, raw []byte, r audit.Record, err error) error {
		if err != nil {
			skipped.add(n, err)
		} else if filter.Match(r) {
			out.print(raw, r)
		}
		return nil
	})
	skipped.report(f.Name())
	return err
}

// skippedLines warns about lines that are not records.
type skippedLines struct {
	n     int
	first []string
}

func (s *skippedLines) add(line int, err error) {
	s.n++
	if len(s.first) < 5 {
		s.first = append(s.first, fmt.Sprintf("line %d: %s", line, textsafe.Escape(err.Error())))
	}
}

func (s *skippedLines) report(path string) {
	for _, m := range s.first {
		fmt.Fprintf(os.Stderr, "vm-run: warning: skipped %s\n", m)
	}
	if s.n > 0 {
		fmt.Fprintf(os.Stderr, "vm-run: hint: %d line(s) of %s are not records; run `vm-run audit verify` to see whether that is a torn write or damage\n", s.n, textsafe.Escape(path))
	}
}

// recordPrinter prints records as the stored lines or as a table. The
// table has fixed column widths rather than tabwriter's, so that the rows
// `tail -f` prints one at a time line up with the ones before.
//
// Every string of the table comes from the ledger, which the sandboxed
// server's traffic writes, and goes through [textsafe.Escape]: printed raw,
// a tool name could clear the operator's screen, rewrite earlier rows or
// set the clipboard. The stored lines (--json) are printed as they are.
type recordPrinter struct {
	w    io.Writer
	json bool
}

const recordRow = "%-6v  %-24s  %-16s  %-18s  %-20s  %-7s  %s\n"

func newRecordPrinter(w io.Writer, asJSON bool) *recordPrinter {
	p := &recordPrinter{w: w, json: asJSON}
	if !asJSON {
		fmt.Fprintf(w, recordRow, "SEQ", "TIME", "SESSION", "EVENT", "TOOL", "VERDICT", "DETAIL")
	}
	return p
}

func (p *recordPrinter) print(raw []byte, r audit.Record) {
	if p.json {
		p.w.Write(append(bytes.Clone(raw), '\n'))
		return
	}
	tool, verdict := "-", "-"
	if d, ok := r.DecisionFields(); ok {
		tool, verdict = textsafe.Escape(d.Tool), orDash(textsafe.Escape(string(d.Verdict)))
	} else if t, v, ok := recordColumns(r); ok { // audit_approval.go
		tool, verdict = t, orDash(textsafe.Escape(v))
	}
	fmt.Fprintf(p.w, recordRow, r.Seq, r.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		textsafe.Escape(r.Session), textsafe.Escape(r.Event), tool, verdict, detail(r))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// detail summarises a record's data in one line, every piece taken from
// the ledger escaped.
func detail(r audit.Record) string {
	if d, ok := otherDetail(r); ok { // audit_approval.go
		return d
	}
	esc := textsafe.Escape
	switch r.Event {
	case audit.EventSessionStart:
		var s audit.SessionStart
		if json.Unmarshal(r.Data, &s) == nil {
			return fmt.Sprintf("profile %s: %s", orDash(esc(s.Profile)), shellQuote(escapeArgv(s.Argv)))
		}
	case audit.EventSessionEnd:
		var s audit.SessionEnd
		if json.Unmarshal(r.Data, &s) == nil {
			d := fmt.Sprintf("exit %d after %s", s.ExitStatus, time.Duration(s.DurationNS).Round(time.Millisecond))
			if s.Signal != "" {
				d += " (" + esc(s.Signal) + ")"
			}
			if s.Error != "" {
				d += ": " + esc(s.Error)
			}
			if l := s.Limits; l != nil && l.OOMKills > 0 {
				d += fmt.Sprintf("; %s by the OOM killer", plural(l.OOMKills, "process", "processes"))
			}
			if l := s.Limits; l != nil && l.PidsMaxHits > 0 {
				d += fmt.Sprintf("; %s refused by the pids limit", plural(l.PidsMaxHits, "fork", "forks"))
			}
			for _, ll := range s.LandlockDenials {
				d += fmt.Sprintf("; Landlock refused %s %s", esc(ll.Blockers), esc(ll.Object))
				if ll.Count > 1 {
					d += fmt.Sprintf(" (%d times)", ll.Count)
				}
			}
			return d
		}
	case audit.EventDecision:
		if d, ok := r.DecisionFields(); ok {
			return strings.TrimSpace(orDash(esc(d.Rule)) + " " + esc(d.Reason))
		}
	case audit.EventRecovered:
		var s audit.Recovered
		if json.Unmarshal(r.Data, &s) == nil {
			return fmt.Sprintf("torn write of %d bytes at byte %d", s.TornLength, s.TornOffset)
		}
	case audit.EventGenesis:
		return "ledger created"
	case audit.EventOutcome:
		if o, err := audit.ReadEvent[audit.Outcome](r); err == nil {
			d := fmt.Sprintf("decision %d: %s, %d bytes after %s", o.Seq, esc(o.Status), o.Size,
				time.Duration(o.DurationNS).Round(time.Microsecond))
			if o.Code != 0 {
				d += fmt.Sprintf(" (code %d)", o.Code)
			}
			return d
		}
	case audit.EventRoots:
		if rs, err := audit.ReadEvent[audit.Roots](r); err == nil {
			d := fmt.Sprintf("roots: %d offered, kept [%s]", len(rs.Offered), esc(strings.Join(rs.Kept, " ")))
			for _, dr := range rs.Dropped {
				d += fmt.Sprintf("; dropped %s: %s", esc(dr.URI), esc(dr.Reason))
			}
			return d
		}
	}
	// The data as stored: JSON escapes the C0 controls but leaves DEL, the
	// C1 controls and the bidi characters raw.
	s := string(r.Data)
	if len(s) > 100 {
		s = truncateRunes(s, 97) + "..."
	}
	return esc(s)
}

// truncateRunes cuts s to at most n bytes without splitting a UTF-8
// sequence, which would print as an escaped stray byte.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// escapeArgv escapes each argument, so that shellQuote's quotes still show
// where each one begins and ends: an ESC in an argument prints as \x1b
// inside the quotes.
func escapeArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = textsafe.Escape(a)
	}
	return out
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@%+,") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

type auditTailCmd struct {
	ledgerFlags `embed:""`
	filterFlags `embed:""`
	Lines       int           `short:"n" default:"10" help:"How many records to print first."`
	Follow      bool          `short:"f" help:"Keep printing records as they are appended, until interrupted."`
	Interval    time.Duration `default:"250ms" hidden:"" help:"How often -f looks for new records."`
	JSON        bool          `help:"Print the stored lines (JSON Lines)."`
}

func (c auditTailCmd) Run(stdout io.Writer) error {
	filter, f, err := openFiltered(c.ledgerFlags, c.filterFlags)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat ledger: %w", err)
	}
	match := func(line []byte) (audit.Record, bool) {
		r, err := audit.ParseLine(line)
		return r, err == nil && filter.Match(r)
	}
	lines, err := audit.LastLines(f, fi.Size(), c.Lines, func(l []byte) bool { _, ok := match(l); return ok })
	if err != nil {
		return err
	}
	out := newRecordPrinter(stdout, c.JSON)
	for _, l := range lines {
		r, _ := match(l)
		out.print(l, r)
	}
	if !c.Follow {
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return follow(ctx, f, lastNewline(f, fi.Size()), c.Interval, func(line []byte) error {
		if r, ok := match(line); ok {
			out.print(line, r)
		}
		return nil
	})
}

// lastNewline returns the offset just after the last newline before size:
// where complete lines end.
func lastNewline(f io.ReaderAt, size int64) int64 {
	for end := size; end > 0; {
		start := max(0, end-4096)
		buf := make([]byte, end-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return size
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			return start + int64(i) + 1
		}
		end = start
	}
	return 0
}

// follow calls fn for every complete line appended after offset off until
// ctx ends. It polls: the ledger is written by other processes, and a
// regular file gives no readiness events to wait on.
func follow(ctx context.Context, f *os.File, off int64, every time.Duration, fn func([]byte) error) error {
	var pending []byte
	buf := make([]byte, 64<<10)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			off += int64(n)
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if err := fn(pending[:i]); err != nil {
					return err
				}
				pending = pending[i+1:]
			}
			pending = slices.Clip(pending)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read ledger: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type auditStatsCmd struct {
	ledgerFlags `embed:""`
	filterFlags `embed:""`
	Top         int  `default:"10" help:"How many tools to list under most denied, and destinations and denied names under network."`
	JSON        bool `help:"Print the counts as JSON."`
}

func (c auditStatsCmd) Run(stdout io.Writer) error {
	filter, f, err := openFiltered(c.ledgerFlags, c.filterFlags)
	if err != nil {
		return err
	}
	defer f.Close()
	st := audit.NewStats()
	var skipped skippedLines
	err = audit.ReadRecords(f, func(n int, _ []byte, r audit.Record, err error) error {
		if err != nil {
			skipped.add(n, err)
		} else if filter.Match(r) {
			st.Add(r)
		} else {
			st.Command(r)
		}
		return nil
	})
	skipped.report(f.Name())
	if err != nil {
		return err
	}
	if c.JSON {
		dests, names := netTops(st.Network, c.Top)
		b, err := json.MarshalIndent(struct {
			*audit.Stats
			MostDenied      []*audit.ToolStats `json:"most_denied"`
			TopDestinations []*audit.DestStats `json:"top_destinations,omitempty"`
			TopDeniedNames  []*audit.NameStats `json:"top_denied_names,omitempty"`
		}{st, st.MostDenied(c.Top), dests, names}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return printStats(stdout, f.Name(), st, c.Top)
}

// printStats prints the counts as text. Every name in them comes from the
// ledger and is escaped ([textsafe.Escape]): besides what it would do to the
// terminal, a tab or newline in a tool name would split a cell of the
// tabwriter table and shift every column after it.
func printStats(w io.Writer, path string, st *audit.Stats, top int) error {
	esc := textsafe.Escape
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(w, "ledger %s: %d records", esc(path), st.Records)
	if st.Records > 0 {
		fmt.Fprintf(w, " from %s to %s", ts(st.First), ts(st.Last))
	}
	fmt.Fprintln(w)
	counts := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", orDash(esc(k)), m[k]))
		}
		return orDash(strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "events: %s\nverdicts: %s\n%s", counts(st.Events), counts(st.Verdicts), approvalStats(st))

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSESSION\tHOST\tPROFILE\tFIRST\tLAST\tRECORDS\tDECISIONS\tDENIED\tCOMMAND")
	for _, s := range st.SessionList() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", esc(s.Session), esc(s.Host), orDash(esc(s.Profile)),
			ts(s.First), ts(s.Last), s.Records, s.Decisions, s.Denied, orDash(commandLine(s.Argv)))
	}
	fmt.Fprintln(tw, "\nTOOL\tDECISIONS\tALLOWED\tASKED\tDENIED\tWOULD DENY")
	for _, t := range st.ToolList() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", esc(t.Tool), t.Decisions, t.Allowed, t.Asked, t.Denied, t.WouldDeny)
	}
	fmt.Fprintln(tw, "\nMOST DENIED\tDENIED\tTOP RULE")
	for _, t := range st.MostDenied(top) {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", esc(t.Tool), t.Denied, orDash(esc(t.TopRule())))
	}
	printNetStats(tw, st.Network, top)
	return tw.Flush()
}

// commandLine prints argv for a table cell as audit show does (escaped,
// quoted as a shell would need), at most 60 characters: the middle of a
// longer one is left out, since the end names the server more often than
// the start (a script's path under node_modules).
func commandLine(argv []string) string {
	s := shellQuote(escapeArgv(argv))
	if r := []rune(s); len(r) > 60 {
		s = string(r[:20]) + "…" + string(r[len(r)-39:])
	}
	return s
}
