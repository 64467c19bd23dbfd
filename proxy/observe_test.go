package proxy

import (
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

const toolsPage = `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_text_file","annotations":{"readOnlyHint":true}},{"name":"echo"},{"name":"add"}]}}`

// TestHiddenToolsNotice: a tools/list page from which the policy removes
// tools makes vm-run say so once on stderr, with the count, the names, the
// rule and what to do.
func TestHiddenToolsNotice(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Strict()})
	for range 2 {
		h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		h.serverGot()
		h.server(toolsPage)
		if got := h.clientGot(); strings.Contains(got, "echo") || !strings.Contains(got, "read_text_file") {
			t.Fatalf("client got %s; want echo and add removed", got)
		}
	}
	if err := h.finish(); err != nil {
		t.Fatal(err)
	}
	log := h.logBuf.String()
	want := `vm-run: the tool policy hides 2 of 3 tools from the client: "echo", "add", by rule vm-run:default (no rule allows them, and the default is deny)` + "\n"
	if strings.Count(log, "tool policy hides") != 1 || !strings.Contains(log, want) || !strings.Contains(log, "vm-run: hint: to allow what this server uses, run it once with --observe") {
		t.Errorf("log:\n%s\nwant once:\n%s and a hint", log, want)
	}
}

// TestObserveMode: in observe mode a call the policy denies is forwarded
// and recorded as would_deny with the rule that would have denied it, lists
// are not filtered, and what is not the policy's to relax (a malformed
// request, a ledger that cannot record) is still refused. The same calls
// in enforce mode are denied, which is the baseline.
func TestObserveMode(t *testing.T) {
	write := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"src/a.c","content":"x"}}}`
	malformed := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":[1]}}`

	enforce := startHarness(t, Config{Policy: policy.Strict()})
	enforce.client(write)
	toolDenial(t, enforce.clientGot(), "3")
	if err := enforce.finish(); err != nil {
		t.Fatal(err)
	}

	pol := policy.Strict()
	if err := pol.Observe(); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol})
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	h.serverGot()
	h.server(toolsPage)
	if got := h.clientGot(); got != toolsPage {
		t.Errorf("observe mode: client got %s, want the page unfiltered", got)
	}
	h.client(write)
	if got := h.serverGot(); got != write {
		t.Fatalf("observe mode: server got %q, want the write forwarded", got)
	}
	h.server(`{"jsonrpc":"2.0","id":3,"result":{"content":[]}}`)
	h.clientGot()
	h.client(malformed)
	wantError(t, h.clientGot(), "4", -32602)
	if err := h.finish(); err != nil {
		t.Fatal(err)
	}
	decisions, outcomes := h.rec.snapshot()
	if len(decisions) != 2 || decisions[0].Verdict != audit.VerdictWouldDeny || decisions[0].Rule != policy.RuleDefault ||
		decisions[1].Verdict != audit.VerdictDeny || decisions[1].Rule != policy.RuleInvalid {
		t.Errorf("decisions = %+v; want write_file would_deny by %s, the malformed call denied by %s", decisions, policy.RuleDefault, policy.RuleInvalid)
	}
	if len(outcomes) != 1 || outcomes[0].Status != audit.OutcomeOK {
		t.Errorf("outcomes = %+v, want the forwarded write answered ok", outcomes)
	}
	if log := h.logBuf.String(); !strings.Contains(log, "the tool policy would hide 2 of 3 tools") || strings.Contains(log, "hint") {
		t.Errorf("log:\n%s\nwant the would-hide notice and no hint", log)
	}

	// The ledger failing still denies.
	h = startHarness(t, Config{Policy: pol})
	h.rec.setFail(errLedger)
	h.client(write)
	toolDenial(t, h.clientGot(), "3")
	h.finish()
}
