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
// [InitArg0] in new user, network, PID, IPC, UTS and mount namespaces; the
// program's main must hand such a process to [InitMain] before parsing
// anything. The init stage reads the spec from an inherited pipe, never
// argv or the environment, then mounts, drops capabilities, sets
// no_new_privs, applies Landlock and, last, seccomp, and executes the
// command. Setup errors come back over a close-on-exec status pipe as
// [*SetupError] values. It stays as PID 1 of the sandbox, reaping orphans
// and relaying signals, until the command exits.
//
// # Signals
//
// [Process.Signal] writes each signal for the command on the spec pipe,
// and the init stage relays it; [Run] does so for SIGINT, SIGTERM, SIGHUP,
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
// # Exit status
//
// [Status.ExitCode] is the command's status, or 128+N when a signal N
// killed it; vm-run's own failures are [ExitSetup], and a command that
// cannot be executed or found is [ExitNotExecutable] or [ExitNotFound].
package sandbox
