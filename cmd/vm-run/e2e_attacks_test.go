//go:build linux

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// The ways around the tool policy that an attacker's look found, each
// driven against the real server: first without vm-run's policy (the
// server run directly by the same client, or the policy's old reading of
// the call), to show the attack does what it says, then through vm-run,
// where it is denied and the ledger records what the server would really
// have touched.
func TestE2EPolicyHolds(t *testing.T) {
	e := setupE2E(t)
	t.Run("roots inside the workspace", func(t *testing.T) { t.Parallel(); e.testRootsMoveTheBase(t) })
	t.Run("roots outside the workspace", func(t *testing.T) { t.Parallel(); e.testRootsOutside(t) })
	t.Run("symbolic links", func(t *testing.T) { t.Parallel(); e.testLinks(t) })
	t.Run("resource URIs", func(t *testing.T) { t.Parallel(); e.testURIs(t) })
	t.Run("policy file keeps denies", func(t *testing.T) { t.Parallel(); e.testPolicyFileKeepsDenies(t) })
	t.Run("redacted values", func(t *testing.T) { t.Parallel(); e.testRedaction(t) })
	t.Run("terminal escapes", func(t *testing.T) { t.Parallel(); e.testTerminalEscapes(t) })
	t.Run("signals to init", func(t *testing.T) { t.Parallel(); e.testSignalsToInit(t) })
	t.Run("raw client lines", func(t *testing.T) { t.Parallel(); e.testRawLines(t) })
	t.Run("pipelined link race", func(t *testing.T) { t.Parallel(); e.testPipelinedLinkRace(t) })
	t.Run("server serving a subdirectory", func(t *testing.T) { t.Parallel(); e.testServerSubdir(t) })
	t.Run("resources embedded in a prompt", func(t *testing.T) { t.Parallel(); e.testEmbeddedResource(t) })
	t.Run("answer over the message limit", func(t *testing.T) { t.Parallel(); e.testMessageLimit(t) })
}

// direct runs the server unsandboxed and without the proxy, with the same
// client: the baseline that shows what an attack does when nothing stands
// in its way.
func (e *e2e) direct(t *testing.T, dir string, server []string, opts *mcp.ClientOptions, roots []*mcp.Root) (*mcp.ClientSession, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(server[0], server[1:]...)
	cmd.Dir = dir
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cs, err := connectClient(t, cmd, opts, roots)
	if err != nil {
		t.Fatalf("connect to %v directly: %v\n%s", server, err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr
}

// eventually polls cond for up to ten seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// records returns the ledger's records of one event type.
func (s *e2eSession) records(t *testing.T, event string) []audit.Record {
	t.Helper()
	f, err := os.Open(s.ledger)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	defer f.Close()
	var out []audit.Record
	err = audit.ReadRecords(f, func(_ int, _ []byte, r audit.Record, err error) error {
		if err == nil && r.Event == event {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	return out
}

// decisionOn returns the ledger's last decision on tool.
func (s *e2eSession) decisionOn(t *testing.T, tool string) audit.Decision {
	t.Helper()
	var last *audit.Decision
	for _, r := range s.records(t, audit.EventDecision) {
		d, err := audit.ReadEvent[audit.Decision](r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Tool == tool {
			last = &d
		}
	}
	if last == nil {
		t.Fatalf("ledger %s has no decision on %q", s.ledger, tool)
	}
	return *last
}

// wantRoots waits for the ledger's roots record and returns it.
func (s *e2eSession) wantRoots(t *testing.T) audit.Roots {
	t.Helper()
	var recs []audit.Record
	eventually(t, "the roots record", func() bool { recs = s.records(t, audit.EventRoots); return len(recs) > 0 })
	r, err := audit.ReadEvent[audit.Roots](recs[0])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loadProfile loads a profile file for a workspace as vm-run would.
func loadProfile(t *testing.T, path, ws string) *profiles.Profile {
	t.Helper()
	home, _ := os.UserHomeDir()
	p, err := profiles.Load(path, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatalf("load profile %s: %v", path, err)
	}
	return p
}

// oldDecide is how the policy judged a call before the proxy owned roots
// and followed links: against the workspace alone, as spelled.
func oldDecide(t *testing.T, profile, ws, tool string, args map[string]any) audit.Decision {
	t.Helper()
	p := loadProfile(t, profile, ws)
	return p.Tools.Decide(policy.CallInfo{Kind: policy.KindTool, Name: tool, Arguments: args,
		Workspace: ws, Resolver: policy.Lexical})
}

const srcPolicy = `tools:
  rules:
    - id: allow-docs
      allow: ["read", "write(docs/*)"]
    - id: block-src-writes
      deny: ["write(src/*)"]
`

// testRootsMoveTheBase: a client root inside the workspace makes
// server-filesystem read relative paths against it. "docs/sub/main.c" then
// lands in src/, which the policy denies, while a judge that reads it
// against the workspace allows it.
func (e *e2e) testRootsMoveTheBase(t *testing.T) {
	b := newBox(t)
	b.writableDir(t, "docs")
	src := b.writableDir(t, "src")
	prof := e.profile(t, b, "e2e-roots", fmt.Sprintf("  write: [%q]\n", b.ws), srcPolicy)
	roots := []*mcp.Root{{URI: "file://" + src, Name: "src"}}
	server := []string{"node", e.server("server-filesystem"), b.ws}
	mkdir := map[string]any{"path": "docs/sub"}
	write := map[string]any{"path": "docs/sub/main.c", "content": "int main;\n"}
	landed := filepath.Join(src, "docs", "sub", "main.c")

	// Without vm-run: the write lands in src/, and the old judge allowed it.
	if d := oldDecide(t, prof, b.ws, "write_file", write); !d.Allowed() {
		t.Fatalf("the old judge denied write_file %v (%s); the baseline needs it allowed", write, d.Reason)
	}
	cs, stderr := e.direct(t, b.ws, server, nil, roots)
	eventually(t, "server-filesystem to take the client's roots", func() bool {
		return strings.Contains(stderr.String(), "Updated allowed directories from MCP roots")
	})
	for _, c := range []struct {
		tool string
		args map[string]any
	}{{"create_directory", mkdir}, {"write_file", write}} {
		if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: c.tool, Arguments: c.args}); err != nil || res.IsError {
			t.Fatalf("baseline %s %v = %v, %v", c.tool, c.args, res, err)
		}
	}
	if _, err := os.Stat(landed); err != nil {
		t.Fatalf("baseline: write_file docs/sub/main.c under root src/ did not land in %s: %v", landed, err)
	}
	cs.Close()
	if err := os.RemoveAll(filepath.Join(src, "docs")); err != nil {
		t.Fatal(err)
	}

	// Through vm-run: the proxy tells the server the root, and judges the
	// path against it too.
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server, roots: roots})
	r := s.wantRoots(t)
	if len(r.Kept) != 1 || r.Kept[0] != "file://"+src || len(r.Dropped) != 0 {
		t.Errorf("roots record = %+v, want %s kept", r, src)
	}
	s.wantDenied(t, "create_directory", mkdir, "block-src-writes")
	s.wantDenied(t, "write_file", write, "block-src-writes")
	wantAbsent(t, filepath.Join(src, "docs"), "writes whose relative path the server reads against the root src/")
	if d := s.decisionOn(t, "write_file"); !contains(d.Paths, "src/docs/sub/main.c") {
		t.Errorf("ledger records paths %q for write_file docs/sub/main.c, want src/docs/sub/main.c among them", d.Paths)
	}
	s.close(t)
}

// testRootsOutside: a client root of file:/// under strict makes
// server-filesystem serve the whole host; "etc/passwd" is then the host's,
// though "/etc/passwd" is denied. vm-run drops the root and records it.
func (e *e2e) testRootsOutside(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-roots-out", "", "")
	roots := []*mcp.Root{{URI: "file:///", Name: "everything"}}
	server := []string{"node", e.server("server-filesystem"), b.ws}
	host, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	firstLine, _, _ := strings.Cut(string(host), "\n")

	if d := oldDecide(t, prof, b.ws, "read_text_file", map[string]any{"path": "etc/passwd"}); !d.Allowed() {
		t.Fatalf("the old judge denied read_text_file etc/passwd (%s); the baseline needs it allowed", d.Reason)
	}
	cs, stderr := e.direct(t, b.ws, server, nil, roots)
	eventually(t, "server-filesystem to take the client's roots", func() bool {
		return strings.Contains(stderr.String(), "Updated allowed directories from MCP roots")
	})
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "etc/passwd"}})
	if err != nil || !strings.Contains(text(res), firstLine) {
		t.Fatalf("baseline: read_text_file etc/passwd under root / = %v, %v; want the host's /etc/passwd", res, err)
	}
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_directory", Arguments: map[string]any{"path": "etc"}})
	if err != nil || !strings.Contains(text(res), "passwd") {
		t.Fatalf("baseline: list_directory etc under root / = %v, %v; want the host's /etc", res, err)
	}
	cs.Close()

	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server, roots: roots})
	r := s.wantRoots(t)
	if len(r.Kept) != 0 || len(r.Dropped) != 1 || r.Dropped[0].URI != "file:///" || !strings.Contains(r.Dropped[0].Reason, "outside the workspace") {
		t.Errorf("roots record = %+v, want file:/// dropped as outside the workspace", r)
	}
	if got := text(s.call(t, "read_text_file", map[string]any{"path": "etc/passwd"})); strings.Contains(got, firstLine) {
		t.Errorf("read_text_file etc/passwd through vm-run returned the host's /etc/passwd: %q", got)
	}
	if got := text(s.call(t, "list_directory", map[string]any{"path": "etc"})); strings.Contains(got, "passwd") {
		t.Errorf("list_directory etc through vm-run listed the host's /etc: %q", got)
	}
	s.wantDenied(t, "read_text_file", map[string]any{"path": "/etc/passwd"}, policy.RulePaths)
	s.close(t)
}

// testLinks: links inside the workspace lead writes into src/.
func (e *e2e) testLinks(t *testing.T) {
	b := newBox(t)
	docs, src := b.writableDir(t, "docs"), b.writableDir(t, "src")
	const original = "int main(void) { return 0; }\n"
	main := filepath.Join(src, "main.c")
	reset := func() {
		t.Helper()
		os.Remove(filepath.Join(src, "new.c"))
		os.Remove(filepath.Join(docs, "stolen.c"))
		if err := os.WriteFile(main, []byte(original), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(main, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	reset()
	for link, target := range map[string]string{"srclink": "../src", "mainlink.c": "../src/main.c"} {
		if err := os.Symlink(target, filepath.Join(docs, link)); err != nil {
			t.Fatal(err)
		}
	}
	prof := e.profile(t, b, "e2e-links", fmt.Sprintf("  write: [%q]\n", b.ws), srcPolicy)
	server := []string{"node", e.server("server-filesystem"), b.ws}
	attacks := []struct {
		tool string
		args map[string]any
		// changed reports whether the attack reached src/.
		changed func() bool
		lands   string // the path it really touches
	}{
		{"write_file", map[string]any{"path": "docs/srclink/main.c", "content": "pwned\n"}, mainChanged(main, original), "src/main.c"},
		{"write_file", map[string]any{"path": "docs/mainlink.c", "content": "pwned\n"}, mainChanged(main, original), "src/main.c"},
		{"write_file", map[string]any{"path": "docs/srclink/new.c", "content": "pwned\n"}, exists(filepath.Join(src, "new.c")), "src/new.c"},
		{"move_file", map[string]any{"source": "docs/srclink/main.c", "destination": "docs/stolen.c"}, mainChanged(main, original), "src/main.c"},
	}

	cs, _ := e.direct(t, b.ws, server, nil, nil)
	for _, a := range attacks {
		if d := oldDecide(t, prof, b.ws, a.tool, a.args); !d.Allowed() {
			t.Errorf("the old judge denied %s %v (%s); the baseline needs it allowed", a.tool, a.args, d.Reason)
		}
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: a.tool, Arguments: a.args})
		if err != nil || res.IsError || !a.changed() {
			t.Errorf("baseline: %s %v = %v, %v; want it to change src/", a.tool, a.args, text(res), err)
		}
		reset()
	}
	cs.Close()

	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server})
	for _, a := range attacks {
		s.wantDenied(t, a.tool, a.args, "block-src-writes")
		if a.changed() {
			t.Errorf("%s %v through vm-run changed src/", a.tool, a.args)
		}
		if d := s.decisionOn(t, a.tool); !contains(d.Paths, a.lands) {
			t.Errorf("ledger records paths %q for %s %v, want %s among them", d.Paths, a.tool, a.args, a.lands)
		}
	}
	// A write through a link to a place the policy allows still works.
	if err := os.Symlink("sub", filepath.Join(docs, "sublink")); err != nil {
		t.Fatal(err)
	}
	b.writableDir(t, "docs/sub")
	s.wantAllowed(t, "write_file", map[string]any{"path": "docs/sublink/ok.txt", "content": "fine\n"})
	if _, err := os.Stat(filepath.Join(docs, "sub", "ok.txt")); err != nil {
		t.Errorf("an allowed write through docs/sublink did not land: %v", err)
	}
	s.close(t)
}

func mainChanged(path, original string) func() bool {
	return func() bool {
		got, err := os.ReadFile(path)
		return err != nil || string(got) != original
	}
}

func exists(path string) func() bool {
	return func() bool { _, err := os.Lstat(path); return err == nil }
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// testURIs: other spellings of a denied resource URI read it.
func (e *e2e) testURIs(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-uris", "", `tools:
  defaults:
    resource: allow
  rules:
    - id: no-features
      deny:
        - resource(demo://resource/static/document/features.md)
        - resource(demo://resource/dynamic/text/1)
`)
	server := []string{"node", e.server("server-everything"), "stdio"}
	spellings := []string{
		"demo://resource/static/document/features.md",
		"DEMO://resource/static/document/features.md",
		"Demo://resource/static/document/features.md",
		"demo://resource/static/document/./features.md",
		"demo://resource/static/x/../document/features.md",
		"demo://resource/dynamic/text/1",
		"demo://resource/dynamic/text/01",
		"demo://resource/dynamic/text/1.0",
		"demo://resource/dynamic/text/0x1",
		"demo://resource/dynamic/text/1e0",
		"demo://resource/dynamic/text/+1",
	}
	cs, _ := e.direct(t, b.ws, server, nil, nil)
	for _, uri := range spellings {
		res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: uri})
		if err != nil || len(res.Contents) == 0 || res.Contents[0].Text == "" {
			t.Errorf("baseline: resources/read %s = %v, %v; want the resource", uri, res, err)
		}
	}
	cs.Close()

	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server})
	for _, uri := range spellings {
		_, err := s.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: uri})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != proxy.CodePolicyDenied || !strings.Contains(werr.Message, "no-features") {
			t.Errorf("resources/read %s through vm-run = %v, want a denial by no-features", uri, err)
		}
	}
	if res, err := s.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "demo://resource/dynamic/text/2"}); err != nil || len(res.Contents) == 0 {
		t.Errorf("resources/read text/2 = %v, %v; want the resource (nothing denies it)", res, err)
	}
	s.close(t)
}

// testPolicyFileKeepsDenies: --policy used to replace the profile's policy,
// dropping its denies; now they accumulate.
func (e *e2e) testPolicyFileKeepsDenies(t *testing.T) {
	b := newBox(t)
	src := b.writableDir(t, "src")
	b.writableDir(t, "docs")
	main := filepath.Join(src, "main.c")
	if err := os.WriteFile(main, []byte("original\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(main, 0o666)
	corp := e.profile(t, b, "corp", fmt.Sprintf("  write: [%q]\n", b.ws), `tools:
  default_action: deny
  rules:
    - id: read-write
      allow: [read, write]
    - id: no-src
      reason: sources are reviewed, not edited by agents
      deny: ["write(src/*)"]
`)
	extra := b.config(t, "extra.yaml", "rules:\n  - id: extra-read-write\n    allow: [read, write]\n")
	server := []string{"node", e.server("server-filesystem"), b.ws}
	write := map[string]any{"path": "src/main.c", "content": "pwned\n"}

	cs, _ := e.direct(t, b.ws, server, nil, nil)
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "write_file", Arguments: write}); err != nil || res.IsError || !mainChanged(main, "original\n")() {
		t.Fatalf("baseline: write_file src/main.c = %v, %v; want it written", res, err)
	}
	cs.Close()
	os.WriteFile(main, []byte("original\n"), 0o666)

	s := e.start(t, b, e2eRun{profile: corp, policy: extra, ws: b.ws, server: server})
	s.wantDenied(t, "write_file", write, "no-src")
	if mainChanged(main, "original\n")() {
		t.Errorf("write_file src/main.c through vm-run with --policy changed the file")
	}
	s.wantAllowed(t, "write_file", map[string]any{"path": "docs/notes.txt", "content": "fine\n"})
	s.wantDecision(t, "write_file", policy.Allow, "extra-read-write")
	s.close(t)
}

// testRedaction: the ledger stores the hash of the secret the client sent.
func (e *e2e) testRedaction(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-redact", "", "tools:\n  rules:\n    - id: echo\n      allow: [echo]\n")
	const secret = "sk-live-7f3a9c2e1b"
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{"node", e.server("server-everything"), "stdio"}})
	s.call(t, "echo", map[string]any{"message": "hi", "api_key": secret})
	s.close(t)
	data, err := os.ReadFile(s.ledger)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) {
		t.Errorf("the ledger holds the secret in the clear")
	}
	var rec struct {
		Data struct {
			Args struct {
				APIKey struct {
					Hash string `json:"redacted_sha256"`
				} `json:"api_key"`
			} `json:"args"`
		} `json:"data"`
	}
	d := s.decisionOn(t, "echo")
	raw, _ := json.Marshal(map[string]any{"data": map[string]any{"args": d.Args}})
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(secret))
	placeholder := sha256.Sum256([]byte("[REDACTED]"))
	switch rec.Data.Args.APIKey.Hash {
	case hex.EncodeToString(want[:]):
	case hex.EncodeToString(placeholder[:]):
		t.Errorf("the ledger hashed the placeholder, not the secret")
	default:
		t.Errorf("args.api_key = %v, want {redacted_sha256: sha256(secret) = %x}", d.Args, want)
	}
}

// testTerminalEscapes: a tool name that would clear the operator's screen
// and write the clipboard is shown escaped by the text renderers.
func (e *e2e) testTerminalEscapes(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-escapes", "", "")
	const evil = "x\x1b]52;c;cHduZWQ=\x07\x1b[2J\r\nforged"
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{"node", e.server("server-everything"), "stdio"}})
	s.wantDenied(t, evil, map[string]any{}, policy.RuleDefault)
	s.close(t)
	for _, args := range [][]string{{"show"}, {"tail", "-n", "10"}, {"stats"}} {
		out, err := exec.Command(e.bin, append(append([]string{"audit"}, args...), "--ledger", s.ledger)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vm-run audit %v: %v\n%s", args, err, out)
		}
		for _, c := range []string{"\x1b", "\x07", "\r"} {
			if strings.Contains(string(out), c) {
				t.Errorf("vm-run audit %v printed %q raw:\n%q", args, c, out)
			}
		}
	}
	out, err := exec.Command(e.bin, "audit", "show", "--json", "--ledger", s.ledger).Output()
	if err != nil || !strings.Contains(string(out), `x\u001b]52;c;cHduZWQ=\u0007\u001b[2J\r\nforged`) {
		t.Errorf("vm-run audit show --json = %q, %v; want the name exactly, JSON-escaped", out, err)
	}
}

// testSignalsToInit: the server's shell sends PID 1 of the sandbox (vm-run's
// init stage) the signals that crash a Go program; the session goes on.
func (e *e2e) testSignalsToInit(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-signals", "", "tools:\n  rules:\n    - id: echo\n      allow: [echo]\n")
	sh := fmt.Sprintf("for s in SEGV BUS FPE ILL ABRT TRAP QUIT SYS TERM INT HUP USR1 PIPE; do kill -$s 1; done; exec node %s stdio",
		e.server("server-everything"))
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{"sh", "-c", sh}})
	if got := s.wantAllowed(t, "echo", map[string]any{"message": "still here"}); !strings.Contains(got, "still here") {
		t.Errorf("echo after signalling init = %q", got)
	}
	s.close(t)
	if strings.Contains(s.stderr.String(), "goroutine ") || strings.Contains(s.stderr.String(), "init stage") {
		t.Errorf("vm-run stderr shows a crash of the init stage:\n%s", s.stderr)
	}
}

// testRawLines: lines no SDK would send, from a hand-driven client.
func (e *e2e) testRawLines(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-raw", "", "")
	cmd := exec.Command(e.bin, "--profile", prof, "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "raw.jsonl"),
		"--", "node", e.server("server-everything"), "stdio")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	stdin.Close()
	cmd.Wait()
	if err != nil || !strings.Contains(line, "byte order mark") || strings.Contains(line, "ï") {
		t.Errorf("answer to a BOM-prefixed line = %q, %v; want an error naming the byte order mark", line, err)
	}
	log := stderr.String()
	if !strings.Contains(log, "vm-run: proxy: ") || strings.Contains(log, "vm-run: proxy: vm-run: proxy:") {
		t.Errorf("vm-run stderr = %q, want proxy lines with one prefix each", log)
	}
}

// testPipelinedLinkRace: a client that does not wait for its answers moves
// a directory holding a link to src/ into place and, before the move has
// run, writes through where the link will be. Judged when it is sent, the
// write is allowed (docs/y/... does not exist yet); vm-run judges it once
// the move has been answered, by where it then leads.
func (e *e2e) testPipelinedLinkRace(t *testing.T) {
	b := newBox(t)
	b.writableDir(t, "docs")
	b.writableDir(t, "docs/x")
	src := b.writableDir(t, "src")
	main := filepath.Join(src, "main.c")
	const original = "int main;\n"
	reset := func() {
		os.RemoveAll(filepath.Join(b.ws, "docs", "y"))
		os.MkdirAll(filepath.Join(b.ws, "docs", "x"), 0o777)
		os.Chmod(filepath.Join(b.ws, "docs", "x"), 0o777)
		os.Symlink("../../src", filepath.Join(b.ws, "docs", "x", "srclink"))
		if err := os.WriteFile(main, []byte(original), 0o666); err != nil {
			t.Fatal(err)
		}
		os.Chmod(main, 0o666)
	}
	reset()
	prof := e.profile(t, b, "e2e-race", fmt.Sprintf("  write: [%q]\n", b.ws), srcPolicy)
	server := []string{"node", e.server("server-filesystem"), b.ws}
	move := map[string]any{"source": "docs/x", "destination": "docs/y"}
	write := map[string]any{"path": "docs/y/srclink/main.c", "content": "pwned\n"}

	if d := oldDecide(t, prof, b.ws, "write_file", write); !d.Allowed() {
		t.Fatalf("judged before the move, write_file %v = %s (%s); the baseline needs it allowed", write, d.Verdict, d.Reason)
	}
	cs, _ := e.direct(t, b.ws, server, nil, nil)
	for _, c := range []struct {
		tool string
		args map[string]any
	}{{"move_file", move}, {"write_file", write}} {
		if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: c.tool, Arguments: c.args}); err != nil || res.IsError {
			t.Fatalf("baseline %s %v = %v, %v", c.tool, c.args, res, err)
		}
	}
	if !mainChanged(main, original)() {
		t.Fatalf("baseline: the write through the moved link did not reach src/main.c")
	}
	cs.Close()
	reset()

	// A raw client: the move and the writes go in one write, as a client
	// that does not wait for answers sends them.
	ledger := filepath.Join(b.cfg, "race.jsonl")
	cmd := exec.Command(e.bin, "--profile", prof, "--workspace", b.ws, "--ledger", ledger, "--", server[0], server[1], server[2])
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	r := bufio.NewReader(stdout)
	io.WriteString(stdin, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"race","version":"1"}}}`+"\n")
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("initialize: %v\n%s", err, stderr)
	}
	var batch strings.Builder
	batch.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	batch.WriteString(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"move_file","arguments":{"source":"docs/x","destination":"docs/y"}}}` + "\n")
	const writes = 30
	for i := range writes {
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"docs/y/srclink/main.c","content":"pwned %d\\n"}}}`+"\n", i+2, i)
	}
	io.WriteString(stdin, batch.String())
	denied := 0
	for range writes + 1 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read answers: %v\n%s", err, stderr)
		}
		if strings.Contains(line, `"id":1,`) && strings.Contains(line, `"isError":true`) {
			t.Errorf("move_file through vm-run failed: %s", line)
		}
		if strings.Contains(line, "block-src-writes") {
			denied++
		}
	}
	if denied != writes {
		t.Errorf("%d of %d pipelined writes through the moved link were denied, want all", denied, writes)
	}
	if mainChanged(main, original)() {
		t.Errorf("a pipelined write through the moved link reached src/main.c")
	}
}

// testServerSubdir: server-filesystem started on docs/ reads "private/key"
// as docs/private/key, which the policy protects.
func (e *e2e) testServerSubdir(t *testing.T) {
	b := newBox(t)
	b.file(t, "docs/private/key.txt", "PRIVATE-KEY\n")
	prof := e.profile(t, b, "e2e-subdir", "", `tools:
  rules:
    - id: reads
      allow: [read]
    - id: private
      deny: ["read(docs/private/*)"]
`)
	server := []string{"node", e.server("server-filesystem"), "docs"}
	read := map[string]any{"path": "private/key.txt"}
	if d := oldDecide(t, prof, b.ws, "read_text_file", read); !d.Allowed() {
		t.Fatalf("read against the workspace alone, read_text_file %v = %s (%s); the baseline needs it allowed", read, d.Verdict, d.Reason)
	}
	cs, _ := e.direct(t, b.ws, server, nil, nil)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_text_file", Arguments: read})
	if err != nil || !strings.Contains(text(res), "PRIVATE-KEY") {
		t.Fatalf("baseline: read_text_file private/key.txt from a server on docs/ = %v, %v; want the key", res, err)
	}
	cs.Close()
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server})
	s.wantDenied(t, "read_text_file", read, "private")
	if d := s.decisionOn(t, "read_text_file"); !contains(d.Paths, "docs/private/key.txt") {
		t.Errorf("ledger records paths %q, want docs/private/key.txt among them", d.Paths)
	}
	s.close(t)
}

// testEmbeddedResource: server-everything's resource-prompt embeds a
// resource in the prompt it returns; a denied resource does not leave that
// way.
func (e *e2e) testEmbeddedResource(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-embedded", "", `tools:
  defaults:
    resource: allow
    prompt: allow
  rules:
    - id: no-text-1
      deny: ["resource(demo://resource/dynamic/text/1)"]
`)
	server := []string{"node", e.server("server-everything"), "stdio"}
	get := &mcp.GetPromptParams{Name: "resource-prompt", Arguments: map[string]string{"resourceType": "Text", "resourceId": "1"}}
	cs, _ := e.direct(t, b.ws, server, nil, nil)
	res, err := cs.GetPrompt(t.Context(), get)
	if err != nil || !strings.Contains(fmt.Sprint(promptText(res)), "Resource 1") {
		t.Fatalf("baseline: prompts/get resource-prompt = %v, %v; want resource 1 embedded", res, err)
	}
	cs.Close()
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: server})
	_, err = s.GetPrompt(t.Context(), get)
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != proxy.CodePolicyDenied || !strings.Contains(werr.Message, "no-text-1") {
		t.Errorf("prompts/get resource-prompt through vm-run = %v, want a denial by no-text-1", err)
	}
	get.Arguments["resourceId"] = "2"
	if res, err := s.GetPrompt(t.Context(), get); err != nil || !strings.Contains(promptText(res), "Resource 2") {
		t.Errorf("prompts/get of resource 2 = %v, %v; want it (nothing denies it)", res, err)
	}
	s.close(t)
}

// promptText joins what a prompt's messages carry as text, embedded
// resources included.
func promptText(r *mcp.GetPromptResult) string {
	var b strings.Builder
	for _, m := range r.Messages {
		switch c := m.Content.(type) {
		case *mcp.TextContent:
			b.WriteString(c.Text)
		case *mcp.EmbeddedResource:
			if c.Resource != nil {
				b.WriteString(c.Resource.Text)
			}
		}
	}
	return b.String()
}

// testMessageLimit: an answer over the profile's limits.max_message is
// answered with an error at once, which names the limit, and the session
// goes on (issue 9: it used to be dropped, and the call hung).
func (e *e2e) testMessageLimit(t *testing.T) {
	b := newBox(t)
	b.file(t, "big.txt", strings.Repeat("0123456789abcdef", 16<<10)) // 256 KiB
	b.file(t, "small.txt", "small\n")
	prof := e.profile(t, b, "e2e-limit", "", "limits:\n  max_message: 64KiB\n")
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{"node", e.server("server-filesystem"), b.ws}})
	_, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "big.txt"}})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != proxy.CodeInternalError || !strings.Contains(werr.Message, "65536 bytes") {
		t.Errorf("read_text_file of 256 KiB with a 64 KiB limit = %v, want an error naming the limit", err)
	}
	if got := s.wantAllowed(t, "read_text_file", map[string]any{"path": "small.txt"}); got != "small\n" {
		t.Errorf("after the large answer, read_text_file small.txt = %q", got)
	}
	s.close(t)
	var status []string
	for _, r := range s.records(t, audit.EventOutcome) {
		o, err := audit.ReadEvent[audit.Outcome](r)
		if err != nil {
			t.Fatal(err)
		}
		status = append(status, o.Status)
	}
	if !contains(status, audit.OutcomeTooLarge) {
		t.Errorf("outcomes %q, want %q among them", status, audit.OutcomeTooLarge)
	}
}
