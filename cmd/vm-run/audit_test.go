package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vm-run/vm-run/audit"
)

// The tests here guard the issue "the operator's terminal is reachable
// through the ledger": every string of a record comes from the sandboxed
// server's traffic, and `vm-run audit show`, `tail`, `stats` and `verify`
// printed them raw. They write the ledger through the real writer
// (audit.Open and Log) and run the vm-run that TestMain puts on $PATH.
// testdata/script/audit_escape.txtar shows the escaped rendering itself.

// hostile are strings a sandboxed MCP server, or the client talking to it,
// can put into a ledger record.
var hostile = []string{
	"\x1b]52;c;SGVsbG8=\x07", // OSC 52: write the clipboard
	"\x1b[2J",                // clear the screen
	"\x1b]0;pwned\x1b\\",     // set the window title
	"\r",                     // overwrite the start of the line
	"\n",                     // forge a row
	"\t",                     // split a table cell
	"\u202e",                 // right-to-left override
	"\x9b",                   // C1 CSI as a lone byte, not UTF-8
	"\u009b",                 // C1 CSI in UTF-8
	"\x7f",                   // DEL
	"\xff\xfe",               // not UTF-8
	"\u200b\ufeff\u2028",     // invisible: zero-width space, BOM, line separator
}

// writeHostileLedger writes a ledger at path whose every string field, the
// session, host and profile of each record included, holds each of
// hostile, and returns the number of records.
func writeHostileLedger(t *testing.T, path string) int {
	t.Helper()
	all := strings.Join(hostile, "|")
	l, err := audit.Open(path, audit.Options{Host: "host" + all, SessionID: "sess" + all, Profile: "prof" + all})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	log := func(ev audit.Event) {
		t.Helper()
		if _, err := l.Log(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	log(audit.SessionStart{Argv: append([]string{"server"}, hostile...), Profile: "prof" + all, Workdir: "/work" + all})
	for i, h := range hostile {
		v := audit.VerdictAllow
		if i%2 == 1 {
			v = audit.VerdictDeny
		}
		log(audit.Decision{Method: "tools/call", Tool: "tool" + h, Verdict: v, Rule: "rule" + h,
			Reason: "reason" + h, Args: map[string]any{"path": "arg" + h}})
	}
	// An event type the summary does not know: its data is shown as stored,
	// and is long enough to be cut, in the middle of an "é".
	if _, err := l.Append(ctx, "note", map[string]any{"note": all + "x" + strings.Repeat("é", 60)}); err != nil {
		t.Fatal(err)
	}
	log(audit.SessionEnd{ExitStatus: 1, Signal: "SIG" + all, Error: "error" + all})
	// The genesis record, the session start and end, the note, the decisions.
	return 4 + len(hostile)
}

// vmRun runs vm-run with args and returns its stdout and stderr; it fails
// the test unless vm-run exits 0.
func vmRun(t *testing.T, args ...string) (stdout, stderr []byte) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command("vm-run", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("vm-run %q: %v\nstderr: %q", args, err, errOut.Bytes())
	}
	return out.Bytes(), errOut.Bytes()
}

// checkTerminalSafe fails the test if out holds anything but printable
// characters and newlines: no C0 control but \n, no DEL, no C1 control, no
// format or bidi character, no byte that is not UTF-8.
func checkTerminalSafe(t *testing.T, what string, out []byte) {
	t.Helper()
	for i := 0; i < len(out); {
		r, n := utf8.DecodeRune(out[i:])
		notUTF8 := r == utf8.RuneError && n == 1 // an encoded U+FFFD is printable
		if r == '\n' || !notUTF8 && strconv.IsPrint(r) {
			i += n
			continue
		}
		start := bytes.LastIndexByte(out[:i], '\n') + 1
		end := bytes.IndexByte(out[i:], '\n')
		if end < 0 {
			end = len(out) - i
		}
		if notUTF8 {
			t.Errorf("%s: byte %d is %#x, not UTF-8, in line %q", what, i, out[i], out[start:i+end])
		} else {
			t.Errorf("%s: byte %d is %U, in line %q", what, i, r, out[start:i+end])
		}
		return
	}
}

// quoteLines shows out one quoted line at a time, so that a failing test
// does not do to the terminal running it what it caught vm-run doing.
func quoteLines(out []byte) string {
	var b strings.Builder
	for line := range bytes.Lines(out) {
		b.WriteString(strconv.Quote(string(line)) + "\n")
	}
	return b.String()
}

func TestAuditTextEscapesLedgerStrings(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	records := writeHostileLedger(t, ledger)
	tests := []struct {
		name string
		args []string
		// lines is the number of lines of stdout, a header and a row per
		// record, or 0 when not checked: a newline in the data must not
		// make a row of its own.
		lines int
	}{
		{"show", []string{"audit", "show"}, 1 + records},
		{"show decisions", []string{"audit", "show", "--event", "decision"}, 1 + len(hostile)},
		{"tail", []string{"audit", "tail", "-n", "1000"}, 1 + records},
		{"tail -n 2", []string{"audit", "tail", "-n", "2"}, 1 + 2},
		{"stats", []string{"audit", "stats"}, 0},
		{"verify", []string{"audit", "verify"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := vmRun(t, append(tt.args, "--ledger", ledger)...)
			checkTerminalSafe(t, "stdout", stdout)
			checkTerminalSafe(t, "stderr", stderr)
			if n := bytes.Count(stdout, []byte("\n")); tt.lines != 0 && n != tt.lines {
				t.Errorf("vm-run %q printed %d lines, want %d:\n%s", tt.args, n, tt.lines, quoteLines(stdout))
			}
		})
	}
}

func TestAuditJSONIsExact(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	writeHostileLedger(t, ledger)
	stored, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"audit", "show", "--json"},
		{"audit", "tail", "--json", "-n", "1000"},
	} {
		if got, _ := vmRun(t, append(args, "--ledger", ledger)...); !bytes.Equal(got, stored) {
			t.Errorf("vm-run %q printed\n%q\nwant the ledger's bytes\n%q", args, got, stored)
		}
	}

	// stats --json names each tool as the ledger stores it.
	var want []string
	err = audit.ReadRecords(bytes.NewReader(stored), func(_ int, _ []byte, r audit.Record, err error) error {
		if d, ok := r.DecisionFields(); err == nil && ok {
			want = append(want, d.Tool)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hostile {
		if utf8.ValidString(h) && !slices.Contains(want, "tool"+h) {
			t.Fatalf("the ledger does not hold the tool name %q", "tool"+h)
		}
	}
	out, _ := vmRun(t, "audit", "stats", "--json", "--ledger", ledger)
	var st struct {
		Tools map[string]struct {
			Tool string `json:"tool"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("stats --json: %v\n%q", err, out)
	}
	var got []string
	for k, v := range st.Tools {
		if k != v.Tool {
			t.Errorf("stats --json: tool %q under key %q", v.Tool, k)
		}
		got = append(got, v.Tool)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stats --json tools = %q, want %q", got, want)
	}
}

// TestAuditTailFollowEscapes checks the rows tail -f prints as records
// arrive, which go through the same printer as the first ones.
func TestAuditTailFollowEscapes(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := audit.Open(ledger, audit.Options{SessionID: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Log(ctx, audit.SessionStart{Argv: []string{"server"}}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("vm-run", "audit", "tail", "-f", "-n", "0", "--interval", "10ms", "--ledger", ledger)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- append(bytes.Clone(sc.Bytes()), '\n')
		}
	}()
	var out []byte
	// readUntil collects stdout up to the line that holds marker.
	readUntil := func(marker string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("tail -f ended before printing %q:\n%s\nstderr: %q", marker, quoteLines(out), stderr.Bytes())
				}
				out = append(out, line...)
				if bytes.Contains(line, []byte(marker)) {
					return
				}
			case <-deadline:
				t.Fatalf("tail -f printed no %q in 30s:\n%s", marker, quoteLines(out))
			}
		}
	}
	// The header: tail has taken the size of the ledger, and follows what
	// is appended from now on.
	readUntil("DETAIL")
	for _, h := range hostile {
		if _, err := l.Log(ctx, audit.Decision{Tool: "tool" + h, Verdict: audit.VerdictDeny, Rule: "rule" + h, Reason: "reason" + h}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Log(ctx, audit.Decision{Tool: "last-tool", Verdict: audit.VerdictAllow}); err != nil {
		t.Fatal(err)
	}
	readUntil("last-tool")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("tail -f after SIGINT: %v\nstderr: %q", err, stderr.Bytes())
	}
	checkTerminalSafe(t, "stdout", out)
	checkTerminalSafe(t, "stderr", stderr.Bytes())
	if n, want := bytes.Count(out, []byte("\n")), 1+len(hostile)+1; n != want {
		t.Errorf("tail -f printed %d lines, want %d:\n%s", n, want, quoteLines(out))
	}
}
