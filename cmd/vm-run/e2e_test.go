//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/internal/testkit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// The end-to-end tests run the built vm-run binary between the official Go
// SDK client and the real MCP servers from npm, under profiles that extend
// the built-in strict one. What the proxy denies is shown to have never
// reached the server by what the server would have left on the host; what
// Landlock denies is shown to fail inside the kernel although the proxy and
// the server both let it through.
//
// VMRUN_BIN names the binary (else the test builds one); VMRUN_MCP names
// the node_modules directory scripts/setup.sh fills (else
// ../../.cache/mcp/node_modules).

// sandboxUID is who the command runs as when vm-run runs as root.
const sandboxUID = 65534

// e2e is what every end-to-end test needs.
type e2e struct {
	bin     string // vm-run
	modules string // node_modules holding the MCP servers
	// strict is the built-in profile, loaded with a workspace no path lies
	// beneath, for what it hides and grants outside the workspace.
	strict *profiles.Profile
}

func TestE2E(t *testing.T) {
	e := setupE2E(t)
	t.Run("filesystem", func(t *testing.T) { t.Parallel(); e.testFilesystem(t) })
	t.Run("filesystem writes", func(t *testing.T) { t.Parallel(); e.testFilesystemWrites(t) })
	t.Run("memory", func(t *testing.T) { t.Parallel(); e.testMemory(t) })
	t.Run("everything", func(t *testing.T) { t.Parallel(); e.testEverything(t) })
	t.Run("npx offline", func(t *testing.T) { t.Parallel(); e.testNpx(t, false) })
	if os.Getuid() == 0 {
		t.Run("npx offline as root", func(t *testing.T) { t.Parallel(); e.testNpx(t, true) })
	}
	t.Run("observe, generate, enforce", func(t *testing.T) { t.Parallel(); e.testObserveRoundTrip(t) })
	t.Run("server-memory preset", func(t *testing.T) { t.Parallel(); e.testMemoryPreset(t) })
}

// setupE2E finds or builds what the tests need, or skips naming what is
// missing.
func setupE2E(t *testing.T) *e2e {
	t.Helper()
	for _, ns := range sandbox.Namespaces {
		if err := sandbox.CheckNamespace(ns); err != nil {
			t.Skipf("needs a new user namespace with a %s namespace for uid %d: %v", ns.Name, os.Getuid(), err)
		}
	}
	home, _ := os.UserHomeDir()
	strict, err := profiles.Load("strict", profiles.Vars{Workspace: "/nonexistent/workspace", Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatalf("load profile strict: %v", err)
	}
	for _, f := range strict.Landlock.Require {
		testkit.RequireLandlockFeature(t, f)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("node is not installed, needed to run the MCP servers: %v", err)
	}
	e := &e2e{modules: os.Getenv("VMRUN_MCP"), strict: strict}
	if e.modules == "" {
		dir, err := filepath.Abs(filepath.Join("..", "..", ".cache", "mcp", "node_modules"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("VMRUN_MCP is unset and %s is absent: run scripts/setup.sh (make setup)", dir)
		}
		e.modules = dir
	}
	for _, pkg := range []string{"server-filesystem", "server-everything", "server-memory"} {
		if _, err := os.Stat(e.server(pkg)); err != nil {
			t.Skipf("@modelcontextprotocol/%s is not installed in VMRUN_MCP=%s: %v", pkg, e.modules, err)
		}
	}
	if os.Getuid() == 0 {
		if err := othersCanRead(e.modules); err != nil {
			// A checkout under /root (mode 0700): the sandbox's nobody
			// runs a copy made readable, as make demo does.
			t.Logf("the sandbox runs as uid %d and cannot read the MCP servers (%v): using a copy", sandboxUID, err)
			e.modules = readableCopy(t, e.modules)
		}
	}
	e.bin = os.Getenv("VMRUN_BIN")
	if e.bin == "" {
		e.bin = buildVMRun(t)
	}
	return e
}

// readableCopy copies dir into a new directory every uid can read.
func readableCopy(t *testing.T, dir string) string {
	t.Helper()
	// Named as the original (node_modules), which module resolution needs.
	dst := filepath.Join(t.TempDir(), filepath.Base(dir))
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", dir, err, out)
	}
	if out, err := exec.Command("chmod", "-R", "o+rX", dst).CombinedOutput(); err != nil {
		t.Fatalf("chmod %s: %v\n%s", dst, err, out)
	}
	if err := searchable(dst); err != nil {
		t.Fatal(err)
	}
	if err := othersCanRead(filepath.Join(dst, "@modelcontextprotocol", "server-memory", "dist", "index.js")); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	return dst
}

// buildVMRun builds vm-run into a directory every uid can search.
func buildVMRun(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("VMRUN_BIN is unset and go is not in PATH to build vm-run: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vm-run")
	if out, err := exec.Command("go", "build", "-tags", "osusergo,netgo", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build vm-run: %v\n%s", err, out)
	}
	if err := searchable(dir); err != nil {
		t.Fatal(err)
	}
	return bin
}

func (e *e2e) server(pkg string) string {
	return filepath.Join(e.modules, "@modelcontextprotocol", pkg, "dist", "index.js")
}

// othersCanRead reports why a uid that is neither owner nor in the group
// could not read path: a directory on the way without o+x, or path itself
// without o+r.
func othersCanRead(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o004 == 0 {
		return fmt.Errorf("%q is mode %v, want o+r", path, st.Mode().Perm())
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%q is mode %v, want o+x", d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// box is one test's directories: a workspace the sandbox's uid can read,
// and a place for profiles and ledgers.
type box struct {
	ws, cfg  string
	sessions int // ledgers written so far
}

func newBox(t *testing.T) *box {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &box{ws: filepath.Join(root, "ws"), cfg: filepath.Join(root, "cfg")}
	for _, d := range []string{b.ws, b.cfg} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The sandbox runs as nobody when the tests run as root: let it into
	// the workspace the way a real workspace would be shared.
	if err := searchable(b.ws); err != nil {
		t.Fatal(err)
	}
	return b
}

// file writes body to a workspace-relative name, creating directories.
func (b *box) file(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(b.ws, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writableDir makes a workspace directory the sandbox's uid may write to
// as far as file modes go, so that only Landlock and the proxy decide.
func (b *box) writableDir(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(b.ws, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	return p
}

// config writes a profile or policy file and returns its path.
func (b *box) config(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(b.cfg, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// profile writes a profile extending strict that can read the MCP servers
// and adds extra (YAML at the top level, after filesystem:).
func (e *e2e) profile(t *testing.T, b *box, name, filesystem, extra string) string {
	t.Helper()
	return b.config(t, name+".yaml", fmt.Sprintf("name: %s\nextends: strict\nfilesystem:\n  read: [%q]\n%s%s",
		name, e.modules, filesystem, extra))
}

// lockedBuffer collects vm-run's stderr for failure messages.
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

// e2eSession is one `vm-run ... -- SERVER` driven by a Go SDK client.
type e2eSession struct {
	*mcp.ClientSession
	e      *e2e
	cmd    *exec.Cmd
	stderr *lockedBuffer
	ledger string
	closed bool
}

// e2eRun describes a session: vm-run's flags, the server and the client.
type e2eRun struct {
	profile, policy, ws string
	env                 []string // --env KEY=VALUE
	flags               []string // more of vm-run's flags (--observe)
	server              []string
	client              *mcp.ClientOptions
	// roots, if set, are the client's MCP roots: it declares the roots
	// capability and answers roots/list with them.
	roots []*mcp.Root
	// bin, if set, is the vm-run to run; prefix runs it through another
	// command (setpriv); cmdEnv, if set, is its environment.
	bin            string
	prefix, cmdEnv []string
}

// start runs vm-run with r and connects a client. The session is closed at
// cleanup if the test has not closed it.
func (e *e2e) start(t *testing.T, b *box, r e2eRun) *e2eSession {
	t.Helper()
	b.sessions++
	ledger := filepath.Join(b.cfg, fmt.Sprintf("ledger-%d.jsonl", b.sessions))
	args := []string{"--profile", r.profile, "--workspace", r.ws, "--ledger", ledger}
	if r.policy != "" {
		args = append(args, "--policy", r.policy)
	}
	for _, kv := range r.env {
		args = append(args, "--env", kv)
	}
	args = append(args, r.flags...)
	bin := r.bin
	if bin == "" {
		bin = e.bin
	}
	argv := slices.Concat(r.prefix, []string{bin}, args, []string{"--"}, r.server)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The test's own pin store, not the machine's.
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(b.cfg, "state"))
	if r.cmdEnv != nil {
		cmd.Env = r.cmdEnv
	}
	s := &e2eSession{e: e, cmd: cmd, stderr: &lockedBuffer{}, ledger: ledger}
	cmd.Stderr = s.stderr
	opts := r.client
	cs, err := connectClient(t, cmd, opts, r.roots)
	if err != nil {
		t.Fatalf("connect to %v through vm-run: %v\nvm-run stderr:\n%s", r.server, err, s.stderr)
	}
	s.ClientSession = cs
	t.Cleanup(func() {
		if !s.closed {
			cs.Close()
		}
	})
	return s
}

// connectClient connects a Go SDK client to the stdio server cmd starts
// (vm-run, or a server run directly).
func connectClient(t *testing.T, cmd *exec.Cmd, opts *mcp.ClientOptions, roots []*mcp.Root) (*mcp.ClientSession, error) {
	t.Helper()
	if opts == nil {
		opts = &mcp.ClientOptions{}
	}
	if opts.Capabilities == nil {
		// No roots: server-filesystem then serves the directories it is
		// given, as clients without roots support have it.
		opts.Capabilities = &mcp.ClientCapabilities{}
	}
	if roots != nil {
		c := *opts.Capabilities
		c.RootsV2 = &mcp.RootCapabilities{ListChanged: true}
		opts.Capabilities = &c
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "vm-run-e2e", Version: "1"}, opts)
	client.AddRoots(roots...)
	return client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
}

// close ends the session, checks that vm-run passed on the server's clean
// exit, and verifies the ledger.
func (s *e2eSession) close(t *testing.T) {
	t.Helper()
	s.closed = true
	s.Close()
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("vm-run exited %d after the client closed, want 0\nstderr:\n%s", code, s.stderr)
	}
	out, err := exec.Command(s.e.bin, "audit", "verify", "--ledger", s.ledger).CombinedOutput()
	if err != nil {
		t.Errorf("vm-run audit verify --ledger %s: %v\n%s", s.ledger, err, out)
	}
}

// tools lists the tool names the client sees, sorted.
func (s *e2eSession) tools(t *testing.T) []string {
	t.Helper()
	var names []string
	for tool, err := range s.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatalf("tools/list: %v\nvm-run stderr:\n%s", err, s.stderr)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// call calls a tool; a protocol error fails the test.
func (s *e2eSession) call(t *testing.T, tool string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s %v: %v\nvm-run stderr:\n%s", tool, args, err, s.stderr)
	}
	return res
}

// wantAllowed checks that the server answered a call without error and
// returns its text.
func (s *e2eSession) wantAllowed(t *testing.T, tool string, args map[string]any) string {
	t.Helper()
	res := s.call(t, tool, args)
	if res.IsError || res.Meta[proxy.MetaKey] != nil {
		t.Errorf("tools/call %s %v = %q (isError %v, _meta %v), want the server's answer", tool, args, text(res), res.IsError, res.Meta)
	}
	return text(res)
}

// wantDenied checks that the proxy refused a call by rule, in the result
// shape the model sees, and that the ledger holds the denial.
func (s *e2eSession) wantDenied(t *testing.T, tool string, args map[string]any, rule string) {
	t.Helper()
	res := s.call(t, tool, args)
	meta, _ := res.Meta[proxy.MetaKey].(map[string]any)
	if !res.IsError || meta["rule"] != rule || !strings.Contains(text(res), rule) {
		t.Errorf("tools/call %s %v = %q (isError %v, _meta %v), want a denial naming rule %q",
			tool, args, text(res), res.IsError, res.Meta, rule)
	}
	s.wantDecision(t, tool, policy.Deny, rule)
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// decision is the part of a ledger record the tests look at.
type decision struct {
	Event string `json:"event"`
	Data  struct {
		Kind    string `json:"kind"`
		Tool    string `json:"tool"`
		Verdict string `json:"verdict"`
		Rule    string `json:"rule"`
	} `json:"data"`
}

// wantDecision checks that the ledger holds a decision on name (a tool, or
// for sampling and elicitation the kind) with that verdict and rule. The
// ledger is on disk before the decision takes effect, so it can be read
// while the session runs.
func (s *e2eSession) wantDecision(t *testing.T, name string, verdict policy.Action, rule string) {
	t.Helper()
	f, err := os.Open(s.ledger)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	defer f.Close()
	var seen []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d decision
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("ledger %s: line %q: %v", s.ledger, sc.Bytes(), err)
		}
		if d.Event != "decision" {
			continue
		}
		if (d.Data.Tool == name || d.Data.Kind == name) && d.Data.Verdict == string(verdict) && (rule == "" || d.Data.Rule == rule) {
			return
		}
		seen = append(seen, fmt.Sprintf("%s %s %s:%s", d.Data.Kind, d.Data.Tool, d.Data.Verdict, d.Data.Rule))
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read ledger %s: %v", s.ledger, err)
	}
	t.Errorf("ledger %s has no decision %s %q by %q; it has %v", s.ledger, verdict, name, rule, seen)
}

// wantAbsent checks that the server left no file at path on the host.
func wantAbsent(t *testing.T, path, why string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: Lstat(%q) = %v, want it absent", why, path, err)
	}
}

// beneath reports whether path is dir or lies beneath it.
func beneath(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// outsideDir returns testdata/e2e/outside: a directory the sandbox sees
// (strict hides nothing above it) but may not read (strict grants nothing
// above it), whose file modes let any uid read it. A read there that fails
// in the sandbox fails because of Landlock. It skips t when the checkout
// lies where strict hides or grants.
func (e *e2e) outsideDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "e2e", "outside"))
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	why := e.unsuitableOutside(dir)
	if why == "" {
		return dir
	}
	// The checkout is not such a place (under /tmp, /opt or /root): a
	// copy elsewhere is, for root under /var/lib, for anyone else in the
	// home directory.
	parent := "/var/lib"
	if os.Getuid() != 0 {
		parent, _ = os.UserHomeDir()
	}
	if parent != "" {
		if copyDir, err := os.MkdirTemp(parent, "vm-run-e2e-outside-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(copyDir) })
			out, err := exec.Command("cp", "-a", dir+"/.", copyDir).CombinedOutput()
			if err == nil {
				out, err = exec.Command("chmod", "-R", "o+rX", copyDir).CombinedOutput()
			}
			if err != nil {
				t.Fatalf("copy %s: %v\n%s", dir, err, out)
			}
			if why2 := e.unsuitableOutside(copyDir); why2 == "" {
				return copyDir
			} else {
				why += "; and the copy in " + copyDir + ": " + why2
			}
		}
	}
	t.Skipf("the Landlock case needs a directory the sandbox sees, is not granted, and whose files every uid may read: %s", why)
	return ""
}

// unsuitableOutside says why dir cannot serve as outsideDir, or "".
func (e *e2e) unsuitableOutside(dir string) string {
	if why := e.hiddenOrGranted(dir); why != "" {
		return why
	}
	if err := othersCanRead(filepath.Join(dir, "secret.txt")); err != nil {
		return fmt.Sprintf("%s is not readable by every uid: %v", dir, err)
	}
	return ""
}

// hiddenOrGranted says whether strict hides dir or lets the sandbox read
// it, or "".
func (e *e2e) hiddenOrGranted(dir string) string {
	fsys := e.strict.Filesystem
	for _, p := range fsys.Hide {
		if p, _ := profiles.SplitOptional(p); beneath(dir, p) {
			return fmt.Sprintf("%s lies beneath %s, which strict hides", dir, p)
		}
	}
	for _, p := range slices.Concat(fsys.Read, fsys.Exec, fsys.Write, fsys.Overlay, []string{e.modules}) {
		if p, _ := profiles.SplitOptional(p); beneath(dir, p) {
			return fmt.Sprintf("%s lies beneath %s, which strict lets the sandbox read", dir, p)
		}
	}
	return ""
}
