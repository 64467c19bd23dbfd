package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox/cgroup"
	"github.com/vm-run/vm-run/seccomp"
)

// TmpDir is where the private temp dir appears inside the sandbox; profiles
// see it as ${TMPDIR}.
const TmpDir = "/tmp"

// Options are the launch's own inputs, besides the profile.
type Options struct {
	Argv      []string // the command and its arguments
	Workspace string   // absolute; the command's working directory
	HostEnv   []string // the caller's environment (os.Environ)
	Env       []string // KEY=VALUE pairs from --env
	PassEnv   []string // names from --pass-env
	UID, GID  int      // the command's ids
	// Protect are paths the sandbox must not reach (the ledger); Build
	// fails if a profile rule grants any of them.
	Protect []string
	// ExtraExec are files added to the exec rules (the selftest's probe).
	ExtraExec []string
	// PrivateHome, if set, is the home directory to give the command when
	// root runs it as a user without a usable home of its own: an empty
	// tmpfs of the command's own covers this host directory (the caller's
	// home, so that the profile's ${HOME} paths mean what they say there),
	// and the paths the profile grants beneath it are mounted back
	// (trees.go).
	PrivateHome string
}

// Build turns a merged, expanded profile and the launch options into a Spec.
// Missing optional paths ("/lib64?") are dropped; a missing required path is
// an error naming it, as is a protected path inside a granted one.
func Build(p *profiles.Profile, o Options) (*Spec, error) {
	if len(o.Argv) == 0 {
		return nil, &SetupError{Code: ExitSetup, Msg: "no command given",
			Hint: "put the command after --, e.g. vm-run -- node server.js"}
	}
	s := &Spec{
		Path:    o.Argv[0],
		Args:    slices.Clone(o.Argv),
		Dir:     o.Workspace,
		UID:     o.UID,
		GID:     o.GID,
		TmpDir:  TmpDir,
		TmpSize: p.Limits.TmpSize,
		Seccomp: seccomp.Config{Allow: slices.Clone(p.Syscalls.Allow)},
	}
	if s.TmpSize == 0 {
		s.TmpSize = defaultTmpSizeByte
	}
	switch p.Network.Mode {
	case profiles.NetworkNone, "":
	case profiles.NetworkLoopback:
		s.Loopback = true
	case profiles.NetworkEgress:
		e, err := egressFiles()
		if err != nil {
			return nil, err
		}
		s.Egress = e
	default:
		return nil, &SetupError{Code: ExitSetup, Op: "profile",
			Msg: fmt.Sprintf("network mode %q is not supported", p.Network.Mode)}
	}
	var err error
	r := &s.Landlock
	if r.Read, err = existing(p.Filesystem.Read); err != nil {
		return nil, err
	}
	if r.Exec, err = existing(p.Filesystem.Exec); err != nil {
		return nil, err
	}
	r.Exec = append(r.Exec, o.ExtraExec...)
	if r.Write, err = existing(p.Filesystem.Write); err != nil {
		return nil, err
	}
	if r.Devices, err = existing(p.Filesystem.Devices); err != nil {
		return nil, err
	}
	if s.Overlay, err = existing(p.Filesystem.Overlay); err != nil {
		return nil, err
	}
	// Writable, but what is written lands in the private layer.
	for _, o := range s.Overlay {
		if !slices.Contains(r.Write, o) {
			r.Write = append(r.Write, o)
		}
	}
	r.Require = slices.Clone(p.Landlock.Require)
	r.BestEffort = p.BestEffort
	if s.Loopback {
		r.ConnectTCP = slices.Clone(p.Network.ConnectTCP)
		r.BindTCP = slices.Clone(p.Network.BindTCP)
		r.AnyTCP = p.Network.AnyPort
	}
	hide := p.Filesystem.Hide
	if o.PrivateHome != "" {
		if s.PrivateHome, err = filepath.EvalSymlinks(o.PrivateHome); err != nil {
			return nil, &SetupError{Code: ExitSetup, Op: "home", Msg: err.Error()}
		}
		hide = append(slices.Clone(hide), s.PrivateHome)
		// The command's own tmpfs: its to write.
		r.Write = append(r.Write, s.PrivateHome)
	}
	if err := s.hide(hide); err != nil {
		return nil, err
	}
	if err := s.protect(o.Protect); err != nil {
		return nil, err
	}
	if s.Egress != nil {
		// Every TCP port: the stack decides, and records, each
		// connection. After hide: the init stage makes these files
		// itself, nothing of the host's is bound back for them.
		r.AnyTCP = true
		r.Read = append(r.Read, s.Egress.Resolv, s.Egress.Hosts)
	}
	s.Env = environ(p.Env, o)
	s.Rlimits = rlimits(p.Limits)
	if s.Cgroup, err = CgroupLimits(p.Limits); err != nil {
		return nil, err
	}
	s.CgroupBestEffort = p.BestEffort
	return s, nil
}

// CgroupLimits resolves a profile's pids, memory and cpu limits against
// this host: a memory share of its memory (MemTotal), a CPU share of the
// CPUs vm-run may run on.
func CgroupLimits(l profiles.Limits) (cgroup.Limits, error) {
	mem, err := l.MemoryMax(hostMemory())
	if err != nil {
		return cgroup.Limits{}, &SetupError{Code: ExitSetup, Op: "profile", Msg: err.Error()}
	}
	millis, err := l.CPUMillis(runtime.NumCPU())
	if err != nil {
		return cgroup.Limits{}, &SetupError{Code: ExitSetup, Op: "profile", Msg: err.Error()}
	}
	return cgroup.Limits{Pids: l.PidsMax(), Memory: mem, CPUMillis: millis}, nil
}

// existing cleans the paths of one rule list and drops optional ones that do
// not exist. A path that must exist and does not is an error: a rule the
// profile states is enforced or vm-run does not start.
func existing(paths []string) ([]string, error) {
	var out []string
	for _, raw := range paths {
		path, optional := profiles.SplitOptional(raw)
		path = filepath.Clean(path)
		if _, err := os.Stat(path); err != nil {
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, &SetupError{Code: ExitSetup, Op: "profile",
				Msg:  fmt.Sprintf("path %q: %v", path, unwrapPathError(err)),
				Hint: "create it, or mark the entry optional with a trailing \"?\""}
		}
		// The rule names what the path resolves to: a symlink beneath a
		// hidden directory is not there inside, its target is bound back.
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if !slices.Contains(out, path) {
			out = append(out, path)
		}
	}
	return out, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// hide resolves the directories to cover with tmpfs and the granted paths
// beneath them that must be bind-mounted back.
func (s *Spec) hide(dirs []string) error {
	for _, raw := range dirs {
		path, optional := profiles.SplitOptional(raw)
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return &SetupError{Code: ExitSetup, Op: "profile",
				Msg: fmt.Sprintf("hide %q: %v", path, unwrapPathError(err))}
		}
		if !slices.Contains(s.Hide, real) {
			s.Hide = append(s.Hide, real)
		}
	}
	r := s.Landlock
	for _, list := range [][]string{r.Read, r.Exec, r.Write, r.Devices, {s.Dir}} {
		for _, p := range list {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				continue // a dangling Dir fails later with a clear chdir error
			}
			if real == s.TmpDir || real == s.PrivateHome {
				continue // the private temp dir or home itself, not the host's
			}
			for _, h := range s.hidden() {
				if within(real, h) && !slices.ContainsFunc(s.Keep, func(k Keep) bool { return k.Path == real }) {
					s.Keep = append(s.Keep, Keep{Path: real, Writable: s.writable(real)})
				}
			}
		}
	}
	return nil
}

// hidden lists what the init stage covers with tmpfs: the hidden
// directories and the private temp dir, hidden or not.
func (s *Spec) hidden() []string {
	if slices.Contains(s.Hide, s.TmpDir) {
		return s.Hide
	}
	return append(slices.Clone(s.Hide), s.TmpDir)
}

// writable reports whether a write rule on a host path covers p. Write
// rules on the hidden directories and the private temp dir grant writes to
// the tmpfs mounted there, not to host paths kept beneath them.
func (s *Spec) writable(p string) bool {
	for _, w := range s.Landlock.Write {
		real, err := filepath.EvalSymlinks(w)
		if err != nil || real == s.TmpDir || slices.Contains(s.Hide, real) {
			continue
		}
		if covers(real, p) {
			return true
		}
	}
	return false
}

// within reports whether p is strictly beneath dir.
func within(p, dir string) bool {
	return p != dir && strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// covers reports whether a rule on dir reaches p.
func covers(dir, p string) bool { return dir == p || within(p, dir) }

// protect fails when a rule grants access to a protected path of the host.
// Rules on the private temp dir and the hidden directories reach only the
// tmpfs mounted there, never host files, so they do not count.
func (s *Spec) protect(protected []string) error {
	r := &s.Landlock
	for _, p := range protected {
		if p == "" {
			continue
		}
		p = resolve(p)
		for _, rule := range []struct {
			kind  string
			paths []string
		}{{"read", r.Read}, {"exec", r.Exec}, {"write", r.Write}, {"devices", r.Devices}} {
			for _, dir := range rule.paths {
				if dir == s.TmpDir || slices.Contains(s.Hide, dir) {
					continue
				}
				if covers(resolve(dir), p) {
					return &SetupError{Code: ExitSetup, Op: "profile",
						Msg:  fmt.Sprintf("the ledger %q would be reachable from the sandbox through the %s rule %q", p, rule.kind, dir),
						Hint: "keep the ledger outside every path the profile grants (--ledger PATH)"}
				}
			}
		}
	}
	return nil
}

// resolve returns p with symlinks resolved as far as it exists: a ledger
// that does not exist yet is judged by its nearest existing ancestor.
func resolve(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for d := p; ; d = filepath.Dir(d) {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(append([]string{real}, rest...)...)
		}
		if d == "/" || d == "." {
			return p
		}
		rest = append([]string{filepath.Base(d)}, rest...)
	}
}

// environ builds the command's environment: the profile's pass list and
// --pass-env names from the caller's environment, then the profile's set
// values, then --env pairs, later ones winning.
func environ(e profiles.Env, o Options) []string {
	host := map[string]string{}
	for _, kv := range o.HostEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			host[k] = v
		}
	}
	out := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := out[k]; !ok {
			order = append(order, k)
		}
		out[k] = v
	}
	for _, k := range append(slices.Clone(e.Pass), o.PassEnv...) {
		if v, ok := host[k]; ok {
			set(k, v)
		}
	}
	keys := make([]string, 0, len(e.Set))
	for k := range e.Set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set(k, e.Set[k])
	}
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+out[k])
	}
	return env
}

func rlimits(l profiles.Limits) []Rlimit {
	var out []Rlimit
	add := func(name string, res int, v *uint64) {
		if v != nil {
			out = append(out, Rlimit{Name: name, Resource: res, Value: *v})
		}
	}
	add("nofile", unix.RLIMIT_NOFILE, l.NoFile)
	add("nproc", unix.RLIMIT_NPROC, l.NProc)
	add("as", unix.RLIMIT_AS, l.AS)
	add("fsize", unix.RLIMIT_FSIZE, l.FSize)
	add("cpu_time", unix.RLIMIT_CPU, l.CPUTime)
	add("core", unix.RLIMIT_CORE, l.Core)
	return out
}
