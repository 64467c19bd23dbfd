//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/policy"
)

// testFilesystem drives server-filesystem under strict's own tool policy.
// The client sees only the read tools and reads in the workspace work. A
// write is refused by the proxy and never reaches the server: the file does
// not appear, though Landlock and file modes would let it through
// (testFilesystemWrites is the control). A symbolic link in the workspace
// whose target is in a directory the server serves is refused by the proxy,
// which follows it, and, with no proxy in the way, by the kernel: Landlock
// does not grant that directory.
func (e *e2e) testFilesystem(t *testing.T) {
	b := newBox(t)
	outside := e.outsideDir(t)
	b.file(t, "docs/a.md", "# docs\n")
	src := b.writableDir(t, "src")
	link := filepath.Join(b.ws, "docs", "link.md")
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), link); err != nil {
		t.Fatal(err)
	}
	prof := e.profile(t, b, "e2e-fs", fmt.Sprintf("  write: [%q]\n", src), "")
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws,
		server: []string{"node", e.server("server-filesystem"), b.ws, outside}})

	want := slices.Sorted(slices.Values(policy.BuiltinClasses()["read"].Tools))
	if got := s.tools(t); !slices.Equal(got, want) {
		t.Errorf("tools/list under strict = %v, want the read tools %v", got, want)
	}

	if got := s.wantAllowed(t, "read_text_file", map[string]any{"path": filepath.Join(b.ws, "docs", "a.md")}); got != "# docs\n" {
		t.Errorf("read_text_file docs/a.md = %q, want %q", got, "# docs\n")
	}
	s.wantDecision(t, "read_text_file", policy.Allow, "strict-read")

	evil := filepath.Join(src, "new.go")
	s.wantDenied(t, "write_file", map[string]any{"path": evil, "content": "package evil\n"}, policy.RuleDefault)
	wantAbsent(t, evil, "write_file denied by the proxy")

	// The server would serve the link's target: it serves outside too.
	if got := s.wantAllowed(t, "list_allowed_directories", map[string]any{}); !strings.Contains(got, outside) {
		t.Errorf("list_allowed_directories = %q, want %s among them", got, outside)
	}
	// The proxy follows the link as the kernel would, and refuses it.
	s.wantDenied(t, "read_text_file", map[string]any{"path": link}, policy.RulePaths)
	// The kernel refuses it too: with no proxy in the way, the same
	// profile's Landlock rules stop the open.
	out, err := exec.Command(e.bin, "--profile", prof, "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "kernel.jsonl"),
		"--no-proxy", "--", "cat", link).CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "permission denied") || strings.Contains(string(out), "never read it") {
		t.Errorf("vm-run --no-proxy -- cat %s = %v, %q; want Landlock's EACCES", link, err, out)
	}
	s.close(t)
}

// testFilesystemWrites is the control for testFilesystem's denied write:
// with a profile whose tools: section allows writes under out/, the same
// server, Landlock rules and file modes write a file the host sees, and a
// write to src/ is still refused.
func (e *e2e) testFilesystemWrites(t *testing.T) {
	b := newBox(t)
	out, src := b.writableDir(t, "out"), b.writableDir(t, "src")
	prof := e.profile(t, b, "e2e-fs-writes", fmt.Sprintf("  write: [%q, %q]\n", out, src),
		"tools:\n  rules:\n    - id: e2e-out-writes\n      allow: [\"write(out/**)\"]\n")
	s := e.start(t, b, e2eRun{profile: prof, ws: b.ws, server: []string{"node", e.server("server-filesystem"), b.ws}})

	if got := s.tools(t); !slices.Contains(got, "write_file") {
		t.Errorf("tools/list = %v, want write_file, which the profile allows under out/", got)
	}
	const body = "written through vm-run\n"
	ok := filepath.Join(out, "ok.txt")
	s.wantAllowed(t, "write_file", map[string]any{"path": ok, "content": body})
	s.wantDecision(t, "write_file", policy.Allow, "e2e-out-writes")
	if got, err := os.ReadFile(ok); err != nil || string(got) != body {
		t.Errorf("after an allowed write_file, the host reads %q, %v; want %q", got, err, body)
	}
	evil := filepath.Join(src, "new.go")
	s.wantDenied(t, "write_file", map[string]any{"path": evil, "content": "package evil\n"}, policy.RuleDefault)
	wantAbsent(t, evil, "write_file denied by the proxy")
	s.close(t)
}

// testMemory drives server-memory: under strict no tool is listed and a
// denied create_entities leaves no memory file behind; the control session,
// whose --policy allows it, does leave one.
func (e *e2e) testMemory(t *testing.T) {
	b := newBox(t)
	state := b.writableDir(t, "state")
	mem := filepath.Join(state, "memory.jsonl")
	prof := e.profile(t, b, "e2e-memory", fmt.Sprintf("  write: [%q]\n", state), "")
	r := e2eRun{profile: prof, ws: b.ws, env: []string{"MEMORY_FILE_PATH=" + mem},
		server: []string{"node", e.server("server-memory")}}
	entities := map[string]any{"entities": []any{map[string]any{
		"name": "vm-run", "entityType": "project", "observations": []any{"runs MCP servers in a sandbox"},
	}}}

	s := e.start(t, b, r)
	if got := s.tools(t); len(got) != 0 {
		t.Errorf("tools/list under strict = %v, want none", got)
	}
	s.wantDenied(t, "create_entities", entities, policy.RuleDefault)
	s.close(t)
	wantAbsent(t, mem, "create_entities denied by the proxy")

	r.policy = b.config(t, "memory-policy.yaml",
		"rules:\n  - id: e2e-memory\n    allow: [create_entities, read_graph]\n")
	s = e.start(t, b, r)
	if got, want := s.tools(t), []string{"create_entities", "read_graph"}; !slices.Equal(got, want) {
		t.Errorf("tools/list with the policy = %v, want %v", got, want)
	}
	s.wantAllowed(t, "create_entities", entities)
	if got := s.wantAllowed(t, "read_graph", map[string]any{}); !strings.Contains(got, "runs MCP servers in a sandbox") {
		t.Errorf("read_graph = %q, want the entity just created", got)
	}
	s.wantDenied(t, "delete_entities", map[string]any{"entityNames": []any{"vm-run"}}, policy.RuleDefault)
	s.close(t)
	if got, err := os.ReadFile(mem); err != nil || !bytes.Contains(got, []byte(`"vm-run"`)) {
		t.Errorf("memory file after an allowed create_entities: %q, %v; want the entity", got, err)
	}
}

// testEverything drives server-everything with a --policy (whose allow
// rules and defaults replace the profile's, so it allows resources itself)
// that allows the
// server's sampling and elicitation requests: they reach the client's
// handlers through the proxy, as do progress notifications and resources;
// a tool the policy does not name is refused and hidden.
func (e *e2e) testEverything(t *testing.T) {
	b := newBox(t)
	prof := e.profile(t, b, "e2e-everything", "", "")
	pol := b.config(t, "everything-policy.yaml", `defaults:
  resource: allow
rules:
  - id: e2e-tools
    allow: [echo, trigger-sampling-request, trigger-elicitation-request, trigger-long-running-operation]
  - id: e2e-client-features
    reason: the test client answers these itself
    allow: [sampling, elicitation]
`)
	const sampled = "sampled by the e2e client"
	var samples, elicits atomic.Int32
	progress := make(chan *mcp.ProgressNotificationParams, 16)
	opts := &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			samples.Add(1)
			return &mcp.CreateMessageResult{Model: "e2e", Role: "assistant", Content: &mcp.TextContent{Text: sampled}}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			elicits.Add(1)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada Lovelace"}}, nil
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			progress <- req.Params
		},
	}
	s := e.start(t, b, e2eRun{profile: prof, policy: pol, ws: b.ws, client: opts,
		server: []string{"node", e.server("server-everything"), "stdio"}})

	want := []string{"echo", "trigger-elicitation-request", "trigger-long-running-operation", "trigger-sampling-request"}
	if got := s.tools(t); !slices.Equal(got, want) {
		t.Errorf("tools/list = %v, want only what the policy allows: %v", got, want)
	}
	if got := s.wantAllowed(t, "echo", map[string]any{"message": "through vm-run"}); !strings.Contains(got, "through vm-run") {
		t.Errorf("echo = %q, want the message back", got)
	}
	s.wantDenied(t, "get-env", map[string]any{}, policy.RuleDefault)

	got := s.wantAllowed(t, "trigger-sampling-request", map[string]any{"prompt": "say hi", "maxTokens": 5})
	if samples.Load() != 1 || !strings.Contains(got, sampled) {
		t.Errorf("trigger-sampling-request = %q after %d sampling requests, want one, answered %q", got, samples.Load(), sampled)
	}
	s.wantDecision(t, string(policy.KindSampling), policy.Allow, "e2e-client-features")

	got = s.wantAllowed(t, "trigger-elicitation-request", map[string]any{})
	if elicits.Load() != 1 || !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("trigger-elicitation-request = %q after %d elicitations, want one, answered with the name", got, elicits.Load())
	}
	s.wantDecision(t, string(policy.KindElicitation), policy.Allow, "e2e-client-features")

	const steps = 3
	params := &mcp.CallToolParams{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 0.3, "steps": steps}}
	params.SetProgressToken("e2e-progress")
	if res, err := s.CallTool(t.Context(), params); err != nil || res.IsError {
		t.Fatalf("trigger-long-running-operation = %v, %v; want its result", res, err)
	}
	// The server sends every notification before its result, but the
	// client may hand them to the handler after returning the result.
	for i := 1; i <= steps; i++ {
		select {
		case p := <-progress:
			if p.ProgressToken != "e2e-progress" || p.Progress != float64(i) || p.Total != steps {
				t.Errorf("progress notification %d = %+v, want token e2e-progress, %d of %d", i, p, i, steps)
			}
		case <-t.Context().Done():
			t.Fatalf("progress notification %d of %d never came", i, steps)
		}
	}

	const uri = "demo://resource/static/document/architecture.md"
	res, err := s.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: uri})
	if err != nil || len(res.Contents) == 0 || res.Contents[0].Text == "" {
		t.Errorf("resources/read %s = %+v, %v; want its text", uri, res, err)
	}
	s.wantDecision(t, string(policy.KindResource), policy.Allow, "")
	s.close(t)
}

// testNpx starts `npx -y @modelcontextprotocol/server-memory` under the
// built-in strict profile. strict has no network, so npx must find
// everything in ~/.npm, warmed beforehand by the same command outside the
// sandbox as the same user (root's sandbox user, nobody, has no home: the
// test runs vm-run as uid 65534 with a home of its own).
//
// asRoot (root only) is the README's headline as root: vm-run runs as root
// with a home of mode 0700 where root warmed the cache, and the command, as
// nobody, gets a private home at that path with the cache and nothing else
// of root's home in it.
func (e *e2e) testNpx(t *testing.T, asRoot bool) {
	const pkg = "@modelcontextprotocol/server-memory"
	if _, err := exec.LookPath("npx"); err != nil {
		t.Skipf("npx is not installed: %v", err)
	}
	b := newBox(t)
	home := filepath.Join(filepath.Dir(b.ws), "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	var prefix []string
	bin := e.bin
	if asRoot {
		if err := os.Chmod(home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "secret.txt"), []byte("root's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if os.Getuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skipf("setpriv (util-linux) is not installed, needed to run npx as an unprivileged user: %v", err)
		}
		prefix = []string{setpriv, "--reuid", fmt.Sprint(sandboxUID), "--regid", fmt.Sprint(sandboxUID), "--clear-groups"}
		for _, d := range []string{home, b.cfg} {
			if err := os.Chown(d, sandboxUID, sandboxUID); err != nil {
				t.Fatal(err)
			}
		}
		if othersCanRead(bin) != nil {
			bin = filepath.Join(b.cfg, "vm-run")
			if err := copyFile(e.bin, bin); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := []string{"HOME=" + home, "npm_config_update_notifier=false", "npm_config_fund=false"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "HOME" && !strings.HasPrefix(strings.ToLower(k), "npm_config_") {
			env = append(env, kv)
		}
	}

	// Warm the cache: the same command, outside the sandbox, online.
	argv := slices.Concat(prefix, []string{"npx", "-y", pkg})
	warm := exec.Command(argv[0], argv[1:]...)
	warm.Env, warm.Dir = env, b.ws
	var warmErr lockedBuffer
	warm.Stderr = &warmErr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "vm-run-e2e-warm", Version: "1"}, nil).
		Connect(t.Context(), &mcp.CommandTransport{Command: warm}, nil)
	if err != nil {
		if msg := warmErr.String(); regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH`).MatchString(msg) {
			t.Skipf("warming the npx cache needs the npm registry, which is unreachable: %v\n%s", err, msg)
		}
		t.Fatalf("warm the npx cache: npx -y %s outside the sandbox: %v\n%s", pkg, err, warmErr.String())
	}
	var all []string
	for tool, err := range cs.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatalf("warm the npx cache: tools/list: %v", err)
		}
		all = append(all, tool.Name)
	}
	cs.Close()
	if !slices.Contains(all, "create_entities") {
		t.Fatalf("warm the npx cache: %s lists %v, want create_entities among them", pkg, all)
	}

	if os.Getuid() == 0 && !asRoot {
		// As a user's session would be, in a cgroup of its own for
		// strict's limits.
		prefix, env = inDelegatedCgroup(t, sandboxUID, prefix, env)
	}
	s := e.start(t, b, e2eRun{profile: "strict", ws: b.ws, server: []string{"npx", "-y", pkg},
		bin: bin, prefix: prefix, cmdEnv: env})
	if got := s.InitializeResult().ServerInfo.Name; got != "memory-server" {
		t.Errorf("server name = %q, want memory-server", got)
	}
	if got := s.tools(t); len(got) != 0 {
		t.Errorf("tools/list under strict = %v, want none of %v", got, all)
	}
	s.wantDenied(t, "create_entities", map[string]any{"entities": []any{}}, policy.RuleDefault)
	s.close(t)
	if !asRoot {
		return
	}
	// The private home: the caller's path, the command's own, with the
	// cache and without the rest of the caller's home. What the command
	// writes in the cache stays in the sandbox.
	probe := exec.Command(bin, "--profile", "strict", "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "probe.jsonl"), "--no-proxy", "--",
		"/bin/sh", "-c", `echo "$HOME"; stat -c '%u %a' "$HOME"; ls -A "$HOME"; touch "$HOME/.npm/from-the-sandbox" && echo cache-writable`)
	probe.Env = env
	out, err := probe.CombinedOutput()
	want := fmt.Sprintf("%s\n%d 700\n.npm\ncache-writable\n", home, sandboxUID)
	if err != nil || string(out) != want {
		t.Errorf("the command's home: %v\n%s\nwant\n%s", err, out, want)
	}
	if _, err := os.Stat(filepath.Join(home, ".npm", "from-the-sandbox")); err == nil {
		t.Errorf("a write to the cache in the sandbox reached the host's cache")
	}
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
