package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenLedgers builds the ledgers kept in testdata. They are made with a
// fixed clock and fixed options, so the bytes never change unless the
// format does: a test that fails here means the format changed.
func goldenLedgers(t *testing.T) map[string][]byte {
	t.Helper()
	m := &memFile{}
	l := memLedger(t, m, fixedOptions)
	events := []Event{
		SessionStart{Argv: []string{"npx", "-y", "@modelcontextprotocol/server-filesystem", "."},
			Profile: "strict", ProfileHash: fixedOptions.ProfileHash, Workdir: "/home/ada/project",
			Sandbox: map[string]any{"network": "none", "landlock_abi": 7}, Kernel: map[string]any{"landlock_abi": 7}},
		Decision{Method: "tools/call", RequestID: json.RawMessage(`7`), Tool: "read_file", Verdict: VerdictAllow,
			Rule: "allow-docs", Args: map[string]any{"path": "docs/intro.md"}},
		Decision{Method: "tools/call", RequestID: json.RawMessage(`8`), Tool: "write_file", Verdict: VerdictDeny,
			Rule: "block-src-writes", Reason: `write(src/*) is denied by rule "block-src-writes"`,
			Args: map[string]any{"path": "src/main.go", "api_token": "s3cr3t"}},
		NewSessionEnd(0, "", 1500*time.Millisecond),
	}
	for _, ev := range events {
		if _, err := l.Log(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	example := m.bytes()
	lines := splitLines(example)

	torn := append(bytes.Clone(example), lines[2][:len(lines[2])/2]...)
	rm := &memFile{data: bytes.Clone(torn)}
	rl := memLedger(t, rm, fixedOptions)
	if _, err := rl.Log(context.Background(), NewSessionEnd(137, "SIGKILL", time.Second)); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(example)
	i := bytes.Index(tampered, []byte("docs/intro.md"))
	tampered[i] = 'D'
	return map[string][]byte{
		"example.jsonl":   example,
		"torn-tail.jsonl": torn,
		"recovered.jsonl": rm.bytes(),
		"tampered.jsonl":  tampered,
	}
}

func TestGoldenLedgers(t *testing.T) {
	tests := []struct {
		file      string
		records   int
		warnings  int
		recovered int
		problem   Problem
		line      int
	}{
		{"example.jsonl", 5, 0, 0, "", 0},
		{"torn-tail.jsonl", 5, 1, 0, "", 0},
		{"recovered.jsonl", 7, 1, 1, "", 0},
		{"tampered.jsonl", 0, 0, 0, ProblemHashMismatch, 3},
	}
	golden := goldenLedgers(t)
	for _, tt := range tests {
		path := filepath.Join("testdata", tt.file)
		if *update {
			if err := os.WriteFile(path, golden[tt.file], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, golden[tt.file]) {
			t.Errorf("%s: the writer no longer produces these bytes: the format changed (run go test -update after deciding that it should)", tt.file)
		}
		rep, err := verifyBytes(b)
		if tt.problem != "" {
			wantProblem(t, tt.file, err, tt.line, tt.problem)
			continue
		}
		if err != nil || rep.Records != tt.records || len(rep.Warnings) != tt.warnings || rep.Recovered != tt.recovered {
			t.Errorf("%s: Verify = %d records, %d warnings, %d recovered, %v; want %d, %d, %d, nil",
				tt.file, rep.Records, len(rep.Warnings), rep.Recovered, err, tt.records, tt.warnings, tt.recovered)
		}
	}
}

// TestDocExample keeps the line shown in doc.go true: it must be a line of
// testdata/example.jsonl.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("testdata/example.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, "//")), "")
		if strings.HasPrefix(line, `{"v":1`) {
			if !bytes.Contains(example, []byte(line+"\n")) {
				t.Errorf("doc.go shows a line that is not in testdata/example.jsonl:\n%s", line)
			}
			found++
		}
	}
	if found == 0 {
		t.Fatal("doc.go shows no example line")
	}
}

// TestPrefixesAreTruncated: every proper prefix of a record is recognised
// as a torn write, and nothing else is.
func TestPrefixesAreTruncated(t *testing.T) {
	for _, line := range splitLines(buildLedger(t, 3)) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		for k := 0; k < len(line); k++ {
			if _, err := parseFrame(line[:k]); !errors.Is(err, errTruncated) {
				t.Fatalf("parseFrame(first %d bytes) = %v, want errTruncated", k, err)
			}
		}
		if _, err := parseFrame(line); err != nil {
			t.Fatalf("parseFrame(whole line) = %v, want nil", err)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	good := string(bytes.TrimSuffix(splitLines(buildLedger(t, 1))[1], []byte("\n")))
	tests := []struct {
		name, line, want string
	}{
		{"version", strings.Replace(good, `"v":1`, `"v":2`, 1), "unsupported format version 2"},
		{"key order", strings.Replace(good, `"seq":2,"time"`, `"time"`, 1), `want ",\"seq\":"`},
		{"time layout", strings.Replace(good, ".002000000Z", "Z", 1), "time is not in the layout"},
		{"upper-case hash", good[:len(good)-10] + strings.ToUpper(good[len(good)-10:]), "lower-case hex"},
		{"trailing bytes", good + " ", "trailing bytes"},
		{"bad data", strings.Replace(good, `"data":{`, `"data":{,`, 1), "want a string"},
		{"control character", strings.Replace(good, `host-1`, "host\t1", 1), "control character"},
		{"invalid UTF-8", strings.Replace(good, `host-1`, "host\xff1", 1), "invalid UTF-8"},
		{"cut short", good[:40], "line ends inside a record"},
	}
	for _, tt := range tests {
		_, err := ParseLine([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseLine = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestValidJSON(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`{}`, true}, {` [1, -2.5e+3, "a\u00e9\n", true, false, null] `, true},
		{`{"a":{"b":[]}}`, true}, {`0`, true}, {`-0.0E-0`, true},
		{`01`, false}, {`1.`, false}, {`.5`, false}, {`+1`, false}, {`1e`, false},
		{`{"a"}`, false}, {`{"a":1,}`, false}, {`[1,]`, false}, {`"\x"`, false},
		{`"\u12"`, false}, {"\"a\x01\"", false}, {`tru`, false}, {`nul`, false},
		{`{} {}`, false}, {``, false}, {"\"\xff\"", false},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false},
	}
	for _, tt := range tests {
		if got := validJSON([]byte(tt.in)); got != tt.want {
			t.Errorf("validJSON(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 23, 0, 0, 120000000, time.FixedZone("x", 5*3600+1800)),
		time.Now(),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(TimeLayout); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
