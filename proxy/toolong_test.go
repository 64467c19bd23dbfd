package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// TestServerAnswerOverLimit: the request a too-long answer answers gets an
// error as soon as the answer crosses the limit, before its newline (an
// endless answer would otherwise hang the client), and the session goes on.
func TestServerAnswerOverLimit(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive(), MaxLine: 1024})
	h.client(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"big"}}`)
	h.serverGot()
	// 5 KB of an answer and no newline yet.
	if _, err := h.serverOut.Write([]byte(`{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"` + strings.Repeat("x", 5000))); err != nil {
		t.Fatal(err)
	}
	r := wantError(t, h.clientGot(), "5", CodeInternalError)
	if !strings.Contains(r.Error.Message, "limit of 1024 bytes") || !strings.Contains(r.Error.Message, "--max-message") {
		t.Errorf("error = %q, want the limit and how to raise it", r.Error.Message)
	}
	h.server(strings.Repeat("y", 3000) + `"}]}}`)
	h.client(`{"jsonrpc":"2.0","id":6,"method":"ping"}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":6,"result":{}}`)
	if got := h.clientGot(); got != `{"jsonrpc":"2.0","id":6,"result":{}}` {
		t.Errorf("after the long answer the client got %q, want the ping's answer", got)
	}
	_, outcomes := h.rec.snapshot()
	if len(outcomes) != 1 || outcomes[0].Status != audit.OutcomeTooLarge {
		t.Errorf("outcomes = %+v, want one %q", outcomes, audit.OutcomeTooLarge)
	}
}

// TestServerEndlessOutput: endless output without an id that can be read
// fails every waiting request at once.
func TestServerEndlessOutput(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive(), MaxLine: 1024})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}`)
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}`)
	h.serverGot()
	h.serverGot()
	go h.serverOut.Write([]byte(strings.Repeat(" ", 4000)))
	got := map[string]bool{}
	for range 2 {
		r := decodeReply(t, h.clientGot())
		if r.Error == nil || r.Error.Code != CodeInternalError {
			t.Errorf("got %+v, want an error", r)
		}
		got[string(r.ID)] = true
	}
	if !got["1"] || !got["2"] {
		t.Errorf("errors for ids %v, want 1 and 2", got)
	}
}

// TestClientMessageOverLimit: a client request over the limit is answered
// under its own id, never forwarded.
func TestClientMessageOverLimit(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive(), MaxLine: 1024})
	h.client(`{"jsonrpc":"2.0","id":"big-1","method":"tools/call","params":{"name":"x","arguments":{"blob":"` + strings.Repeat("z", 3000) + `"}}}`)
	wantError(t, h.clientGot(), `"big-1"`, CodeInvalidRequest)
	h.client(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	select {
	case got := <-h.toServer:
		if !strings.Contains(got, `"ping"`) {
			t.Errorf("server got %q, want only the ping", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ping never reached the server")
	}
}
