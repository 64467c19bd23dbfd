package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// The sandbox's cgroup: the parent creates it, moves the init stage into
// it before sending the spec (so that nothing the command does happens
// outside it), and removes it when the init stage has been reaped. The init
// stage then gives the sandbox a cgroup namespace rooted there and mounts
// a fresh cgroupfs of its own cgroup at /sys/fs/cgroup.

// hostMemory is the host's memory in bytes (sysinfo(2) totalram, which
// /proc/meminfo shows as MemTotal): what "memory: 25%" is a share of.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// placeCgroup creates the sandbox's cgroup with s.Cgroup's limits and moves
// the init stage, pid, into it. With no limits there is none. Where it
// cannot be done the launch stops, unless s.CgroupBestEffort, which runs
// the sandbox without it and says so on stderr.
func placeCgroup(s *Spec, pid int) (*cgroup.Group, error) {
	if s.Cgroup.IsZero() {
		return nil, nil
	}
	g, err := createCgroup(s.Cgroup, pid)
	if err == nil {
		return g, nil
	}
	if s.CgroupBestEffort {
		fmt.Fprintf(os.Stderr, "vm-run: warning: cgroup: %v; the sandbox runs without the profile's limits (%s), as best_effort: true allows\n", err, s.Cgroup)
		return nil, nil
	}
	se := &SetupError{Code: ExitSetup, Op: "cgroup", Msg: err.Error()}
	var ce *cgroup.Error
	if errors.As(err, &ce) {
		se.Hint = ce.Hint
	}
	return nil, se
}

func createCgroup(l cgroup.Limits, pid int) (*cgroup.Group, error) {
	sys, err := cgroup.Detect()
	if err != nil {
		return nil, fmt.Errorf("find the cgroup hierarchies: %w", err)
	}
	plan, err := sys.Plan(l)
	if err != nil {
		return nil, err
	}
	g, err := plan.Create()
	if err != nil {
		return nil, err
	}
	if err := g.Add(pid); err != nil {
		g.Remove()
		return nil, err
	}
	return g, nil
}

// releaseCgroup reads what the sandbox's cgroup refused it and removes the
// cgroup. Call it once the init stage has been reaped. Failures are warned
// about: the command has ended, its status stands, and a cgroup left
// behind is removed by the next vm-run.
func releaseCgroup(g *cgroup.Group) cgroup.Events {
	if g == nil {
		return cgroup.Events{}
	}
	ev, err := g.Events()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm-run: warning: cgroup: %v; the limits reached are not known\n", err)
	}
	if err := g.Remove(); err != nil {
		fmt.Fprintf(os.Stderr, "vm-run: warning: cgroup: %v\n", err)
	}
	return ev
}

// enterCgroupNamespace gives the init stage, and so the command, a cgroup
// namespace of its own, rooted at the cgroup it is in: the sandbox's, the
// parent moved it there before sending the spec. /proc/self/cgroup then
// shows "/" and no host cgroup's name, and the sandbox cannot name, let
// alone move into, a cgroup outside its own (cgroup_namespaces(7)).
// unshare(2) changes the calling thread's namespace, which is the locked
// main thread that forks the command.
func enterCgroupNamespace() error {
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWCGROUP)", err)
	}
	return nil
}

// mountCgroupfs covers the host's /sys/fs/cgroup, which names every cgroup
// of the host (services, users' sessions, containers), with the sandbox's
// own: the hierarchies of its cgroup mounted afresh, which in its cgroup
// namespace show that cgroup as their root, as the host mounts them (a
// cgroup2 mount there, or a tmpfs with a directory per hierarchy), so that
// runtimes that size themselves from their cgroup's limits (node, python,
// Go) find them where they look. Without a cgroup, an empty tmpfs. All of
// it read-only: the sandbox's user may own its cgroup's files (a cgroup
// delegated to an unprivileged caller), and must not raise its limits.
func mountCgroupfs(mounts []cgroup.Mount) error {
	if _, err := os.Stat(cgroup.Root); err != nil {
		return nil // nothing to cover
	}
	const ro = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	if len(mounts) == 1 && mounts[0].Target == cgroup.Root {
		m := mounts[0]
		if err := unix.Mount(m.Type, m.Target, m.Type, ro, m.Data); err != nil {
			return os.NewSyscallError("mount "+m.Type+" on "+m.Target, err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", cgroup.Root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=16k"); err != nil {
		return os.NewSyscallError("mount tmpfs on "+cgroup.Root, err)
	}
	for _, m := range mounts {
		if filepath.Dir(m.Target) != cgroup.Root {
			continue // Group.Mounts gives only the root or its children
		}
		if err := os.Mkdir(m.Target, 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		if err := unix.Mount(m.Type, m.Target, m.Type, ro, m.Data); err != nil {
			return os.NewSyscallError("mount "+m.Type+" ("+m.Data+") on "+m.Target, err)
		}
		for _, l := range m.Links {
			if err := os.Symlink(filepath.Base(m.Target), filepath.Join(cgroup.Root, filepath.Base(l))); err != nil {
				return fmt.Errorf("link %s: %w", l, err)
			}
		}
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | ro)
	if err := unix.Mount("", cgroup.Root, "", flags, ""); err != nil {
		return os.NewSyscallError("remount "+cgroup.Root+" read-only", err)
	}
	return nil
}
