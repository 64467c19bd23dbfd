package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestE2EAsk drives server-everything through vm-run under a policy that
// asks a person before echo, with the official Go SDK's client as the
// person: its elicitation handler answers vm-run's questions. It covers
// approve once, approve for the rule's ttl (the same call not asked
// again), deny, decline, a question no one answers (denied at its
// timeout), a ping answered while a call waits, and a call cancelled
// while it waits; the server sees only approved calls.
func TestE2EAsk(t *testing.T) {
	e := setupE2E(t)
	b := newBox(t)
	prof := e.profile(t, b, "e2e-ask", "", "")
	pol := b.config(t, "ask-policy.yaml", `rules:
  - id: ask-sum
    reason: nobody answers this one
    ask: [get-sum]
    timeout: 1s
  - id: ask-echo
    reason: echo sends text out
    ask: [echo]
    ttl: 1h
`)
	var asked atomic.Int32
	answers := make(chan string, 1)
	var session atomic.Pointer[mcp.ClientSession]
	pinged := make(chan error, 1)
	opts := &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if strings.Contains(req.Params.Message, "get-sum") {
				// No one answers: vm-run withdraws the question at its
				// timeout.
				<-ctx.Done()
				return nil, ctx.Err()
			}
			asked.Add(1)
			if !strings.Contains(req.Params.Message, `"echo"`) || !strings.Contains(req.Params.Message, "ask-echo") {
				t.Errorf("question %q does not name the tool and the rule", req.Params.Message)
			}
			select {
			case a := <-answers:
				switch a {
				case "ping":
					// A ping through vm-run while the call waits.
					pinged <- session.Load().Ping(ctx, nil)
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"decision": "approve_once"}}, nil
				case "decline":
					return &mcp.ElicitResult{Action: "decline"}, nil
				}
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"decision": a}}, nil
			case <-ctx.Done():
				// vm-run withdrew the question.
				return nil, ctx.Err()
			}
		},
	}
	s := e.start(t, b, e2eRun{profile: prof, policy: pol, ws: b.ws, client: opts,
		server: []string{"node", e.server("server-everything"), "stdio"}})
	session.Store(s.ClientSession)

	answers <- "ping"
	if got := s.wantAllowed(t, "echo", map[string]any{"message": "once"}); !strings.Contains(got, "once") {
		t.Errorf("echo = %q after approval, want the message back", got)
	}
	if err := <-pinged; err != nil {
		t.Errorf("ping while a call waited for approval: %v", err)
	}
	answers <- "deny"
	s.wantDenied(t, "echo", map[string]any{"message": "denied"}, "ask-echo")
	answers <- "decline"
	s.wantDenied(t, "echo", map[string]any{"message": "declined"}, "ask-echo")

	s.wantDenied(t, "get-sum", map[string]any{"a": 1, "b": 2}, "ask-sum")

	answers <- "approve_ttl"
	s.wantAllowed(t, "echo", map[string]any{"message": "ttl"})
	before := asked.Load()
	s.wantAllowed(t, "echo", map[string]any{"message": "ttl"})
	if asked.Load() != before {
		t.Errorf("the same call within the grant's ttl was asked again")
	}

	// A call cancelled while it waits: the question is withdrawn, the
	// server never sees the call.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "cancelled"}})
		done <- err
	}()
	for asked.Load() == before {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call = %v, want context.Canceled", err)
	}
	s.close(t)

	got := approvalRecords(t, s.ledger)
	want := []string{
		"approval_requested echo", "approval_granted echo elicitation once",
		"approval_requested echo", "approval_denied elicitation",
		"approval_requested echo", "approval_denied elicitation",
		"approval_requested get-sum", "approval_expired timeout",
		"approval_requested echo", "approval_granted echo elicitation ttl",
		"approval_granted echo remembered ttl",
		"approval_requested echo", "approval_expired cancelled",
	}
	if !slices.Equal(got, want) {
		t.Errorf("approval records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only the approved calls reached the server: their outcomes.
	if n := countOutcomes(t, s.ledger, "echo"); n != 3 {
		t.Errorf("%d echo calls reached the server, want the 3 approved", n)
	}
}

// TestE2EAskTypeScriptSDK puts vm-run's questions to the official
// TypeScript SDK's client (testdata/askclient), which declares elicitation
// and answers them as a person would: approve once, deny, approve for the
// rule's ttl, the same call again (not asked), the same call once the ttl
// has passed (asked again), decline, a ping while a call waits, a question
// no one answers (withdrawn and denied at its timeout) and a call the
// client cancels while it waits (the question withdrawn).
func TestE2EAskTypeScriptSDK(t *testing.T) {
	e := setupE2E(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node: %v", err)
	}
	b := newBox(t)
	prof := e.profile(t, b, "e2e-ask-ts", "", "")
	pol := b.config(t, "ask-policy.yaml", "rules:\n  - id: ask-echo\n    ask: [echo]\n    ttl: 6s\n    timeout: 4s\n")
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	client, err := filepath.Abs("testdata/askclient/client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{client, filepath.Join(e.modules, "@modelcontextprotocol", "sdk"), "echo", "approve_once,deny,approve_ttl,none,sleep:6100,again,decline,ping,ignore,cancel", "--",
		e.bin, "--profile", prof, "--policy", pol, "--workspace", b.ws, "--ledger", ledger, "--", "node", e.server("server-everything"), "stdio"}
	out, err := exec.CommandContext(t.Context(), "node", args...).Output()
	if err != nil {
		t.Fatalf("askclient: %v\n%s", err, stderrOf(err))
	}
	type call struct {
		Answer, Text, Question                string
		Asked                                 int
		IsError, Withdrawn, Pinged, Cancelled bool
	}
	var calls []call
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var c call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("askclient printed %q: %v", line, err)
		}
		calls = append(calls, c)
	}
	want := []struct {
		asked   int
		allowed bool
	}{{1, true}, {1, false}, {1, true}, {0, true}, {1, true}, {1, false}, {1, true}, {1, false}, {1, false}}
	if len(calls) != len(want) {
		t.Fatalf("askclient made %d calls, want %d:\n%s", len(calls), len(want), out)
	}
	for i, c := range calls {
		if c.Asked != want[i].asked || c.IsError == want[i].allowed {
			t.Errorf("call %d (%s): asked %d times, isError %v (%q); want asked %d, allowed %v", i, c.Answer, c.Asked, c.IsError, c.Text, want[i].asked, want[i].allowed)
		}
		if c.Asked > 0 && !strings.Contains(c.Question, "ask-echo") {
			t.Errorf("call %d: question %q does not name the rule", i, c.Question)
		}
	}
	last := calls[len(calls)-3:]
	if !last[0].Pinged {
		t.Errorf("the ping while a call waited for approval did not come back")
	}
	if !last[1].Withdrawn || !strings.Contains(last[1].Text, "timeout") {
		t.Errorf("unanswered question: withdrawn %v, answer %q; want it withdrawn and the call denied at its timeout", last[1].Withdrawn, last[1].Text)
	}
	if !last[2].Cancelled || !last[2].Withdrawn {
		t.Errorf("cancelled call: cancelled %v, question withdrawn %v; want both", last[2].Cancelled, last[2].Withdrawn)
	}
	if n := countOutcomes(t, ledger, "echo"); n != 5 {
		t.Errorf("%d echo calls reached the server, want the 5 approved", n)
	}
	got := approvalRecords(t, ledger)
	if len(got) < 2 || got[len(got)-3] != "approval_expired timeout" || got[len(got)-1] != "approval_expired cancelled" {
		t.Errorf("approval records end %v, want the timeout and the cancellation recorded", got)
	}
}

// TestE2EAskCLI: a client without elicitation, so the question goes to
// the session's approval socket, and a person approves it with `vm-run
// approvals approve` at a terminal, from another process, typing the code
// it shows; the ledger names that process as who answered.
func TestE2EAskCLI(t *testing.T) {
	e := setupE2E(t)
	privateRuntimeDir(t)
	b := newBox(t)
	prof := e.profile(t, b, "e2e-ask-cli", "", "")
	pol := b.config(t, "ask-policy.yaml", "rules:\n  - id: ask-echo\n    ask: [echo]\n")
	s := e.start(t, b, e2eRun{profile: prof, policy: pol, ws: b.ws,
		server: []string{"node", e.server("server-everything"), "stdio"}})
	res := make(chan string, 1)
	go func() {
		r, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "by the cli"}})
		if err != nil {
			res <- err.Error()
			return
		}
		res <- text(r)
	}()
	id := waitForQuestion(t, e.bin, "echo", func() {
		select {
		case got := <-res:
			t.Fatalf("echo answered %q before anyone approved it\nvm-run stderr:\n%s", got, s.stderr)
		default:
		}
	})
	pid := approveAtTerminal(t, e.bin, id)
	if got := <-res; !strings.Contains(got, "by the cli") {
		t.Errorf("echo = %q, want the message back once approved", got)
	}
	s.close(t)
	want := []string{"approval_requested echo", "approval_granted echo cli once"}
	if got := approvalRecords(t, s.ledger); !slices.Equal(got, want) {
		t.Errorf("approval records = %v, want %v", got, want)
	}
	by := fmt.Sprintf("uid=%d pid=%d", os.Geteuid(), pid)
	found := false
	eachRecord(t, s.ledger, func(event string, data json.RawMessage) {
		found = found || event == "approval_granted" && strings.Contains(string(data), by)
	})
	if !found {
		t.Errorf("the grant does not name %s as who answered", by)
	}
}

// TestE2ESecretApprovedAtTerminal: a secret under approve: ask holds the
// server's start until a person approves at a terminal; the server then
// starts with it.
func TestE2ESecretApprovedAtTerminal(t *testing.T) {
	e := setupE2E(t)
	privateRuntimeDir(t)
	b := newBox(t)
	file := b.secretFile(t, "token", e2eFileSecret, 0o600)
	prof := e.profile(t, b, "e2e-secret-ask", "", fmt.Sprintf(
		"secrets:\n  github: {file: %q, approve: ask}\nenv:\n  set:\n    GITHUB_TOKEN: ${secret:github}\n", file))
	ledger := filepath.Join(b.cfg, "ledger.jsonl")
	// The server starts, finds its input at its end, and exits.
	cmd := exec.Command(e.bin, "--profile", prof, "--workspace", b.ws, "--ledger", ledger, "--", "node", e.server("server-everything"), "stdio")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	id := waitForQuestion(t, e.bin, "github", func() {
		select {
		case err := <-done:
			t.Fatalf("vm-run ended (%v) before the secret was approved:\n%s", err, stderr.String())
		default:
		}
	})
	approveAtTerminal(t, e.bin, id)
	if err := <-done; err != nil {
		t.Fatalf("vm-run after approval: %v\n%s", err, stderr.String())
	}
	var provided bool
	eachRecord(t, ledger, func(event string, data json.RawMessage) {
		provided = provided || event == "secret_provided" && strings.Contains(string(data), `"github"`)
	})
	want := []string{"approval_requested github", "approval_granted github cli once"}
	if got := approvalRecords(t, ledger); !slices.Equal(got, want) || !provided {
		t.Errorf("approval records = %v (secret_provided: %v), want %v and the secret provided", got, provided, want)
	}
}

// privateRuntimeDir gives the test, and the vm-run commands it runs, a
// runtime directory of its own for the approval sockets.
func privateRuntimeDir(t *testing.T) {
	t.Helper()
	rt := filepath.Join(t.TempDir(), "runtime")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", rt)
}

// waitForQuestion polls `vm-run approvals list` until a question about
// name waits, calling check between polls (it fails the test when what
// waits has ended), and returns its ID.
func waitForQuestion(t *testing.T, bin, name string, check func()) string {
	t.Helper()
	for {
		out, err := exec.Command(bin, "approvals", "list", "--json").Output()
		var ls []listed
		if err != nil || json.Unmarshal(out, &ls) != nil {
			t.Fatalf("approvals list --json = %s, %v", out, err)
		}
		for _, l := range ls {
			if l.Question.Name == name {
				return l.Question.ID
			}
		}
		check()
		time.Sleep(20 * time.Millisecond)
	}
}

// approveAtTerminal approves question id as a person does: `vm-run
// approvals approve` on a terminal of its own, the code it shows typed
// back. It returns the approving process's pid.
func approveAtTerminal(t *testing.T, bin, id string) int {
	t.Helper()
	cmd := exec.Command(bin, "approvals", "approve", id)
	typeCodeAtTerminal(t, cmd)
	return cmd.Process.Pid
}

// typeCodeAtTerminal runs cmd on a terminal of its own, as a person does,
// and types back the code it shows; it fails the test unless cmd then
// succeeds.
func typeCodeAtTerminal(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	master, slave := openPTY(t)
	tty, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	shown := readUntil(t, master, "press Enter")
	_, code, ok := strings.Cut(shown, "type the code ")
	if !ok || len(code) < 6 {
		t.Fatalf("the terminal showed %q, want the code", shown)
	}
	fmt.Fprintf(master, "%s\n", code[:6])
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v at a terminal: %v", cmd.Args, err)
	}
	tty.Close() // the terminal ends with the test's copy of its slave
	return shown + readUntil(t, master, "")
}

// stderrOf returns what a failed command wrote to its standard error.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// approvalRecords lists a ledger's approval records as "event name channel
// scope" (or reason).
func approvalRecords(t *testing.T, ledger string) []string {
	t.Helper()
	var out []string
	eachRecord(t, ledger, func(event string, data json.RawMessage) {
		if !strings.HasPrefix(event, "approval_") {
			return
		}
		var d struct{ Name, Channel, Scope, Reason string }
		json.Unmarshal(data, &d)
		f := []string{event}
		for _, s := range []string{d.Name, d.Channel, d.Scope} {
			if s != "" {
				f = append(f, s)
			}
		}
		if event == "approval_expired" {
			f = append(f, d.Reason)
		}
		out = append(out, strings.Join(f, " "))
	})
	return out
}

func countOutcomes(t *testing.T, ledger, name string) int {
	t.Helper()
	n := 0
	eachRecord(t, ledger, func(event string, data json.RawMessage) {
		var d struct{ Name string }
		if event == "outcome" && json.Unmarshal(data, &d) == nil && d.Name == name {
			n++
		}
	})
	return n
}

func eachRecord(t *testing.T, ledger string, each func(event string, data json.RawMessage)) {
	t.Helper()
	f, err := os.Open(ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("ledger %s: %v", ledger, err)
		}
		each(r.Event, r.Data)
	}
}
