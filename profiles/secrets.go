package profiles

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is one entry of a profile's secrets: section, a value vm-run reads
// outside the sandbox, as the caller, and hands to the command only through
// the env.set values that name it (${secret:NAME}). Exactly one of File,
// Env and Command is set. A loaded profile holds where the value comes
// from, never the value: package proxy/secrets loads it at launch.
type Secret struct {
	// File is a file of the caller's, mode 0600 or stricter; "~/" at its
	// start is the caller's home, ${HOME} the command's (as everywhere).
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// Env is a variable of the caller's environment.
	Env string `yaml:"env,omitempty" json:"env,omitempty" expand:"no"`
	// Command runs, as the caller and outside the sandbox, and prints the
	// value: [pass, show, github].
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Approve is ApproveNone or ApproveAsk (a person approves before the
	// command starts); a loaded profile holds one of the two.
	Approve string `yaml:"approve,omitempty" json:"approve,omitempty" expand:"no"`
	// TTL, in seconds, is how long an approval holds across sessions; 0:
	// every session asks again. Only with ApproveAsk.
	TTL uint64 `yaml:"ttl,omitempty" json:"ttl,omitempty" unit:"seconds"`
}

// Values of Secret.Approve.
const (
	ApproveNone = "none"
	ApproveAsk  = "ask"
)

// Kinds of source, as Secret.Source returns them and the ledger's
// secret_provided records them.
const (
	SourceFile    = "file"
	SourceEnv     = "env"
	SourceCommand = "command"
)

// Source returns the kind of the secret's source and where it is: the
// file's path (as written, "~/" kept), the variable's name or the command
// line, each argument quoted.
func (s Secret) Source() (kind, where string) {
	switch {
	case s.File != "":
		return SourceFile, s.File
	case s.Env != "":
		return SourceEnv, s.Env
	}
	q := make([]string, len(s.Command))
	for i, a := range s.Command {
		q[i] = fmt.Sprintf("%q", a)
	}
	return SourceCommand, "[" + strings.Join(q, ", ") + "]"
}

var (
	secretType = reflect.TypeFor[Secret]()
	// secretName is what a secret may be called: it appears in the
	// redaction text the client reads and in the ledger.
	secretName = regexp.MustCompile(`^[a-z0-9_-]+$`)
)

// A reference ${secret:NAME} in an env.set value is held in the loaded
// profile as NUL "secret:" NAME NUL: no value the profile itself sets can
// hold a NUL (validate refuses one), so the reference cannot be confused
// with text, and a launcher that forgot to fill it in would fail at
// execve(2) (an argument with a NUL cannot be passed) rather than hand the
// command the reference.
const secretMark = "\x00secret:"

func markSecret(name string) string { return secretMark + name + "\x00" }

// SecretRefs returns the names of the secrets an env.set value of a loaded
// profile refers to, in order, each once.
func SecretRefs(value string) []string {
	var out []string
	for rest := value; ; {
		i := strings.Index(rest, secretMark)
		if i < 0 {
			return out
		}
		rest = rest[i+len(secretMark):]
		j := strings.IndexByte(rest, 0)
		if j < 0 {
			return out
		}
		if name := rest[:j]; !slices.Contains(out, name) {
			out = append(out, name)
		}
		rest = rest[j+1:]
	}
}

// FillSecrets returns an env.set value of a loaded profile with each
// secret reference replaced by value(name). It fails when value has none
// for a name, rather than leave the reference in place.
func FillSecrets(s string, value func(name string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, secretMark)
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i+len(secretMark):]
		j := strings.IndexByte(s, 0)
		if j < 0 {
			return "", fmt.Errorf("unterminated secret reference")
		}
		v, ok := value(s[:j])
		if !ok {
			return "", fmt.Errorf("secret %q has no value", s[:j])
		}
		b.WriteString(v)
		s = s[j+1:]
	}
}

// unmarkSecrets writes the references of a loaded value back as the
// profile file says them, for the encoder.
func unmarkSecrets(s string) string {
	for {
		i := strings.Index(s, secretMark)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i+len(secretMark):], 0)
		if j < 0 {
			return s
		}
		name := s[i+len(secretMark) : i+len(secretMark)+j]
		s = s[:i] + "${secret:" + name + "}" + s[i+len(secretMark)+j+1:]
	}
}

// secretRef checks a ${secret:NAME} met at path and returns what the
// decoded string holds for it. References are allowed in env.set values
// only: anywhere else a value would reach a place (a path, a command line
// in the ledger, a file the sandbox may read) that neither the ledger's
// hashing nor the proxy's scrubbing covers.
func secretRef(path, name string) (string, error) {
	if rest, ok := strings.CutPrefix(path, "env.set."); !ok || strings.ContainsAny(rest, ".[") {
		return "", fmt.Errorf("${secret:%s}: secrets can be used only in env.set values, which hand them to the command as environment variables", name)
	}
	if !secretName.MatchString(name) {
		return "", fmt.Errorf("${secret:%s}: %q is not a secret name; use a-z, 0-9, \"_\" and \"-\"", name, name)
	}
	return markSecret(name), nil
}

// errLiteralSecret is the error for ${secret:...} where nothing expands.
func errLiteralSecret(path string) error {
	return fmt.Errorf("%s: ${secret:...} can be used only in env.set values", label(path))
}

// mergeSecret lays a secret an extending profile states over the one of
// the same name it inherits. A later profile may only tighten an inherited
// secret: add approve: ask, shorten its ttl, restate what it has. It may
// not change where the value comes from (a child that points an inherited
// name at another file, variable or command would hand the command
// something else under a name the user trusts), relax approve: ask, or
// lengthen or add a ttl. It may remove the secret with null (and must then
// remove the env.set entries that use it).
func (st *state) mergeSecret(base, over *yaml.Node, path string) (*yaml.Node, error) {
	if base == nil {
		return over, nil
	}
	name := strings.TrimPrefix(path, "secrets.")
	from := st.at(base).file
	bk, bv := secretSource(base)
	ok, ov := secretSource(over)
	if ok != "" && (ok != bk || !sameScalars(bv, ov)) {
		return nil, st.at(ov).errorf("%s.%s: secret %q comes from %s %s in %s, and an extending profile cannot change "+
			"where an inherited secret comes from; define a secret of another name and use it in env.set instead, "+
			"or remove this one with \"%s: ~\"", path, ok, name, bk, describeNode(bv), from, name)
	}
	bApprove, bTTL := secretApproval(base)
	oApprove, oTTL := secretApproval(over)
	if a := mapValue(over, "approve"); a != nil && bApprove == ApproveAsk && oApprove != ApproveAsk {
		return nil, st.at(a).errorf("%s.approve: secret %q has approve: ask in %s; an extending profile can only tighten it",
			path, name, from)
	}
	if t := mapValue(over, "ttl"); t != nil {
		switch {
		case bApprove == ApproveAsk && bTTL == 0:
			return nil, st.at(t).errorf("%s.ttl: secret %q is asked for every session in %s; an extending profile "+
				"cannot let an approval last longer", path, name, from)
		case bTTL != 0 && oTTL > bTTL:
			return nil, st.at(t).errorf("%s.ttl: secret %q has ttl %ds in %s; an extending profile can only shorten it",
				path, name, bTTL, from)
		}
	}
	return st.mergeMapping(base, over, path, func(key string) reflect.Type {
		f, _ := lookupField(secretType, key)
		return f.typ
	})
}

// secretSource returns the source key of a checked secret node and its
// value, or "" when the node names none.
func secretSource(n *yaml.Node) (string, *yaml.Node) {
	for _, k := range []string{SourceFile, SourceEnv, SourceCommand} {
		if v := mapValue(n, k); v != nil {
			return k, v
		}
	}
	return "", nil
}

// secretApproval reads approve and ttl from a checked secret node, with
// their defaults.
func secretApproval(n *yaml.Node) (approve string, ttl uint64) {
	approve = ApproveNone
	if a := mapValue(n, "approve"); a != nil {
		approve = a.Value
	}
	if t := mapValue(n, "ttl"); t != nil {
		ttl, _ = parseNumber(t, reflect.TypeFor[uint64](), opts{unit: "seconds"})
	}
	return approve, ttl
}

// sameScalars reports whether two checked nodes say the same scalar, or
// the same list of scalars, as written.
func sameScalars(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || len(a.Content) != len(b.Content) {
		return false
	}
	if a.Kind == yaml.ScalarNode {
		return a.Value == b.Value
	}
	for i := range a.Content {
		if !sameScalars(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

func describeNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	var q []string
	for _, c := range n.Content {
		q = append(q, fmt.Sprintf("%q", c.Value))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// secrets validates the secrets: section of a decoded profile and the
// references to it in env.set.
func (d *decoder) secrets(p *Profile) error {
	names := make([]string, 0, len(p.Secrets))
	for name := range p.Secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	used := map[string]bool{}
	vars := make([]string, 0, len(p.Env.Set))
	for k := range p.Env.Set {
		vars = append(vars, k)
	}
	slices.Sort(vars)
	for _, k := range vars {
		for _, ref := range SecretRefs(p.Env.Set[k]) {
			path := joinPath("env.set", k)
			if _, ok := p.Secrets[ref]; !ok {
				known := "the profile defines none"
				if len(names) > 0 {
					known = "it defines " + strings.Join(names, ", ")
				}
				return d.errorf(d.at(path), path, "unknown secret %q (%s); define it under secrets: with a file, env or command",
					ref, known)
			}
			used[ref] = true
		}
	}
	for _, name := range names {
		s := p.Secrets[name]
		path := joinPath("secrets", name)
		if !secretName.MatchString(name) {
			return d.errorf(d.keyAt(path), path, "%q is not a secret name; use a-z, 0-9, \"_\" and \"-\"", name)
		}
		n := 0
		for _, set := range []bool{s.File != "", s.Env != "", len(s.Command) > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			return d.errorf(d.keyAt(path), path, "give exactly one source: file: PATH, env: VARIABLE or command: [PROGRAM, ARG...]")
		}
		switch {
		case s.File != "":
			f, err := secretFile(s.File)
			if err != nil {
				return d.errorf(d.at(path+".file"), path+".file", "%v", err)
			}
			s.File = f
		case s.Env != "":
			if !envName.MatchString(s.Env) {
				return d.errorf(d.at(path+".env"), path+".env", "%q is not an environment variable name", s.Env)
			}
		default:
			for i, a := range s.Command {
				ap := indexPath(path+".command", i)
				if strings.ContainsRune(a, 0) || i == 0 && a == "" {
					return d.errorf(d.at(ap), ap, "want a program and its arguments, without NUL bytes")
				}
			}
		}
		switch s.Approve {
		case "":
			s.Approve = ApproveNone
		case ApproveNone, ApproveAsk:
		default:
			return d.errorf(d.at(path+".approve"), path+".approve", "want %s or %s, got %q", ApproveNone, ApproveAsk, s.Approve)
		}
		if _, set := d.value[path+".ttl"]; set {
			switch {
			case s.TTL == 0 || s.TTL == Unlimited:
				return d.errorf(d.at(path+".ttl"), path+".ttl", "want a time such as \"15m\"; leave ttl out to ask every session")
			case s.Approve != ApproveAsk:
				return d.errorf(d.keyAt(path+".ttl"), path+".ttl", "ttl is how long an approval holds; it needs approve: ask")
			}
		}
		if !used[name] {
			return d.errorf(d.keyAt(path), path, "secret %q is not used; hand it to the command with env.set: {VARIABLE: ${secret:%s}}, or remove it",
				name, name)
		}
		p.Secrets[name] = s
	}
	return nil
}

// secretFile checks and cleans a secret's file path: absolute, or under
// the caller's home ("~/...", expanded at launch).
func secretFile(f string) (string, error) {
	if strings.ContainsRune(f, 0) {
		return "", fmt.Errorf("path contains a NUL byte")
	}
	if rest, ok := strings.CutPrefix(f, "~/"); ok {
		rest = filepath.Clean(rest)
		if rest == "." || rest == ".." || strings.HasPrefix(rest, "../") {
			return "", fmt.Errorf("%q does not name a file in your home", f)
		}
		return "~/" + rest, nil
	}
	if !filepath.IsAbs(f) {
		return "", fmt.Errorf("%q is not an absolute path; start it with \"/\", \"~/\" or ${HOME}", f)
	}
	return filepath.Clean(f), nil
}
