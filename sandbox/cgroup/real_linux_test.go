package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests run against the kernel's own cgroupfs: as root, or as a user
// with a delegated cgroup (scripts/test.sh delegates one to uid 65534 in
// every hierarchy before it runs the tests as that uid).

// leafEnv makes the test binary the helper of TestRealV2Leaf.
const leafEnv = "VMRUN_CGROUP_TEST_LEAF"

func TestMain(m *testing.M) {
	if c := os.Getenv(leafEnv); c != "" {
		os.Exit(leafMain(strings.Fields(c)))
	}
	os.Exit(m.Run())
}

// realSystem detects this process's cgroups, failing t where that fails.
func realSystem(t *testing.T) *System {
	t.Helper()
	s, err := Detect()
	if err != nil {
		t.Fatalf("Detect() = %v", err)
	}
	return s
}

// requirePlan plans l on the real system, skipping t only where the kernel
// lacks a controller, or, off CI, where this user has no delegated cgroup:
// on CI (CI=true) the test harness delegates one, and its absence fails.
func requirePlan(t *testing.T, s *System, l Limits, v Version) *Plan {
	t.Helper()
	for _, c := range l.Controllers() {
		if !slices.ContainsFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Version == v && h.Has(c) }) {
			where := "in no mounted hierarchy"
			if i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Has(c) }); i >= 0 {
				where = "on " + s.Hierarchies[i].String()
			}
			t.Skipf("needs the %s controller on cgroup %s; this kernel has it %s", c, v, where)
		}
	}
	p, err := s.Plan(l)
	if errors.Is(err, ErrNotDelegated) && os.Getenv("CI") != "true" {
		t.Skipf("needs a cgroup delegated to uid %d (scripts/test.sh makes one): %v", os.Getuid(), err)
	}
	if err != nil {
		t.Fatalf("Plan(%v) = %v", l, err)
	}
	return p
}

// held starts sh -c script, which waits for a line on its stdin before it
// runs the rest: the caller moves it into a cgroup first.
func held(t *testing.T, script string) (*exec.Cmd, io.WriteCloser, *strings.Builder) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "read go; "+script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, in, &out
}

// forks starts count sleeps in the background and says how many it
// started: the fork probe, which pids.max must stop.
const forks = `n=0; for i in $(seq %d); do sleep 5 >/dev/null 2>&1 & n=$((n+1)); done; echo started $n`

// hog makes tail hold 256 MiB, one line of NULs (it prints the last ten
// lines, and must keep the one until its end), in memory.
const hog = `head -c 268435456 /dev/zero | tail | wc -c`

// runIn runs script, in g when g is not nil, and returns its output and
// exit error.
func runIn(t *testing.T, g *Group, script string) (string, error) {
	t.Helper()
	cmd, in, out := held(t, script)
	if g != nil {
		if err := g.Add(cmd.Process.Pid); err != nil {
			t.Fatalf("Add(%d) = %v", cmd.Process.Pid, err)
		}
	}
	fmt.Fprintln(in, "go")
	in.Close()
	err := cmd.Wait()
	return out.String(), err
}

// TestRealLimits runs a fork probe and a memory hog in a cgroup of each
// version this kernel can give pids and memory limits on: each first
// outside it, where it must succeed, then inside, where the kernel must
// stop it and count the event, and the cgroup must go with Remove, the
// sleeps the fork probe left in it killed.
func TestRealLimits(t *testing.T) {
	script := fmt.Sprintf(forks, 40)
	probes := []struct {
		name   string
		limits Limits
		script string
		ok     string // the probe's output when not stopped
		want   Events
	}{
		{"fork", Limits{Pids: 16}, script, "started 40", Events{PidsMax: 1}},
		{"memory", Limits{Memory: 64 << 20}, hog, "268435456", Events{OOMKills: 1}},
	}
	for _, v := range []Version{V1, V2} {
		for _, p := range probes {
			t.Run(v.String()+" "+p.name, func(t *testing.T) {
				s := realSystem(t)
				plan := requirePlan(t, s, p.limits, v)
				if out, err := runIn(t, nil, p.script); err != nil || strings.TrimSpace(out) != p.ok {
					t.Fatalf("baseline %q: %v, %q; want %q", p.script, err, out, p.ok)
				}
				g, err := plan.Create()
				if err != nil {
					t.Fatalf("Create() = %v", err)
				}
				defer g.Remove()
				if out, _ := runIn(t, g, p.script); strings.TrimSpace(out) == p.ok {
					t.Errorf("%q in a cgroup with %v: %q; want it stopped", p.script, p.limits, out)
				}
				ev, err := g.Events()
				if err != nil || ev.PidsMax < p.want.PidsMax || ev.OOMKills < p.want.OOMKills ||
					p.want.PidsMax == 0 && ev.PidsMax != 0 || p.want.OOMKills == 0 && ev.OOMKills != 0 {
					t.Errorf("Events() = %+v, %v; want at least %+v", ev, err, p.want)
				}
				dirs := g.Dirs()
				start := time.Now()
				if err := g.Remove(); err != nil {
					t.Fatalf("Remove() = %v", err)
				}
				for _, d := range dirs {
					if _, err := os.Stat(d); !os.IsNotExist(err) {
						t.Errorf("%s still exists after Remove (%v)", d, err)
					}
				}
				t.Logf("Remove took %v", time.Since(start))
			})
		}
	}
}

// TestRealMounts checks what the sandbox would mount: the hierarchies of
// its cgroup, where the host mounts them.
func TestRealMounts(t *testing.T) {
	s := realSystem(t)
	plan := requirePlan(t, s, Limits{Pids: 64}, V1)
	g, err := plan.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Has("pids") })
	want := []Mount{{Target: s.Hierarchies[i].Mount, Type: "cgroup", Data: s.Hierarchies[i].Options}}
	if got := g.Mounts(); len(got) != 1 || got[0].Target != want[0].Target || got[0].Type != want[0].Type || got[0].Data != want[0].Data {
		t.Errorf("Mounts() = %+v, want %+v", got, want)
	}
}

// TestRealV2 runs the V2 operations this kernel's V2 hierarchy allows,
// whatever controllers it offers (none of pids, memory and cpu here, whose
// limits TestRealLimits covers where it can): finding the delegated
// cgroup, creating vm-run's base with the controllers enabled and the
// sandbox's cgroup under it, moving a process in, cgroup.events, and
// removal of a populated cgroup through cgroup.kill.
func TestRealV2(t *testing.T) {
	s := realSystem(t)
	i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Version == V2 })
	if i < 0 {
		t.Skip("needs a mounted cgroup v2 hierarchy")
	}
	h := s.Hierarchies[i]
	deleg, err := s.delegation(h)
	if errors.Is(err, ErrNotDelegated) && os.Getenv("CI") != "true" {
		t.Skipf("needs a cgroup v2 cgroup delegated to uid %d (scripts/test.sh makes one): %v", os.Getuid(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pt := part{h: h, controllers: h.Controllers, deleg: deleg, base: path.Join(deleg, Base)}
	m, err := s.create(pt, fmt.Sprintf("%d-test-%d", s.pid, seq.Add(1)), Limits{})
	if err != nil {
		t.Fatalf("create under %s: %v", deleg, err)
	}
	g := &Group{sys: s, parts: []member{m}}
	defer g.Remove()
	base, _ := h.Dir(pt.base)
	if b, err := os.ReadFile(filepath.Join(base, "cgroup.subtree_control")); err != nil || !slices.Equal(strings.Fields(string(b)), h.Controllers) {
		t.Errorf("%s/cgroup.subtree_control = %q, %v; want %q", base, b, err, h.Controllers)
	}
	checkFile(t, filepath.Join(m.dir, "cgroup.events"), "populated 0\nfrozen 0")
	cmd, in, _ := held(t, "sleep 60")
	defer in.Close()
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatalf("Add = %v", err)
	}
	proc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if got, ok := cgroupOf(proc, h); !ok || got != m.path {
		t.Errorf("/proc/%d/cgroup = %q; want %s in v2", cmd.Process.Pid, proc, m.path)
	}
	checkFile(t, filepath.Join(m.dir, "cgroup.events"), "populated 1\nfrozen 0")
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove() of a populated cgroup = %v", err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process in the removed cgroup ended with %v; want killed", err)
	}
	if _, err := os.Stat(m.dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", m.dir, err)
	}
}

// TestRealV2Leaf checks, with a real process alone in a V2 cgroup of its
// own, that enabling controllers for its children moves it into a leaf
// first (the kernel refuses controllers in a cgroup with processes).
func TestRealV2Leaf(t *testing.T) {
	s := realSystem(t)
	i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Version == V2 && len(h.Controllers) > 0 })
	if i < 0 {
		t.Skip("needs a mounted cgroup v2 hierarchy with a controller")
	}
	h := s.Hierarchies[i]
	deleg, err := s.delegation(h)
	if errors.Is(err, ErrNotDelegated) && os.Getenv("CI") != "true" {
		t.Skipf("needs a cgroup v2 cgroup delegated to uid %d: %v", os.Getuid(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// A scope of the helper's own, as systemd-run --scope makes, in the
	// delegated cgroup, which passes the controllers on.
	if err := s.enable(h, deleg, h.Controllers); err != nil {
		t.Fatalf("enable %q in %s: %v", h.Controllers, deleg, err)
	}
	scope := path.Join(deleg, fmt.Sprintf("leaf-test-%d", os.Getpid()))
	dir, _ := h.Dir(scope)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		subs, _ := os.ReadDir(dir)
		for _, e := range subs {
			if e.IsDir() {
				s.remove(member{h: h, path: path.Join(scope, e.Name()), dir: filepath.Join(dir, e.Name())})
			}
		}
		s.remove(member{h: h, path: scope, dir: dir})
	}()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), leafEnv+"="+strings.Join(h.Controllers, " "))
	in, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := (osFS{}).WriteFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(cmd.Process.Pid)); err != nil {
		t.Fatalf("move the helper into %s: %v", dir, err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out.String())
	}
	want := fmt.Sprintf("moved to %s/vm-run-%d; %s enabled in %s", scope, cmd.Process.Pid, strings.Join(h.Controllers, " "), scope)
	if got := strings.TrimSpace(out.String()); got != want {
		t.Errorf("helper said %q, want %q", got, want)
	}
}

// leafMain is the helper of TestRealV2Leaf: once its parent has moved it
// into a cgroup of its own (it closes stdin), it enables controllers for
// that cgroup's children as Plan.Create would.
func leafMain(controllers []string) int {
	io.Copy(io.Discard, os.Stdin)
	s, err := Detect()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	i := slices.IndexFunc(s.Hierarchies, func(h Hierarchy) bool { return h.Version == V2 })
	h := s.Hierarchies[i]
	if err := s.enable(h, h.Self, controllers); err != nil {
		fmt.Println(err)
		return 1
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	now, _ := cgroupOf(after, h)
	dir, _ := h.Dir(h.Self)
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	fmt.Printf("moved to %s; %s enabled in %s\n", now, strings.TrimSpace(string(b)), h.Self)
	return 0
}
