//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/testkit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// The limits tests run the built vm-run binary with a fork bomb and a
// memory hog under each built-in profile: as the caller and, when that is
// root, as uid 65534 in a cgroup subtree the test delegates to it, as
// systemd or an administrator would. Each probe first runs under the
// profile with the limit removed, where it must succeed; then under the
// profile's own pids limit, or a memory limit of 256 MiB, where the kernel
// must stop it, the host must keep working, vm-run must say why on stderr
// and in session_end, and the sandbox's cgroup must be gone afterwards.

// limitsEnv is what the limits tests need: vm-run, and the hierarchies the
// sandbox's cgroups go in.
type limitsEnv struct {
	bin string
	sys *cgroup.System
}

func setupLimits(t *testing.T) *limitsEnv {
	t.Helper()
	for _, ns := range sandbox.Namespaces {
		if err := sandbox.CheckNamespace(ns); err != nil {
			t.Skipf("needs a new user namespace with a %s namespace for uid %d: %v", ns.Name, os.Getuid(), err)
		}
	}
	for _, name := range []string{"strict", "dev"} {
		p, err := profiles.Load(name, profiles.Vars{Workspace: "/nonexistent", Home: "/nonexistent", TmpDir: sandbox.TmpDir})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range p.Landlock.Require {
			testkit.RequireLandlockFeature(t, f)
		}
	}
	sys, err := cgroup.Detect()
	if err != nil {
		t.Fatalf("cgroup.Detect() = %v", err)
	}
	if _, err := sys.Plan(cgroup.Limits{Pids: 1, Memory: 1}); errors.Is(err, cgroup.ErrNoController) {
		t.Skipf("needs the pids and memory cgroup controllers: %v", err)
	}
	e := &limitsEnv{bin: os.Getenv("VMRUN_BIN"), sys: sys}
	if e.bin == "" {
		e.bin = buildVMRun(t)
	}
	return e
}

// limitsUser is who runs vm-run: the caller, or uid 65534 started by root
// from the cgroups in procs (cgroup.procs files to move into first).
type limitsUser struct {
	name  string
	uid   int
	procs []string
	// lock are cgroups to make unwritable by the user once it is in
	// them (see notDelegated).
	lock []string
}

// vmRunResult is how one vm-run went.
type vmRunResult struct {
	code           int
	pid            int
	stdout, stderr string
	ledger         string
}

func (r vmRunResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// run runs vm-run --no-proxy as u with the profile file and argv, stdin
// from stdin (nil: /dev/null), stdout to a file or kept.
func (e *limitsEnv) run(t *testing.T, u limitsUser, dir, profile string, stdin, stdout *os.File, argv ...string) vmRunResult {
	t.Helper()
	ledger := filepath.Join(dir, fmt.Sprintf("ledger-%d.jsonl", len(must(os.ReadDir(dir)))))
	args := slices.Concat([]string{e.bin, "--no-proxy", "--profile", profile, "--workspace", filepath.Join(dir, "ws"), "--ledger", ledger, "--"}, argv)
	if u.uid != os.Getuid() {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skipf("setpriv (util-linux) is not installed, needed to run vm-run as uid %d: %v", u.uid, err)
		}
		id := strconv.Itoa(u.uid)
		args = append([]string{setpriv, "--reuid", id, "--regid", id, "--clear-groups"}, args...)
	}
	if len(u.procs) > 0 {
		// A shell moves itself into the cgroups, then becomes vm-run; the
		// cgroups to lock it locks once it is in (unlocking them first:
		// a test may run several times from the same).
		script := `for d in $VMRUN_TEST_LOCK; do chmod 0755 "$d" && chmod 0644 "$d/cgroup.procs" || exit 99; done
for p in $VMRUN_TEST_PROCS; do echo $$ > "$p" || exit 99; done
for d in $VMRUN_TEST_LOCK; do chmod 0444 "$d/cgroup.procs" && chmod 0555 "$d" || exit 99; done
exec "$@"`
		args = append([]string{"/bin/sh", "-c", script, "sh"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "VMRUN_TEST_PROCS="+strings.Join(u.procs, " "), "VMRUN_TEST_LOCK="+strings.Join(u.lock, " "))
	cmd.Stdin = stdin
	var out, errb strings.Builder
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %q: %v", args, err)
	}
	return vmRunResult{code: cmd.ProcessState.ExitCode(), pid: cmd.Process.Pid, stdout: out.String(), stderr: errb.String(), ledger: ledger}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// sessionEnd reads the session_end record of a ledger of one session.
func sessionEnd(t *testing.T, ledger string) audit.SessionEnd {
	t.Helper()
	f, err := os.Open(ledger)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	defer f.Close()
	var end *audit.SessionEnd
	err = audit.ReadRecords(f, func(_ int, _ []byte, r audit.Record, err error) error {
		if err == nil && r.Event == audit.EventSessionEnd {
			ev, err := audit.ReadEvent[audit.SessionEnd](r)
			if err != nil {
				return err
			}
			end = &ev
		}
		return nil
	})
	if err != nil || end == nil {
		t.Fatalf("no session_end in %s (%v)", ledger, err)
	}
	return *end
}

// limitsDir is a test's directory, with a workspace, owned by uid: where
// its profiles and ledgers go.
func limitsDir(t *testing.T, uid int) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := searchable(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "ws"), 0o755); err != nil {
		t.Fatal(err)
	}
	if uid != os.Getuid() {
		for _, d := range []string{dir, filepath.Join(dir, "ws")} {
			if err := os.Chown(d, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func writeProfile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// delegate makes a cgroup owned by uid in every hierarchy that holds a
// controller vm-run's limits use, as an administrator delegates one
// (cgroup-v2.rst "Delegation"; for V1, the directory, its cgroup.procs
// and tasks) and returns the cgroup.procs files to move a process into.
// On V2 the test's cgroup must offer the controllers to its children.
func delegate(t *testing.T, sys *cgroup.System, uid int) []string {
	t.Helper()
	name := fmt.Sprintf("vm-run-e2e-%d-%d", os.Getpid(), delegations.Add(1))
	var procs []string
	for _, h := range sys.Hierarchies {
		var used []string
		for _, c := range []string{"pids", "memory", "cpu"} {
			if h.Has(c) {
				used = append(used, c)
			}
		}
		if len(used) == 0 {
			continue
		}
		dir := filepath.Join(h.Mount, name)
		if h.Version == cgroup.V2 {
			ctl := filepath.Join(h.Mount, "cgroup.subtree_control")
			if err := os.WriteFile(ctl, []byte("+"+strings.Join(used, " +")), 0); err != nil {
				t.Fatalf("enable %q in %s: %v", used, ctl, err)
			}
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeTree(t, dir) })
		files := []string{dir, filepath.Join(dir, "cgroup.procs")}
		if h.Version == cgroup.V1 {
			files = append(files, filepath.Join(dir, "tasks"))
		} else {
			files = append(files, filepath.Join(dir, "cgroup.subtree_control"), filepath.Join(dir, "cgroup.threads"))
		}
		for _, f := range files {
			if err := os.Chown(f, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		procs = append(procs, filepath.Join(dir, "cgroup.procs"))
	}
	return procs
}

// delegations numbers the cgroups delegate makes.
var delegations atomic.Uint64

// inDelegatedCgroup returns prefix (a command that runs vm-run as uid) and
// env so that vm-run starts in a cgroup delegated to uid, as a user's
// session is: root's own cgroups are not the user's to write, and the
// built-in profiles' limits need one that is.
func inDelegatedCgroup(t *testing.T, uid int, prefix, env []string) ([]string, []string) {
	t.Helper()
	sys, err := cgroup.Detect()
	if err != nil {
		t.Fatalf("cgroup.Detect() = %v", err)
	}
	procs := delegate(t, sys, uid)
	script := `for p in $VMRUN_TEST_PROCS; do echo $$ > "$p" || exit 99; done; exec "$@"`
	return slices.Concat([]string{"/bin/sh", "-c", script, "sh"}, prefix),
		append(slices.Clone(env), "VMRUN_TEST_PROCS="+strings.Join(procs, " "))
}

// removeTree removes a cgroup and the cgroups beneath it, deepest first.
func removeTree(t *testing.T, dir string) {
	t.Helper()
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// leftBehind fails t if a cgroup of vm-run process pid exists.
func (e *limitsEnv) leftBehind(t *testing.T, pid int) {
	t.Helper()
	mine := regexp.MustCompile(fmt.Sprintf(`^%d-[0-9]+$`, pid))
	for _, h := range e.sys.Hierarchies {
		filepath.WalkDir(h.Mount, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && mine.MatchString(d.Name()) {
				t.Errorf("vm-run %d left its cgroup %s behind", pid, p)
			}
			return nil
		})
	}
}

func TestE2ELimits(t *testing.T) {
	e := setupLimits(t)
	users := []limitsUser{{name: "caller", uid: os.Getuid()}}
	if os.Getuid() == 0 {
		users = append(users, limitsUser{name: "uid 65534 delegated", uid: sandboxUID, procs: delegate(t, e.sys, sandboxUID)})
	}
	for _, u := range users {
		t.Run(u.name, func(t *testing.T) {
			for _, name := range []string{"strict", "standard", "dev"} {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					e.testForkBomb(t, u, name)
					e.testMemoryHog(t, u, name)
				})
			}
		})
	}
}

// testForkBomb starts sleeps in a loop, 100 more than the profile's pids
// limit: without the limit all start; with it the shell's fork fails and
// it gives up, which vm-run reports. The sleeps outlast any loop (on a
// loaded machine a thousand forks have taken over 30 s, and sleeps that
// ended early kept the sandbox under its limit); they end with the
// sandbox when the shell exits.
func (e *limitsEnv) testForkBomb(t *testing.T, u limitsUser, name string) {
	dir := limitsDir(t, u.uid)
	p, err := profiles.Load(name, profiles.Vars{Workspace: dir, Home: dir, TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatal(err)
	}
	limit := p.Limits.PidsMax()
	if limit == 0 {
		t.Fatalf("profile %s has no pids limit", name)
	}
	n := limit + 100
	bomb := fmt.Sprintf(`n=0; for i in $(seq %d); do sleep 600 >/dev/null 2>&1 & n=$((n+1)); done; echo started $n`, n)
	unlimited := writeProfile(t, dir, "unlimited", fmt.Sprintf("extends: %s\nlimits:\n  pids: ~\n", name))
	if r := e.run(t, u, dir, unlimited, nil, nil, "/bin/sh", "-c", bomb); r.code != 0 || r.stdout != fmt.Sprintf("started %d\n", n) {
		t.Fatalf("baseline, %s without a pids limit: %v; want all %d sleeps started", name, r, n)
	}
	own := writeProfile(t, dir, "own", "extends: "+name+"\n")
	r := e.run(t, u, dir, own, nil, nil, "/bin/sh", "-c", bomb)
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("the host cannot fork after the bomb: %v", err)
	}
	// The shell gives up at its first failed fork, but other forks in the
	// sandbox (the sleeps' own, the runtime's) may fail at the same time:
	// the count is at least one.
	want := regexp.MustCompile(fmt.Sprintf(`(?m)^vm-run: the sandbox reached the profile's process limit \(%d processes and threads\): (1 fork|[0-9]+ forks) failed$`, limit))
	if r.code != 2 || strings.Contains(r.stdout, "started") || !want.MatchString(r.stderr) ||
		!strings.Contains(r.stderr, "vm-run: hint: raise limits.pids in "+own) {
		t.Errorf("fork bomb under %s: %v; want dash's exit status 2 for a failed fork, and %q with a hint", name, r, want)
	}
	end := sessionEnd(t, r.ledger)
	if end.ExitStatus != 2 || end.Limits == nil || end.Limits.PidsMaxHits == 0 || end.Limits.OOMKills != 0 {
		t.Errorf("session_end = %+v (limits %+v); want exit 2 and pids_max_hits", end, end.Limits)
	}
	e.leftBehind(t, r.pid)
}

// testMemoryHog runs tail, which must hold a 512 MiB line (from head on
// the host) in memory: without a memory limit it gets to the end; with
// 256 MiB the OOM killer kills it, which vm-run reports.
func (e *limitsEnv) testMemoryHog(t *testing.T, u limitsUser, name string) {
	dir := limitsDir(t, u.uid)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	hog := func(profile string) vmRunResult {
		in, out, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		head := exec.Command("head", "-c", "536870912", "/dev/zero")
		head.Stdout = out
		if err := head.Start(); err != nil {
			t.Fatal(err)
		}
		out.Close()
		r := e.run(t, u, dir, profile, in, devnull, "tail")
		in.Close()
		head.Wait() // done, or killed by SIGPIPE
		return r
	}
	unlimited := writeProfile(t, dir, "unlimited", fmt.Sprintf("extends: %s\nlimits:\n  memory: ~\n", name))
	if r := hog(unlimited); r.code != 0 {
		t.Fatalf("baseline, %s without a memory limit: %v; want tail to hold 512 MiB", name, r)
	}
	limited := writeProfile(t, dir, "limited", fmt.Sprintf("extends: %s\nlimits:\n  memory: 256MiB\n", name))
	r := hog(limited)
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("the host cannot fork after the hog: %v", err)
	}
	want := "vm-run: the command was killed by the kernel's OOM killer: the sandbox reached the profile's memory limit (256 MiB)\n"
	if r.code != 137 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "vm-run: hint: raise limits.memory in "+limited) {
		t.Errorf("memory hog under %s with 256 MiB: %v; want 137 and %q with a hint", name, r, want)
	}
	end := sessionEnd(t, r.ledger)
	if end.ExitStatus != 137 || end.Signal != "SIGKILL" || end.Limits == nil || end.Limits.OOMKills == 0 {
		t.Errorf("session_end = %+v (limits %+v); want 137, SIGKILL and oom_kills", end, end.Limits)
	}
	e.leftBehind(t, r.pid)
}

// notDelegated returns a user with no cgroup of its own to write: as root,
// uid 65534 in root's cgroups; as another user, that user moved into a
// cgroup it then makes unwritable.
func (e *limitsEnv) notDelegated(t *testing.T) limitsUser {
	t.Helper()
	if os.Getuid() == 0 {
		return limitsUser{name: "uid 65534", uid: sandboxUID}
	}
	u := limitsUser{name: "caller in a cgroup it may not write", uid: os.Getuid()}
	name := fmt.Sprintf("not-delegated-%d", os.Getpid())
	for _, h := range e.sys.Hierarchies {
		if !slices.ContainsFunc([]string{"pids", "memory", "cpu"}, h.Has) {
			continue
		}
		own, _ := h.Dir(h.Self)
		dir := filepath.Join(own, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("make a cgroup beneath this user's own: %v", err)
		}
		t.Cleanup(func() {
			os.Chmod(dir, 0o755)
			removeTree(t, dir)
		})
		u.procs = append(u.procs, filepath.Join(dir, "cgroup.procs"))
		u.lock = append(u.lock, dir)
	}
	return u
}

// TestE2ELimitsRefused: a user without a delegated cgroup gets a clear
// error and a hint under a profile with limits, and runs, warned, under
// one that says best_effort: true.
func TestE2ELimitsRefused(t *testing.T) {
	e := setupLimits(t)
	u := e.notDelegated(t)
	dir := limitsDir(t, u.uid)
	r := e.run(t, u, dir, "strict", nil, nil, "/bin/sh", "-c", "echo ran")
	if r.code != sandbox.ExitSetup || r.stdout != "" ||
		!strings.Contains(r.stderr, "vm-run: error: cgroup: place ") ||
		!strings.Contains(r.stderr, "no cgroup is delegated to this user: uid "+strconv.Itoa(u.uid)+" may not write its own cgroup") ||
		!strings.Contains(r.stderr, "vm-run: hint: ") || !strings.Contains(r.stderr, "best_effort: true") {
		t.Errorf("%s under strict: %v; want exit 125 with the cgroup error and a hint", u.name, r)
	}
	if end := sessionEnd(t, r.ledger); end.ExitStatus != sandbox.ExitSetup || !strings.Contains(end.Error, "cgroup: place ") {
		t.Errorf("session_end = %+v; want exit 125 and the cgroup error", end)
	}
	best := writeProfile(t, dir, "best", "extends: strict\nbest_effort: true\n")
	r = e.run(t, u, dir, best, nil, nil, "/bin/sh", "-c", "echo ran")
	if r.code != 0 || r.stdout != "ran\n" || !strings.Contains(r.stderr, "vm-run: warning: cgroup: ") ||
		!strings.Contains(r.stderr, "the sandbox runs without the profile's limits (pids 512, memory ") {
		t.Errorf("%s under strict with best_effort: %v; want it to run, warned", u.name, r)
	}
}
