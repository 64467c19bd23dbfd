package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// gatedRecorder holds every decision until released, and counts how many
// wait at once.
type gatedRecorder struct {
	memRecorder
	gate    chan struct{}
	mu      sync.Mutex
	waiting int
	most    int
}

func (r *gatedRecorder) Record(ctx context.Context, ev audit.Event) error {
	if _, ok := ev.(audit.Decision); ok {
		r.mu.Lock()
		r.waiting++
		r.most = max(r.most, r.waiting)
		r.mu.Unlock()
		<-r.gate
		r.mu.Lock()
		r.waiting--
		r.mu.Unlock()
	}
	return r.memRecorder.Record(ctx, ev)
}

func (r *gatedRecorder) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting
}

// TestDecisionsRecordedTogether: the reader does not wait for one decision
// to be durable before it judges the next, so the ledger can sync them
// together; nothing reaches the server before its decision is durable, and
// the server sees everything in the client's order.
func TestDecisionsRecordedTogether(t *testing.T) {
	rec := &gatedRecorder{gate: make(chan struct{})}
	h := startHarness(t, Config{Policy: policy.Permissive(), Recorder: rec})
	const n = 8
	for i := 1; i <= n; i++ {
		h.client(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"i":%d}}}`, i, i))
	}
	h.client(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`)
	h.client(`{"jsonrpc":"2.0","id":"p","method":"ping"}`)
	deadline := time.Now().Add(5 * time.Second)
	for rec.inFlight() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := rec.inFlight(); got != n {
		t.Fatalf("%d decisions waiting for the ledger at once, want all %d", got, n)
	}
	select {
	case line := <-h.toServer:
		t.Fatalf("the server got %q before any decision was durable", line)
	case <-time.After(50 * time.Millisecond):
	}
	close(rec.gate)
	var got []string
	for range n + 2 {
		got = append(got, h.serverGot())
	}
	for i := 1; i <= n; i++ {
		if !strings.Contains(got[i-1], fmt.Sprintf(`"id":%d,`, i)) {
			t.Errorf("server line %d = %q, want request %d: the client's order", i, got[i-1], i)
		}
	}
	if !strings.Contains(got[n], "notifications/cancelled") || !strings.Contains(got[n+1], `"ping"`) {
		t.Errorf("server got %q after the calls, want the cancellation then the ping", got[n:])
	}
}

// TestLedgerFailureWhileQueued: a decision whose record fails is denied,
// and the messages queued behind it still go.
func TestLedgerFailureWhileQueued(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	h.rec.setFail(errLedger)
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	h.client(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, `"ping"`) {
		t.Errorf("server got %q, want only the ping", got)
	}
	if rule := toolDenial(t, h.clientGot(), "1"); rule != policy.RuleLedger {
		t.Errorf("denial rule = %q, want %q", rule, policy.RuleLedger)
	}
}
