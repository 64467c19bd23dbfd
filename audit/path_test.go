package audit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolvePath(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		flag, profile string
		env           map[string]string
		euid          int
		want          string
		wantErr       error
	}{
		{"flag wins", "/f/l.jsonl", "/p/l.jsonl", map[string]string{EnvLedger: "/e/l.jsonl"}, 1000, "/f/l.jsonl", nil},
		{"environment next", "", "/p/l.jsonl", map[string]string{EnvLedger: "/e/l.jsonl"}, 1000, "/e/l.jsonl", nil},
		{"profile next", "", "/p/l.jsonl", nil, 1000, "/p/l.jsonl", nil},
		{"XDG_STATE_HOME", "", "", map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, 1000, "/s/vm-run/ledger.jsonl", nil},
		{"HOME", "", "", map[string]string{"HOME": "/h"}, 1000, "/h/.local/state/vm-run/ledger.jsonl", nil},
		{"relative XDG_STATE_HOME ignored", "", "", map[string]string{"XDG_STATE_HOME": "s", "HOME": "/h"}, 1000, "/h/.local/state/vm-run/ledger.jsonl", nil},
		{"root", "", "", map[string]string{"HOME": "/root"}, 0, RootLedgerPath, nil},
		{"root with a flag", "/f/l.jsonl", "", nil, 0, "/f/l.jsonl", nil},
		{"relative flag", "l.jsonl", "", nil, 1000, filepath.Join(cwd, "l.jsonl"), nil},
		{"nothing", "", "", nil, 1000, "", ErrNoLedgerPath},
	}
	for _, tt := range tests {
		got, err := resolvePath(tt.flag, tt.profile, func(k string) string { return tt.env[k] }, tt.euid)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: resolvePath = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
