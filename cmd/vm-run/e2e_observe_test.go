package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

var memoryTools = []string{"add_observations", "create_entities", "create_relations", "delete_entities",
	"delete_observations", "delete_relations", "open_nodes", "read_graph", "search_nodes"}

// testObserveRoundTrip is the learn-then-enforce workflow with
// server-memory and the Go SDK client: under a profile that names none of
// its tools, the client sees none, a call is denied, and vm-run says why
// on stderr; with --observe every tool is listed and the calls go through,
// recorded as would_deny; `policy generate` turns that session into a
// profile, under which the calls used are allowed and one never used is
// denied.
func (e *e2e) testObserveRoundTrip(t *testing.T) {
	b := newBox(t)
	state := b.writableDir(t, "state")
	mem := filepath.Join(state, "memory.jsonl")
	prof := e.profile(t, b, "e2e-observe", fmt.Sprintf("  write: [%q]\n", state), "")
	r := e2eRun{profile: prof, ws: b.ws, env: []string{"MEMORY_FILE_PATH=" + mem},
		server: []string{"node", e.server("server-memory")}}
	entities := map[string]any{"entities": []any{map[string]any{
		"name": "vm-run", "entityType": "project", "observations": []any{"observed"},
	}}}

	// Enforced: nothing listed, the call denied, and the notice.
	s := e.start(t, b, r)
	if got := s.tools(t); len(got) != 0 {
		t.Errorf("tools/list enforced = %v, want none", got)
	}
	s.wantDenied(t, "create_entities", entities, policy.RuleDefault)
	s.close(t)
	wantAbsent(t, mem, "create_entities denied")
	notice := fmt.Sprintf("vm-run: the tool policy hides %d of %d tools from the client", len(memoryTools), len(memoryTools))
	if got := s.stderr.String(); strings.Count(got, notice) != 1 || !strings.Contains(got, "vm-run: hint: to allow what this server uses, run it once with --observe") {
		t.Errorf("stderr enforced:\n%s\nwant once %q and the hint", got, notice)
	}

	// Observed: everything listed, the calls forwarded, recorded as
	// would_deny.
	r.flags = []string{"--observe"}
	s = e.start(t, b, r)
	if got := s.tools(t); !slices.Equal(got, memoryTools) {
		t.Errorf("tools/list observed = %v, want %v", got, memoryTools)
	}
	s.wantAllowed(t, "create_entities", entities)
	if got := s.wantAllowed(t, "read_graph", map[string]any{}); !strings.Contains(got, "observed") {
		t.Errorf("read_graph observed = %q, want the entity", got)
	}
	s.wantDecision(t, "create_entities", audit.VerdictWouldDeny, policy.RuleDefault)
	s.wantDecision(t, "read_graph", audit.VerdictWouldDeny, policy.RuleDefault)
	s.close(t)
	if got, err := os.ReadFile(mem); err != nil || !bytes.Contains(got, []byte(`"vm-run"`)) {
		t.Errorf("memory file after an observed create_entities: %q, %v; want the entity", got, err)
	}
	if got := s.stderr.String(); !strings.Contains(got, "vm-run: observe mode: the tool policy is not enforced") {
		t.Errorf("stderr observed:\n%s\nwant the observe-mode notice", got)
	}
	out, err := exec.Command(e.bin, "audit", "stats", "--ledger", s.ledger, "--verdict", "would_deny").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "would_deny 2") || !strings.Contains(string(out), "server-memory") {
		t.Errorf("audit stats --verdict would_deny: %v\n%s\nwant 2 would_deny and the session's command", err, out)
	}

	// Generated, reviewed, enforced.
	gen := filepath.Join(b.cfg, "generated.yaml")
	out, err = exec.Command(e.bin, "policy", "generate", "--ledger", s.ledger, "--profile", prof, "-o", gen).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 matchers for 2 used calls") {
		t.Fatalf("policy generate: %v\n%s", err, out)
	}
	r.flags, r.profile = nil, gen
	s = e.start(t, b, r)
	if got, want := s.tools(t), []string{"create_entities", "read_graph"}; !slices.Equal(got, want) {
		t.Errorf("tools/list under the generated profile = %v, want %v", got, want)
	}
	if got := s.wantAllowed(t, "read_graph", map[string]any{}); !strings.Contains(got, "observed") {
		t.Errorf("read_graph under the generated profile = %q, want the entity", got)
	}
	s.wantDenied(t, "delete_entities", map[string]any{"entityNames": []any{"vm-run"}}, policy.RuleDefault)
	s.close(t)
}

// testMemoryPreset runs server-memory under a profile extending the
// built-in server-memory preset: every tool is listed and allowed with no
// notice, and the graph lands in the workspace, where the next session
// finds it.
func (e *e2e) testMemoryPreset(t *testing.T) {
	b := newBox(t)
	if err := os.Chmod(b.ws, 0o777); err != nil {
		t.Fatal(err)
	}
	prof := b.config(t, "preset.yaml", fmt.Sprintf("extends: server-memory\nfilesystem:\n  read: [%q]\n", e.modules))
	r := e2eRun{profile: prof, ws: b.ws, server: []string{"node", e.server("server-memory")}}
	s := e.start(t, b, r)
	if got := s.tools(t); !slices.Equal(got, memoryTools) {
		t.Errorf("tools/list under the preset = %v, want %v", got, memoryTools)
	}
	s.wantAllowed(t, "create_entities", map[string]any{"entities": []any{map[string]any{
		"name": "preset", "entityType": "test", "observations": []any{"kept"},
	}}})
	s.close(t)
	if got := s.stderr.String(); strings.Contains(got, "hides") {
		t.Errorf("stderr under the preset:\n%s\nwant no hidden-tools notice", got)
	}
	if got, err := os.ReadFile(filepath.Join(b.ws, ".mcp-memory.jsonl")); err != nil || !bytes.Contains(got, []byte(`"preset"`)) {
		t.Errorf("graph file in the workspace: %q, %v", got, err)
	}
	s = e.start(t, b, r)
	if got := s.wantAllowed(t, "read_graph", map[string]any{}); !strings.Contains(got, "kept") {
		t.Errorf("read_graph in the next session = %q, want the entity kept", got)
	}
	s.close(t)
}
