package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

type runCmd struct {
	Profile   string   `short:"p" default:"strict" help:"Profile: a name (strict, standard, dev, or one of yours) or a path to a YAML file." placeholder:"NAME|PATH"`
	Workspace string   `short:"w" help:"Workspace directory the command runs in (default: the current directory, which may not be / or your home)." placeholder:"DIR"`
	NoProxy   bool     `help:"Pass stdio straight through instead of proxying MCP (no tool policy; the session is still recorded)."`
	Policy    string   `help:"A YAML file with a tool policy (the schema of a profile's tools: section), added to the profile's." placeholder:"FILE" type:"existingfile"`
	Ledger    string   `help:"The audit ledger (default: $$VMRUN_LEDGER, the profile's audit.ledger, or ~/.local/state/vm-run/ledger.jsonl; as root /var/log/vm-run/ledger.jsonl)." placeholder:"PATH"`
	Env       []string `help:"Set KEY=VALUE in the command's environment (repeatable)." placeholder:"KEY=VALUE"`
	PassEnv   []string `help:"Pass the caller's KEY through to the command (repeatable)." placeholder:"KEY"`
	DryRun    bool     `help:"Print the effective sandbox and exit."`
	User      string   `help:"Only as root: the user the command runs as, NAME or UID[:GID] (default: nobody; 'root' keeps uid 0, still without capabilities)." placeholder:"USER"`

	Cmd []string `arg:"" optional:"" passthrough:"" help:"The command and its arguments, after --."`
}

func (r *runCmd) Validate() error {
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
	l, err := r.prepare()
	if err != nil {
		return err
	}
	if r.DryRun {
		return printSpec(stdout, l)
	}
	sess, err := openSession(l, l.ledgerPath)
	if err != nil {
		return err
	}
	var st sandbox.Status
	if r.NoProxy {
		st, err = sandbox.Run(l.spec, sandbox.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, nil)
	} else {
		ledgerFailed := func(err error) {
			fmt.Fprintf(os.Stderr, "vm-run: error: ledger: %v; every call is denied from now on\n", err)
		}
		st, err = serve(l.spec, proxy.Config{
			Policy:          l.profile.Tools,
			Workspace:       l.workspace,
			Recorder:        recorder{ledger: sess.ledger},
			Redact:          l.profile.Audit.Redact,
			Log:             prefixed(os.Stderr, "vm-run: proxy: "),
			OnRecorderError: ledgerFailed,
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

// launch is a resolved run: the profile, the spec built from it, the tool
// policy and the ledger's path.
type launch struct {
	profile    *profiles.Profile
	spec       *sandbox.Spec
	workspace  string
	ledgerPath string
}

// prepare resolves the workspace, the ids, the profile and the spec.
func (r *runCmd) prepare() (*launch, error) {
	ws, err := workspace(r.Workspace)
	if err != nil {
		return nil, err
	}
	uid, gid, home, err := commandIDs(r.User)
	if err != nil {
		return nil, err
	}
	env := r.Env
	if uid != os.Getuid() {
		// root chose another user: ${HOME} and HOME are that user's.
		env = append([]string{"HOME=" + home}, env...)
	}
	p, err := profiles.Load(r.Profile, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		return nil, err
	}
	ledger, err := audit.ResolvePath(r.Ledger, p.Audit.Ledger)
	if err != nil {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger", Msg: err.Error(),
			Hint: "pass --ledger PATH"}
	}
	if p, err = withPolicyFile(p, r.Policy); err != nil {
		return nil, err
	}
	spec, err := sandbox.Build(p, sandbox.Options{
		Argv:      r.Cmd,
		Workspace: ws,
		HostEnv:   os.Environ(),
		Env:       env,
		PassEnv:   r.PassEnv,
		UID:       uid,
		GID:       gid,
		Protect:   []string{ledger},
	})
	if err != nil {
		return nil, err
	}
	return &launch{profile: p, spec: spec, workspace: ws, ledgerPath: ledger}, nil
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

// commandIDs returns the uid, gid and home directory of the command: the
// caller's own, or for root, nobody's unless --user says otherwise. Running
// hostile code as uid 0 is never the default, even without capabilities.
func commandIDs(spec string) (int, int, string, error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid != 0 {
		if spec != "" {
			return 0, 0, "", &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user",
				Msg: "only root can choose the user", Hint: "drop --user: the command runs as you"}
		}
		home, _ := os.UserHomeDir()
		return uid, gid, home, nil
	}
	if spec == "" {
		spec = "nobody"
	}
	name, group, _ := strings.Cut(spec, ":")
	u, err := lookupUser(name)
	if err != nil {
		return 0, 0, "", err
	}
	if group != "" {
		g, err := strconv.Atoi(group)
		if err != nil {
			gr, lerr := user.LookupGroup(group)
			if lerr != nil {
				return 0, 0, "", &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: lerr.Error()}
			}
			g, _ = strconv.Atoi(gr.Gid)
		}
		u.gid = g
	}
	return u.uid, u.gid, u.home, nil
}

type ids struct {
	uid, gid int
	home     string
}

func lookupUser(name string) (ids, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: fmt.Sprintf("uid %d is negative", n)}
		}
		if u, err := user.LookupId(name); err == nil {
			gid, _ := strconv.Atoi(u.Gid)
			return ids{n, gid, u.HomeDir}, nil
		}
		return ids{n, n, "/nonexistent"}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) && name == "nobody" {
			return ids{65534, 65534, "/nonexistent"}, nil
		}
		return ids{}, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--user", Msg: err.Error()}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return ids{uid, gid, u.HomeDir}, nil
}
