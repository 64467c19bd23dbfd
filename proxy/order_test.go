package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantNothing checks that the server gets nothing for a while.
func (h *harness) wantNothing(what string) {
	h.t.Helper()
	select {
	case line := <-h.toServer:
		h.t.Fatalf("%s: the server got %q", what, line)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestPathCallsWaitForWrites: a pipelined client moves a directory holding
// a link into place and writes through where the link will be before the
// move has run. The write is judged only once the move has been answered,
// by where it then leads: into src/, denied.
func TestPathCallsWaitForWrites(t *testing.T) {
	ws, _ := rootsWorkspace(t)
	if err := os.MkdirAll(filepath.Join(ws, "docs", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../src", filepath.Join(ws, "docs", "x", "srclink")); err != nil {
		t.Fatal(err)
	}
	pol, err := parsePolicy([]byte(srcPolicy), "order.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol, Workspace: ws})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"move_file","arguments":{"source":"` + ws + `/docs/x","destination":"` + ws + `/docs/y"}}}`)
	if got := h.serverGot(); !strings.Contains(got, "move_file") {
		t.Fatalf("server got %q, want the move", got)
	}
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"docs/y/srclink/main.c","content":"pwned"}}}`)
	h.client(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	h.wantNothing("while the move is in flight")
	// The server moves, and answers.
	if err := os.Rename(filepath.Join(ws, "docs", "x"), filepath.Join(ws, "docs", "y")); err != nil {
		t.Fatal(err)
	}
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	// The move's answer and the write's denial, in either order.
	for range 2 {
		got := h.clientGot()
		if strings.Contains(got, `"id":1,`) {
			continue
		}
		if rule := toolDenial(t, got, "2"); rule != "block-src-writes" {
			t.Errorf("write through the moved link: rule %q, want block-src-writes", rule)
		}
	}
	if got := h.serverGot(); !strings.Contains(got, `"ping"`) {
		t.Errorf("server got %q, want the ping that waited behind the write", got)
	}
}

// TestRootsHeldWhileRelativeInFlight: the client's new roots reach the
// server only once the calls whose relative paths were judged against the
// old ones have been answered.
func TestRootsHeldWhileRelativeInFlight(t *testing.T) {
	ws, _ := rootsWorkspace(t)
	pol, err := parsePolicy([]byte(srcPolicy), "order.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol, Workspace: ws})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"docs/a.md"}}}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":"r","method":"roots/list"}`)
	h.clientGot()
	h.client(`{"jsonrpc":"2.0","id":"r","result":{"roots":[{"uri":"file://` + ws + `/src"}]}}`)
	h.wantNothing("while a relative read is in flight")
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	h.clientGot()
	if got := h.serverGot(); !strings.Contains(got, `"roots":[{"uri":"file://`+ws+`/src"}]`) {
		t.Errorf("server got %q, want the roots once the read was answered", got)
	}
}

// TestAnswersPassParkedCalls: while a call is parked behind a write, the
// client's answer to a request the server makes during that write reaches
// the server (it is what the write may be waiting for).
func TestAnswersPassParkedCalls(t *testing.T) {
	ws, _ := rootsWorkspace(t)
	pol, err := parsePolicy([]byte("default_action: allow\n"), "order.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol, Workspace: ws})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"` + ws + `/docs/a","content":"x"}}}`)
	h.serverGot()
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"` + ws + `/docs/a"}}}`)
	h.wantNothing("the read waits for the write")
	h.server(`{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{"message":"ok?","requestedSchema":{"type":"object","properties":{}}}}`)
	if got := h.clientGot(); !strings.Contains(got, "elicitation/create") {
		t.Fatalf("client got %q, want the elicitation", got)
	}
	h.client(`{"jsonrpc":"2.0","id":"e1","result":{"action":"accept","content":{}}}`)
	if got := h.serverGot(); !strings.Contains(got, `"id":"e1"`) {
		t.Fatalf("server got %q, want the client's answer to its elicitation", got)
	}
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	h.clientGot()
	if got := h.serverGot(); !strings.Contains(got, `"id":2`) {
		t.Errorf("server got %q, want the read once the write was answered", got)
	}
}
