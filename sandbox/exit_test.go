package sandbox_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		st   sandbox.Status
		code int
		text string
	}{
		{sandbox.Status{}, 0, "exit status 0"},
		{sandbox.Status{Code: 3}, 3, "exit status 3"},
		{sandbox.Status{Code: 255}, 255, "exit status 255"},
		{sandbox.Status{Signal: 9}, 137, "killed by signal 9"},
		{sandbox.Status{Signal: 15}, 143, "killed by signal 15"},
		{sandbox.Status{Signal: 9, Limits: cgroup.Events{OOMKills: 1}}, 137, "killed by the OOM killer (signal 9)"},
		// A child of the command was OOM-killed, and the command killed
		// by someone else, or not killed: not the command's OOM kill.
		{sandbox.Status{Signal: 15, Limits: cgroup.Events{OOMKills: 1}}, 143, "killed by signal 15"},
		{sandbox.Status{Code: 137, Limits: cgroup.Events{OOMKills: 2, PidsMax: 3}}, 137, "exit status 137"},
	}
	for _, tt := range tests {
		if got := tt.st.ExitCode(); got != tt.code {
			t.Errorf("%#v.ExitCode() = %d, want %d", tt.st, got, tt.code)
		}
		if got := tt.st.String(); got != tt.text {
			t.Errorf("%#v.String() = %q, want %q", tt.st, got, tt.text)
		}
	}
}

func TestSetupError(t *testing.T) {
	tests := []struct {
		err  *sandbox.SetupError
		want string
	}{
		{&sandbox.SetupError{Code: sandbox.ExitSetup, Msg: "no command given"}, "no command given"},
		{&sandbox.SetupError{Code: sandbox.ExitNotFound, Op: "exec", Msg: `"x": command not found`, Hint: "h"}, `exec: "x": command not found`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
		var se *sandbox.SetupError
		if wrapped := fmt.Errorf("launch: %w", tt.err); !errors.As(wrapped, &se) || se != tt.err {
			t.Errorf("errors.As(%v) did not find the *SetupError", wrapped)
		}
	}
	if sandbox.ExitSetup != 125 || sandbox.ExitNotExecutable != 126 || sandbox.ExitNotFound != 127 {
		t.Errorf("exit statuses %d, %d, %d; DESIGN.md says 125, 126, 127", sandbox.ExitSetup, sandbox.ExitNotExecutable, sandbox.ExitNotFound)
	}
}
