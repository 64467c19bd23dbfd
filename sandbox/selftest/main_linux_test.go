package selftest

import (
	"os"
	"testing"

	"github.com/vm-run/vm-run/sandbox"
)

// TestMain lets the test binary stand in for vm-run: re-executed with the
// init stage's or a probe's argv[0], it becomes that, as vm-run's main does.
func TestMain(m *testing.M) {
	switch os.Args[0] {
	case sandbox.InitArg0:
		sandbox.InitMain()
	case ProbeArg0:
		os.Exit(ProbeMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}
