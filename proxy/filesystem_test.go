package proxy

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/policy"
)

// These tests run the real @modelcontextprotocol/server-filesystem (no
// sandbox) behind Run, driven by the official Go SDK client. `make test`
// installs the servers with npm into a directory and names it in
// VMRUN_MCP_SERVERS (the directory holding node_modules).

const fsPackage = "@modelcontextprotocol/server-filesystem"

// requireMCPServer returns the entry point of an npm-installed MCP server
// package, or skips naming what is missing.
func requireMCPServer(t *testing.T, pkg string) string {
	t.Helper()
	dir := os.Getenv("VMRUN_MCP_SERVERS")
	if dir == "" {
		t.Skipf("%s: VMRUN_MCP_SERVERS is not set (npm install --prefix DIR %s; VMRUN_MCP_SERVERS=DIR)", pkg, pkg)
	}
	script := filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "dist", "index.js")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("%s is not installed under VMRUN_MCP_SERVERS=%s: %v", pkg, dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("node is not installed, needed for %s: %v", pkg, err)
	}
	return script
}

// startFilesystem runs server-filesystem on a fresh workspace behind the
// proxy and connects a Go SDK client.
func startFilesystem(t *testing.T, pol *policy.Policy) (*mcp.ClientSession, string) {
	t.Helper()
	script := requireMCPServer(t, fsPackage)
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"docs/a.md": "# docs\n", "src/main.go": "package main\n", "README.md": "readme\n"} {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return startNodeServer(t, pol, ws, nil, false, script, ws), ws
}

// startNodeServer runs `node script args...` in ws behind the proxy and
// connects a Go SDK client with opts. Cleanup checks that the session ends
// cleanly and that the proxy refused nothing the server said. With
// terminate, the server gets SIGTERM once the client has gone, as the
// launcher does after its grace period; otherwise it must exit on its own
// when its stdin closes.
func startNodeServer(t *testing.T, pol *policy.Policy, ws string, opts *mcp.ClientOptions, terminate bool, script string, args ...string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = ws
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	clientIn, toProxy := io.Pipe()
	fromProxy, clientOut := io.Pipe()
	var log syncBuffer
	runErr := make(chan error, 1)
	cfg := Config{Policy: pol, Workspace: ws, Recorder: Discard, Log: &log}
	if terminate {
		cfg.ClientClosed = func() { cmd.Process.Signal(syscall.SIGTERM) }
	}
	go func() {
		runErr <- Run(ctx, cfg, clientIn, clientOut, stdin, stdout)
		clientOut.Close()
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "vm-run-test", Version: "1"}, opts)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: fromProxy, Writer: toProxy}, nil)
	if err != nil {
		cancel()
		t.Fatalf("connect to %s through the proxy: %v\nserver stderr:\n%s\nproxy log:\n%s", script, err, stderr.String(), log.String())
	}
	t.Cleanup(func() {
		cs.Close()
		if err := <-runErr; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if err := cmd.Wait(); err != nil && !terminate {
			t.Errorf("%s exited: %v\n%s", script, err, stderr.String())
		}
		cancel()
		if strings.Contains(log.String(), "refused") || strings.Contains(log.String(), "dropped") {
			t.Errorf("the proxy refused or dropped messages of a well-behaved server:\n%s", log.String())
		}
	})
	return cs
}

// TestFilesystemServerClasses checks the built-in classes against the real
// server's tools/list: every tool is in exactly one class, "read" holds the
// tools annotated read-only, and the path arguments are the ones named.
func TestFilesystemServerClasses(t *testing.T) {
	cs, _ := startFilesystem(t, policy.Permissive())
	classes := policy.BuiltinClasses()
	var seen []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatalf("list tools: %v", err)
		}
		seen = append(seen, tool.Name)
		inRead := slices.Contains(classes["read"].Tools, tool.Name)
		inWrite := slices.Contains(classes["write"].Tools, tool.Name)
		readOnly := tool.Annotations != nil && tool.Annotations.ReadOnlyHint
		if inRead == inWrite || inRead != readOnly {
			t.Errorf("tool %q: in read %v, in write %v, annotated read-only %v; want exactly one class, read iff read-only", tool.Name, inRead, inWrite, readOnly)
		}
		schema, _ := tool.InputSchema.(map[string]any)
		props, _ := schema["properties"].(map[string]any)
		for name := range props {
			looksLikePath := strings.Contains(strings.ToLower(name), "path") || name == "source" || name == "destination"
			if looksLikePath != slices.Contains(classes["read"].PathArgs, name) {
				t.Errorf("tool %q argument %q: looks like a path %v, in the path arguments %v", tool.Name, name, looksLikePath, classes["read"].PathArgs)
			}
		}
	}
	all := append(slices.Clone(classes["read"].Tools), classes["write"].Tools...)
	slices.Sort(all)
	slices.Sort(seen)
	if !slices.Equal(seen, all) {
		t.Errorf("%s lists %v, the built-in classes hold %v", fsPackage, seen, all)
	}
}

func TestFilesystemServerPolicy(t *testing.T) {
	pol := policy.Merge(loadPolicy(t, "seeds"), &policy.Policy{Rules: []policy.Rule{{ID: "tmp-writes", Allow: []policy.Matcher{{Spec: "write(tmp/**)"}}}}})
	if err := pol.Compile(); err != nil {
		t.Fatal(err)
	}
	cs, ws := startFilesystem(t, pol)
	ctx := context.Background()

	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("list tools: %v", err)
		}
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "read_text_file") || !slices.Contains(names, "write_file") || len(names) != len(policy.BuiltinClasses()["read"].Tools)+len(policy.BuiltinClasses()["write"].Tools) {
		t.Errorf("tools = %v, want every tool (writes are allowed under tmp)", names)
	}

	tests := []struct {
		tool     string
		args     map[string]any
		wantRule string // "" for allowed
		want     string // in the text of an allowed call
	}{
		{"read_text_file", map[string]any{"path": "docs/a.md"}, "", "# docs"},
		{"read_text_file", map[string]any{"path": filepath.Join(ws, "README.md")}, "", "readme"},
		{"read_text_file", map[string]any{"path": "src/main.go"}, policy.RuleDefault, ""},
		{"read_text_file", map[string]any{"path": "../../../etc/passwd"}, policy.RulePaths, ""},
		{"read_text_file", map[string]any{"path": "/etc/passwd"}, policy.RulePaths, ""},
		{"read_multiple_files", map[string]any{"paths": []any{"docs/a.md", "src/main.go"}}, policy.RuleDefault, ""},
		{"write_file", map[string]any{"path": "src/main.go", "content": "pwned"}, "block-src-writes", ""},
		{"move_file", map[string]any{"source": "src", "destination": "tmp/src"}, "block-src-writes", ""},
		{"create_directory", map[string]any{"path": "tmp"}, "", "Successfully"},
		{"write_file", map[string]any{"path": "tmp/out.txt", "content": "ok"}, "", "Successfully"},
		{"list_directory", map[string]any{"path": "docs/"}, policy.RuleDefault, ""},
	}
	for _, tt := range tests {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tt.tool, Arguments: tt.args})
		if err != nil {
			t.Errorf("CallTool(%s %v): %v", tt.tool, tt.args, err)
			continue
		}
		meta, _ := res.Meta[MetaKey].(map[string]any)
		switch {
		case tt.wantRule == "" && (res.IsError || !strings.Contains(text(res), tt.want)):
			t.Errorf("CallTool(%s %v) = %q (isError %v), want a result containing %q", tt.tool, tt.args, text(res), res.IsError, tt.want)
		case tt.wantRule != "" && (!res.IsError || meta["rule"] != tt.wantRule):
			t.Errorf("CallTool(%s %v) = %q (isError %v), want a denial by %q", tt.tool, tt.args, text(res), res.IsError, tt.wantRule)
		}
	}
	if b, err := os.ReadFile(filepath.Join(ws, "src", "main.go")); err != nil || string(b) != "package main\n" {
		t.Errorf("src/main.go = %q, %v; the denied write reached the disk", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "tmp", "out.txt")); err != nil || string(b) != "ok" {
		t.Errorf("tmp/out.txt = %q, %v; want the allowed write", b, err)
	}
}

const everythingPackage = "@modelcontextprotocol/server-everything"

// TestEverythingServer drives the reference server that exercises every
// MCP feature: unconcerned traffic flows, and its sampling and elicitation
// requests are denied without reaching the client's handlers.
func TestEverythingServer(t *testing.T) {
	script := requireMCPServer(t, everythingPackage)
	pol, err := parsePolicy([]byte(`
default_action: deny
defaults:
  resource: allow
  prompt: allow
rules:
  - id: demo-tools
    allow: [echo, get-sum, trigger-sampling-request, trigger-elicitation-request]
`), "everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sampled, elicited atomic.Int32
	opts := &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			sampled.Add(1)
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "x"}}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			elicited.Add(1)
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	}
	// It keeps timers running after stdin closes, so it needs the signal.
	cs := startNodeServer(t, pol, t.TempDir(), opts, true, script, "stdio")
	ctx := context.Background()

	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("list tools: %v", err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"echo", "get-sum", "trigger-elicitation-request", "trigger-sampling-request"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v", names, want)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi"}})
	if err != nil || res.IsError || !strings.Contains(text(res), "hi") {
		t.Errorf("CallTool(echo) = %v, %v; want the echo", res, err)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get-env", Arguments: map[string]any{}})
	if err != nil || !res.IsError || !strings.Contains(text(res), policy.RuleDefault) {
		t.Errorf("CallTool(get-env) = %v, %v; want a denial", res, err)
	}
	for _, tool := range []string{"trigger-sampling-request", "trigger-elicitation-request"} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"prompt": "hi"}})
		if err == nil && !res.IsError {
			t.Errorf("CallTool(%s) = %q, want the server's request denied", tool, text(res))
		}
	}
	if sampled.Load() != 0 || elicited.Load() != 0 {
		t.Errorf("client handled %d sampling and %d elicitation requests, want none", sampled.Load(), elicited.Load())
	}
	var resources int
	for r, err := range cs.Resources(ctx, nil) {
		if err != nil {
			t.Fatalf("list resources: %v", err)
		}
		if resources == 0 {
			if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: r.URI}); err != nil {
				t.Errorf("ReadResource(%q): %v", r.URI, err)
			}
		}
		resources++
	}
	for _, err := range cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatalf("list prompts: %v", err)
		}
	}
}
