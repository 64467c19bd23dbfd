package proxy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rootsWorkspace makes a workspace with docs/ and src/, a link
// docs/srclink -> ../src, and a directory outside it.
func rootsWorkspace(t *testing.T) (ws, outside string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws, outside = filepath.Join(root, "ws"), filepath.Join(root, "outside")
	for _, d := range []string{filepath.Join(ws, "docs"), filepath.Join(ws, "src"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../src", filepath.Join(ws, "docs", "srclink")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return ws, outside
}

const srcPolicy = `
rules:
  - id: allow-docs
    allow: ["read", "write(docs/*)"]
  - id: block-src-writes
    deny: ["write(src/*)"]
`

func TestRootsAnswerFiltered(t *testing.T) {
	ws, outside := rootsWorkspace(t)
	pol, err := parsePolicy([]byte(srcPolicy), "roots.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol, Workspace: ws})
	h.server(`{"jsonrpc":"2.0","id":"r1","method":"roots/list"}`)
	h.clientGot()

	// While the client has not answered, a relative path cannot be judged:
	// the call waits, and is judged against the roots the server is about
	// to learn (src/, below), where it is denied.
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"docs/a.md","content":"x"}}}`)
	select {
	case got := <-h.fromProxy:
		t.Fatalf("a relative path was answered while roots/list was pending: %s", got)
	case <-time.After(50 * time.Millisecond):
	}

	roots := []map[string]string{
		{"uri": "file://" + ws + "/src", "name": "src"},
		{"uri": "file://localhost" + ws + "/docs/srclink"},
		{"uri": "file:///"},
		{"uri": "file://" + outside},
		{"uri": "file://" + ws + "/../outside"},
		{"uri": "file://" + ws + "/file"},
		{"uri": "file://" + ws + "/missing"},
		{"uri": ws + "/docs"},
		{"uri": "https://example.com/"},
		{"uri": "file://otherhost" + ws},
	}
	answer, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "r1", "result": map[string]any{"roots": roots, "_meta": map[string]any{"k": 1}}})
	h.client(string(answer))
	got := h.serverGot()
	var res struct {
		Result struct {
			Roots []map[string]string `json:"roots"`
			Meta  map[string]any      `json:"_meta"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatalf("server got %q: %v", got, err)
	}
	var uris []string
	for _, r := range res.Result.Roots {
		uris = append(uris, r["uri"])
	}
	src := "file://" + ws + "/src"
	if want := []string{src, src}; !slices.Equal(uris, want) {
		t.Errorf("server learned roots %q, want %q (the link resolved)", uris, want)
	}
	if res.Result.Roots[0]["name"] != "src" || res.Result.Meta["k"] != float64(1) {
		t.Errorf("server got %s: want the root's name and the result's _meta kept", got)
	}
	h.rec.mu.Lock()
	recs := slices.Clone(h.rec.roots)
	h.rec.mu.Unlock()
	if len(recs) != 1 || len(recs[0].Offered) != len(roots) || len(recs[0].Dropped) != len(roots)-2 {
		t.Fatalf("roots records = %+v, want one with %d offered and %d dropped", recs, len(roots), len(roots)-2)
	}
	for _, d := range recs[0].Dropped {
		if d.Reason == "" {
			t.Errorf("dropped root %q has no reason", d.URI)
		}
	}
	// The record precedes what the server hears.
	evs := h.events.all()
	if i, j := slices.IndexFunc(evs, func(e string) bool { return strings.HasPrefix(e, "roots ") }),
		slices.IndexFunc(evs, func(e string) bool { return strings.Contains(e, `"roots":[`) && strings.HasPrefix(e, "server<-") }); i < 0 || j < 0 || i > j {
		t.Errorf("events = %q, want the roots record before the answer reaches the server", evs)
	}

	if rule := toolDenial(t, h.clientGot(), "1"); rule != "block-src-writes" {
		t.Errorf("the call that waited for the roots: rule %q, want block-src-writes", rule)
	}
	// Now docs/sub/main.c is judged against src/ too, where it is denied.
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"docs/sub/main.c","content":"x"}}}`)
	if rule := toolDenial(t, h.clientGot(), "2"); rule != "block-src-writes" {
		t.Errorf("write_file docs/sub/main.c with root src/: rule %q, want block-src-writes", rule)
	}
	// An absolute path means one thing whatever the roots.
	h.client(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"` + ws + `/docs/a.md","content":"x"}}}`)
	if got := h.serverGot(); !strings.Contains(got, `"id":3`) {
		t.Errorf("server got %q, want the allowed absolute write", got)
	}
	decisions, _ := h.rec.snapshot()
	if d := decisions[1]; !slices.Contains(d.Paths, "src/docs/sub/main.c") || !slices.Contains(d.Paths, "docs/sub/main.c") {
		t.Errorf("decision paths = %q, want docs/sub/main.c read against the workspace and against src/", d.Paths)
	}
}

// TestRootsInInputResponses: under MCP 2026-07-28 the client answers the
// server's roots/list input request by retrying its request with the roots
// in inputResponses; they are filtered the same way, before the call is
// judged.
func TestRootsInInputResponses(t *testing.T) {
	ws, _ := rootsWorkspace(t)
	pol, err := parsePolicy([]byte(srcPolicy), "roots.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol, Workspace: ws})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"docs/x/main.c","content":"x"},` +
		`"inputResponses":{"r":{"roots":[{"uri":"file:///"},{"uri":"file://` + ws + `/src"}]}},"requestState":"s"}}`)
	if rule := toolDenial(t, h.clientGot(), "1"); rule != "block-src-writes" {
		t.Errorf("write_file with roots src/ in inputResponses: rule %q, want block-src-writes", rule)
	}
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"docs/a.md"},` +
		`"inputResponses":{"r":{"roots":[{"uri":"file:///etc"}]},"e":{"action":"accept"}},"requestState":"s"}}`)
	got := h.serverGot()
	if strings.Contains(got, "file:///etc") || !strings.Contains(got, `"roots":[]`) || !strings.Contains(got, `"requestState":"s"`) || !strings.Contains(got, `"action":"accept"`) {
		t.Errorf("server got %s, want the roots emptied and everything else kept", got)
	}
}
