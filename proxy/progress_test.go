package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/policy"
)

// TestProgressKeepsCallAlive: a call whose server reports progress is not
// cut off by CallTimeout, however long it runs in all; one that goes quiet
// is.
func TestProgressKeepsCallAlive(t *testing.T) {
	// Generous: a step of a third of it must not be late by two thirds
	// on a loaded two-core machine.
	const timeout = 1500 * time.Millisecond
	h := startHarness(t, Config{Policy: policy.Permissive(), CallTimeout: timeout})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"build","_meta":{"progressToken":"t1"}}}`)
	h.serverGot()
	for i := range 6 { // twice the timeout, in steps of a third of it
		time.Sleep(timeout / 3)
		h.server(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t1","progress":` + string(rune('1'+i)) + `}}`)
		if got := h.clientGot(); !strings.Contains(got, "notifications/progress") {
			t.Fatalf("client got %q during a call that reports progress, want the progress", got)
		}
	}
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	if got := h.clientGot(); got != `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}` {
		t.Errorf("client got %q, want the result of the call that reported progress", got)
	}
	// Quiet: timed out.
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hang","_meta":{"progressToken":"t2"}}}`)
	h.serverGot()
	wantError(t, h.clientGot(), "2", CodeInternalError)
}
