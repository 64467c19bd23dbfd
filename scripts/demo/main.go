// Command demo runs @modelcontextprotocol/server-filesystem under vm-run
// with the seeds' tool policy, drives it with the official Go SDK client, and
// prints what happened to each call: allowed or denied, by which rule and
// why (read back from the audit ledger, where each decision is on disk
// before it takes effect), and an excerpt of the answer. It ends with
// `vm-run audit verify` and `vm-run audit show` on the session's ledger.
//
//	go run ./scripts/demo -vmrun bin/vm-run -mcp .cache/mcp
//
// It exits 1 if any call went otherwise than the policy and the sandbox
// say it must, and 2 if the demo could not be set up. scripts/demo.sh runs
// it for `make demo`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// demoProfile is the seeds' example, with read access to the installed MCP
// servers added (%q: the directory holding their node_modules).
//
// best_effort: a user without a cgroup of their own (no systemd user
// manager delegating one, as on this development VM) runs the demo without
// strict's process and memory limits, warned, instead of being refused;
// root always gets them.
const demoProfile = `name: demo
extends: strict
best_effort: true
filesystem: {read: [%q]}
tools:
  rules:
    - id: allow-docs
      allow: ["read(docs/*)", "read(*.md)"]
    - id: block-src-writes
      deny: ["write(src/*)", "write(lib/*)"]
  default_action: deny
`

// workspaceFiles are the demo workspace's files.
var workspaceFiles = map[string]string{
	"README.md":      "# payments-service\n\nSettles card payments. See docs/ for the runbook.\n",
	"docs/guide.md":  "# Runbook\n\n1. Check the settlement queue.\n2. Page the on-call engineer.\n",
	"docs/notes.txt": "Q3: rotate the settlement keys.\n",
	"src/main.go":    "package main\n\nfunc main() { settle() }\n",
	"lib/ledger.go":  "package lib\n\n// Settle books a payment.\nfunc Settle() {}\n",
}

// What a call should come to.
const (
	allowed = "ALLOWED"
	denied  = "DENIED"
	// kernel: the proxy allows the call, the server attempts it, and
	// Landlock refuses the system call.
	kernel = "DENIED BY THE KERNEL"
)

// step is one call of the demo and what must come of it.
type step struct {
	why  string
	tool string
	args map[string]any
	want string
	rule string // for denials, the rule that must decide
}

func main() { os.Exit(demoMain()) }

func demoMain() int {
	vmrun := flag.String("vmrun", "bin/vm-run", "the vm-run binary")
	mcpDir := flag.String("mcp", ".cache/mcp", "the directory holding node_modules with the MCP servers (scripts/setup.sh)")
	outside := flag.String("outside", ".cache/demo/outside", "a directory to make for the Landlock case: visible in the sandbox, not granted to it, readable by the sandbox's user without vm-run; if it is not, another is tried (outside.go)")
	keep := flag.Bool("keep", false, "keep the workspace, profile and ledger")
	flag.Parse()
	d, err := setup(*vmrun, *mcpDir, *outside)
	if d != nil && d.root != "" {
		if *keep {
			defer fmt.Printf("kept %s and %s\n", d.root, d.outside)
		} else {
			defer os.RemoveAll(d.root)
			defer func() {
				if d.outside != "" {
					os.RemoveAll(d.outside)
				}
			}()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: error: %v\n", err)
		return 2
	}
	bad, err := d.run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: error: %v\n", err)
		return 2
	}
	if bad > 0 {
		fmt.Printf("demo: %d unexpected results\n", bad)
		return 1
	}
	fmt.Println("demo: every call went as the policy and the sandbox say it must")
	return 0
}

// demo is one prepared run.
type demo struct {
	vmrun, server     string
	root, ws, outside string
	profile, ledger   string
	profileText       string
	ledgerOff         int64 // how much of the ledger the report has read
	stderr            lockedBuffer
	unexpected        int
}

// setup writes the workspace, the outside directory and the profile. Every
// directory is world-searchable and every file world-readable: as root,
// vm-run runs the server as nobody. The demo it returns, even with an
// error, names the temporary directory to remove.
func setup(vmrun, mcpDir, outside string) (*demo, error) {
	var err error
	d := &demo{}
	if d.root, err = os.MkdirTemp("", "vm-run-demo-"); err != nil {
		return d, err
	}
	if d.vmrun, err = filepath.Abs(vmrun); err != nil {
		return d, err
	}
	if _, err := os.Stat(d.vmrun); err != nil {
		return d, fmt.Errorf("vm-run binary: %w (make build)", err)
	}
	if mcpDir, err = filepath.Abs(mcpDir); err != nil {
		return d, err
	}
	d.server = filepath.Join(mcpDir, "node_modules", "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
	if _, err := os.Stat(d.server); err != nil {
		return d, fmt.Errorf("server-filesystem: %w (scripts/setup.sh installs it)", err)
	}
	if d.root, err = filepath.EvalSymlinks(d.root); err != nil {
		return d, err
	}
	d.ws = filepath.Join(d.root, "ws")
	for name, body := range workspaceFiles {
		if err := writeFile(filepath.Join(d.ws, name), body); err != nil {
			return d, err
		}
	}

	d.profileText = fmt.Sprintf(demoProfile, mcpDir)
	d.profile = filepath.Join(d.root, "demo.yaml")
	d.ledger = filepath.Join(d.root, "ledger.jsonl")
	if err := os.WriteFile(d.profile, []byte(d.profileText), 0o644); err != nil {
		return d, err
	}

	// The Landlock case: docs/archive.md links to a file in a directory the
	// server is told to serve but the profile does not grant (outside.go).
	home := "/nonexistent" // nobody's, who runs the server for root
	if os.Getuid() != 0 {
		home, _ = os.UserHomeDir()
	}
	p, err := profiles.Load(d.profile, profiles.Vars{Workspace: d.ws, Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		return d, err
	}
	var why []string
	if d.outside, why = chooseOutside(p, outsideCandidates(outside)); d.outside == "" {
		return d, fmt.Errorf("no place for the Landlock case: %s", strings.Join(why, "; "))
	} else {
		for _, w := range why {
			fmt.Printf("(the Landlock case is not in %s)\n", w)
		}
		if err := os.Symlink(filepath.Join(d.outside, secretName), filepath.Join(d.ws, "docs", "archive.md")); err != nil {
			return d, err
		}
	}

	if err := share(d.root); err != nil {
		return d, err
	}
	return d, nil
}

// share makes the tree at dir readable by every uid, whatever the umask:
// as root, vm-run runs the server as nobody.
func share(dir string) error {
	return filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case e.IsDir():
			return os.Chmod(path, 0o755)
		case e.Type().IsRegular():
			return os.Chmod(path, 0o644)
		}
		return nil
	})
}

func writeFile(path, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// steps are the calls of the demo, in order.
func (d *demo) steps() []step {
	s := []step{
		{"read the runbook in docs/", "read_text_file", map[string]any{"path": "docs/guide.md"}, allowed, ""},
		{"read the README: *.md matches Markdown at any depth", "read_text_file", map[string]any{"path": "README.md"}, allowed, ""},
		{"an agent told to \"fix the bug\" tries to rewrite the sources", "write_file",
			map[string]any{"path": "src/main.go", "content": "package main\n\nfunc main() { exfiltrate() }\n"}, denied, "block-src-writes"},
		{"lib/ is protected like src/, and moving a file there is a write to it", "move_file",
			map[string]any{"source": "docs/notes.txt", "destination": "lib/notes.txt"}, denied, "block-src-writes"},
		{"no rule allows edits to docs/ either: default_action: deny", "edit_file",
			map[string]any{"path": "docs/guide.md", "edits": []any{map[string]any{"oldText": "Page", "newText": "Ignore"}}}, denied, policy.RuleDefault},
		{"a read outside the workspace is refused before any rule", "read_text_file", map[string]any{"path": "/etc/passwd"}, denied, policy.RulePaths},
		{"so is one that climbs out of it", "read_text_file", map[string]any{"path": "docs/../../demo.yaml"}, denied, policy.RulePaths},
		{"a read outside docs/ and *.md: no rule allows it (the profile's tools: section replaces strict's allows), default_action: deny", "read_text_file",
			map[string]any{"path": "src/main.go"}, denied, policy.RuleDefault},
		{"docs/archive.md is a link into " + d.outside + ", which the server serves; " +
			"the proxy follows the link as the kernel would and refuses: it leads out of the workspace",
			"read_text_file", map[string]any{"path": "docs/archive.md"}, denied, policy.RulePaths},
	}
	return s
}

// kernelCase shows the layer under the proxy on its own: with no proxy at
// all (--no-proxy), the command in the sandbox opens the file outside the
// workspace that docs/archive.md points to, and Landlock refuses it.
func (d *demo) kernelCase() {
	target := filepath.Join(d.outside, secretName)
	args := []string{"--profile", d.profile, "--workspace", d.ws, "--ledger", d.ledger, "--no-proxy", "--", "cat", target}
	fmt.Printf("$ vm-run %s\n", strings.Join(args, " "))
	out, err := exec.Command(d.vmrun, args...).CombinedOutput()
	fmt.Print(indent(string(out), "    "))
	var exit *exec.ExitError
	switch {
	case strings.Contains(string(out), "REDACTED"):
		d.fail("    UNEXPECTED: the file outside leaked")
	case errors.As(err, &exit) && strings.Contains(strings.ToLower(string(out)), "permission denied"):
		fmt.Printf("    %s: no proxy stood in the way; Landlock refused the open\n", kernel)
	default:
		d.fail("    UNEXPECTED: want %s (cat: Permission denied), got %v", kernel, err)
	}
	fmt.Println()
}

// run runs the session and the audit commands and prints the report. It
// returns the number of unexpected results.
func (d *demo) run() (int, error) {
	fmt.Printf("vm-run demo: @modelcontextprotocol/server-filesystem under the seeds' tool policy\n\n")
	fmt.Printf("workspace  %s\n", d.ws)
	for _, name := range slices.Sorted(maps.Keys(workspaceFiles)) {
		fmt.Printf("             %s\n", name)
	}
	fmt.Printf("             docs/archive.md -> %s\n", filepath.Join(d.outside, secretName))
	fmt.Printf("ledger     %s\nprofile    %s\n\n", d.ledger, d.profile)
	fmt.Print(indent(d.profileText, "    "))

	args := []string{"--profile", d.profile, "--workspace", d.ws, "--ledger", d.ledger, "--", "node", d.server, d.ws, d.outside}
	fmt.Printf("\n$ vm-run %s\n\n", strings.Join(args, " "))
	cmd := exec.Command(d.vmrun, args...)
	cmd.Stderr = &d.stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "vm-run-demo", Version: "1"},
		// No roots: the server serves the directories on its command line.
		&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return 0, fmt.Errorf("start the server under vm-run: %w\n%s", err, d.stderr.String())
	}
	d.listTools(cs)
	for i, s := range d.steps() {
		d.call(cs, i+1, s)
	}
	cerr := cs.Close()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		d.fail("vm-run exited %d (%v) after the client closed, want 0\n%s", code, cerr, d.stderr.String())
	}
	d.kernelCase()
	d.audit()
	return d.unexpected, nil
}

// listTools prints what the client sees of the server's tools.
func (d *demo) listTools(cs *mcp.ClientSession) {
	var visible []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			d.fail("tools/list: %v", err)
			return
		}
		visible = append(visible, tool.Name)
	}
	slices.Sort(visible)
	classes := policy.BuiltinClasses()
	all := slices.Sorted(slices.Values(slices.Concat(classes["read"].Tools, classes["write"].Tools)))
	var hidden []string
	for _, t := range all {
		if !slices.Contains(visible, t) {
			hidden = append(hidden, t)
		}
	}
	fmt.Printf("tools/list: the client sees %d tools, the policy hides %d\n", len(visible), len(hidden))
	fmt.Printf("    visible  %s\n    hidden   %s\n", strings.Join(visible, ", "), strings.Join(hidden, ", "))
	if len(hidden) == 0 {
		d.fail("tools/list hides nothing, want the write tools no rule allows hidden")
	}
	fmt.Println()
}

// call makes one call, prints the decision the ledger recorded and an
// excerpt of the answer, and counts it if it is not what s wants.
func (d *demo) call(cs *mcp.ClientSession, n int, s step) {
	argv, _ := json.Marshal(s.args)
	fmt.Printf("%2d. %s\n    call     %s %s\n", n, s.why, s.tool, argv)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: s.tool, Arguments: s.args})
	if err != nil {
		d.fail("    %s: %v", s.tool, err)
		return
	}
	dec, err := d.nextDecision()
	if err != nil {
		d.fail("    ledger: %v", err)
		return
	}
	body := resultText(res)
	got := allowed
	switch {
	case dec.Verdict == "deny":
		got = denied
	case res.IsError && (strings.Contains(body, "EACCES") || strings.Contains(strings.ToLower(body), "permission denied")):
		got = kernel
	}
	if got == kernel {
		fmt.Printf("    KERNEL   the proxy allowed it (rule %s), the server attempted it, Landlock refused it\n", dec.Rule)
	} else {
		fmt.Printf("    %-8s rule %s: %s\n", got, dec.Rule, dec.Reason)
	}
	fmt.Printf("    result   %s\n", excerpt(body, res.IsError))
	switch {
	case got != s.want:
		d.fail("    UNEXPECTED: want %s", s.want)
	case s.want == denied && dec.Rule != s.rule:
		d.fail("    UNEXPECTED: want the denial by rule %q", s.rule)
	case s.want == allowed && res.IsError:
		d.fail("    UNEXPECTED: the server failed the allowed call")
	case s.want == denied && (!res.IsError || res.Meta[proxy.MetaKey] == nil):
		d.fail("    UNEXPECTED: want the proxy's denial in the result, not the server's answer")
	case s.want == kernel && strings.Contains(body, "REDACTED"):
		d.fail("    UNEXPECTED: the file outside leaked")
	}
	fmt.Println()
}

// ledgerDecision is what the report shows of a ledger decision record.
type ledgerDecision struct {
	Tool, Verdict, Rule, Reason string
}

// nextDecision returns the first decision record appended to the ledger
// since the last call. The proxy appends it, with fsync, before it forwards
// the call or answers the denial, so it is there when the answer is.
func (d *demo) nextDecision() (ledgerDecision, error) {
	f, err := os.Open(d.ledger)
	if err != nil {
		return ledgerDecision{}, err
	}
	defer f.Close()
	if _, err := f.Seek(d.ledgerOff, io.SeekStart); err != nil {
		return ledgerDecision{}, err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return ledgerDecision{}, errors.New("no decision recorded for the call")
		}
		d.ledgerOff += int64(len(line))
		var rec struct {
			Event string         `json:"event"`
			Data  ledgerDecision `json:"data"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return ledgerDecision{}, fmt.Errorf("line %q: %w", bytes.TrimSpace(line), err)
		}
		if rec.Event == "decision" {
			return rec.Data, nil
		}
	}
}

// audit runs `vm-run audit verify` and `vm-run audit show` on the ledger.
func (d *demo) audit() {
	for _, sub := range []string{"verify", "show"} {
		fmt.Printf("$ vm-run audit %s --ledger %s\n", sub, d.ledger)
		out, err := exec.Command(d.vmrun, "audit", sub, "--ledger", d.ledger).CombinedOutput()
		fmt.Print(indent(string(out), "    "))
		if err != nil {
			d.fail("vm-run audit %s: %v", sub, err)
		}
		fmt.Println()
	}
}

func (d *demo) fail(format string, args ...any) {
	d.unexpected++
	fmt.Printf(format+"\n", args...)
}

func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	if b.Len() == 0 && r.StructuredContent != nil {
		s, _ := json.Marshal(r.StructuredContent)
		b.Write(s)
	}
	return b.String()
}

// excerpt is the first lines of an answer, shortened.
func excerpt(s string, isError bool) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 110 {
		s = s[:107] + "..."
	}
	if isError {
		return "(isError) " + s
	}
	return s
}

func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix) + "\n"
}

// lockedBuffer collects vm-run's stderr, written by exec's copier.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
