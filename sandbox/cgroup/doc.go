// Package cgroup gives a sandbox a cgroup of its own, with pids, memory
// and CPU limits, on cgroup v2 where the host uses it and on the v1
// hierarchies where it does not, and removes it afterwards. It finds where
// the caller may create one, as root or in a cgroup delegated to it, and
// says why not where it may not. Package sandbox decides when; this
// package knows the kernel's interface files.
//
//	sys, err := cgroup.Detect()
//	if err != nil {
//		return err
//	}
//	plan, err := sys.Plan(cgroup.Limits{Pids: 512, Memory: 4 << 30})
//	if err != nil {
//		return err // errors.Is ErrNotDelegated or ErrNoController; *Error has a hint
//	}
//	g, err := plan.Create()
//	if err != nil {
//		return err
//	}
//	defer g.Remove()
//	if err := g.Add(pid); err != nil { // before pid runs anything
//		return err
//	}
//	// ... pid and its children run, then are gone ...
//	ev, _ := g.Events() // ev.OOMKills, ev.PidsMax
//
// # Hierarchies
//
// [Detect] joins /proc/self/mountinfo and /proc/self/cgroup
// (proc_pid_mountinfo(5), cgroups(7)) into the [Hierarchy] values this
// process can use: each mounted hierarchy, with its controllers and this
// process's cgroup in it. A controller is used where the kernel binds it:
// on a V1 hierarchy that lists it, or on V2 if the V2 mount's
// cgroup.controllers lists it. Current distributions mount only V2
// (/sys/fs/cgroup); RHEL 8-era hosts mount V1 hierarchies under
// /sys/fs/cgroup/NAME and a V2 mount without controllers
// (/sys/fs/cgroup/unified); a host may split controllers between the two.
// A [Plan] has a part per hierarchy that holds a controller the limits
// need, so every combination works; a controller bound nowhere is
// [ErrNoController].
//
// # Where the cgroup goes
//
// Under a cgroup named [Base] ("vm-run") in the topmost cgroup, from this
// process's own up, whose directory and cgroup.procs this user may write:
//
//   - root may write them all: /sys/fs/cgroup/vm-run (V2), or
//     /sys/fs/cgroup/pids/vm-run and so on (V1);
//   - another user only a delegated subtree (cgroup-v2.rst, "Delegation"):
//     systemd's user manager is delegated user@UID.service, so a process of
//     the user's desktop session gets
//     .../user@UID.service/vm-run; a unit or scope with Delegate=yes gets
//     itself. On V1 an administrator delegates a cgroup by creating it in
//     each hierarchy and giving the user its directory, cgroup.procs and
//     tasks.
//
// A user whose own cgroup is not writable (an ssh login's session scope,
// say) has none: [ErrNotDelegated], with a hint naming systemd-run or the
// V1 commands. On V2 the controllers must also be in the delegated
// cgroup's cgroup.controllers, and enabling them for its children needs a
// cgroup without processes ("no internal processes"): if vm-run is alone
// in its own delegated cgroup, as in `systemd-run --user --scope -p
// Delegate=yes vm-run ...`, it moves itself into a child vm-run-PID first;
// with other processes there, it stops and says so.
//
// The sandbox's cgroup is Base/PID-SEQ, PID being vm-run's. Limits are
// written before any process is in it:
//
//	limit   v2                        v1
//	pids    pids.max                  pids.max
//	memory  memory.max,               memory.limit_in_bytes,
//	        memory.swap.max = 0       memory.memsw.limit_in_bytes = the same
//	cpu     cpu.max "QUOTA 100000"    cpu.cfs_period_us, cpu.cfs_quota_us
//
// The swap files exist only where the kernel accounts swap; without them
// the memory limit bounds RAM and swap use goes unbounded but for the
// swap's size.
//
// # Events
//
// [Group.Events] reads what the limits refused: OOM kills from
// memory.events oom_kill (v1: memory.oom_control oom_kill, Linux 4.13),
// refused forks from pids.events max. The OOM killer picks within the
// cgroup, so a kill there is the sandbox's own limit at work, never the
// host's memory running out.
//
// # Removal
//
// [Group.Remove] kills whatever is left in the group, through cgroup.kill
// (v2, Linux 5.14) or a pidfd per process after checking it is still in
// the group (a pid read from cgroup.procs may be reused; a pidfd may not),
// waits for it to leave and removes the cgroups. A vm-run killed before it
// could leaves its cgroups behind; its sandboxes died with it (the init
// stage's parent-death signal, then the PID namespace), so they are empty,
// and the next vm-run to create a cgroup in the same place removes those
// whose vm-run pid is gone. rmdir(2) refuses a cgroup that still holds a
// process, so no sandbox is ever lost to that sweep.
//
// # What the sandbox sees
//
// [Group.Mounts] are the cgroup file systems to mount inside the sandbox,
// after it has unshared its cgroup namespace (cgroup_namespaces(7)), at the
// places the host mounts them: each then shows the sandbox's own cgroup as
// its root, and nothing of the host's tree. Package sandbox mounts them
// read-only: for an unprivileged caller the sandbox's user owns its
// cgroup's files.
package cgroup
