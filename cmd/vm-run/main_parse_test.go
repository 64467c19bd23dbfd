package main

import (
	"bytes"
	"testing"
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
