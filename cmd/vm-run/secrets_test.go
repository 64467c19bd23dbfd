package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/sandbox"
)

const unitSecret = "unit-4b1d9e0c77a2f35e"

// fakeApprover answers every question with answer, or waits for the
// deadline when block is set; it keeps the questions.
type fakeApprover struct {
	mu     sync.Mutex
	asked  []approval.Question
	answer approval.Answer
	block  bool
}

func (f *fakeApprover) Ask(ctx context.Context, q approval.Question) (approval.Answer, error) {
	f.mu.Lock()
	f.asked = append(f.asked, q)
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return approval.Answer{}, ctx.Err()
	}
	return f.answer, nil
}

// secretSetup loads a profile with one secret from a file and returns a
// secretLaunch for it, with a ledger and a spec environment built as
// vm-run builds them.
func secretSetup(t *testing.T, secret string) (*secretLaunch, string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(unitSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := "secrets:\n  github: {file: " + file + secret + "}\nenv:\n  set:\n    GITHUB_TOKEN: ${secret:github}\n    URL: https://x:${secret:github}@h/\n"
	p, err := (&profiles.Loader{}).Parse(filepath.Join(dir, "p.yaml"), []byte(body), profiles.Vars{Workspace: dir, Home: dir, TmpDir: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(dir, "ledger.jsonl")
	led, err := audit.Open(ledger, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	spec := &sandbox.Spec{Env: []string{"PATH=/usr/bin", "GITHUB_TOKEN=" + p.Env.Set["GITHUB_TOKEN"], "URL=" + p.Env.Set["URL"]}}
	return &secretLaunch{profile: p, spec: spec, argv: []string{"server"}, ledger: led, stderr: &bytes.Buffer{},
		timeout: 200 * time.Millisecond}, ledger
}

// ledgerEvents returns the event types of a ledger, in order, and fails
// if the ledger holds the secret in any form the test knows.
func ledgerEvents(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(unitSecret)) {
		t.Errorf("ledger %s holds the secret's value", path)
	}
	var evs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i := strings.Index(line, `"event":"`); i >= 0 {
			ev := line[i+len(`"event":"`):]
			evs = append(evs, ev[:strings.IndexByte(ev, '"')])
		}
	}
	return evs
}

func TestProvideSecrets(t *testing.T) {
	sl, ledger := secretSetup(t, "")
	s, err := sl.provide(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/usr/bin", "GITHUB_TOKEN=" + unitSecret, "URL=https://x:" + unitSecret + "@h/"}
	if !slices.Equal(sl.spec.Env, want) {
		t.Errorf("env = %q, want %q", sl.spec.Env, want)
	}
	out, hits := s.Scrub([]byte(`{"a":"` + unitSecret + `"}`))
	if len(hits) != 1 || bytes.Contains(out, []byte(unitSecret)) {
		t.Errorf("Scrub = %s, %v; want the value redacted", out, hits)
	}
	sl.ledger.Close()
	if got := ledgerEvents(t, ledger); !slices.Contains(got, audit.EventSecretProvided) {
		t.Errorf("ledger events %v, want secret_provided", got)
	}
	data, _ := os.ReadFile(ledger)
	if !strings.Contains(string(data), `"env":["GITHUB_TOKEN","URL"]`) || !strings.Contains(string(data), `"source":"file"`) {
		t.Errorf("secret_provided does not name its variables and source:\n%s", data)
	}

	// --no-proxy would pass the server's output on unscrubbed.
	sl, _ = secretSetup(t, "")
	sl.noProxy = true
	var se *sandbox.SetupError
	if _, err := sl.provide(context.Background()); !errors.As(err, &se) || se.Code != sandbox.ExitSetup {
		t.Errorf("provide with --no-proxy = %v, want a setup error", err)
	}
}

func TestSecretApproval(t *testing.T) {
	granted := approval.Answer{Granted: true, Scope: audit.ScopeTTL, Channel: audit.ChannelCLI, By: "uid=1 pid=2"}
	tests := []struct {
		name     string
		secret   string
		approver *fakeApprover
		wantErr  string
		want     []string // events after session start
	}{
		{"no channel", ", approve: ask", nil,
			`secret "github" needs approval but no approval channel is available`, nil},
		{"granted once", ", approve: ask", &fakeApprover{answer: granted}, "",
			[]string{audit.EventApprovalRequested, audit.EventApprovalGranted, audit.EventSecretProvided}},
		{"denied", ", approve: ask", &fakeApprover{answer: approval.Answer{Channel: audit.ChannelCLI, By: "uid=1 pid=2"}},
			`secret "github": approval denied by uid=1 pid=2`, []string{audit.EventApprovalRequested, audit.EventApprovalDenied}},
		{"timeout", ", approve: ask", &fakeApprover{block: true},
			`secret "github": no answer within 200ms`, []string{audit.EventApprovalRequested, audit.EventApprovalExpired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl, ledger := secretSetup(t, tt.secret)
			if tt.approver != nil {
				sl.approver = tt.approver
			}
			_, err := sl.provide(context.Background())
			var se *sandbox.SetupError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("provide = %v", err)
			case tt.wantErr != "" && (!errors.As(err, &se) || se.Code != sandbox.ExitSetup || !strings.Contains(se.Msg, tt.wantErr) || se.Hint == ""):
				t.Fatalf("provide = %v, want a setup error with a hint saying %q", err, tt.wantErr)
			}
			sl.ledger.Close()
			got := slices.DeleteFunc(ledgerEvents(t, ledger), func(e string) bool { return e == audit.EventGenesis })
			if !slices.Equal(got, tt.want) {
				t.Errorf("ledger events %v, want %v", got, tt.want)
			}
			if tt.approver != nil {
				if q := tt.approver.asked; len(q) != 1 || q[0].Kind != "secret" || q[0].Name != "github" || q[0].Rule != "secret:github" {
					t.Errorf("questions = %+v, want one for secret github", q)
				}
			}
		})
	}
}

// TestSecretGrantTTL: a grant with the secret's ttl is remembered by the
// next session for the same value, and not for another value.
func TestSecretGrantTTL(t *testing.T) {
	f := &fakeApprover{answer: approval.Answer{Granted: true, Scope: audit.ScopeTTL, Channel: audit.ChannelCLI, By: "uid=1 pid=2"}}
	sl, ledger := secretSetup(t, ", approve: ask, ttl: 1h")
	sl.approver = f
	if _, err := sl.provide(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The next session: same runtime directory, same value.
	sl2 := *sl
	sl2.spec = &sandbox.Spec{Env: slices.Clone(sl.spec.Env)}
	sl2.grants = nil
	if _, err := sl2.provide(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.asked) != 1 {
		t.Errorf("asked %d times, want once: the grant holds for its ttl", len(f.asked))
	}
	// Another server command under the same profile is asked again: the
	// grant was for the server the question named.
	sl3 := *sl
	sl3.spec = &sandbox.Spec{Env: slices.Clone(sl.spec.Env)}
	sl3.grants, sl3.argv = nil, []string{"another-server"}
	if _, err := sl3.provide(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.asked) != 2 {
		t.Errorf("asked %d times, want twice: a grant covers only the server it was asked for", len(f.asked))
	}
	sl.ledger.Close()
	data, _ := os.ReadFile(ledger)
	if !strings.Contains(string(data), `"channel":"remembered"`) {
		t.Errorf("ledger has no remembered grant:\n%s", data)
	}
	dir, err := approval.Dir()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "secret-grants.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("grant file: %v, %v; want mode 0600", st, err)
	}
	// Another value is another grant.
	g := &grantStore{path: filepath.Join(dir, "secret-grants.json")}
	pk, _ := pinKey(sl.profile.Name, sl.argv)
	if _, ok, err := g.find(grantKey(pk.ID(), "github", "0000"), time.Now(), time.Hour); ok || err != nil {
		t.Errorf("find for another value = %v, %v; want none", ok, err)
	}
	// An expiry beyond what today's ttl allows is not believed.
	sum := sha256.Sum256([]byte(unitSecret))
	key := grantKey(pk.ID(), "github", hex.EncodeToString(sum[:]))
	if _, ok, err := g.find(key, time.Now(), time.Hour); !ok || err != nil {
		t.Errorf("find of the grant = %v, %v; want it", ok, err)
	}
	if _, ok, err := g.find(key, time.Now(), time.Minute); ok || err != nil {
		t.Errorf("find with a ttl of a minute = %v, %v; want a grant of an hour not believed", ok, err)
	}
	// A grant file open to others is refused.
	os.Chmod(filepath.Join(dir, "secret-grants.json"), 0o644)
	if _, _, err := g.find("x", time.Now(), time.Hour); err == nil || !strings.Contains(err.Error(), "open to others") {
		t.Errorf("find in a file of mode 0644 = %v, want it refused", err)
	}
}

func TestSecretHostEnv(t *testing.T) {
	p := &profiles.Profile{Secrets: map[string]profiles.Secret{"npm": {Env: "NPM_TOKEN"}},
		Env: profiles.Env{Pass: []string{"NPM_TOKEN", "PATH"}}}
	var stderr bytes.Buffer
	got := secretHostEnv(p, []string{"PATH=/bin", "NPM_TOKEN=" + unitSecret, "NPM_TOKEN_X=1"}, nil, &stderr)
	if want := []string{"PATH=/bin", "NPM_TOKEN_X=1"}; !slices.Equal(got, want) {
		t.Errorf("secretHostEnv = %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), "NPM_TOKEN is where secret \"npm\" comes from") {
		t.Errorf("stderr %q does not say why NPM_TOKEN is not passed", stderr.String())
	}
}
