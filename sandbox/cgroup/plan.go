package cgroup

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ErrNotDelegated is wrapped by the errors of a caller who may not create
// the cgroup a sandbox needs: no cgroup it is in is writable by it, or the
// controllers the limits need are not delegated to the one that is.
var ErrNotDelegated = errors.New("no cgroup is delegated to this user")

// ErrNoController is wrapped by the errors of a kernel that has a
// controller the limits need in no mounted hierarchy.
var ErrNoController = errors.New("controller not available")

// Error is a failure to place, create or remove a sandbox's cgroup, with
// what the user can do about it.
type Error struct {
	Op   string // "place", "create", "add", "remove"
	Path string // the cgroup directory concerned, if one is
	Err  error
	Hint string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// fsys is the file system operations on cgroupfs this package makes, so
// that tests can run the V2 logic against a fake tree where the kernel
// here has no V2 controllers.
type fsys interface {
	ReadFile(name string) ([]byte, error)
	// WriteFile writes data to an existing file in one write(2).
	WriteFile(name, data string) error
	Mkdir(name string) error // mkdir(2); fs.ErrExist if it exists
	Rmdir(name string) error
	ReadDir(name string) ([]string, error) // names of subdirectories
	// Writable reports whether this process's user may write name
	// (access(2), W_OK).
	Writable(name string) bool
}

// procs are the process operations this package makes, faked in tests.
type procs interface {
	// Alive reports whether pid is a process in this PID namespace.
	Alive(pid int) bool
	// Kill sends SIGKILL to pid if it is still in cgroup p of h.
	Kill(pid int, h Hierarchy, p string) error
}

// System is the cgroup hierarchies this process can use; [Detect] finds
// them.
type System struct {
	Hierarchies []Hierarchy
	// UID is who the checks of who may write what are for.
	UID   int
	fs    fsys
	procs procs
	pid   int // this process
}

// readControllers fills in the controllers of the V2 hierarchy: those
// available at its mount's root. A V2 mount without any, as on hosts that
// keep the controllers on V1 ("hybrid"), offers none.
func (s *System) readControllers() {
	for i, h := range s.Hierarchies {
		if h.Version != V2 {
			continue
		}
		b, err := s.fs.ReadFile(path.Join(h.Mount, "cgroup.controllers"))
		if err == nil {
			s.Hierarchies[i].Controllers = strings.Fields(string(b))
		}
	}
}

// Base is the name of the cgroup under which vm-run creates sandbox
// cgroups, beneath the topmost cgroup it may write.
const Base = "vm-run"

// Plan is where a sandbox's cgroup goes: one part per hierarchy that holds
// a controller the limits need. Making it writes nothing.
type Plan struct {
	sys    *System
	limits Limits
	parts  []part
}

type part struct {
	h           Hierarchy
	controllers []string
	// deleg is the topmost cgroup from this process's own up that its
	// user may write (the hierarchy's root for root); base is deleg's
	// child Base.
	deleg, base string
}

// Plan finds where a sandbox with limits l can have its cgroup. As root
// that is under Base at the root of each hierarchy; for another user,
// under Base in the topmost cgroup from its own up that it may write, as
// systemd's user manager and units with Delegate=yes delegate them. It
// fails, wrapping [ErrNoController] or [ErrNotDelegated], where it cannot
// be done.
func (s *System) Plan(l Limits) (*Plan, error) {
	p := &Plan{sys: s, limits: l}
	for _, c := range l.Controllers() {
		i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Has(c) })
		if i < 0 {
			return nil, &Error{Op: "place", Err: fmt.Errorf("%w: the kernel has no %s controller in a mounted cgroup hierarchy", ErrNoController, c),
				Hint: fmt.Sprintf("a kernel built with the %s controller mounts it under /sys/fs/cgroup (cgroup v2, or v1 on older distributions); a profile may say best_effort: true to run without its limits", c)}
		}
		h := s.Hierarchies[i]
		if j := slices.IndexFunc(p.parts, func(pt part) bool { return pt.h.Mount == h.Mount }); j >= 0 {
			p.parts[j].controllers = append(p.parts[j].controllers, c)
			continue
		}
		deleg, err := s.delegation(h)
		if err != nil {
			return nil, err
		}
		p.parts = append(p.parts, part{h: h, controllers: []string{c}, deleg: deleg, base: path.Join(deleg, Base)})
	}
	for _, pt := range p.parts {
		if err := s.checkDelegated(pt); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// delegation returns the topmost cgroup of h, from this process's own up
// to the mount's root, that this user may write: whose directory and
// cgroup.procs are writable, as the delegation of cgroup-v2.rst
// ("Delegation Containment") and systemd's Delegate=yes leave them.
func (s *System) delegation(h Hierarchy) (string, error) {
	writable := func(p string) bool {
		dir, ok := h.Dir(p)
		return ok && s.fs.Writable(dir) && s.fs.Writable(path.Join(dir, "cgroup.procs"))
	}
	if !writable(h.Self) {
		dir, _ := h.Dir(h.Self)
		return "", &Error{Op: "place", Path: dir,
			Err:  fmt.Errorf("%w: uid %d may not write its own cgroup (%s), let alone create one beneath it", ErrNotDelegated, s.UID, h),
			Hint: notDelegatedHint(h, s.UID)}
	}
	p := h.Self
	for p != h.Root && writable(path.Dir(p)) {
		p = path.Dir(p)
	}
	return p, nil
}

func notDelegatedHint(h Hierarchy, uid int) string {
	const tail = "; or run vm-run as root, or say best_effort: true in a profile to run without its pids/memory/cpu limits"
	if uid == 0 {
		return "the cgroup file system is not writable here even by root, as in most containers: run vm-run where it is, " +
			"or say best_effort: true in a profile to run without its pids/memory/cpu limits"
	}
	if h.Version == V2 {
		return "start vm-run in a cgroup delegated to you: `systemd-run --user --scope -p Delegate=yes vm-run ...`, or from a systemd unit with Delegate=yes" + tail
	}
	return fmt.Sprintf("have root delegate a cgroup to you in each v1 hierarchy: `for h in pids memory cpu; do mkdir /sys/fs/cgroup/$h/NAME; chown %d /sys/fs/cgroup/$h/NAME /sys/fs/cgroup/$h/NAME/cgroup.procs /sys/fs/cgroup/$h/NAME/tasks; done`, "+
		"then move your shell in (`echo $$ > /sys/fs/cgroup/$h/NAME/cgroup.procs` for each) and start vm-run from it", uid) + tail
}

// checkDelegated checks, for V2, that the controllers a part needs can be
// enabled for the children of its delegated cgroup: that they are in its
// cgroup.controllers, given to it by its parent.
func (s *System) checkDelegated(pt part) error {
	if pt.h.Version != V2 {
		return nil
	}
	dir, _ := pt.h.Dir(pt.deleg)
	b, err := s.fs.ReadFile(path.Join(dir, "cgroup.controllers"))
	if err != nil {
		return &Error{Op: "place", Path: dir, Err: err}
	}
	have := strings.Fields(string(b))
	for _, c := range pt.controllers {
		if !slices.Contains(have, c) {
			return &Error{Op: "place", Path: dir,
				Err: fmt.Errorf("%w: the %s controller is not delegated to this cgroup (its cgroup.controllers: %q)", ErrNotDelegated, c, strings.Join(have, " ")),
				Hint: "the cgroup's parent must enable the controller in its cgroup.subtree_control; systemd does for units with Delegate=yes (user@.service delegates cpu, memory and pids); " +
					"or say best_effort: true in a profile to run without its limits"}
		}
	}
	return nil
}

// Limits are what the plan's cgroup will enforce.
func (p *Plan) Limits() Limits { return p.limits }

// Describe says where each controller's cgroups go, a line each.
func (p *Plan) Describe() []string {
	var out []string
	for _, pt := range p.parts {
		dir, _ := pt.h.Dir(pt.base)
		out = append(out, fmt.Sprintf("%s: %s, sandboxes under %s", strings.Join(pt.controllers, ", "), pt.h, dir))
	}
	return out
}
