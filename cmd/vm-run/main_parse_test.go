package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestRunOnly(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--profile", "strict", "--", "node", "server.js"}, true},
		{[]string{"run", "--no-proxy", "--", "true"}, true},
		{[]string{"-p", "dev", "--", "sh", "-c", "--help"}, true}, // --help is the command's
		{[]string{"run", "--help"}, false},
		{[]string{"--profile", "strict", "-h", "--", "true"}, false},
		{[]string{"help", "run"}, false},
		{[]string{"doctor"}, false},
		{[]string{"node", "server.js"}, false},
		{[]string{}, false},
	} {
		if got := runOnly(tt.args); got != tt.want {
			t.Errorf("runOnly(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// TestQuickParseAgrees: args that the run grammar alone cannot take end up
// with the same status and output as the whole cli gives them, so the
// quick path changes no error message.
func TestQuickParseAgrees(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus", "--", "true"},
		{"run", "--profile"},
		{"--env", "1X=y", "--", "true"},
		{"--pass-env", "A-B", "--", "true"},
		{"run"},
		{"--dry-run", "--profile", "/nonexistent/profile.yaml", "--", "true"},
	} {
		var qout, qerr, fout, ferr bytes.Buffer
		qcode := run(args, &qout, &qerr)
		fcode, _ := parse(&cli{}, args, &fout, &ferr, false)
		if qcode != fcode || qout.String() != fout.String() || qerr.String() != ferr.String() {
			t.Errorf("run(%q) = %d, %q, %q; the whole cli gives %d, %q, %q",
				args, qcode, qout.String(), qerr.String(), fcode, fout.String(), ferr.String())
		}
		if qcode == 0 {
			t.Errorf("run(%q) = 0, want an error status", args)
		}
	}
}

// TestEnvValueWithCommas: --env takes one KEY=VALUE, commas and all (a
// path or a list in a value is common); kong would split it otherwise.
func TestEnvValueWithCommas(t *testing.T) {
	var grammar runCLI
	parser, err := kong.New(&grammar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"--env", "A=b,c", "--env", "D=/x,y/z", "--", "true"}); err != nil {
		t.Fatal(err)
	}
	if got, want := grammar.Run.Env, []string{"A=b,c", "D=/x,y/z"}; !slices.Equal(got, want) {
		t.Errorf("--env = %q, want %q", got, want)
	}
}

// TestVersionFlag: vm-run --version prints what vm-run version does.
func TestVersionFlag(t *testing.T) {
	var flag, cmd, stderr bytes.Buffer
	if code := run([]string{"--version"}, &flag, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("vm-run --version = %d, stderr %q", code, stderr.String())
	}
	run([]string{"version"}, &cmd, &stderr)
	if flag.String() != cmd.String() || !strings.HasPrefix(flag.String(), "vm-run ") {
		t.Errorf("--version printed %q, version %q", flag.String(), cmd.String())
	}
}

// TestSafePrivateHome: root's sandbox user gets a private home only at a
// path nobody but root can change, and never at / or a system directory
// (a home of / once put the command's write rule on the host's root).
func TestSafePrivateHome(t *testing.T) {
	if os.Getuid() != 0 {
		// Only root's runs have private homes; its own dirs are needed.
		t.Log("the safe cases need directories owned by root; checking the refusals only")
	}
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	for _, home := range []string{"/", "/proc", "/proc/self", "/etc", "/dev", "/usr/local", "/tmp", open, filepath.Join(open, ".")} {
		if err := safePrivateHome(home); err == nil {
			t.Errorf("safePrivateHome(%q) = nil, want a refusal", home)
		}
	}
	if os.Getuid() == 0 {
		ok := filepath.Join(dir, "home")
		if err := os.Mkdir(ok, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safePrivateHome(ok); err != nil {
			t.Errorf("safePrivateHome(%q) = %v, want nil (root's, under sticky /tmp)", ok, err)
		}
	}
}
