//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2ESecrets runs server-everything with a secret from each source
// (a file, vm-run's environment, a command) handed over through env.set.
// Its get-env tool prints the server's environment: each value is there,
// which the redaction in its place shows (the scrubber replaces exactly
// the value), and the client reads the redaction, never the value. The
// ledger records each secret by name and SHA-256 and each redaction, and
// holds no value anywhere; nor does vm-run's stderr.
func TestE2ESecrets(t *testing.T) {
	e := setupE2E(t)
	t.Run("each source scrubbed", func(t *testing.T) { t.Parallel(); e.testSecrets(t) })
	t.Run("file open to others", func(t *testing.T) { t.Parallel(); e.testSecretRefused(t) })
}

// Values of the three sources. They appear in no file the sandbox can
// read and in no argument of vm-run's.
const (
	e2eFileSecret = "file-7Yq2mP9xK4vR8sT1"
	e2eEnvSecret  = "env-Hc3Wd6Fb0Nj5Lg2Z"
	e2eCmdSecret  = "cmd-Qa8Ue1Io4Pk7Mn0B"
)

// secretFile writes a secret's file in the box's config directory (which
// the sandbox cannot read), mode mode.
func (b *box) secretFile(t *testing.T, name, value string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(b.cfg, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *e2e) testSecrets(t *testing.T) {
	b := newBox(t)
	file := b.secretFile(t, "github-token", e2eFileSecret, 0o600)
	cmdFile := b.secretFile(t, "vault-entry", e2eCmdSecret, 0o600)
	prof := e.profile(t, b, "e2e-secrets", "", fmt.Sprintf(`secrets:
  from-file: {file: %q}
  from-env: {env: E2E_SECRET_SOURCE}
  from-command: {command: [cat, %q]}
env:
  pass: [E2E_SECRET_SOURCE]
  set:
    FILE_TOKEN: ${secret:from-file}
    ENV_TOKEN: ${secret:from-env}
    CMD_TOKEN: "Bearer ${secret:from-command}"
`, file, cmdFile))
	pol := b.config(t, "secrets-policy.yaml", "rules:\n  - id: e2e-env\n    allow: [get-env, echo]\n")
	s := e.start(t, b, e2eRun{profile: prof, policy: pol, ws: b.ws,
		cmdEnv: append(os.Environ(), "E2E_SECRET_SOURCE="+e2eEnvSecret),
		server: []string{"node", e.server("server-everything"), "stdio"}})

	got := s.wantAllowed(t, "get-env", map[string]any{})
	var env map[string]string
	if err := json.Unmarshal([]byte(got), &env); err != nil {
		t.Fatalf("get-env = %q: %v", got, err)
	}
	want := map[string]string{
		"FILE_TOKEN": "[redacted: secret from-file]",
		"ENV_TOKEN":  "[redacted: secret from-env]",
		"CMD_TOKEN":  "Bearer [redacted: secret from-command]",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("the server's %s reads %q to the client, want %q", k, env[k], v)
		}
	}
	if v, ok := env["E2E_SECRET_SOURCE"]; ok {
		t.Errorf("the env secret's source variable reached the server under its own name (%q), though env.pass names it", v)
	}
	// The echo of what the client sends is not the server's to change.
	if got := s.wantAllowed(t, "echo", map[string]any{"message": "no secret here"}); !strings.Contains(got, "no secret here") {
		t.Errorf("echo = %q", got)
	}
	// A client that sends a value itself: neither the answer nor the
	// ledger (checked below) holds it.
	if got := s.wantAllowed(t, "echo", map[string]any{"message": e2eEnvSecret}); strings.Contains(got, e2eEnvSecret) {
		t.Errorf("echo of a value the client sent = %q, want it redacted", got)
	}
	s.close(t)

	data, err := os.ReadFile(s.ledger)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{e2eFileSecret, e2eEnvSecret, e2eCmdSecret} {
		if bytes.Contains(data, []byte(v)) {
			t.Errorf("the ledger holds the value %q", v)
		}
		if strings.Contains(s.stderr.String(), v) {
			t.Errorf("vm-run's stderr holds the value %q:\n%s", v, s.stderr)
		}
	}
	provided, redacted := secretRecords(t, s.ledger)
	for name, v := range map[string]string{"from-file": e2eFileSecret, "from-env": e2eEnvSecret, "from-command": e2eCmdSecret} {
		sum := sha256.Sum256([]byte(v))
		p, ok := provided[name]
		if !ok || p.SHA256 != hex.EncodeToString(sum[:]) || len(p.Env) != 1 {
			t.Errorf("secret_provided %s = %+v, want the value's sha256 and one variable", name, p)
		}
		if r := redacted[name]; r.Count < 1 || r.Method != "tools/call" || r.Seq == 0 || !slices.Contains(r.Forms, "raw") {
			t.Errorf("secret_redacted %s = %+v, want a raw redaction in the tools/call result", name, r)
		}
	}
	if p := provided["from-command"]; p.Source != "command" || p.Env[0] != "CMD_TOKEN" {
		t.Errorf("secret_provided from-command = %+v, want source command held in CMD_TOKEN", p)
	}
	out, err := exec.Command(e.bin, "audit", "show", "--ledger", s.ledger, "--event", "secret_redacted").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "secret from-file redacted 1 time (raw) in tools/call") {
		t.Errorf("vm-run audit show --event secret_redacted: %v\n%s", err, out)
	}
}

// secretRecords reads the secret records of a ledger, by secret name.
func secretRecords(t *testing.T, ledger string) (map[string]secretProvided, map[string]secretRedacted) {
	t.Helper()
	f, err := os.Open(ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	provided, redacted := map[string]secretProvided{}, map[string]secretRedacted{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Bytes(), err)
		}
		switch r.Event {
		case "secret_provided":
			var p secretProvided
			json.Unmarshal(r.Data, &p)
			provided[p.Name] = p
		case "secret_redacted":
			var p secretRedacted
			json.Unmarshal(r.Data, &p)
			redacted[p.Name] = p
		}
	}
	return provided, redacted
}

type secretProvided struct {
	Name, Source, SHA256 string
	Env                  []string
}

type secretRedacted struct {
	Name   string
	Forms  []string
	Count  int
	Method string
	Seq    uint64
}

// testSecretRefused: a secret's file that others may read stops the launch
// with exit 125 and the chmod that fixes it, which then works; a secret
// under approve: ask with no approval channel stops it too.
func (e *e2e) testSecretRefused(t *testing.T) {
	b := newBox(t)
	file := b.secretFile(t, "token", e2eFileSecret, 0o644)
	prof := e.profile(t, b, "e2e-secret-open", "", fmt.Sprintf(
		"secrets:\n  github: {file: %q}\nenv:\n  set:\n    GITHUB_TOKEN: ${secret:github}\n", file))
	run := func(profile string, env ...string) (int, string) {
		cmd := exec.Command(e.bin, "--profile", profile, "--workspace", b.ws, "--ledger", filepath.Join(b.cfg, "ledger.jsonl"),
			"--", "node", e.server("server-everything"), "stdio")
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run vm-run: %v", err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	code, stderr := run(prof)
	wantMsg := fmt.Sprintf("vm-run: error: secret \"github\" (file %q): readable or writable by others (mode 0644)", file)
	wantHint := "vm-run: hint: chmod 600 " + file
	if code != 125 || !strings.Contains(stderr, wantMsg) || !strings.Contains(stderr, wantHint) {
		t.Errorf("vm-run with a secret file of mode 0644 exited %d:\n%s\nwant 125 and\n%s\n%s", code, stderr, wantMsg, wantHint)
	}
	if strings.Contains(stderr, e2eFileSecret) {
		t.Errorf("vm-run's stderr holds the value:\n%s", stderr)
	}
	data, _ := os.ReadFile(filepath.Join(b.cfg, "ledger.jsonl"))
	if bytes.Contains(data, []byte(e2eFileSecret)) {
		t.Errorf("the ledger holds the value")
	}
	// The hint works: with mode 0600 the server starts and, with stdin at
	// its end, exits.
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stderr := run(prof); code == 125 {
		t.Errorf("after chmod 600, vm-run exited 125:\n%s", stderr)
	}

	ask := e.profile(t, b, "e2e-secret-ask", "", fmt.Sprintf(
		"secrets:\n  github: {file: %q, approve: ask}\nenv:\n  set:\n    GITHUB_TOKEN: ${secret:github}\n", file))
	// No approval channel: the client is not connected yet, and the
	// approval socket cannot be opened (its directory fails the checks).
	code, stderr = run(ask, "XDG_RUNTIME_DIR=not-absolute")
	if want := `vm-run: error: secret "github" needs approval but no approval channel is available`; code != 125 ||
		!strings.Contains(stderr, want) || !strings.Contains(stderr, "vm-run: hint: ") {
		t.Errorf("vm-run with approve: ask and no channel exited %d:\n%s\nwant 125 and %s, with a hint", code, stderr, want)
	}
}
