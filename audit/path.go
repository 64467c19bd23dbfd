package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvLedger names the environment variable that sets the ledger path.
const EnvLedger = "VMRUN_LEDGER"

// RootLedgerPath is the default ledger of processes running as root.
const RootLedgerPath = "/var/log/vm-run/ledger.jsonl"

// ErrNoLedgerPath means no ledger path was given and none can be derived
// because neither XDG_STATE_HOME nor HOME is set to an absolute path.
var ErrNoLedgerPath = errors.New("no ledger path: set --ledger, " + EnvLedger + ", XDG_STATE_HOME or HOME")

// ResolvePath returns the absolute ledger path, taking the first that is
// set of: flag (--ledger), $VMRUN_LEDGER, profileLedger (the profile's
// audit.ledger), and the default. The default is /var/log/vm-run/ledger.jsonl
// for root and ${XDG_STATE_HOME:-$HOME/.local/state}/vm-run/ledger.jsonl for
// everyone else; a relative XDG_STATE_HOME is ignored, as the XDG Base
// Directory specification requires. Relative paths are made absolute
// against the working directory.
func ResolvePath(flag, profileLedger string) (string, error) {
	return resolvePath(flag, profileLedger, os.Getenv, os.Geteuid())
}

func resolvePath(flag, profileLedger string, getenv func(string) string, euid int) (string, error) {
	p := flag
	if p == "" {
		p = getenv(EnvLedger)
	}
	if p == "" {
		p = profileLedger
	}
	if p == "" {
		if euid == 0 {
			return RootLedgerPath, nil
		}
		state := getenv("XDG_STATE_HOME")
		if !filepath.IsAbs(state) {
			home := getenv("HOME")
			if !filepath.IsAbs(home) {
				return "", ErrNoLedgerPath
			}
			state = filepath.Join(home, ".local", "state")
		}
		p = filepath.Join(state, "vm-run", "ledger.jsonl")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve ledger path %q: %w", p, err)
	}
	return abs, nil
}
