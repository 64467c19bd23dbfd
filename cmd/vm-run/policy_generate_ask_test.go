package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// writeAskSession appends a session in which an ask rule held two writes:
// a person approved the first on the CLI and refused the second; a third
// asked call expired.
func writeAskSession(t *testing.T, path, ws string) {
	t.Helper()
	ctx := context.Background()
	l, err := audit.Open(path, audit.Options{SessionID: "dddd000000000004", Profile: "corp", ProfileHash: "sha256:feed"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log := func(ev audit.Event) {
		t.Helper()
		if _, err := l.Log(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	log(audit.SessionStart{Argv: []string{"server"}, Profile: "corp", ProfileHash: "sha256:feed", Workdir: ws})
	rec := proxy.Ledger(l)
	decide := func(seq uint64, name, p string, v policy.Action, rule string) {
		t.Helper()
		args, _ := json.Marshal(map[string]any{"path": p, "content": "x"})
		d := audit.Decision{Kind: "tool", Tool: name, Verdict: v, Rule: rule, Reason: "test", Seq: seq,
			From: "client", Method: "tools/call", RequestID: json.RawMessage(`1`), Args: json.RawMessage(args)}
		if err := rec.Record(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	outcome := func(seq uint64, name string) {
		t.Helper()
		if err := rec.Queue(ctx, audit.Outcome{Seq: seq, Kind: "tool", Name: name, Method: "tools/call", Status: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(id string, seq uint64) {
		log(audit.ApprovalRequested{ID: id, Seq: seq, Kind: "tool", Name: "write_file", Rule: "review",
			Channels: []string{audit.ChannelCLI}, TimeoutNS: int64(time.Minute), TTLNS: int64(time.Hour)})
	}
	decide(1, "write_file", "src/a.c", policy.Ask, "review")
	ask("q1", 1)
	log(audit.ApprovalGranted{ID: "q1", Channel: audit.ChannelCLI, By: "uid=1000 pid=42", Scope: audit.ScopeTTL,
		TTLNS: int64(time.Hour), Kind: "tool", Name: "write_file", Rule: "review"})
	outcome(1, "write_file")
	decide(2, "write_file", "src/b.c", policy.Ask, "review")
	ask("q2", 2)
	log(audit.ApprovalDenied{ID: "q2", Channel: audit.ChannelElicitation, By: "claude-code 2.1", Reason: "not that one"})
	decide(3, "write_file", "src/c.c", policy.Ask, "review")
	ask("q3", 3)
	log(audit.ApprovalExpired{ID: "q3", Reason: "timeout"})
	decide(4, "read_text_file", "docs/a.md", policy.Allow, "strict-read")
	outcome(4, "read_text_file")
	log(audit.SecretProvided{Name: "github", Source: "file", SHA256: strings.Repeat("ab", 32), Env: []string{"GITHUB_TOKEN"}})
	log(audit.SecretRedacted{Name: "github", Forms: []string{"raw", "base64"}, Count: 2, Method: "tools/call", Seq: 4})
	log(audit.ToolChanged{Tool: "write_file", Pinned: strings.Repeat("1", 64), Seen: strings.Repeat("2", 64),
		Changed: []string{"description"}, Summary: "description changed", Action: "ask"})
	log(audit.NewSessionEnd(0, "", 0))
}

// TestPolicyGenerateApproved: a call a person approved becomes an allow
// rule of its own, marked as such; refused and expired ones are offered
// for review only.
func TestPolicyGenerateApproved(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	ws := filepath.Join(dir, "ws")
	home := hermeticHome(t)
	writeAskSession(t, ledger, ws)
	out := filepath.Join(dir, "gen.yaml")
	var stdout, stderr bytes.Buffer
	args := []string{"policy", "generate", "--ledger", ledger, "-o", out}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"The approved-* rules stand for calls that an ask rule held and a person",
		"- id: approved-tools",
		"write(src/a.c) # write_file x1; approved by a person: 1 (cli uid=1000 pid=42 (for the rule's ttl))",
		"- id: used-tools",
		"#   - write(src/b.c)", "#   - write(src/c.c)", `denied by "review"`,
	} {
		if !strings.Contains(string(data), w) {
			t.Errorf("generated profile lacks %q:\n%s", w, data)
		}
	}
	p, err := profiles.Load(out, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatalf("profiles.Load(%q): %v\n%s", out, err, data)
	}
	call := func(name, p string) policy.CallInfo {
		return policy.CallInfo{Kind: policy.KindTool, Name: name, Arguments: map[string]any{"path": p}, Workspace: ws}
	}
	for _, c := range []struct {
		call policy.CallInfo
		want bool
	}{
		{call("write_file", "src/a.c"), true},
		{call("read_text_file", "docs/a.md"), true},
		{call("write_file", "src/b.c"), false},
		{call("write_file", "src/c.c"), false},
	} {
		if d := p.Tools.Decide(c.call); d.Allowed() != c.want {
			t.Errorf("Decide(%s %v) = %s (%s), want allowed %v", c.call.Name, c.call.Arguments, d.Verdict, d.Reason, c.want)
		}
	}
}
