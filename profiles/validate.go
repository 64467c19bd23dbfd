package profiles

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/seccomp"
)

// knownFeatures are the names landlock.require accepts: every Feature
// package landlock defines.
var knownFeatures = []landlock.Feature{
	landlock.FeatureFilesystem,
	landlock.FeatureRefer,
	landlock.FeatureTruncate,
	landlock.FeatureTCP,
	landlock.FeatureIoctlDev,
	landlock.FeatureScopeAbstractUnix,
	landlock.FeatureScopeSignal,
	landlock.FeatureResolveUnix,
	landlock.FeatureUDP,
}

var (
	// profileName is what a profile may be called: it becomes a file name
	// in the search directories and a word in the ledger.
	profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// envName is the portable environment variable name of POSIX.1-2017
	// XBD chapter 8.
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validate checks the values of a decoded profile, which may be the merge
// of several files, and normalises them: paths cleaned, lists without
// duplicates, defaults filled in.
func (d *decoder) validate(p *Profile) error {
	if !profileName.MatchString(p.Name) {
		return d.errorf(d.at("name"), "name",
			"%q is not a profile name: use letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit", p.Name)
	}
	fs := &p.Filesystem
	for _, l := range []struct {
		key  string
		list *[]string
	}{
		{"read", &fs.Read}, {"exec", &fs.Exec}, {"write", &fs.Write},
		{"overlay", &fs.Overlay}, {"devices", &fs.Devices}, {"hide", &fs.Hide},
	} {
		if err := d.paths("filesystem."+l.key, *l.list); err != nil {
			return err
		}
		*l.list = dedupePaths(*l.list)
	}
	if err := d.network(&p.Network); err != nil {
		return err
	}
	for i, f := range p.Landlock.Require {
		if !slices.Contains(knownFeatures, f) {
			path := indexPath("landlock.require", i)
			return d.errorf(d.at(path), path, "unknown Landlock feature %q; known: %s", f, join(knownFeatures))
		}
	}
	p.Landlock.Require = dedupe(p.Landlock.Require)
	for i, g := range p.Syscalls.Allow {
		if !slices.Contains(seccomp.OptInGroups, g) {
			path := indexPath("syscalls.allow", i)
			return d.errorf(d.at(path), path, "unknown syscall group %q; known: %s", g, join(seccomp.OptInGroups))
		}
	}
	p.Syscalls.Allow = dedupe(p.Syscalls.Allow)
	if err := d.limits(&p.Limits); err != nil {
		return err
	}
	if err := d.env(&p.Env); err != nil {
		return err
	}
	if err := d.secrets(p); err != nil {
		return err
	}
	if err := d.toolsDefault(p); err != nil {
		return err
	}
	return d.audit(p)
}

// paths checks that every entry of a path list is absolute once expanded,
// and cleans it, keeping the optional marker.
func (d *decoder) paths(key string, list []string) error {
	for i, raw := range list {
		path := indexPath(key, i)
		p, optional := SplitOptional(raw)
		switch {
		case p == "":
			return d.errorf(d.at(path), path, "empty path")
		case strings.ContainsRune(p, 0):
			return d.errorf(d.at(path), path, "path contains a NUL byte")
		case !filepath.IsAbs(p):
			return d.errorf(d.at(path), path,
				"%q is not an absolute path; start it with \"/\" or a variable such as ${WORKSPACE}", p)
		}
		p = filepath.Clean(p)
		if p == "/" && (strings.HasSuffix(key, ".hide") || strings.HasSuffix(key, ".overlay")) {
			return d.errorf(d.at(path), path, "cannot cover / itself")
		}
		if optional {
			p += "?"
		}
		list[i] = p
	}
	return nil
}

// dedupePaths drops repeated paths; where a path is both required and
// optional ("/opt", "/opt?") the required entry wins, in the first place.
func dedupePaths(list []string) []string {
	var out []string
	where := map[string]int{}
	for _, raw := range list {
		p, optional := SplitOptional(raw)
		i, seen := where[p]
		switch {
		case !seen:
			where[p] = len(out)
			out = append(out, raw)
		case !optional:
			out[i] = p
		}
	}
	return out
}

func dedupe[T comparable](list []T) []T {
	var out []T
	for _, x := range list {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func join[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, x := range list {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

func (d *decoder) network(n *Network) error {
	switch n.Mode {
	case "", "off":
		n.Mode = NetworkNone
	case NetworkNone, NetworkLoopback, NetworkEgress:
	default:
		return d.errorf(d.at("network.mode"), "network.mode", "want %s, %s or %s, got %q",
			NetworkNone, NetworkLoopback, NetworkEgress, n.Mode)
	}
	for _, l := range []struct {
		key   string
		ports *[]uint16
	}{{"network.connect_tcp", &n.ConnectTCP}, {"network.bind_tcp", &n.BindTCP}} {
		if len(*l.ports) == 0 {
			continue
		}
		if n.Mode != NetworkLoopback {
			return d.errorf(d.keyAt(l.key), l.key, "ports need network.mode %s; the mode is %s",
				NetworkLoopback, n.Mode)
		}
		if n.AnyPort {
			return d.errorf(d.keyAt(l.key), l.key, "lists ports, but network.any_port allows them all; drop one of the two")
		}
		for i, port := range *l.ports {
			if port == 0 {
				path := indexPath(l.key, i)
				return d.errorf(d.at(path), path, "want a port number from 1 to 65535, got 0")
			}
		}
		*l.ports = dedupe(*l.ports)
	}
	if n.AnyPort && n.Mode != NetworkLoopback {
		return d.errorf(d.keyAt("network.any_port"), "network.any_port", "needs network.mode %s; the mode is %s",
			NetworkLoopback, n.Mode)
	}
	return d.egress(n)
}

func (d *decoder) limits(l *Limits) error {
	for _, s := range []struct {
		key   string
		share *Share
		parse func(string) (Share, error)
	}{{"limits.memory", l.Memory, parseMemoryShare}, {"limits.cpu", l.CPU, parseCPUShare}} {
		if s.share == nil {
			continue
		}
		v, err := s.parse(string(*s.share))
		if err != nil {
			return d.errorf(d.at(s.key), s.key, "%v", err)
		}
		*s.share = v
	}
	for _, c := range []struct {
		key string
		v   *uint64
	}{{"limits.pids", l.Pids}, {"limits.nofile", l.NoFile}, {"limits.nproc", l.NProc}} {
		switch {
		case c.v == nil:
		case *c.v == 0:
			return d.errorf(d.at(c.key), c.key, "0 would stop the command from starting")
		case *c.v == Unlimited && c.key == "limits.nofile":
			// setrlimit(2): RLIMIT_NOFILE cannot exceed fs.nr_open.
			return d.errorf(d.at(c.key), c.key, "cannot be unlimited: the kernel caps it at fs.nr_open")
		}
	}
	if _, set := d.value["limits.tmp_size"]; set {
		// tmpfs(5): size=0 means no limit, which is not what 0 says.
		switch l.TmpSize {
		case 0:
			return d.errorf(d.at("limits.tmp_size"), "limits.tmp_size", "want a size such as \"256MiB\", got 0")
		case Unlimited:
			return d.errorf(d.at("limits.tmp_size"), "limits.tmp_size", "cannot be unlimited: the temp dir lives in memory")
		}
	}
	if _, set := d.value["limits.max_message"]; set {
		// The proxy holds one message in memory: a bound it cannot do
		// without, and JSON-RPC envelopes need some room.
		switch m := l.MaxMessage; {
		case m == Unlimited:
			return d.errorf(d.at("limits.max_message"), "limits.max_message",
				"cannot be unlimited: the proxy holds a whole message in memory; write a size such as \"1GiB\"")
		case m < MinMaxMessage || m > MaxMaxMessage:
			return d.errorf(d.at("limits.max_message"), "limits.max_message",
				"want a size from 64KiB to 2GiB, got %d bytes", m)
		}
	}
	if l.CallTimeout != nil && *l.CallTimeout == 0 {
		return d.errorf(d.at("limits.call_timeout"), "limits.call_timeout",
			"0 would fail every call; write a time such as \"10m\", or \"unlimited\" for no limit")
	}
	return nil
}

// Bounds of limits.max_message.
const (
	MinMaxMessage = 64 << 10
	MaxMaxMessage = 2 << 30
)

func (d *decoder) env(e *Env) error {
	for i, name := range e.Pass {
		if !envName.MatchString(name) {
			path := indexPath("env.pass", i)
			return d.errorf(d.at(path), path, "%q is not an environment variable name", name)
		}
	}
	e.Pass = dedupe(e.Pass)
	for name, value := range e.Set {
		path := joinPath("env.set", name)
		if !envName.MatchString(name) {
			return d.errorf(d.keyAt(path), path, "%q is not an environment variable name", name)
		}
		if strings.ContainsRune(unmarkSecrets(value), 0) {
			return d.errorf(d.at(path), path, "value contains a NUL byte")
		}
	}
	return nil
}

// audit checks the ledger path. A ledger the sandbox can reach could be read
// or, through a writable directory, replaced; the launcher checks again with
// symlinks resolved, this catches the plain case where the file says it.
func (d *decoder) audit(p *Profile) error {
	a := &p.Audit
	if a.Ledger != "" {
		switch {
		case strings.ContainsRune(a.Ledger, 0):
			return d.errorf(d.at("audit.ledger"), "audit.ledger", "path contains a NUL byte")
		case !filepath.IsAbs(a.Ledger):
			return d.errorf(d.at("audit.ledger"), "audit.ledger",
				"%q is not an absolute path; start it with \"/\" or a variable such as ${HOME}", a.Ledger)
		}
		a.Ledger = filepath.Clean(a.Ledger)
		fs := p.Filesystem
		for _, l := range []struct {
			key  string
			list []string
		}{{"read", fs.Read}, {"exec", fs.Exec}, {"write", fs.Write}, {"overlay", fs.Overlay}, {"devices", fs.Devices}} {
			for _, raw := range l.list {
				dir, _ := SplitOptional(raw)
				if covers(dir, a.Ledger) || covers(dir, filepath.Dir(a.Ledger)) {
					return d.errorf(d.at("audit.ledger"), "audit.ledger",
						"%q is reachable from the sandbox through filesystem.%s entry %q; keep the ledger outside every path the profile grants",
						a.Ledger, l.key, raw)
				}
			}
		}
	}
	for i, r := range a.Redact {
		if strings.TrimSpace(r) == "" {
			path := indexPath("audit.redact", i)
			return d.errorf(d.at(path), path, "empty redaction key")
		}
	}
	a.Redact = dedupe(a.Redact)
	return nil
}

// covers reports whether a rule on dir reaches p.
func covers(dir, p string) bool {
	return dir == p || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
