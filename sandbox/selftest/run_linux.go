package selftest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// probeTimeout bounds one probe run, so that a hung probe cannot hang the
// battery; no probe waits for anything that takes long.
const probeTimeout = 30 * time.Second

// Run runs the escape battery under the profile: for each attack, the
// probe once without the sandbox, to prove the attack works here, and once
// in the sandbox, where it must be blocked. It returns an error only when
// the battery cannot run at all (no fixtures, a profile that does not
// load, a sandbox that does not start); escapes and unproven attacks are in
// the report ([Report.Err]).
func Run(ctx context.Context, o Options) (*Report, error) {
	self := o.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find vm-run's own executable: %w", err)
		}
	}
	self, err := filepath.EvalSymlinks(self)
	if err != nil {
		return nil, fmt.Errorf("resolve the probe binary: %w", err)
	}
	user := o.User
	if user == nil {
		user = &User{UID: os.Getuid(), GID: os.Getgid()}
		if user.UID == 0 {
			user = &nobody
		}
	}
	if !executableBy(self, user.UID, user.GID) {
		return nil, fmt.Errorf("the probes run as uid %d, which cannot execute %q: install vm-run where that user can run it", user.UID, self)
	}
	fx, prof, err := setup(o, self, *user)
	if err != nil {
		return nil, err
	}
	defer fx.close()
	name := o.ProfileName
	if name == "" {
		name = prof.Name
	}
	rep := &Report{Profile: name, UID: user.UID, GID: user.GID}
	r := &runner{self: self, opts: o, fx: fx}
	r.profile = r.watchResolver(prof)

	// One probe first: if the sandbox cannot start, say so once.
	if _, err := r.sandboxed(ctx, attack{probe: "nnp", args: fixed()}, profileNet); err != nil {
		return nil, fmt.Errorf("start a probe in the sandbox: %w", err)
	}
	for _, a := range attacksFor(r.profile) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		row := r.row(ctx, a)
		rep.Rows = append(rep.Rows, row)
		if o.Stderr != nil {
			fmt.Fprintf(o.Stderr, "vm-run: selftest: %-45s %s\n", row.Attack, row.Got)
		}
	}
	return rep, nil
}

// setup creates the fixtures and loads the profile. The battery's directory
// goes where no rule of the profile reaches its "outside" directory,
// preferring places the profile does not hide, so that what keeps the
// probes out of it is Landlock and not only a tmpfs. On error nothing is
// left behind.
func setup(o Options, self string, u User) (*fixtures, *profiles.Profile, error) {
	var parents []string
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		parents = append(parents, home)
	}
	if os.Geteuid() == 0 {
		parents = append(parents, "/var/lib")
	}
	parents = append(parents, "/var/tmp", os.TempDir())
	var why []string
	var fallback *fixtures
	var fallbackProf *profiles.Profile
	for _, parent := range parents {
		fx, err := newBase(u.UID, u.GID, parent)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		prof, err := loadProfile(o, fx.workspace)
		if err != nil {
			fx.close()
			fallback.closeIfSet()
			return nil, nil, err
		}
		if rule := grantedBy(prof, fx.outside); rule != "" {
			why = append(why, fmt.Sprintf("%s: the profile's %s grants it", fx.outside, rule))
			fx.close()
			continue
		}
		if hiddenBy(prof, fx.base) != "" {
			if fallback == nil {
				fallback, fallbackProf = fx, prof
			} else {
				fx.close()
			}
			continue
		}
		fallback.closeIfSet()
		return fx, prof, fx.complete(prof, self)
	}
	if fallback != nil {
		return fallback, fallbackProf, fallback.complete(fallbackProf, self)
	}
	return nil, nil, fmt.Errorf("find a place for the battery's files: %s", strings.Join(why, "; "))
}

// hiddenBy returns the directory of the profile's hide list that covers
// path, or "".
func hiddenBy(p *profiles.Profile, path string) string {
	for _, raw := range p.Filesystem.Hide {
		dir, _ := profiles.SplitOptional(raw)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		if path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/") {
			return dir
		}
	}
	return ""
}

func loadProfile(o Options, workspace string) (*profiles.Profile, error) {
	switch {
	case o.Load != nil:
		return o.Load(workspace)
	case o.ProfileName != "":
		home, _ := os.UserHomeDir()
		return profiles.Load(o.ProfileName, profiles.Vars{Workspace: workspace, Home: home, TmpDir: sandbox.TmpDir})
	case o.Profile != nil:
		return o.Profile, nil
	}
	return nil, errors.New("selftest: no profile given")
}

// complete creates the fixtures beyond the directories.
func (fx *fixtures) complete(p *profiles.Profile, self string) error {
	err := fx.build(p, self)
	if err != nil {
		fx.close()
	}
	return err
}

func (fx *fixtures) build(p *profiles.Profile, self string) error {
	for _, step := range []func() error{
		func() error { return fx.hiddenFixtures(p) },
		fx.groupFixture,
		fx.files,
		fx.listen,
		func() error { return fx.startEgress(p) },
		fx.makeHandle,
		fx.openPTY,
		func() error { return fx.startVictim(self) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("selftest fixtures: %w", err)
		}
	}
	return nil
}

type runner struct {
	self    string
	opts    Options
	profile *profiles.Profile // loaded for fx.workspace
	fx      *fixtures
	tmpProf *profiles.Profile // loaded for fx.tmpWorkspace, when needed
	// watched: the profile's network.resolver is the battery's DNS
	// fixture, whose questions it counts (watchResolver).
	watched bool
}

// outcome is how one probe run ended.
type outcome struct {
	v      verdict
	parsed bool // the probe printed a verdict
	st     sandbox.Status
	output string // stderr, for a probe that printed no verdict
	// records are what the sandbox's stack recorded, in network mode
	// egress.
	records []audit.Event
}

// env returns what attack a's parameters depend on.
func (r *runner) env(a attack, sandboxed bool) (runEnv, error) {
	e := runEnv{fx: r.fx, workspace: r.fx.workspace, profile: r.profile, sandboxed: sandboxed}
	if a.inTmp && r.fx.tmpWorkspace != "" {
		if r.tmpProf == nil {
			p, err := loadProfile(r.opts, r.fx.tmpWorkspace)
			if err != nil {
				return e, err
			}
			r.tmpProf = r.watchResolver(p)
		}
		e.workspace, e.profile = r.fx.tmpWorkspace, r.tmpProf
	}
	return e, nil
}

// row runs one attack both ways and judges it.
func (r *runner) row(ctx context.Context, a attack) Row {
	row := Row{Attack: a.name, Expected: GotBlocked}
	e, err := r.env(a, true)
	if err != nil {
		row.Got, row.Detail, row.Baseline = GotError, err.Error(), NotRun
		return row
	}
	if a.skip != nil {
		if why := a.skip(e); why != "" {
			row.Expected, row.Got, row.Baseline, row.Why = GotSkipped, GotSkipped, NotRun, why
			return row
		}
	}
	row.Probe = strings.Join(append([]string{a.probe}, a.args(e)...), " ")
	var base outcome
	switch a.baselineIn {
	case withoutAllowlist:
		base, err = r.sandboxed(ctx, a, openNet)
		row.BaselineRun = "without the allowlist"
	case inOwnNetNS:
		base, err = r.baseline(ctx, a)
		row.BaselineRun = "with CAP_NET_ADMIN in a namespace of its own"
	default:
		base, err = r.baseline(ctx, a)
	}
	if ferr := r.fx.files(); err == nil {
		err = ferr
	}
	if err != nil {
		row.Baseline, row.BaselineDetail = Unproven, err.Error()
	} else {
		judgeBaseline(&row, base)
	}
	sb, err := r.sandboxed(ctx, a, profileNet)
	if ferr := r.fx.files(); err == nil {
		err = ferr
	}
	if err != nil {
		row.Got, row.Detail = GotError, err.Error()
		return row
	}
	judgeSandboxed(&row, sb)
	if a.check != nil && row.Got == GotBlocked {
		judgeEvidence(&row, a.check(e, evidence{
			records: sb.records, refused: sb.v.Refused, fx: r.fx, watched: r.watched,
		}))
	}
	return row
}

// baseline runs the probe directly, without the sandbox.
func (r *runner) baseline(ctx context.Context, a attack) (outcome, error) {
	e, err := r.env(a, false)
	if err != nil {
		return outcome{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.self)
	cmd.Args = append([]string{ProbeArg0, a.probe}, a.args(e)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = e.workspace
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if a.tty {
		cmd.Stderr = r.fx.slave
		r.fx.takeTTY()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	switch a.as {
	case asCommand:
		cmd.SysProcAttr.Credential = r.fx.credential(false)
	case asCommandWithGroups:
		cmd.SysProcAttr.Credential = r.fx.credential(true)
	}
	if a.baselineIn == inOwnNetNS {
		ownNetNS(cmd.SysProcAttr)
	}
	if a.leak {
		undo, err := r.fx.leak()
		if err != nil {
			return outcome{}, err
		}
		defer undo()
	}
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return outcome{}, fmt.Errorf("run probe %q: %w", a.probe, err)
	}
	o := outcome{st: exitStatus(cmd.ProcessState), output: errb.String()}
	if a.tty {
		o.output = r.fx.takeTTY()
	}
	o.parse(out.Bytes())
	return o, nil
}

func exitStatus(ps *os.ProcessState) sandbox.Status {
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return sandbox.Status{Signal: int(ws.Signal())}
	}
	return sandbox.Status{Code: ws.ExitStatus()}
}

func (o *outcome) parse(out []byte) {
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	o.parsed = json.Unmarshal(line, &o.v) == nil
}

// sandboxed runs the probe in the sandbox the profile describes, as vm-run
// would run a command, with the probe binary added to the exec rules; in
// network mode egress, with the network which says.
func (r *runner) sandboxed(ctx context.Context, a attack, which netRun) (outcome, error) {
	e, err := r.env(a, true)
	if err != nil {
		return outcome{}, err
	}
	n, rec, err := r.network(e.profile, which)
	if err != nil {
		return outcome{}, fmt.Errorf("start the sandbox's network: %w", err)
	}
	var sn sandbox.Network // a nil *stack.Network is no nil Network
	if n != nil {
		sn = n
		defer n.Close()
	}
	argv := append([]string{ProbeArg0, a.probe}, a.args(e)...)
	spec, err := sandbox.Build(e.profile, sandbox.Options{
		Argv:      argv,
		Workspace: e.workspace,
		UID:       r.fx.uid,
		GID:       r.fx.gid,
		ExtraExec: []string{r.self},
	})
	if err != nil {
		return outcome{}, fmt.Errorf("build the sandbox: %w", err)
	}
	spec.Path = r.self
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return outcome{}, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return outcome{}, fmt.Errorf("create stdout pipe: %w", err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return outcome{}, fmt.Errorf("create stderr pipe: %w", err)
	}
	defer errR.Close()
	stderr := errW
	if a.tty {
		stderr = r.fx.slave
		r.fx.takeTTY()
	}
	outc, errc := readAll(outR), readAll(errR)
	if a.leak {
		undo, err := r.fx.leak()
		if err != nil {
			outW.Close()
			errW.Close()
			return outcome{}, err
		}
		defer undo()
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	st, runErr := runSandbox(spec, sandbox.Stdio{Stdin: devnull, Stdout: outW, Stderr: stderr}, sn,
		func(p *sandbox.Process) {
			go func() {
				select {
				case <-ctx.Done():
					p.Signal(unix.SIGKILL)
				case <-done:
				}
			}()
		})
	outW.Close()
	errW.Close()
	out, errOut := <-outc, <-errc
	if runErr != nil {
		return outcome{}, fmt.Errorf("run probe %q in the sandbox: %w (%s)", a.probe, runErr, tail(errOut))
	}
	o := outcome{st: st, output: errOut}
	if a.tty {
		o.output = r.fx.takeTTY()
	}
	o.parse([]byte(out))
	if n != nil {
		// Closed first: the stack writes its last records as it closes.
		n.Close()
		o.records = rec.events()
	}
	return o, nil
}

func readAll(r io.Reader) <-chan string {
	c := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		c <- string(b)
	}()
	return c
}

// tail returns the last line of a probe's stderr, for an error message.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "no output"
	}
	return s
}

// judgeBaseline fills in the baseline of a row.
func judgeBaseline(row *Row, o outcome) {
	switch {
	case o.parsed && o.v.Error != "":
		row.Baseline, row.BaselineDetail = Unproven, "probe error: "+o.v.Error
	case o.parsed && o.v.Escaped:
		row.Baseline, row.BaselineDetail = Proven, o.v.Detail
	case o.parsed && o.v.Impossible != "":
		row.Baseline, row.BaselineDetail, row.Why = Impossible, o.v.Detail, o.v.Impossible
	case o.parsed:
		row.Baseline, row.BaselineDetail = Unproven, o.v.Detail
	case o.st.Signal == int(unix.SIGSYS):
		row.Baseline, row.BaselineDetail, row.Why = Impossible, "killed by SIGSYS",
			"vm-run itself runs under a seccomp filter that kills this call"
	default:
		row.Baseline, row.BaselineDetail = Unproven, fmt.Sprintf("probe %s without a verdict (%s)", o.st, tail(o.output))
	}
}

// judgeSandboxed fills in what the sandboxed run got.
func judgeSandboxed(row *Row, o outcome) {
	switch {
	case o.parsed && o.v.Error != "":
		row.Got, row.Detail = GotError, "probe error: "+o.v.Error
	case o.parsed && o.v.Escaped:
		row.Got, row.Detail = GotEscaped, o.v.Detail
	case o.parsed:
		row.Got, row.Detail, row.Mechanism = GotBlocked, o.v.Detail, o.v.Mechanism
	case o.st.Signal == int(unix.SIGSYS):
		row.Got, row.Detail, row.Mechanism = GotBlocked, "killed by SIGSYS", "seccomp (killed by SIGSYS)"
	default:
		row.Got, row.Detail = GotError, fmt.Sprintf("probe %s without a verdict (%s)", o.st, tail(o.output))
	}
}
