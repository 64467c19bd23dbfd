package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/proxy/secrets"
	"github.com/vm-run/vm-run/sandbox"
)

// Secrets at launch. The profile says where each secret comes from
// (profiles.Secret); once the profile is resolved and before the sandbox
// starts, the parent loads each value as the caller (package
// proxy/secrets), asks a person where the profile says approve: ask,
// records secret_provided (name, source, SHA-256, the variables that hold
// it; never the value), writes the values into the command's environment
// where env.set refers to them, and builds the Scrubber the proxy runs
// every server message through.
//
// What the parent holds afterwards, and why: the Scrubber keeps each value
// and its encodings for the whole session, since it cannot find what it
// does not hold; the spec's environment holds the filled-in variables as
// Go strings until the spec has been sent to the init stage and the
// garbage collector reclaims them (Go strings cannot be overwritten). The
// byte slices the values were loaded into are overwritten as soon as the
// Scrubber and the environment have their copies.

// secretAskTimeout is how long a question for a secret under approve: ask
// waits for an answer, as an ask rule's question does by default.
const secretAskTimeout = 120 * time.Second

// secretLaunch is what handing over the secrets needs from the run.
type secretLaunch struct {
	profile *profiles.Profile
	// profileArg is the profile as the command line gave it (a name or a
	// file); "" means the profile's name.
	profileArg string
	spec       *sandbox.Spec
	argv       []string
	ledger     *audit.Ledger
	// approver asks a person about secrets under approve: ask; nil: no
	// channel, and such a profile does not start.
	approver approval.Approver
	timeout  time.Duration // 0: secretAskTimeout
	// grants remembers approvals with a ttl across sessions; nil:
	// openGrants() when first needed.
	grants  *grantStore
	noProxy bool
	stderr  io.Writer
}

// handSecrets hands the profile's secrets to the command, if it has any,
// and sets l.scrubber. On error the session is ended (recorded) and the
// init stage aborted: nothing was started.
func (r *runCmd) handSecrets(l *launch, pending *sandbox.Pending, sess *session) error {
	if len(l.profile.Secrets) == 0 {
		return nil
	}
	sl := &secretLaunch{profile: l.profile, profileArg: r.Profile, spec: l.spec, argv: r.Cmd, ledger: sess.ledger,
		approver: r.approver, noProxy: r.NoProxy, stderr: os.Stderr}
	scrubber, err := sl.provide(context.Background())
	if err != nil {
		if eerr := sess.end(sandbox.Status{}, err); eerr != nil {
			report(eerr, os.Stderr)
		}
		pending.Abort()
		return err
	}
	l.scrubber = scrubber
	// A client may send a value too (in a call's arguments, a tool name,
	// a URI): the ledger stores none.
	sess.ledger.SetScrubber(ledgerScrubber{scrubber})
	return nil
}

// ledgerScrubber lets the ledger scrub records with a secrets.Scrubber.
type ledgerScrubber struct{ s *secrets.Scrubber }

func (l ledgerScrubber) Scrub(data []byte) []byte {
	out, _ := l.s.Scrub(data)
	return out
}

// provide loads, approves, records and hands over every secret, and
// returns the Scrubber for the proxy.
func (sl *secretLaunch) provide(ctx context.Context) (*secrets.Scrubber, error) {
	p := sl.profile
	if sl.noProxy {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup,
			Msg:  fmt.Sprintf("profile %q hands the command secrets, and --no-proxy would pass its output to the client unscrubbed", p.Name),
			Hint: "drop --no-proxy, or use a profile without secrets:"}
	}
	names := make([]string, 0, len(p.Secrets))
	for name := range p.Secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	holders := secretHolders(sl.spec.Env)
	values := make(map[string][]byte, len(names))
	defer func() {
		for _, v := range values {
			secrets.Wipe(v)
		}
	}()
	var provided []audit.Event
	for _, name := range names {
		s := p.Secrets[name]
		src := secrets.Source{Name: name, File: s.File, Env: s.Env, Command: s.Command}
		v, err := secrets.Load(ctx, src, secrets.Options{Stderr: sl.stderr})
		if err != nil {
			return nil, secretError(err)
		}
		values[name] = v
		sum := sha256.Sum256(v)
		hexSum := hex.EncodeToString(sum[:])
		if s.Approve == profiles.ApproveAsk {
			if err := sl.approve(ctx, name, s, hexSum); err != nil {
				return nil, err
			}
		}
		provided = append(provided, audit.SecretProvided{Name: name, Source: src.Kind(), SHA256: hexSum, Env: holders[name]})
	}
	// On disk before the values go anywhere.
	for _, ev := range provided {
		if _, err := sl.ledger.Log(ctx, ev); err != nil {
			return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger", Msg: err.Error(),
				Hint: "nothing was started; check the ledger's disk (space, permissions)"}
		}
	}
	list := make([]secrets.Secret, 0, len(names))
	for _, name := range names {
		list = append(list, secrets.Secret{Name: name, Value: values[name]})
	}
	scrubber, err := secrets.NewScrubber(list)
	if err != nil {
		// Names and lengths were checked: a name whose redaction text
		// holds a value, which only a contrived profile has.
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: err.Error(),
			Hint: "rename the secret in the profile"}
	}
	lookup := func(name string) (string, bool) {
		v, ok := values[name]
		return string(v), ok
	}
	for i, kv := range sl.spec.Env {
		if !strings.ContainsRune(kv, 0) {
			continue
		}
		filled, err := profiles.FillSecrets(kv, lookup)
		if err != nil {
			return nil, fmt.Errorf("environment of the command: %w", err)
		}
		sl.spec.Env[i] = filled
	}
	return scrubber, nil
}

// secretHolders maps each secret to the variables of the command's
// environment whose value refers to it (env.set entries that --env did
// not override).
func secretHolders(env []string) map[string][]string {
	out := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for _, name := range profiles.SecretRefs(v) {
			out[name] = append(out[name], k)
		}
	}
	return out
}

// secretError turns a load error into the launcher's error and hint. The
// message names the secret and its source, never the value.
func secretError(err error) error {
	se := &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: err.Error()}
	var le *secrets.LoadError
	if errors.As(err, &le) {
		se.Hint = le.Hint()
	}
	return se
}

// secretHostEnv is the caller's environment as the sandbox may inherit
// it: without the variables env: secrets are read from, which reach the
// command only where env.set puts them (a pass list naming one is told so
// on stderr, once).
func secretHostEnv(p *profiles.Profile, environ, passEnv []string, stderr io.Writer) []string {
	var sources []string
	for name, s := range p.Secrets {
		if s.Env != "" {
			sources = append(sources, s.Env)
			if slices.Contains(p.Env.Pass, s.Env) || slices.Contains(passEnv, s.Env) {
				fmt.Fprintf(stderr, "vm-run: note: %s is where secret %q comes from, so it is not passed through; the command gets the secret only as env.set says\n", s.Env, name)
			}
		}
	}
	if len(sources) == 0 {
		return environ
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(sources, k) {
			out = append(out, kv)
		}
	}
	return out
}

// secretRows describe the profile's secrets for --dry-run: name, source
// and approval, never a value (none is loaded).
func secretRows(p *profiles.Profile) [][2]string {
	names := make([]string, 0, len(p.Secrets))
	for name := range p.Secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	var rows [][2]string
	for _, name := range names {
		s := p.Secrets[name]
		kind, where := s.Source()
		desc := kind + " " + where + ", approve " + s.Approve
		if s.TTL != 0 {
			desc += fmt.Sprintf(" (ttl %v)", time.Duration(s.TTL)*time.Second)
		}
		rows = append(rows, [2]string{name, desc})
	}
	return rows
}

// secretDetail summarises secret_provided and secret_redacted records for
// `vm-run audit show`, every piece taken from the ledger escaped.
func secretDetail(r audit.Record) (string, bool) {
	esc := textsafe.Escape
	switch r.Event {
	case audit.EventSecretProvided:
		if s, err := audit.ReadEvent[audit.SecretProvided](r); err == nil {
			return fmt.Sprintf("secret %s from %s, sha256 %s, as %s", esc(s.Name), esc(s.Source),
				esc(s.SHA256), orDash(esc(strings.Join(s.Env, " ")))), true
		}
	case audit.EventSecretRedacted:
		if s, err := audit.ReadEvent[audit.SecretRedacted](r); err == nil {
			d := fmt.Sprintf("secret %s redacted %s (%s)", esc(s.Name), plural(uint64(max(s.Count, 0)), "time", "times"),
				esc(strings.Join(s.Forms, ", ")))
			if s.Method != "" {
				d += " in " + esc(s.Method)
			}
			if s.Seq != 0 {
				d += fmt.Sprintf(" answering decision %d", s.Seq)
			}
			return d, true
		}
	}
	return "", false
}
