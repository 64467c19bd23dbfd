package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/proxy/pins"
)

// TestE2EPins runs server-everything through vm-run in three sessions that
// share a pin store, as the sessions of one user do:
//
//  1. echo is seen for the first time and pinned; it works.
//  2. echo's definition differs from its pin: detected, recorded as
//     tool_changed before the client sees the list, hidden, and a call to
//     it denied by vm-run:pins (the profile says on_change: deny).
//  3. after `vm-run pins accept`, echo is listed and works again.
//
// server-everything does not change its tools between runs, so the rug
// pull is simulated between sessions 1 and 2 by rewriting echo's pin in
// the pin file to an older, different definition: to vm-run that is the
// same as the server presenting a new definition against the old pin.
func TestE2EPins(t *testing.T) {
	e := setupE2E(t)
	b := newBox(t)
	prof := e.profile(t, b, "e2e-pins", "", `tools:
  on_change: deny
  rules:
    - id: e2e-tools
      allow: [echo, get-sum]
`)
	server := []string{"node", e.server("server-everything"), "stdio"}
	state := filepath.Join(b.cfg, "state")
	env := append(os.Environ(), "XDG_STATE_HOME="+state)
	run := e2eRun{profile: prof, ws: b.ws, server: server, cmdEnv: env}
	want := []string{"echo", "get-sum"}

	s := e.start(t, b, run)
	if got := s.tools(t); !slices.Equal(got, want) {
		t.Fatalf("session 1: tools/list = %v, want %v", got, want)
	}
	if got := s.wantAllowed(t, "echo", map[string]any{"message": "first"}); !strings.Contains(got, "first") {
		t.Errorf("session 1: echo = %q, want the message back", got)
	}
	if !strings.Contains(s.stderr.String(), "pinned") {
		t.Errorf("session 1: stderr %q does not say tools were pinned", s.stderr)
	}
	s.close(t)

	// The rug pull, simulated: echo's pin now holds another definition.
	store, err := pins.OpenStore(filepath.Join(state, "vm-run", "pins"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pinKey(prof, server)
	if err != nil {
		t.Fatal(err)
	}
	var current string
	var older pins.Definition
	err = store.Update(key, func(pf *pins.File) (bool, error) {
		p := pf.Tools["echo"]
		if p == nil || p.Definition == nil {
			t.Fatalf("the pin file %s has no pin for echo after session 1: %v", store.Path(key), pf.Tools)
		}
		current = p.SHA256
		var def map[string]any
		if err := json.Unmarshal(p.Definition, &def); err != nil {
			return false, err
		}
		def["description"] = "Echoes back the input string (an older description)"
		raw, _ := json.Marshal(def)
		var err error
		if older, err = pins.Parse(raw); err != nil {
			return false, err
		}
		pf.Tools["echo"] = &pins.Pin{SHA256: older.SHA256, Definition: older.Canonical, At: p.At}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	s = e.start(t, b, run)
	if got := s.tools(t); !slices.Equal(got, []string{"get-sum"}) {
		t.Errorf("session 2: tools/list = %v, want echo withheld", got)
	}
	changes := toolChanges(t, s.ledger)
	if len(changes) != 1 || changes[0].Tool != "echo" || changes[0].Pinned != older.SHA256 || changes[0].Seen != current ||
		changes[0].Action != "deny" || !slices.Equal(changes[0].Changed, []string{"description"}) {
		t.Errorf("session 2: tool_changed records %+v, want one for echo from the old pin to the definition served, action deny", changes)
	}
	s.wantDenied(t, "echo", map[string]any{"message": "second"}, proxy.RulePins)
	if !strings.Contains(s.stderr.String(), "vm-run: hint: review the change with `vm-run pins show echo") {
		t.Errorf("session 2: stderr %q does not say how to review the change", s.stderr)
	}
	s.wantAllowed(t, "get-sum", map[string]any{"a": 1, "b": 2})
	s.close(t)

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(e.bin, append(append([]string{"pins"}, args...), append([]string{"--profile", prof, "--"}, server...)...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("vm-run pins %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("list"); !strings.Contains(out, "CHANGED description (") {
		t.Errorf("vm-run pins list:\n%s\nwant echo shown as changed", out)
	}
	if out := cli("show", "echo"); !strings.Contains(out, "changed:  description") || !strings.Contains(out, current) {
		t.Errorf("vm-run pins show echo:\n%s\nwant the change and the hash last seen", out)
	}
	// A tool shell cannot accept: the server's new description may ask
	// the agent to run this very command.
	accept := exec.Command(e.bin, "pins", "accept", "echo", "--profile", prof, "--")
	accept.Args = append(accept.Args, server...)
	accept.Env = env
	accept.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := accept.CombinedOutput(); exitCodeOf(err) != 125 || !strings.Contains(string(out), "needs a terminal") {
		t.Errorf("vm-run pins accept without a terminal = %v\n%s\nwant exit 125: it needs a terminal", err, out)
	}
	accept = exec.Command(e.bin, accept.Args[1:]...)
	accept.Env = env
	if out := typeCodeAtTerminal(t, accept); !strings.Contains(out, "accepted echo") {
		t.Errorf("vm-run pins accept echo at a terminal:\n%s\nwant it to say what it accepted", out)
	}

	s = e.start(t, b, run)
	if got := s.tools(t); !slices.Equal(got, want) {
		t.Errorf("session 3, after accept: tools/list = %v, want %v", got, want)
	}
	s.wantAllowed(t, "echo", map[string]any{"message": "third"})
	if c := toolChanges(t, s.ledger); len(c) != 0 {
		t.Errorf("session 3: tool_changed records %+v, want none", c)
	}
	s.close(t)
}

// toolChanges reads the tool_changed records of a ledger.
func toolChanges(t *testing.T, path string) []audit.ToolChanged {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.ToolChanged
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Event string            `json:"event"`
			Data  audit.ToolChanged `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("ledger %s: %v", path, err)
		}
		if rec.Event == audit.EventToolChanged {
			out = append(out, rec.Data)
		}
	}
	return out
}
