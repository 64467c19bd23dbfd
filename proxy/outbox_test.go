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
// wait at once and in how many hand-overs they came.
type gatedRecorder struct {
	memRecorder
	gate    chan struct{}
	mu      sync.Mutex
	waiting int
	most    int
	calls   int
}

func (r *gatedRecorder) RecordAll(ctx context.Context, evs []audit.Event) []error {
	r.mu.Lock()
	r.calls++
	r.waiting += len(evs)
	r.most = max(r.most, r.waiting)
	r.mu.Unlock()
	<-r.gate
	r.mu.Lock()
	r.waiting -= len(evs)
	r.mu.Unlock()
	errs := make([]error, len(evs))
	for i, ev := range evs {
		errs[i] = r.memRecorder.Record(ctx, ev)
	}
	return errs
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
	// One write, as a client with calls in flight sends them: the reader
	// sees more input waiting and does not stop for the ledger (a call
	// alone is recorded on the reader's goroutine, see tryInline).
	var lines []string
	for i := 1; i <= n; i++ {
		lines = append(lines, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"i":%d}}}`, i, i))
	}
	lines = append(lines, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`,
		`{"jsonrpc":"2.0","id":"p","method":"ping"}`)
	h.client(strings.Join(lines, "\n"))
	deadline := time.Now().Add(5 * time.Second)
	for rec.inFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if rec.inFlight() == 0 {
		t.Fatal("no decision reached the ledger")
	}
	select {
	case line := <-h.toServer:
		t.Fatalf("the server got %q before any decision was durable", line)
	case <-time.After(50 * time.Millisecond):
	}
	close(rec.gate)
	var got []string
	defer func() {
		// The reader read on while the first record waited: everything
		// after it went to the ledger in one more hand-over at most.
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.calls > 2 {
			t.Errorf("the %d decisions came to the ledger in %d hand-overs, want at most 2", n, rec.calls)
		}
	}()
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
