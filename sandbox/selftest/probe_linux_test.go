package selftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// runProbe runs the test binary as a probe (TestMain dispatches on argv[0])
// and returns its verdict and exit code.
func runProbe(t *testing.T, args ...string) (verdict, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: exe, Args: append([]string{ProbeArg0}, args...), Stdout: &out}
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run probe %q: %v", args, err)
	}
	var v verdict
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("probe %q printed %q: %v", args, out.String(), err)
	}
	return v, cmd.ProcessState.ExitCode()
}

func TestProbeMain(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name        string
		args        []string
		wantCode    int
		wantEscaped bool
		wantError   bool
	}{
		{"no probe", nil, 2, false, true},
		{"unknown probe", []string{"nope"}, 2, false, true},
		{"bad parameter", []string{"read", "path"}, 2, false, true},
		{"missing file is no escape", []string{"read", "path=" + dir + "/missing", "token=x"}, 0, false, false},
		{"create in a writable dir escapes", []string{"create", "dir=" + dir}, 0, true, false},
		{"create in a missing dir is blocked", []string{"create", "dir=" + dir + "/missing"}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, code := runProbe(t, tt.args...)
			if code != tt.wantCode || v.Escaped != tt.wantEscaped || (v.Error != "") != tt.wantError {
				t.Errorf("probe %q = %+v, exit %d; want escaped %v, error %v, exit %d",
					tt.args, v, code, tt.wantEscaped, tt.wantError, tt.wantCode)
			}
		})
	}
}

// TestProbeIA32 runs the ia32 probe without a filter: it must reach a
// verdict on any kernel, an escape where int $0x80 works and "not provable
// here" where it faults, never die of the fault.
func TestProbeIA32(t *testing.T) {
	v, code := runProbe(t, "ia32")
	switch {
	case code != 0 || v.Error != "":
		t.Errorf("probe ia32 = %+v, exit %d; want a verdict, exit 0", v, code)
	case v.Escaped:
		t.Logf("ia32 entry present: %s", v.Detail)
	case v.Impossible == "" || v.Mechanism != "kernel (no ia32 emulation)":
		t.Errorf("probe ia32 = %+v; want an escape, or blocked by %q and impossible with a reason",
			v, "kernel (no ia32 emulation)")
	}
}
