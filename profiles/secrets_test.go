package profiles

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// loadSecretFiles writes files into a temp dir D and loads D/p.yaml, for the
// secrets tests; errors print with D for the directory.
func loadSecretFiles(t *testing.T, files map[string]string) (*Profile, error) {
	t.Helper()
	dir := writeFiles(t, files)
	l := &Loader{Dirs: []string{filepath.Join(dir, "user")}}
	p, err := l.Load(filepath.Join(dir, "p.yaml"), testVars)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("Load = %v, want an *Error", err)
		}
		return nil, errors.New(strings.ReplaceAll(err.Error(), dir, "D"))
	}
	return p, nil
}

func TestSecrets(t *testing.T) {
	p, err := loadSecretFiles(t, map[string]string{"p.yaml": `extends: strict
secrets:
  github:
    file: ~/.config/vm-run/secrets/../secrets/github
    approve: ask
    ttl: 15m
  npm:
    env: NPM_TOKEN
  vault:
    command: [pass, show, "${HOME}/x"]
env:
  set:
    GITHUB_TOKEN: ${secret:github}
    NPMRC: "//registry/:_authToken=${secret:npm} $$5 ${secret:vault}${secret:npm}"
`})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Secret{
		"github": {File: "~/.config/vm-run/secrets/github", Approve: ApproveAsk, TTL: 900},
		"npm":    {Env: "NPM_TOKEN", Approve: ApproveNone},
		"vault":  {Command: []string{"pass", "show", "/home/ann/x"}, Approve: ApproveNone},
	}
	for name, w := range want {
		if got := p.Secrets[name]; !slices.Equal(got.Command, w.Command) || got.File != w.File || got.Env != w.Env ||
			got.Approve != w.Approve || got.TTL != w.TTL {
			t.Errorf("Secrets[%q] = %+v, want %+v", name, got, w)
		}
	}
	if got := SecretRefs(p.Env.Set["NPMRC"]); !slices.Equal(got, []string{"npm", "vault"}) {
		t.Errorf("SecretRefs(NPMRC) = %q, want [npm vault]", got)
	}
	values := map[string]string{"npm": "N-1234567", "vault": "V-1234567", "github": "G-1234567"}
	lookup := func(n string) (string, bool) { v, ok := values[n]; return v, ok }
	got, err := FillSecrets(p.Env.Set["NPMRC"], lookup)
	if want := "//registry/:_authToken=N-1234567 $5 V-1234567N-1234567"; err != nil || got != want {
		t.Errorf("FillSecrets(NPMRC) = %q, %v, want %q", got, err, want)
	}
	if _, err := FillSecrets(p.Env.Set["GITHUB_TOKEN"], func(string) (string, bool) { return "", false }); err == nil {
		t.Errorf("FillSecrets without a value = nil error, want one")
	}
	// profiles show: where each secret comes from, the references as
	// written, and a file that loads back to the same profile.
	out, err := p.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"secrets:", "file: ~/.config/vm-run/secrets/github", "approve: ask", "ttl: 900",
		"env: NPM_TOKEN", "- pass", "GITHUB_TOKEN: ${secret:github}", "$$5 ${secret:vault}${secret:npm}"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("YAML() lacks %q:\n%s", w, out)
		}
	}
	back, err := (&Loader{}).Parse("shown.yaml", out, testVars)
	if err != nil {
		t.Fatalf("load the shown profile: %v\n%s", err, out)
	}
	if back.Hash() != p.Hash() {
		t.Errorf("the shown profile hashes %s, want %s", back.Hash(), p.Hash())
	}
}

func TestSecretErrors(t *testing.T) {
	const use = "env:\n  set:\n    T: ${secret:s}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"two sources", map[string]string{"p.yaml": "secrets:\n  s: {env: A, file: /x}\n" + use},
			`D/p.yaml:2:3: secrets.s: give exactly one source: file: PATH, env: VARIABLE or command: [PROGRAM, ARG...]`},
		{"no source", map[string]string{"p.yaml": "secrets:\n  s: {approve: ask}\n" + use},
			`D/p.yaml:2:3: secrets.s: give exactly one source: file: PATH, env: VARIABLE or command: [PROGRAM, ARG...]`},
		{"bad name", map[string]string{"p.yaml": "secrets:\n  GitHub: {env: A}\nenv:\n  set:\n    T: ${secret:GitHub}\n"},
			`D/p.yaml:5:8: env.set.T: ${secret:GitHub}: "GitHub" is not a secret name; use a-z, 0-9, "_" and "-"`},
		{"bad name unused", map[string]string{"p.yaml": "secrets:\n  GitHub: {env: A}\n"},
			`D/p.yaml:2:3: secrets.GitHub: "GitHub" is not a secret name; use a-z, 0-9, "_" and "-"`},
		{"unknown secret", map[string]string{"p.yaml": "secrets:\n  a: {env: A}\nenv:\n  set:\n    A: ${secret:a}\n    T: x${secret:s}\n"},
			`D/p.yaml:6:8: env.set.T: unknown secret "s" (it defines a); define it under secrets: with a file, env or command`},
		{"no secrets at all", map[string]string{"p.yaml": use},
			`D/p.yaml:3:8: env.set.T: unknown secret "s" (the profile defines none); define it under secrets: with a file, env or command`},
		{"unused", map[string]string{"p.yaml": "secrets:\n  s: {env: A}\n"},
			`D/p.yaml:2:3: secrets.s: secret "s" is not used; hand it to the command with env.set: {VARIABLE: ${secret:s}}, or remove it`},
		{"in a path", map[string]string{"p.yaml": "filesystem:\n  read: [\"/x/${secret:s}\"]\n"},
			`D/p.yaml:2:14: filesystem.read[0]: ${secret:s}: secrets can be used only in env.set values, which hand them to the command as environment variables`},
		{"in a command", map[string]string{"p.yaml": "secrets:\n  s: {command: [echo, \"${secret:s}\"]}\n" + use},
			`D/p.yaml:2:24: secrets.s.command[1]: ${secret:s}: secrets can be used only in env.set values, which hand them to the command as environment variables`},
		{"in env.pass", map[string]string{"p.yaml": "env:\n  pass: [\"${secret:s}\"]\n"},
			`D/p.yaml:2:11: env.pass[0]: ${secret:s}: secrets can be used only in env.set values, which hand them to the command as environment variables`},
		{"in a literal", map[string]string{"p.yaml": "description: ${secret:s}\n"},
			`D/p.yaml:1:14: description: ${secret:...} can be used only in env.set values`},
		{"in tools", map[string]string{"p.yaml": "tools:\n  rules:\n    - id: x\n      allow: [\"echo(${secret:s})\"]\n"},
			`D/p.yaml:4:21: tools.rules[0].allow[0]: ${secret:...} can be used only in env.set values`},
		{"relative file", map[string]string{"p.yaml": "secrets:\n  s: {file: token}\n" + use},
			`D/p.yaml:2:13: secrets.s.file: "token" is not an absolute path; start it with "/", "~/" or ${HOME}`},
		{"home itself", map[string]string{"p.yaml": "secrets:\n  s: {file: ~/..}\n" + use},
			`D/p.yaml:2:13: secrets.s.file: "~/.." does not name a file in your home`},
		{"bad env", map[string]string{"p.yaml": "secrets:\n  s: {env: 1A}\n" + use},
			`D/p.yaml:2:12: secrets.s.env: "1A" is not an environment variable name`},
		{"bad approve", map[string]string{"p.yaml": "secrets:\n  s: {env: A, approve: yes}\n" + use},
			`D/p.yaml:2:24: secrets.s.approve: want none or ask, got "yes"`},
		{"ttl without ask", map[string]string{"p.yaml": "secrets:\n  s: {env: A, ttl: 5m}\n" + use},
			`D/p.yaml:2:15: secrets.s.ttl: ttl is how long an approval holds; it needs approve: ask`},
		{"ttl unlimited", map[string]string{"p.yaml": "secrets:\n  s: {env: A, approve: ask, ttl: unlimited}\n" + use},
			`D/p.yaml:2:34: secrets.s.ttl: want a time such as "15m"; leave ttl out to ask every session`},
		{"empty command", map[string]string{"p.yaml": "secrets:\n  s: {command: [\"\"]}\n" + use},
			`D/p.yaml:2:17: secrets.s.command[0]: want a program and its arguments, without NUL bytes`},
		{"NUL escape", map[string]string{"p.yaml": "env:\n  set:\n    T: \"\\0secret:s\\0\"\n"},
			`D/p.yaml:3:8: env.set.T: contains a NUL byte`},
		// Extends: an inherited secret can only be tightened.
		{"redirected file", map[string]string{
			"base.yaml": "secrets:\n  s: {file: /a}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {file: /b}\n"},
			`D/p.yaml:3:13: secrets.s.file: secret "s" comes from file "/a" in D/base.yaml, and an extending profile cannot change where an inherited secret comes from; define a secret of another name and use it in env.set instead, or remove this one with "s: ~"`},
		{"file to env", map[string]string{
			"base.yaml": "secrets:\n  s: {file: /a}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {env: A}\n"},
			`D/p.yaml:3:12: secrets.s.env: secret "s" comes from file "/a" in D/base.yaml, and an extending profile cannot change where an inherited secret comes from; define a secret of another name and use it in env.set instead, or remove this one with "s: ~"`},
		{"command extended", map[string]string{
			"base.yaml": "secrets:\n  s: {command: [pass, show, a]}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {command: [pass, show, b]}\n"},
			`D/p.yaml:3:16: secrets.s.command: secret "s" comes from command ["pass", "show", "a"] in D/base.yaml, and an extending profile cannot change where an inherited secret comes from; define a secret of another name and use it in env.set instead, or remove this one with "s: ~"`},
		{"approve relaxed", map[string]string{
			"base.yaml": "secrets:\n  s: {env: A, approve: ask}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {approve: none}\n"},
			`D/p.yaml:3:16: secrets.s.approve: secret "s" has approve: ask in D/base.yaml; an extending profile can only tighten it`},
		{"ttl added", map[string]string{
			"base.yaml": "secrets:\n  s: {env: A, approve: ask}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {ttl: 1h}\n"},
			`D/p.yaml:3:12: secrets.s.ttl: secret "s" is asked for every session in D/base.yaml; an extending profile cannot let an approval last longer`},
		{"ttl lengthened", map[string]string{
			"base.yaml": "secrets:\n  s: {env: A, approve: ask, ttl: 10m}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {ttl: 11m}\n"},
			`D/p.yaml:3:12: secrets.s.ttl: secret "s" has ttl 600s in D/base.yaml; an extending profile can only shorten it`},
		{"removed but used", map[string]string{
			"base.yaml": "secrets:\n  s: {env: A}\n" + use,
			"p.yaml":    "extends: base.yaml\nsecrets:\n  s: ~\n"},
			`D/base.yaml:5:8: env.set.T: unknown secret "s" (the profile defines none); define it under secrets: with a file, env or command`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadSecretFiles(t, tt.files)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Load = %v,\nwant %s", err, tt.want)
			}
		})
	}
}

// TestSecretTighten checks what an extending profile may do with an
// inherited secret: restate its source, add approve: ask, shorten the
// ttl, remove it along with its use.
func TestSecretTighten(t *testing.T) {
	const base = "secrets:\n  s: {command: [pass, show, a], approve: ask, ttl: 10m}\n  n: {env: A}\n" +
		"env:\n  set:\n    T: ${secret:s}\n    N: ${secret:n}\n"
	p, err := loadSecretFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml": "extends: base.yaml\nsecrets:\n  s: {command: [pass, show, a], ttl: 5m}\n  n: {approve: ask}\n" +
			"  gone: ~\n",
	})
	if err == nil || !strings.Contains(err.Error(), "null removes an inherited value, but none is inherited") {
		t.Errorf("Load with a removal of nothing = %v, want the removal refused", err)
	}
	p, err = loadSecretFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml":    "extends: base.yaml\nsecrets:\n  s: {command: [pass, show, a], ttl: 5m}\n  n: {approve: ask}\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Secrets["s"]; s.TTL != 300 || s.Approve != ApproveAsk || !slices.Equal(s.Command, []string{"pass", "show", "a"}) {
		t.Errorf("Secrets[s] = %+v, want the inherited command, ask, ttl 300", s)
	}
	if n := p.Secrets["n"]; n.Approve != ApproveAsk || n.Env != "A" {
		t.Errorf("Secrets[n] = %+v, want env A, approve ask", n)
	}
	p, err = loadSecretFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml":    "extends: base.yaml\nsecrets:\n  n: ~\nenv:\n  set:\n    N: ~\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Secrets["n"]; ok || p.Env.Set["N"] != "" {
		t.Errorf("after removing n: Secrets %v, env.set %q; want n gone from both", p.Secrets, p.Env.Set)
	}
}
