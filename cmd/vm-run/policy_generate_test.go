package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// recordedCall is one call of a test session: what the proxy decided and
// how the call ended ("" for no outcome record).
type recordedCall struct {
	kind    policy.Kind
	name    string
	args    map[string]any
	verdict policy.Action
	rule    string
	status  string
}

func (c recordedCall) info(ws string) policy.CallInfo {
	return policy.CallInfo{Kind: c.kind, Name: c.name, Arguments: c.args, Workspace: ws}
}

func readCall(p string, verdict policy.Action, status string) recordedCall {
	return recordedCall{policy.KindTool, "read_text_file", map[string]any{"path": p}, verdict, "strict-read", status}
}

// hermeticHome points HOME at an empty directory, so that no profile of the
// user running the tests shadows the built-in strict.
func hermeticHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	return home
}

// writeSession appends one session to the ledger at path, with the records
// and fields vm-run run writes (session.go).
func writeSession(t *testing.T, path, id, ws string, calls []recordedCall) {
	t.Helper()
	ctx := context.Background()
	l, err := audit.Open(path, audit.Options{SessionID: id, Profile: "strict", ProfileHash: "sha256:feed"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Log(ctx, audit.SessionStart{Argv: []string{"server", "--stdio"}, Profile: "strict", ProfileHash: "sha256:feed", Workdir: ws}); err != nil {
		t.Fatal(err)
	}
	method := map[policy.Kind]string{policy.KindTool: "tools/call", policy.KindResource: "resources/read",
		policy.KindPrompt: "prompts/get", policy.KindSampling: "sampling/createMessage"}
	for i, c := range calls {
		var args json.RawMessage
		if c.args != nil {
			args, _ = json.Marshal(c.args)
		}
		rec := proxy.Ledger(l)
		d := audit.Decision{Kind: string(c.kind), Tool: c.name, Verdict: c.verdict, Rule: c.rule, Reason: "test",
			Seq: uint64(i + 1), From: "client", Method: method[c.kind], RequestID: json.RawMessage(`7`)}
		if args != nil {
			d.Args = args
		}
		if err := rec.Record(ctx, d); err != nil {
			t.Fatal(err)
		}
		if c.status != "" {
			o := audit.Outcome{Seq: d.Seq, Kind: string(c.kind), Name: c.name, Method: d.Method, Status: c.status}
			if err := rec.Queue(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := l.Log(ctx, audit.NewSessionEnd(0, "", 0)); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyGenerate records sessions with the audit package as vm-run run
// does, generates a profile from one, and loads it as vm-run --profile
// would: it must allow every call the session used and deny what it did
// not do.
func TestPolicyGenerate(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	ws := filepath.Join(dir, "ws")
	home := hermeticHome(t)
	vars := profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir}

	session := []recordedCall{
		readCall("docs/a.md", policy.Allow, audit.OutcomeOK),
		readCall(ws+"/docs/b.md", policy.Allow, audit.OutcomeOK),
		readCall("notes.txt", policy.Allow, audit.OutcomeOK),
		readCall("docs/missing.md", policy.Allow, audit.OutcomeToolError),
		{policy.KindTool, "write_file", map[string]any{"path": "out/report.md", "content": "x"}, policy.Allow, "allow-out", audit.OutcomeOK},
		{policy.KindTool, "write_file", map[string]any{"path": "src/main.go", "content": "x"}, policy.Deny, policy.RuleDefault, ""},
		{policy.KindTool, "echo", map[string]any{"message": "hi", "api_key": "sk-secret"}, policy.Allow, "allow-echo", audit.OutcomeOK},
		{policy.KindTool, "fetch_url", map[string]any{"file": "cache/page", "url": "https://example.org/"}, policy.Allow, "allow-fetch", audit.OutcomeOK},
		{policy.KindResource, "file:///notes/today", nil, policy.Allow, policy.RuleDefault, audit.OutcomeOK},
		{policy.KindPrompt, "review", nil, policy.Allow, policy.RuleDefault, audit.OutcomeOK},
		{policy.KindTool, "read_text_file", map[string]any{"path": "../etc/passwd"}, policy.Deny, policy.RulePaths, ""},
		// Names from the ledger must not become YAML of their own, in the
		// profile or in a comment.
		{policy.KindTool, "odd\n- id: injected", nil, policy.Allow, "allow-odd", audit.OutcomeOK},
		{policy.KindTool, "odder\ntools: ~", nil, policy.Deny, policy.RuleDefault, ""},
	}
	writeSession(t, ledger, "aaaa000000000001", ws, []recordedCall{readCall("old/x", policy.Allow, audit.OutcomeOK)})
	writeSession(t, ledger, "bbbb000000000002", ws, session)
	writeSession(t, ledger, "cccc000000000003", ws, nil) // --no-proxy: no decisions

	// A base given as a path, with a class of its own.
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte("extends: strict\ntools:\n  classes:\n    fetch: {tools: [fetch_url], path_args: [file]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		args  []string
		allow []policy.CallInfo // besides the session's used calls
		deny  []policy.CallInfo // besides the session's denied calls
		want  []string          // in the file
	}{
		{
			name: "latest session, base by path",
			args: []string{"--profile", base},
			allow: []policy.CallInfo{
				readCall("docs/c.md", "", "").info(ws),       // the generalised docs/*
				readCall("docs/missing.md", "", "").info(ws), // failed, but under docs/*
			},
			deny: []policy.CallInfo{
				readCall("src/main.go", "", "").info(ws), // outside the globs
				readCall("docs", "", "").info(ws),        // the directory itself
				readCall("old/x", "", "").info(ws),       // another session's call
				{Kind: policy.KindTool, Name: "write_file", Arguments: map[string]any{"path": "out/other.md"}, Workspace: ws},
				{Kind: policy.KindTool, Name: "delete_everything", Workspace: ws},
				{Kind: policy.KindTool, Name: "fetch_url", Arguments: map[string]any{"file": "cache/other"}, Workspace: ws},
				{Kind: policy.KindResource, Name: "file:///notes/yesterday", Workspace: ws},
				{Kind: policy.KindPrompt, Name: "deploy", Workspace: ws},
				{Kind: policy.KindSampling, Name: "sampling/createMessage", Workspace: ws},
			},
			want: []string{"REVIEW BEFORE USE", "session:   bbbb000000000002", "extends: " + base,
				"fetch_url(cache/page)", "the whole tool policy in force",
				"read(docs/*)", "read(./notes.txt)", "write(out/report.md)", "- echo",
				"resource(file:///notes/today)", "prompt(review)",
				"#   - write(src/main.go)", `denied by "vm-run:default"`, "tool_error",
				"the proxy refuses it before any rule"},
		},
		{
			name: "session by prefix, strict base",
			args: []string{"--session", "aaaa"},
			deny: []policy.CallInfo{
				{Kind: policy.KindTool, Name: "write_file", Arguments: map[string]any{"path": "old/x"}, Workspace: ws},
				readCall("docs/a.md", "", "").info(ws),                                  // strict's read rule is not inherited
				{Kind: policy.KindResource, Name: "file:///notes/today", Workspace: ws}, // nor its defaults
			},
			want: []string{"session:   aaaa000000000001", "extends: strict", "read(old/x)", "strict do not apply"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "gen"+string(rune('0'+i))+".yaml")
			var stdout, stderr bytes.Buffer
			args := append([]string{"policy", "generate", "--ledger", ledger, "-o", out}, tt.args...)
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(data), "\n") {
				if l := strings.TrimLeft(l, " #"); strings.HasPrefix(l, "tools: ~") || strings.HasPrefix(l, "- id: injected") {
					t.Errorf("a name from the ledger made a line of its own: %q", l)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("generated profile lacks %q:\n%s", w, data)
				}
			}
			p, err := profiles.Load(out, vars)
			if err != nil {
				t.Fatalf("profiles.Load(%q): %v\n%s", out, err, data)
			}
			sess := session
			if strings.Contains(strings.Join(tt.args, " "), "aaaa") {
				sess = []recordedCall{readCall("old/x", policy.Allow, audit.OutcomeOK)}
			}
			for _, c := range sess {
				d := p.Tools.Decide(c.info(ws))
				switch {
				case c.verdict == policy.Allow && c.status == audit.OutcomeOK && !d.Allowed():
					t.Errorf("Decide(used %s %q %v) = deny (%s), want allow", c.kind, c.name, c.args, d.Reason)
				case c.verdict == policy.Deny && d.Allowed():
					t.Errorf("Decide(denied %s %q %v) = allow (%s), want deny", c.kind, c.name, c.args, d.Reason)
				}
			}
			for _, c := range tt.allow {
				if d := p.Tools.Decide(c); !d.Allowed() {
					t.Errorf("Decide(%s %q %v) = deny (%s), want allow", c.Kind, c.Name, c.Arguments, d.Reason)
				}
			}
			for _, c := range tt.deny {
				if d := p.Tools.Decide(c); d.Allowed() {
					t.Errorf("Decide(%s %q %v) = allow (%s), want deny", c.Kind, c.Name, c.Arguments, d.Reason)
				}
			}
		})
	}
}

// TestPolicyGenerateErrors checks what the command refuses, and that it
// says what to do.
func TestPolicyGenerateErrors(t *testing.T) {
	hermeticHome(t)
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	ws := filepath.Join(dir, "ws")
	writeSession(t, ledger, "dddd000000000001", ws, nil)
	empty := filepath.Join(dir, "empty.jsonl")
	writeSession(t, empty, "eeee000000000001", ws, nil)
	writeSession(t, ledger, "dddd000000000002", ws, []recordedCall{readCall("a", policy.Allow, audit.OutcomeOK)})
	exists := filepath.Join(dir, "exists.yaml")
	if err := os.WriteFile(exists, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no decisions", []string{"--ledger", empty}, "records no decisions"},
		{"unknown session", []string{"--ledger", ledger, "--session", "ffff"}, `has no session "ffff"`},
		{"ambiguous session", []string{"--ledger", ledger, "--session", "dddd"}, "is ambiguous"},
		{"session without decisions", []string{"--ledger", ledger, "--session", "dddd000000000001"}, "made no decisions"},
		{"output exists", []string{"--ledger", ledger, "-o", exists}, "pass --force"},
		{"no ledger", []string{"--ledger", filepath.Join(dir, "none.jsonl")}, "open ledger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"policy", "generate"}, tt.args...)
			if code := run(args, &stdout, &stderr); code != sandbox.ExitSetup {
				t.Errorf("vm-run %q = %d, want %d", args, code, sandbox.ExitSetup)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("vm-run %q stderr = %q, want %q", args, stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("vm-run %q wrote %q to stdout", args, stdout.String())
			}
		})
	}
	if data, _ := os.ReadFile(exists); string(data) != "keep me\n" {
		t.Errorf("existing output changed to %q", data)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"policy", "generate", "--ledger", ledger, "-o", exists, "--force"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr.String())
	}
	if data, _ := os.ReadFile(exists); !strings.Contains(string(data), "read(./a)") {
		t.Errorf("--force did not replace the output:\n%s", data)
	}
}

// TestPolicyGenerateInForce checks that the header warns when the loaded
// profile holds more than the generated rules, as it would if a profile
// inherited its base's rules and defaults.
func TestPolicyGenerateInForce(t *testing.T) {
	call := policy.CallInfo{Kind: policy.KindTool, Name: "write_file", Arguments: map[string]any{"path": "src/a"}, Workspace: "/ws"}
	g, err := policy.Generate([]policy.Use{{Call: call, Verdict: policy.Allow, Status: audit.OutcomeOK}}, policy.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	block := &policy.Policy{Rules: []policy.Rule{{ID: "block-src", Deny: []policy.Matcher{{Spec: "write(src/*)"}}}}}
	loaded := policy.Merge(policy.Merge(policy.Strict(), block), g.Policy)
	loaded.DefaultAction = policy.Deny
	if err := loaded.Compile(); err != nil {
		t.Fatal(err)
	}
	extra := beyond(loaded, g)
	if len(extra.rules) != 2 || len(extra.denied) != 1 || strings.Join(extra.defaults, ",") != "resource,prompt" {
		t.Errorf("beyond = rules %v, defaults %v, denied %v; want strict-read and block-src, resource and prompt, the write", extra.rules, extra.defaults, extra.denied)
	}
	s := &recordedSession{id: "0123", profile: "strict", workdir: "/ws"}
	data, err := renderProfile(s, "strict", "strict", g, nil, extra)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WARNING", "inherited rule strict-read: allow read", "inherited rule block-src: deny write(src/*)",
		"allowed by default: resource, prompt", `an inherited rule denies: write_file {"path":"src/a"}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("header lacks %q:\n%s", want, data)
		}
	}
	if extra := beyond(g.Policy, g); !extra.empty() {
		t.Errorf("beyond(the generated policy itself) = %+v, want nothing", extra)
	}
}

// writeNet appends network records to session id of the ledger at path,
// as the egress stack writes them.
func writeNet(t *testing.T, path, id string, evs []audit.Event) {
	t.Helper()
	l, err := audit.Open(path, audit.Options{SessionID: id, Profile: "egress", ProfileHash: "sha256:feed"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ev := range evs {
		if _, err := l.Log(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// egressSession is the network traffic of a session in mode egress.
func egressSession() []audit.Event {
	type c = audit.NetConnect
	allow, deny := audit.VerdictAllow, audit.VerdictDeny
	return []audit.Event{
		audit.NetDNS{Name: "api.github.com", Type: "A", Verdict: allow, Rule: "api.github.com:443", Answer: "198.18.0.4"},
		c{Conn: 1, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: allow,
			Rule: "api.github.com:443", SNI: "api.github.com", Dialed: "140.82.112.5:443"},
		c{Conn: 2, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: allow,
			Rule: "api.github.com:443", SNI: "api.github.com", Dialed: "140.82.112.6:443"},
		c{Conn: 3, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:80", Port: 80, Verdict: allow,
			Rule: "api.github.com:80,443", Dialed: "140.82.112.5:80"},
		c{Conn: 4, Proto: "tcp", Name: "files.slack.com", Address: "198.18.0.5:443", Port: 443, Verdict: allow,
			Rule: "*.slack.com:443", SNI: "files.slack.com", Dialed: "3.5.6.7:443"},
		c{Conn: 5, Proto: "tcp", Name: "db.internal", Address: "198.18.0.6:5432", Port: 5432, Verdict: allow,
			Rule: "db.internal:5432", Dialed: "10.0.0.7:5432"},
		c{Conn: 6, Proto: "tcp", Address: "10.0.0.5:5432", Port: 5432, Verdict: allow, Rule: "10.0.0.5:5432", Dialed: "10.0.0.5:5432"},
		c{Conn: 10, Proto: "tcp", Name: "nosni.example", Address: "198.18.0.11:443", Port: 443, Verdict: allow,
			Rule: "nosni.example:443", Dialed: "5.6.7.8:443"},
		c{Conn: 7, Proto: "tcp", Address: "127.0.0.1:8080", Port: 8080, Verdict: allow, Rule: "host-loopback:8080", Dialed: "127.0.0.1:8080"},
		// Reached, but nothing a rule can name: a wildcard, a name that is
		// not one, a synthetic address.
		c{Conn: 8, Proto: "tcp", Name: "*.evil.example", Address: "198.18.0.7:443", Port: 443, Verdict: allow, Rule: "*.evil.example:443"},
		c{Conn: 9, Proto: "tcp", Name: "\x1b]0;title\x07ok.example", Address: "198.18.0.8:443", Port: 443, Verdict: allow},
		// Refused for want of a rule: proposed, commented out.
		c{Proto: "tcp", Name: "example.com", Address: "198.18.0.9:80", Port: 80, Verdict: deny, Reason: "no rule allows example.com:80"},
		c{Proto: "tcp", Name: "example.com", Address: "198.18.0.9:80", Port: 80, Verdict: deny, Reason: "no rule allows example.com:80", Suppressed: 12},
		c{Proto: "tcp", Address: "10.9.9.9:22", Port: 22, Verdict: deny, Reason: "10.9.9.9:22 is an address literal no rule lists"},
		// Refused where a rule would not help, or could not be written.
		c{Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: deny, Rule: "api.github.com:443",
			SNI: "evil.example", Reason: "SNI evil.example does not match api.github.com"},
		c{Proto: "tcp", Address: "198.18.0.77:443", Port: 443, Verdict: deny, Reason: "198.18.0.77:443 is a synthetic address the stub never gave out"},
		c{Proto: "udp", Address: "8.8.8.8:53", Port: 53, Verdict: deny, Reason: "UDP other than DNS is refused"},
		c{Proto: "tcp", Name: "evil\x1b[2J\n- injected.example:1", Address: "198.18.0.10:80", Port: 80, Verdict: deny, Reason: "no rule allows it"},
		audit.NetDNS{Name: "telemetry.example", Type: "A", Verdict: deny},
		audit.NetDNS{Name: "telemetry.example", Type: "AAAA", Verdict: deny, Suppressed: 4},
		audit.NetDNS{Name: "evil\r\n- also.injected:1", Type: "A", Verdict: deny},
	}
}

// TestPolicyGenerateNetwork: generate proposes network.allow from the
// destinations a session reached, by name and port, merged per host and
// sorted, and lists what it was refused, commented out; the profile loads
// and allows exactly those, and the commented entries load once moved in.
func TestPolicyGenerateNetwork(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	ws := filepath.Join(dir, "ws")
	home := hermeticHome(t)
	vars := profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir}
	writeSession(t, ledger, "aaaa000000000001", ws, []recordedCall{readCall("a", policy.Allow, audit.OutcomeOK)})
	writeNet(t, ledger, "aaaa000000000001", egressSession())
	// Another session's traffic is not this one's.
	writeNet(t, ledger, "bbbb000000000002", []audit.Event{audit.NetConnect{Conn: 1, Proto: "tcp", Name: "other.example",
		Address: "198.18.0.4:443", Port: 443, Verdict: audit.VerdictAllow, Dialed: "1.2.3.4:443"}})
	writeSession(t, ledger, "cccc000000000003", ws, []recordedCall{readCall("a", policy.Allow, audit.OutcomeOK)})

	out := filepath.Join(dir, "gen.yaml")
	var stdout, stderr bytes.Buffer
	args := []string{"policy", "generate", "--ledger", ledger, "--session", "aaaa", "-o", out}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkTerminalSafe(t, "generated profile", data)
	for _, l := range strings.Split(string(data), "\n") {
		if l := strings.TrimLeft(l, " #"); strings.HasPrefix(l, "- injected") || strings.HasPrefix(l, "- also.injected") {
			t.Errorf("a name from the ledger made a line of its own: %q", l)
		}
	}
	for _, w := range []string{
		"mode: egress",
		"    - 10.0.0.5:5432 # 1 connection\n",
		"    - host: api.github.com\n      ports: [80, 443] # 3 connections; allowed by api.github.com:80,443\n",
		"    - nosni.example:443 # 1 connection; no SNI seen: add sni: false if the client sends none\n",
		"    - host: db.internal\n      ports: [5432]\n      private: true # 1 connection; private: dialled 10.0.0.7, a private address\n",
		"    - files.slack.com:443 # 1 connection; allowed by *.slack.com:443\n",
		"    - host-loopback:8080 # 1 connection\n",
		"#   - example.com:80  # 14 connections refused: no rule allows example.com:80\n",
		"#   - 10.9.9.9:22  # 1 connection refused: 10.9.9.9:22 is an address literal no rule lists\n",
		"#   api.github.com:443: SNI evil.example does not match api.github.com (1 connection)\n",
		"#   198.18.0.77:443: 198.18.0.77:443 is a synthetic address the stub never gave out (1 connection)\n",
		"#   8.8.8.8:53: UDP other than DNS is refused (1 connection)\n",
		`#   "evil\x1b[2J\n- injected.example:1:80": no rule allows it (1 connection)`,
		"#   telemetry.example  # 6 questions, A AAAA\n",
		`#   "evil\r\n- also.injected:1"  # 1 question, A`,
		"#   *.evil.example:443: a name with a \"*\" in it\n",
		`#   "\x1b]0;title\aok.example:443: `,
	} {
		if !strings.Contains(string(data), w) {
			t.Errorf("generated profile lacks %q:\n%s", w, data)
		}
	}

	p, err := profiles.Load(out, vars)
	if err != nil {
		t.Fatalf("profiles.Load(%q): %v\n%s", out, err, data)
	}
	var got []string
	for _, r := range p.Network.Allow {
		got = append(got, fmt.Sprintf("%s private=%v", r, r.Private))
	}
	want := []string{"10.0.0.5:5432 private=false", "api.github.com:80,443 private=false", "db.internal:5432 private=true",
		"files.slack.com:443 private=false", "host-loopback:8080 private=false", "nosni.example:443 private=false"}
	if p.Network.Mode != profiles.NetworkEgress || !slices.Equal(got, want) {
		t.Errorf("loaded network = mode %s, allow %q; want egress, %q", p.Network.Mode, got, want)
	}

	// The reviewer moves the commented entries into the list.
	var moved []string
	for _, l := range strings.Split(string(data), "\n") {
		if entry, ok := strings.CutPrefix(l, "#   - "); ok && strings.Contains(l, "refused:") {
			moved = append(moved, "    - "+strings.SplitN(entry, "  #", 2)[0])
		}
	}
	approved := filepath.Join(dir, "approved.yaml")
	text := "extends: " + out + "\nnetwork:\n  allow:\n" + strings.Join(moved, "\n") + "\n"
	if err := os.WriteFile(approved, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = profiles.Load(approved, vars)
	if err != nil {
		t.Fatalf("profiles.Load(the refused entries moved in): %v\n%s", err, text)
	}
	if n := len(p.Network.Allow); len(moved) != 2 || n != len(want)+2 {
		t.Errorf("with %q moved in, the profile allows %d rules, want %d", moved, n, len(want)+2)
	}

	// Over a base in mode loopback, whose keys mode egress has not.
	loop := filepath.Join(dir, "loop.yaml")
	if err := os.WriteFile(loop, []byte("extends: strict\nnetwork:\n  mode: loopback\n  connect_tcp: [8080]\n  bind_tcp: [9090]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"dev", loop} {
		out := filepath.Join(dir, "over-"+filepath.Base(base)+".yaml")
		args := []string{"policy", "generate", "--ledger", ledger, "--session", "aaaa", "--profile", base, "-o", out}
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
		}
		p, err := profiles.Load(out, vars)
		if err != nil {
			t.Fatalf("profiles.Load(generated over %s): %v", base, err)
		}
		if n := p.Network; n.Mode != profiles.NetworkEgress || n.AnyPort || len(n.ConnectTCP)+len(n.BindTCP) != 0 || len(n.Allow) != len(want) {
			t.Errorf("generated over %s: network %+v, want mode egress, no loopback keys, %d rules", base, n, len(want))
		}
	}

	// A session without network records gets no network section.
	args = []string{"policy", "generate", "--ledger", ledger, "--session", "cccc"}
	stdout.Reset()
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
	}
	if s := stdout.String(); strings.Contains(s, "network:") || strings.Contains(s, "Network destinations") {
		t.Errorf("generated profile of a session without network records mentions the network:\n%s", s)
	}
}

// TestPolicyGenerateNetworkInherited: network.allow accumulates over
// extends, so the header names the rules a base brings along.
func TestPolicyGenerateNetworkInherited(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	hermeticHome(t)
	writeSession(t, ledger, "aaaa000000000001", dir, []recordedCall{readCall("a", policy.Allow, audit.OutcomeOK)})
	writeNet(t, ledger, "aaaa000000000001", egressSession()[:2])
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte("extends: strict\nnetwork:\n  mode: egress\n  allow: [old.example:443, api.github.com:443]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"policy", "generate", "--ledger", ledger, "--profile", base}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
	}
	if s := stdout.String(); !strings.Contains(s, "WARNING") || !strings.Contains(s, "inherited network rule old.example:443\n") ||
		strings.Contains(s, "inherited network rule api.github.com") {
		t.Errorf("header does not name the inherited rule old.example:443, and it alone:\n%s", s)
	}
}
