package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/proxy/pins"
	"github.com/vm-run/vm-run/proxy/secrets"
	"github.com/vm-run/vm-run/sandbox"
)

type runCmd struct {
	Profile   string   `short:"p" default:"strict" help:"Profile: a name (strict, standard, dev, or one of yours) or a path to a YAML file." placeholder:"NAME|PATH"`
	Workspace string   `short:"w" help:"Workspace directory the command runs in (default: the current directory, which may not be / or your home)." placeholder:"DIR"`
	NoProxy   bool     `help:"Pass stdio straight through instead of proxying MCP (no tool policy; the session is still recorded)."`
	Policy    string   `help:"A YAML file with a tool policy (the schema of a profile's tools: section), or builtin:NAME for a preset's (server-memory, server-git, ...: see vm-run profiles list). Its deny rules add to the profile's, which it cannot remove; its allow rules and default_action (deny if unset) replace the profile's." placeholder:"FILE|builtin:NAME"`
	Observe   bool     `help:"Observe the tool policy instead of enforcing it: forward every call, and record the ones it would deny as would_deny, for vm-run policy generate. The sandbox is enforced as always."`
	Ledger    string   `help:"The audit ledger (default: $$VMRUN_LEDGER, the profile's audit.ledger, or ~/.local/state/vm-run/ledger.jsonl; as root /var/log/vm-run/ledger.jsonl)." placeholder:"PATH"`
	Env       []string `help:"Set KEY=VALUE in the command's environment (repeatable; the value may hold commas)." placeholder:"KEY=VALUE" sep:"none"`
	PassEnv   []string `help:"Pass the caller's KEY through to the command (repeatable)." placeholder:"KEY"`
	AllowNet  []string `help:"Let the command reach HOST:PORT by name (repeatable): api.github.com:443, '*.slack.com:443' (subdomains only), 10.0.0.5:5432, host-loopback:8080. Adds to the profile's network.allow and switches it to network mode egress; a profile in loopback mode with port rules is refused, since egress replaces them." placeholder:"HOST:PORT" sep:"none"`
	DryRun    bool     `help:"Print the effective sandbox and exit."`
	User      string   `help:"Only as root: the user the command runs as, NAME or UID[:GID] (default: nobody; 'root' keeps uid 0, still without capabilities)." placeholder:"USER"`

	Cmd []string `arg:"" optional:"" passthrough:"" help:"The command and its arguments, after --."`

	// approver asks a person about secrets under approve: ask (nil: no
	// channel; such a profile does not start).
	approver approval.Approver `kong:"-"`
}

func (r *runCmd) Validate() error {
	if r.Observe && r.NoProxy {
		return errors.New("--observe observes the tool policy, which --no-proxy switches off; drop one of them")
	}
	for _, kv := range r.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !validEnvName(k) {
			return fmt.Errorf("--env %q: want KEY=VALUE with KEY made of letters, digits and _", kv)
		}
	}
	for _, k := range r.PassEnv {
		if !validEnvName(k) {
			return fmt.Errorf("--pass-env %q: not a variable name", k)
		}
	}
	return nil
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (r *runCmd) Run(stdout io.Writer) error {
	if len(r.Cmd) > 0 && r.Cmd[0] == "--" {
		r.Cmd = r.Cmd[1:]
	}
	if len(r.Cmd) == 0 {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: "no command given",
			Hint: "vm-run [flags] -- COMMAND [ARGS...], e.g. vm-run --profile strict -- node server.js"}
	}
	ws, err := workspace(r.Workspace)
	if err != nil {
		return err
	}
	who, err := commandIDs(r.User)
	if err != nil {
		return err
	}
	if r.DryRun {
		l, err := r.load(ws, who)
		if err != nil {
			return err
		}
		return printSpec(stdout, l)
	}
	// The tool definitions pinned for this profile and server: a pin file
	// vm-run cannot trust stops the launch (pins.go).
	var pinned *pins.Set
	if !r.NoProxy {
		if pinned, err = openPins(r.Profile, r.Cmd); err != nil {
			return err
		}
	}
	// This goroutine stays on its thread until vm-run exits: the init
	// stage is spawned from it (sandbox.Spawn).
	runtime.LockOSThread()
	var pipes *serverPipes
	stdio := sandbox.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if !r.NoProxy {
		if pipes, err = newServerPipes(); err != nil {
			return err
		}
		stdio = pipes.server()
		// The client's pipes too, where they are pipes.
		growPipe(os.Stdin)
		growPipe(os.Stdout)
	}
	l, pending, sess, err := r.begin(ws, who, stdio)
	if err == nil && !r.NoProxy && r.approver == nil {
		// The approval socket, for the questions the client cannot be
		// asked (ask.go); open for the whole session.
		if sock := openApprovals(l.profile, l.approvals, os.Stderr); sock != nil {
			defer sock.Close()
			r.approver = sock
		}
	}
	if err == nil {
		err = r.handSecrets(l, pending, sess) // secrets.go
	}
	if err != nil {
		if pipes != nil {
			pipes.closeAll()
		}
		return err
	}
	// Landlock's own denial records, where the kernel logs them and
	// vm-run may read them: said when the session fails.
	sess.watchDenials(pending.Pid(), l.spec)
	// Files the command names that it will not be able to open: said
	// before it fails with an error of its own that names neither the
	// reason nor the fix.
	for _, u := range l.spec.Unreachables() {
		fmt.Fprintf(os.Stderr, "vm-run: warning: the command will not be able to read %q, %s: %s\nvm-run: hint: %s\n", u.Path, u.Role, u.Reason(), u.Hint())
	}
	var st sandbox.Status
	if r.NoProxy {
		var proc *sandbox.Process
		if proc, err = pending.StartNetwork(l.spec, sess.network()); err == nil {
			st, err = proc.Wait()
		}
	} else {
		if l.profile.Tools.Observing() {
			fmt.Fprintf(os.Stderr, "vm-run: observe mode: the tool policy is not enforced; the calls it would deny are forwarded and recorded as would_deny (the sandbox is enforced as always)\n")
		}
		ledgerFailed := func(err error) {
			fmt.Fprintf(os.Stderr, "vm-run: error: ledger: %v; every call is denied from now on\n", err)
		}
		st, err = serve(pending, l.spec, sess.network(), pipes, proxy.Config{
			Policy:          l.profile.Tools,
			Workspace:       l.workspace,
			Bases:           argvDirs(l.workspace, r.Cmd),
			MaxLine:         int(l.profile.Limits.MaxMessage),
			CallTimeout:     callTimeout(l.profile.Limits.CallTimeout),
			Recorder:        proxy.Ledger(sess.ledger),
			Log:             os.Stderr,
			OnRecorderError: ledgerFailed,
			Pins:            pinned,
			Scrubber:        l.scrubber,
			ServerName:      serverName(l.profile.Name, r.Cmd),
			Approver:        r.approver,
		})
	}
	if eerr := sess.end(st, err); eerr != nil {
		if err == nil {
			err = eerr
		} else {
			report(eerr, os.Stderr)
		}
	}
	if err != nil {
		return err
	}
	if code := st.ExitCode(); code != 0 {
		return &exitStatus{Code: code}
	}
	return nil
}

// begin gets a run ready to start: the init stage spawned with stdio and
// waiting for its spec, the profile loaded into the spec with its seccomp
// filter compiled, and session_start on disk. The init stage is spawned
// first, so that its namespaces and Go runtime come up while the profile
// loads and the ledger syncs, rather than after. Call it from a goroutine
// locked to its thread. On error, nothing is left running.
func (r *runCmd) begin(ws string, who ids, stdio sandbox.Stdio) (*launch, *sandbox.Pending, *session, error) {
	type loaded struct {
		l   *launch
		err error
	}
	loading := make(chan loaded, 1)
	go func() {
		l, err := r.load(ws, who)
		loading <- loaded{l, err}
	}()
	var pending *sandbox.Pending
	if who.private {
		// The trees of the private home go to the init stage as it
		// starts: the spec first.
		res := <-loading
		if res.err != nil {
			return nil, nil, nil, res.err
		}
		trees, err := res.l.spec.OpenTrees()
		if err != nil {
			return nil, nil, nil, err
		}
		pending = sandbox.SpawnTrees(who.uid, who.gid, stdio, trees)
		for _, f := range trees {
			f.Close()
		}
		loading <- res
	} else {
		pending = sandbox.Spawn(who.uid, who.gid, stdio)
	}
	res := <-loading
	if res.err != nil {
		pending.Abort()
		return nil, nil, nil, res.err
	}
	l := res.l
	compiled := make(chan error, 1)
	go func() { compiled <- l.spec.CompileSeccomp() }()
	sess, err := openSession(l, l.ledgerPath)
	if cerr := <-compiled; err == nil && cerr != nil {
		// Recorded as a session that failed to start.
		if eerr := sess.end(sandbox.Status{}, cerr); eerr != nil {
			report(eerr, os.Stderr)
		}
		err = cerr
	}
	if err != nil {
		pending.Abort()
		return nil, nil, nil, err
	}
	return l, pending, sess, nil
}

// launch is a resolved run: the profile, the spec built from it, the tool
// policy and the ledger's path.
type launch struct {
	profile    *profiles.Profile
	spec       *sandbox.Spec
	workspace  string
	ledgerPath string
	scrubber   *secrets.Scrubber // the secrets handed over; nil: none
	// approvals is the approvals directory, out of the sandbox's reach
	// (none when it cannot be made: then no socket is opened either).
	approvals []string
}

// prepare resolves the workspace, the ids, the profile and the spec.
func (r *runCmd) prepare() (*launch, error) {
	ws, err := workspace(r.Workspace)
	if err != nil {
		return nil, err
	}
	who, err := commandIDs(r.User)
	if err != nil {
		return nil, err
	}
	return r.load(ws, who)
}

// load loads the profile and builds the spec of a command run as who in
// the workspace ws.
func (r *runCmd) load(ws string, who ids) (*launch, error) {
	env := r.Env
	if who.uid != os.Getuid() {
		// root chose another user: ${HOME} and HOME are that user's.
		env = append([]string{"HOME=" + who.home}, env...)
	}
	vars := profiles.Vars{Workspace: ws, Home: who.home, TmpDir: sandbox.TmpDir}
	p, err := profiles.Load(r.Profile, vars)
	if err != nil {
		return nil, err
	}
	ledger, err := audit.ResolvePath(r.Ledger, p.Audit.Ledger)
	if err != nil {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger", Msg: err.Error(),
			Hint: "pass --ledger PATH"}
	}
	if p, err = withPolicyFile(p, r.Policy, vars); err != nil {
		return nil, err
	}
	if p, err = withAllowNet(p, r.AllowNet, r.Profile); err != nil {
		return nil, err
	}
	if r.Observe {
		if err := p.Tools.Observe(); err != nil {
			return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--observe", Msg: err.Error(),
				Hint: "vm-run profiles show " + r.Profile + " shows which file sets it"}
		}
	}
	private := ""
	if who.private {
		private = who.home
	}
	approvals := approvalsDir()
	spec, err := sandbox.Build(p, sandbox.Options{
		PrivateHome: private,
		Argv:        r.Cmd,
		Workspace:   ws,
		HostEnv:     secretHostEnv(p, os.Environ(), r.PassEnv, os.Stderr),
		Env:         env,
		PassEnv:     r.PassEnv,
		UID:         who.uid,
		GID:         who.gid,
		// The sandbox reaches none of what vm-run trusts: the ledger, the
		// pins, the approval sockets and remembered grants.
		Protect: slices.Concat([]string{ledger}, pinsDir(), approvals),
	})
	if err != nil {
		return nil, storeReachable(err)
	}
	return &launch{profile: p, spec: spec, workspace: ws, ledgerPath: ledger, approvals: approvals}, nil
}

// workspace resolves the workspace directory. MCP clients often start
// servers with / or the home directory as working directory; exposing either
// whole is refused unless the user names it with --workspace.
func workspace(flag string) (string, error) {
	dir := flag
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find the current directory: %w", err)
		}
		dir = wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workspace %q: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "workspace", Msg: err.Error(),
			Hint: "--workspace must name an existing directory"}
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return "", &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "workspace",
			Msg: fmt.Sprintf("%q is not a directory", real)}
	}
	if flag == "" {
		home, _ := os.UserHomeDir()
		realHome, _ := filepath.EvalSymlinks(home)
		if real == "/" || real == realHome {
			return "", &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "workspace",
				Msg:  fmt.Sprintf("the current directory %q would be the workspace", real),
				Hint: "run from a project directory, or pass --workspace DIR (your MCP client may start servers in / or your home)"}
		}
	}
	return real, nil
}

// commandIDs returns the ids and home directory of the command: the
// caller's own, or for root, nobody's unless --user says otherwise. Running
// hostile code as uid 0 is never the default, even without capabilities.
func commandIDs(spec string) (ids, error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid != 0 {
		if spec != "" {
			return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user",
				Msg: "only root can choose the user", Hint: "drop --user: the command runs as you"}
		}
		home, _ := os.UserHomeDir()
		return ids{uid: uid, gid: gid, home: home}, nil
	}
	if spec == "" {
		spec = "nobody"
	}
	name, group, _ := strings.Cut(spec, ":")
	u, err := lookupUser(name)
	if err != nil {
		return ids{}, err
	}
	// A user without a usable home of its own (nobody's is /nonexistent)
	// gets a private one at the caller's home path: ${HOME} in profiles
	// then names what the caller warmed for the sandbox (its npm cache),
	// which the sandbox brings back beneath the private home.
	if st, err := os.Stat(u.home); u.uid != 0 && (err != nil || !st.IsDir() || int(st.Sys().(*syscall.Stat_t).Uid) != u.uid) {
		if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
			if st, err := os.Stat(home); err == nil && st.IsDir() {
				if err := safePrivateHome(home); err != nil {
					fmt.Fprintf(os.Stderr, "vm-run: warning: no private home for uid %d at HOME=%s: %v; the command's HOME is %s\n", u.uid, home, err, u.home)
				} else {
					u.home, u.private = home, true
				}
			}
		}
	}
	if group != "" {
		g, err := strconv.Atoi(group)
		if err != nil {
			gr, lerr := user.LookupGroup(group)
			if lerr != nil {
				return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: lerr.Error()}
			}
			g, _ = strconv.Atoi(gr.Gid)
		}
		u.gid = g
	}
	return u, nil
}

// systemDirs are directories no private home may be, lie beneath or
// contain: covering them would hide or replace the system (and a home of
// / would put the command's write rule on the host's root).
var systemDirs = []string{"/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/run", "/var"}

// safePrivateHome checks that home can serve as the path of a private
// home that root's sandbox user gets, with the trees beneath it cloned as
// root: it is not / or a system directory, and nobody but root can change
// what it or any directory above it holds (owned by root, and writable by
// no one else unless sticky, where others cannot replace root's entries),
// so that what the parent clones beneath it is root's own.
func safePrivateHome(home string) error {
	real, err := filepath.EvalSymlinks(home)
	if err != nil {
		return err
	}
	if real == "/" {
		return errors.New("it is /")
	}
	for _, d := range systemDirs {
		if real == d || strings.HasPrefix(real, d+"/") {
			return fmt.Errorf("it lies in the system directory %s", d)
		}
	}
	for d := real; ; d = filepath.Dir(d) {
		st, err := os.Lstat(d)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		mode := st.Mode()
		if sys.Uid != 0 {
			return fmt.Errorf("%s is owned by uid %d, not root", d, sys.Uid)
		}
		if mode.Perm()&0o022 != 0 && (d == real || mode&os.ModeSticky == 0) {
			return fmt.Errorf("%s is writable by others (mode %04o)", d, mode.Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

type ids struct {
	uid, gid int
	home     string
	// private: home is the caller's, which the command gets as a private
	// home of its own (sandbox.Options.PrivateHome).
	private bool
}

func lookupUser(name string) (ids, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: fmt.Sprintf("uid %d is negative", n)}
		}
		if u, err := user.LookupId(name); err == nil {
			gid, _ := strconv.Atoi(u.Gid)
			return ids{uid: n, gid: gid, home: u.HomeDir}, nil
		}
		return ids{uid: n, gid: n, home: "/nonexistent"}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) && name == "nobody" {
			return ids{uid: 65534, gid: 65534, home: "/nonexistent"}, nil
		}
		return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: err.Error()}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return ids{uid: uid, gid: gid, home: u.HomeDir}, nil
}

// argvDirs lists the directories inside the workspace that the server's
// command line names (as ARG or --flag=ARG, relative to the workspace, its
// working directory): a server such as server-filesystem reads relative
// paths against the first directory it serves, so the proxy judges them
// against these too.
func argvDirs(ws string, argv []string) []string {
	var out []string
	for _, a := range argv {
		if strings.HasPrefix(a, "-") {
			_, v, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			a = v
		}
		if a == "" {
			continue
		}
		if !filepath.IsAbs(a) {
			a = filepath.Join(ws, a)
		}
		real, err := filepath.EvalSymlinks(a)
		if err != nil {
			continue
		}
		if st, err := os.Stat(real); err != nil || !st.IsDir() {
			continue
		}
		if rel, err := filepath.Rel(ws, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			out = append(out, real)
		}
	}
	return out
}

// callTimeout is the proxy's call timeout for the profile's
// limits.call_timeout: the default when unset, none when unlimited.
func callTimeout(seconds *uint64) time.Duration {
	switch {
	case seconds == nil:
		return proxy.DefaultCallTimeout
	case *seconds == profiles.Unlimited || *seconds > uint64(math.MaxInt64/time.Second):
		return 0
	}
	return time.Duration(*seconds) * time.Second
}
