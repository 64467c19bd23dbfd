package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Group is a sandbox's cgroup: one directory in each hierarchy of its
// [Plan], with the limits written. [Group.Remove] removes it.
type Group struct {
	sys    *System
	limits Limits
	name   string
	parts  []member
}

// member is the group's cgroup in one hierarchy.
type member struct {
	h           Hierarchy
	controllers []string
	path, dir   string
}

// seq numbers the groups of this process: a vm-run process runs one
// sandbox, a test binary many.
var seq atomic.Uint64

// sandboxName matches the name of a sandbox's cgroup, PID-SEQ with the pid
// of the vm-run that made it; leafName the cgroup that vm-run moved itself
// into to free a delegated V2 cgroup for controllers (see enable).
var (
	sandboxName = regexp.MustCompile(`^([1-9][0-9]*)-[0-9]+$`)
	leafName    = regexp.MustCompile(`^vm-run-([1-9][0-9]*)$`)
)

// Create creates the sandbox's cgroup and writes its limits. The cgroup
// is named PID-SEQ after this process; stale cgroups of vm-run processes
// that are gone are removed on the way (see sweep).
func (p *Plan) Create() (*Group, error) {
	s := p.sys
	g := &Group{sys: s, limits: p.limits, name: fmt.Sprintf("%d-%d", s.pid, seq.Add(1))}
	for _, pt := range p.parts {
		m, err := s.create(pt, g.name, p.limits)
		if err != nil {
			g.Remove()
			return nil, err
		}
		g.parts = append(g.parts, m)
	}
	return g, nil
}

func (s *System) create(pt part, name string, l Limits) (member, error) {
	h := pt.h
	deleg, _ := h.Dir(pt.deleg)
	base, _ := h.Dir(pt.base)
	if h.Version == V2 {
		if err := s.enable(h, pt.deleg, pt.controllers); err != nil {
			return member{}, err
		}
	}
	if err := s.fs.Mkdir(base); err != nil && !errors.Is(err, fs.ErrExist) {
		return member{}, &Error{Op: "create", Path: base, Err: err}
	}
	if h.Version == V2 {
		if err := s.enable(h, pt.base, pt.controllers); err != nil {
			return member{}, err
		}
		s.sweep(deleg, leafName)
	}
	s.sweep(base, sandboxName)
	m := member{h: h, controllers: pt.controllers, path: path.Join(pt.base, name), dir: path.Join(base, name)}
	if err := s.fs.Mkdir(m.dir); err != nil {
		return member{}, &Error{Op: "create", Path: m.dir, Err: err}
	}
	for _, c := range pt.controllers {
		for _, set := range settings(h.Version, c, l) {
			err := s.fs.WriteFile(path.Join(m.dir, set.file), set.value)
			if err != nil && !(set.optional && isNotExist(err)) {
				s.fs.Rmdir(m.dir)
				return member{}, &Error{Op: "create", Path: m.dir, Err: fmt.Errorf("write %s = %s: %w", set.file, set.value, err)}
			}
		}
	}
	return m, nil
}

// enable makes sure the V2 cgroup p of h passes controllers on to its
// children (cgroup.subtree_control). The kernel refuses with EBUSY while p
// holds processes, but for the root ("no internal processes",
// cgroup-v2.rst): if p is this process's own cgroup and holds no other
// process, as a scope systemd-run made for vm-run does, vm-run moves
// itself into a child vm-run-PID and tries again; with other processes in
// p it stops and says so.
func (s *System) enable(h Hierarchy, p string, controllers []string) error {
	dir, _ := h.Dir(p)
	ctl := path.Join(dir, "cgroup.subtree_control")
	b, err := s.fs.ReadFile(ctl)
	if err != nil {
		return &Error{Op: "create", Path: dir, Err: err}
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range controllers {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	write := func() error { return s.fs.WriteFile(ctl, strings.Join(add, " ")) }
	err = write()
	if errors.Is(err, syscall.EBUSY) && p == h.Self {
		var moved bool
		if moved, err = s.leaveFor(h, dir); moved {
			err = write()
		}
	}
	if errors.Is(err, syscall.EBUSY) {
		procs, _ := s.fs.ReadFile(path.Join(dir, "cgroup.procs"))
		return &Error{Op: "create", Path: dir,
			Err: fmt.Errorf("%w: enable %s for its children: the cgroup holds processes (pids %s), and cgroup v2 enables controllers only for cgroups without processes of their own",
				ErrNotDelegated, strings.Join(add, " "), strings.Join(strings.Fields(string(procs)), ", ")),
			Hint: "start vm-run in a cgroup of its own, e.g. `systemd-run --user --scope -p Delegate=yes vm-run ...`; or say best_effort: true in a profile to run without its limits"}
	}
	if err != nil {
		return &Error{Op: "create", Path: dir, Err: fmt.Errorf("enable %s: %w", strings.Join(add, " "), err)}
	}
	return nil
}

// leaveFor moves this process out of dir, its own V2 cgroup, into a new
// child vm-run-PID, if it is the only process there. It reports whether it
// moved. The cgroup is left behind when vm-run exits, for sweep.
func (s *System) leaveFor(h Hierarchy, dir string) (bool, error) {
	b, err := s.fs.ReadFile(path.Join(dir, "cgroup.procs"))
	if err != nil {
		return false, err
	}
	pids, err := parsePids(b)
	if err != nil || !slices.Equal(pids, []int{s.pid}) {
		return false, syscall.EBUSY
	}
	leaf := path.Join(dir, "vm-run-"+strconv.Itoa(s.pid))
	if err := s.fs.Mkdir(leaf); err != nil && !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	if err := s.fs.WriteFile(path.Join(leaf, "cgroup.procs"), strconv.Itoa(s.pid)); err != nil {
		return false, fmt.Errorf("move vm-run into %s: %w", leaf, err)
	}
	return true, nil
}

// sweep removes the cgroups under dir named by name whose vm-run is gone:
// left by a vm-run that was killed before it could remove them. Their
// sandboxes died with it (the init stage's parent-death signal, then its
// PID namespace), so they are empty; rmdir(2) refuses one that is not,
// and the kernel's refusal is the check. A name's pid is judged in this
// PID namespace: a vm-run of another one sharing the cgroup tree is taken
// for gone, and can lose the empty cgroup it has just made (its launch then
// fails; it never loses a sandbox).
func (s *System) sweep(dir string, name *regexp.Regexp) {
	names, err := s.fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		m := name.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == s.pid || s.procs.Alive(pid) {
			continue
		}
		s.fs.Rmdir(path.Join(dir, n))
	}
}

// Name is the group's cgroup name, the same in every hierarchy.
func (g *Group) Name() string { return g.name }

// Dirs are the group's directories, one per hierarchy.
func (g *Group) Dirs() []string {
	var out []string
	for _, m := range g.parts {
		out = append(out, m.dir)
	}
	return out
}

// Limits are what the group enforces.
func (g *Group) Limits() Limits { return g.limits }

// Add moves process pid, all its threads, into the group. The caller must
// be allowed to: root, or the process's owner for a cgroup of its own.
func (g *Group) Add(pid int) error {
	for _, m := range g.parts {
		if err := g.sys.fs.WriteFile(path.Join(m.dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return &Error{Op: "add", Path: m.dir, Err: fmt.Errorf("move process %d in: %w", pid, err)}
		}
	}
	return nil
}

// Events reads what the group's limits refused so far.
func (g *Group) Events() (Events, error) {
	var e Events
	for _, m := range g.parts {
		for _, c := range m.controllers {
			for _, src := range eventSources(m.h.Version, c) {
				b, err := g.sys.fs.ReadFile(path.Join(m.dir, src.file))
				if err == nil {
					*src.count(&e), err = flatKeyed(b, src.key)
				}
				if err != nil {
					return e, &Error{Op: "read events", Path: m.dir, Err: fmt.Errorf("%s: %w", src.file, err)}
				}
			}
		}
	}
	return e, nil
}

// removeTimeout bounds how long Remove waits for the processes it killed
// to leave the cgroup.
const removeTimeout = 5 * time.Second

// Remove kills whatever is left in the group and removes its cgroups. The
// sandbox's processes are normally gone already: the kernel kills a PID
// namespace's processes when its init exits. Remove is idempotent.
func (g *Group) Remove() error {
	var errs []error
	for _, m := range g.parts {
		if err := g.sys.remove(m); err != nil {
			errs = append(errs, err)
		}
	}
	g.parts = nil
	return errors.Join(errs...)
}

func (s *System) remove(m member) error {
	deadline := time.Now().Add(removeTimeout)
	killed := false
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := s.fs.Rmdir(m.dir)
		if err == nil || isNotExist(err) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return &Error{Op: "remove", Path: m.dir, Err: err,
				Hint: "vm-run removes it at its next start once it is empty"}
		}
		if !killed || wait >= 50*time.Millisecond {
			s.kill(m)
			killed = true
		}
		time.Sleep(wait)
	}
}

// kill sends SIGKILL to every process in m: with cgroup.kill where the
// kernel has it (5.14, cgroup-v2.rst), else one by one.
func (s *System) kill(m member) {
	if m.h.Version == V2 {
		if err := s.fs.WriteFile(path.Join(m.dir, "cgroup.kill"), "1"); err == nil {
			return
		}
	}
	b, err := s.fs.ReadFile(path.Join(m.dir, "cgroup.procs"))
	if err != nil {
		return
	}
	pids, _ := parsePids(b)
	for _, pid := range pids {
		s.procs.Kill(pid, m.h, m.path)
	}
}
