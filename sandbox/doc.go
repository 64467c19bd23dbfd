// Package sandbox builds and runs vm-run's sandbox: it turns a loaded
// profile into a [Spec], starts the init stage in fresh namespaces, and
// reports how the command ended.
//
//	spec, err := sandbox.Build(profile, sandbox.Options{
//		Argv: []string{"node", "server.js"}, Workspace: ws,
//		HostEnv: os.Environ(), UID: os.Getuid(), GID: os.Getgid(),
//	})
//	if err != nil {
//		return err // a *SetupError: exit 125
//	}
//	st, err := sandbox.Run(spec, sandbox.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, nil)
//	if err != nil {
//		return err
//	}
//	os.Exit(st.ExitCode())
//
// # Process model
//
// The parent re-executes its own binary (/proc/self/exe) with argv[0]
// [InitArg0] in new user, network, PID, IPC, UTS and mount namespaces (and
// a cgroup namespace, which the init stage unshares itself); the
// program's main must hand such a process to [InitMain] before parsing
// anything. The init stage reads the spec from the channel, never argv or
// the environment, then mounts, drops capabilities, sets no_new_privs,
// applies Landlock and, last, seccomp, and executes the command. Setup
// errors come back over the channel as [*SetupError] values. It stays as
// PID 1 of the sandbox, reaping orphans and relaying signals, until the
// command exits.
//
// # The channel
//
// The parent and the init stage talk over one AF_UNIX stream socketpair,
// inherited as descriptor 3 and close-on-exec there, so the command never
// has it. Messages are typed (spec, tun, network, signal, started, error,
// exit) and framed by their length; the tun message carries the one
// descriptor the protocol passes (SCM_RIGHTS): the TUN device of network
// mode egress, which only the init stage can create, in the sandbox's
// namespace, and only the parent can serve (channel_linux.go,
// egress_linux.go). The socket is
// also the parent's lifeline: its end closes when the parent dies, and the
// init stage sees a hang-up.
//
//	parent (host)                                  init stage (PID 1, new namespaces)
//	  socketpair; spawn ── fd 3 (trees: 4, 5, ...) ─▶ PR_SET_PDEATHSIG, wait
//	  profile loads; session_start synced
//	  init stage moved into the sandbox's cgroup
//	  ─── spec ────────────────────────────────────▶ (a hang-up here: parent gone, exit)
//	                                                 namespace check, loopback
//	                                                 network mode egress only:
//	                                                   IPv6 off, tun0 created and configured
//	  ◀── tun + the device (SCM_RIGHTS) ───────────    its own copy closed
//	  Network.Attach(device): the stack runs
//	  ─── network ─────────────────────────────────▶   (anything else: setup error)
//	                                                 cgroup ns, mounts (egress: resolv.conf,
//	                                                 hosts), rlimits, caps, Landlock, seccomp
//	  ◀── error {SetupError} ──────────────────────  setup failed: exit 125
//	  ◀── started {pid} ───────────────────────────  or the command runs
//	  ─── signal {n} (any number) ─────────────────▶ kill(command, n)
//	  ◀── exit {status} ───────────────────────────  the command ended: exit, and the
//	                                                 kernel ends the PID namespace
//
// # Signals
//
// [Process.Signal] sends each signal for the command on the channel, and
// the init stage relays it; [Run] does so for SIGINT, SIGTERM, SIGHUP,
// SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH when vm-run receives them.
// SIGKILL ends the init stage, and with it the whole sandbox. A signal
// sent to the init stage itself, by the command or from the host, is
// dropped: the command can neither crash its PID 1 nor have it signal
// anyone, and it starts with every signal at its default action.
//
// [Run] does it all and waits. [Spawn] starts the init stage before the
// spec exists, so that its namespaces and runtime come up while the caller
// loads the profile and writes the ledger; [Pending.Start] sends the spec.
//
// # Lifetime
//
// The init stage dies with the thread that spawned it (PR_SET_PDEATHSIG), so
// that thread's goroutine stays locked to it for the sandbox's lifetime.
// When the command exits, the init stage exits, and the kernel kills what
// is left in the PID namespace: when [Process.Wait] returns, no process of
// the sandbox remains.
//
// # Resource limits
//
// A profile's limits.pids, limits.memory and limits.cpu hold for the
// sandbox as a whole, through a cgroup of its own (package
// sandbox/cgroup): [Build] resolves them against this host
// ([CgroupLimits]; "25%" of MemTotal), [Pending.Start] creates the cgroup
// and moves the init stage into it before it sends the spec, so that
// everything the sandbox ever runs is in it, and [Process.Wait] reads
// what the limits refused into [Status].Limits and removes the cgroup. As
// root the cgroup goes under a vm-run cgroup at the root of each
// hierarchy; another user needs a cgroup delegated to it. Where none can
// be made the launch stops with a [*SetupError] and a hint, unless the
// profile says best_effort: true, which runs the sandbox without the
// limits and warns on stderr. The profile's rlimits (nofile, nproc, as,
// fsize, cpu_time, core) are set by the init stage, per process, as
// before; nproc counts every process of the uid, inside the sandbox or
// not, which is why the process limit is the cgroup's.
//
// A command the OOM killer ended has [Status.OOMKilled]; the exit status
// stays 137, as for any SIGKILL.
//
// # What the sandbox sees of the host
//
// The init stage unshares a cgroup namespace once it is in the sandbox's
// cgroup, so /proc/self/cgroup reads "/" and names no host cgroup, and
// covers /sys/fs/cgroup with fresh, read-only mounts of the sandbox's own
// cgroup (an empty tmpfs when it has none), where node, python and Go find
// their limits. /proc is a fresh procfs of the sandbox's PID namespace;
// the files in it that describe the host and that no server needs (the
// kernel's command line, configuration, symbols and modules, key-users)
// read as empty. What the sandbox can still read of the host, beyond the
// paths its profile grants (strict: /usr, /etc, /sys/devices/system/cpu
// and the runtimes): /proc/self/mountinfo and /proc/mounts list the host's
// mounts, because the sandbox's mount namespace is a copy of the host's
// with paths covered rather than a root of its own (every host mount
// point, file system type, device and option, though not the files of
// those it is not granted); and /proc's machine-wide counters and
// tunables: CPU, memory, load, pressure, disk and interrupt statistics,
// /proc/cgroups' controller counts, /proc/sys. /etc, which strict
// grants, holds the host's name and machine-id.
//
// # A home for root's sandbox user
//
// When root runs the command as a user without a usable home (nobody),
// Options.PrivateHome gives it one: the caller's home path, covered by a
// tmpfs of the command's own, with the paths the profile grants beneath it
// cloned by the parent (open_tree) and attached by the init stage, an
// overlaid cache idmapped to the command's uid (trees_linux.go, with its
// sequence diagram).
//
// # Why a file cannot be reached
//
// A failed exec, and files named on the command line, are explained by
// [Spec.Reach]: the file system's permissions for the command's ids (every
// directory down the path, then the file), or no Landlock grant, or both,
// with the chmod or the grant that fixes it (reach.go).
//
// # Exit status
//
// [Status.ExitCode] is the command's status, or 128+N when a signal N
// killed it; vm-run's own failures are [ExitSetup], and a command that
// cannot be executed or found is [ExitNotExecutable] or [ExitNotFound].
package sandbox
