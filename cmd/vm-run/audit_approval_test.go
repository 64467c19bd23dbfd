package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditShowApprovals: the records of a person in the loop print one
// line each, --event takes a glob, --verdict ask selects held calls, and
// stats counts them.
func TestAuditShowApprovals(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	hermeticHome(t)
	writeAskSession(t, ledger, filepath.Join(dir, "ws"))
	vmrun := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--ledger", ledger)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("vm-run %q = %d, want 0; stderr:\n%s", args, code, stderr.String())
		}
		return stdout.String()
	}
	out := vmrun("audit", "show", "--event", "approval_*")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1+6 {
		t.Errorf("audit show --event approval_* printed %d rows, want a header and 6:\n%s", len(lines), out)
	}
	for _, want := range []string{
		"approval_requested  write_file            ask      question q1 about decision 1: rule review; via cli; waits 1m0s; ttl 1h0m0s",
		"approval_granted    write_file            granted  question q1: granted by cli uid=1000 pid=42 for the rule's ttl (1h0m0s)",
		"approval_denied     -                     denied   question q2: denied by elicitation claude-code 2.1: not that one",
		"approval_expired    -                     expired  question q3: expired (timeout)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit show --event approval_* lacks %q:\n%s", want, out)
		}
	}
	out = vmrun("audit", "show", "--event", "tool_changed")
	if want := "tool_changed        write_file            -        write_file: description changed [description]; pinned 111111111111, seen 222222222222; on_change ask"; !strings.Contains(out, want) {
		t.Errorf("audit show --event tool_changed lacks %q:\n%s", want, out)
	}
	out = vmrun("audit", "show", "--verdict", "ask")
	if n := strings.Count(out, "\n"); n != 1+3 {
		t.Errorf("audit show --verdict ask printed %d lines, want a header and the 3 asked decisions:\n%s", n, out)
	}
	out = vmrun("audit", "stats")
	for _, want := range []string{
		"verdicts: allow 1, ask 3\n",
		"approvals: 3 asked, 1 granted, 1 denied, 1 expired; tools changed since pinned: 1\n",
		"approval_granted 1", "secret_redacted 1", "tool_changed 1",
		"TOOL            DECISIONS  ALLOWED  ASKED  DENIED  WOULD DENY\nwrite_file      3          0        3      0       0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit stats lacks %q:\n%s", want, out)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"audit", "show", "--ledger", ledger, "--event", "approval_["}, &bytes.Buffer{}, &stderr); code == 0 || !strings.Contains(stderr.String(), `event pattern "approval_["`) {
		t.Errorf("audit show --event approval_[ = %d, %q; want an error naming the pattern", code, stderr.String())
	}
}
