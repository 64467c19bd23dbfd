package selftest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func blockedRow(attack string) Row {
	return Row{Attack: attack, Expected: GotBlocked, Got: GotBlocked, Mechanism: "landlock", Baseline: Proven}
}

func TestReportVerdict(t *testing.T) {
	escapedRow := blockedRow("read a file outside the rules")
	escapedRow.Got, escapedRow.Mechanism = GotEscaped, ""
	unproven := blockedRow("ptrace an outside process")
	unproven.Baseline, unproven.BaselineDetail = Unproven, "ptrace(PTRACE_SEIZE, 7): EPERM"
	impossible := blockedRow("x32 ABI syscall")
	impossible.Baseline, impossible.Why = Impossible, "this kernel has no x32 ABI"
	errored := blockedRow("TIOCSTI into the terminal")
	errored.Got = GotError
	skipped := Row{Attack: "write a read-only workspace file", Expected: GotSkipped, Got: GotSkipped,
		Baseline: NotRun, Why: "the profile grants write access to the workspace"}

	tests := []struct {
		name        string
		rows        []Row
		wantEscaped bool
		wantErr     error // nil, ErrEscaped or ErrUnproven
	}{
		{"all blocked", []Row{blockedRow("a"), blockedRow("b")}, false, nil},
		{"impossible baseline is no failure", []Row{blockedRow("a"), impossible}, false, nil},
		{"skipped row is no failure", []Row{skipped, blockedRow("a")}, false, nil},
		{"escape", []Row{blockedRow("a"), escapedRow}, true, ErrEscaped},
		{"escape wins over unproven", []Row{unproven, escapedRow}, true, ErrEscaped},
		{"unproven baseline", []Row{blockedRow("a"), unproven}, false, ErrUnproven},
		{"probe error", []Row{errored}, false, ErrUnproven},
		{"empty", nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Profile: "strict", UID: 65534, GID: 65534, Rows: tt.rows}
			if got := r.Escaped(); got != tt.wantEscaped {
				t.Errorf("Escaped() = %v, want %v", got, tt.wantEscaped)
			}
			err := r.Err()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("Err() = %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Err() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	impossible := blockedRow("x32 ABI syscall")
	impossible.Mechanism, impossible.Baseline, impossible.Why = "seccomp (killed by SIGSYS)", Impossible, "this kernel has no x32 ABI"
	unproven := blockedRow("ptrace an outside process")
	unproven.Baseline, unproven.BaselineDetail = Unproven, "ptrace(PTRACE_SEIZE, 7): EPERM"
	skipped := Row{Attack: "write a read-only workspace file", Expected: GotSkipped, Got: GotSkipped,
		Baseline: NotRun, Why: "the profile grants write access to the workspace"}
	tests := []struct {
		name string
		rows []Row
		want []string // lines or fragments the output must hold
	}{
		{"blocked", []Row{blockedRow("read a file outside the rules")}, []string{
			"ATTACK",
			"read a file outside the rules  blocked   blocked  landlock   escapes unsandboxed",
			"1 attacks, 1 blocked, 0 escaped, 0 errors, 0 skipped; baselines: 1 proven, 0 impossible here, 0 failed",
			"PASS: nothing escaped",
		}},
		{"impossible and skipped", []Row{impossible, skipped}, []string{
			"not provable here: this kernel has no x32 ABI",
			"skipped: the profile grants write access to the workspace",
			"PASS",
		}},
		{"unproven", []Row{unproven}, []string{
			"FAILED: ptrace(PTRACE_SEIZE, 7): EPERM",
			"FAIL: the battery could not prove every attack under profile \"strict\": ptrace an outside process",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Profile: "strict", UID: 65534, GID: 65534, Rows: tt.rows}
			var b bytes.Buffer
			if err := r.WriteTable(&b); err != nil {
				t.Fatalf("WriteTable: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("WriteTable output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		words   []string
		key     string
		want    string
		wantErr bool
	}{
		{[]string{"path=/a", "token=x"}, "path", "/a", false},
		{[]string{"dir=/a", "dir=/b"}, "dir", "/b", false},
		{[]string{"v=a=b"}, "v", "a=b", false},
		{[]string{"empty="}, "empty", "", false},
		{[]string{"noequals"}, "", "", true},
		{[]string{"=value"}, "", "", true},
	}
	for _, tt := range tests {
		ps, err := parseParams(tt.words)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseParams(%q) error = %v, want error %v", tt.words, err, tt.wantErr)
			continue
		}
		if err == nil && ps.get(tt.key) != tt.want {
			t.Errorf("parseParams(%q).get(%q) = %q, want %q", tt.words, tt.key, ps.get(tt.key), tt.want)
		}
	}
}
