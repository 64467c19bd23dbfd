package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/selftest"
)

// TestMain lets the test binary be vm-run itself in the scripts, including
// its hidden stages, which re-execute the running binary.
func TestMain(m *testing.M) {
	switch os.Args[0] {
	case sandbox.InitArg0:
		sandbox.InitMain()
	case sandbox.NSCheckArg0:
		os.Exit(0)
	case selftest.ProbeArg0:
		os.Exit(selftest.ProbeMain(os.Args[1:]))
	}
	testscript.Main(m, map[string]func(){
		"vm-run": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		// vm-run-status is vm-run that also prints its exit status, so that
		// scripts can assert the exact status (testscript's ! exec only
		// knows non-zero).
		"vm-run-status": func() {
			code := run(os.Args[1:], os.Stdout, os.Stderr)
			fmt.Fprintf(os.Stderr, "[exit status %d]\n", code)
			os.Exit(code)
		},
	})
}

// searchable makes dir and its ancestors below the temp dir searchable by
// every uid.
func searchable(dir string) error {
	tmp := filepath.Clean(os.TempDir())
	for d := dir; d != tmp && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// TestScripts runs the CLI scripts in testdata/script; each names the
// behaviour or regression it guards in its first comment.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("UID", fmt.Sprint(os.Getuid()))
			// Each script's own ledgers, never the machine's, and outside
			// the work dir, which is the workspace the sandbox reaches.
			ledgers := env.WorkDir + ".ledgers"
			if err := os.Mkdir(ledgers, 0o700); err != nil {
				return err
			}
			env.Setenv("LEDGERS", ledgers)
			env.Setenv("VMRUN_LEDGER", filepath.Join(ledgers, "ledger.jsonl"))
			// And its own pin store (testscript's HOME is /no-home), and
			// its own runtime directory for the approval sockets: the
			// default beneath TMPDIR, which testscript puts in the work
			// dir, would be in the sandbox's reach, and is refused.
			env.Setenv("XDG_STATE_HOME", filepath.Join(ledgers, "state"))
			rt := filepath.Join(ledgers, "runtime")
			if err := os.Mkdir(rt, 0o700); err != nil {
				return err
			}
			env.Setenv("XDG_RUNTIME_DIR", rt)
			// The sandbox runs as nobody when the tests run as root; let it
			// into the work dir the way a real workspace would be shared.
			return searchable(env.WorkDir)
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Getuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}
