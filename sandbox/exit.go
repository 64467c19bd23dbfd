package sandbox

import (
	"errors"
	"fmt"

	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// Exit statuses of vm-run besides the command's own (see DESIGN.md).
const (
	ExitSetup          = 125 // vm-run itself failed: bad profile, missing feature, ledger
	ExitNotExecutable  = 126 // the command exists but cannot be executed
	ExitNotFound       = 127 // the command does not exist
	exitSignalBase     = 128 // killed by signal N: 128+N
	defaultTmpSizeByte = 256 << 20
)

// ErrNotSupported is returned where the sandbox cannot be built at all.
var ErrNotSupported = errors.New("vm-run sandboxes need Linux")

// SetupError is a failure to build the sandbox or start the command, with
// the exit status vm-run should end with and a hint for the user.
type SetupError struct {
	Code int    // ExitSetup, ExitNotExecutable or ExitNotFound
	Op   string // the step that failed, e.g. "landlock"
	Msg  string
	Hint string
}

func (e *SetupError) Error() string {
	if e.Op == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Op, e.Msg)
}

// Status is how the command ended.
type Status struct {
	Code   int // exit code when Signal is 0
	Signal int // the signal that killed it, or 0
	// Limits counts what the sandbox's cgroup refused it while it ran:
	// processes the OOM killer killed, forks refused at pids.max. The
	// parent reads them once the sandbox has ended.
	Limits cgroup.Events `json:"-"`
}

// OOMKilled reports whether the kernel's OOM killer killed the command
// itself: it died of SIGKILL while the cgroup counted an OOM kill. (The
// OOM killer sends SIGKILL, and vm-run does not, while the command runs.)
func (s Status) OOMKilled() bool { return s.Signal == 9 && s.Limits.OOMKills > 0 }

// ExitCode is the status vm-run exits with: the command's code, or 128+N when
// signal N killed it.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return exitSignalBase + s.Signal
	}
	return s.Code
}

func (s Status) String() string {
	if s.OOMKilled() {
		return "killed by the OOM killer (signal 9)"
	}
	if s.Signal != 0 {
		return fmt.Sprintf("killed by signal %d", s.Signal)
	}
	return fmt.Sprintf("exit status %d", s.Code)
}
