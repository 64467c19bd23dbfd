package sandbox_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// requireCgroup skips t unless this process may create a sandbox cgroup
// with l: the kernel must have the controllers, and the caller be root or
// have a delegated cgroup. On CI (CI=true) scripts/test.sh delegates one
// to the unprivileged uid, so only a missing controller skips there.
func requireCgroup(t *testing.T, l cgroup.Limits) *cgroup.System {
	t.Helper()
	sys, err := cgroup.Detect()
	if err != nil {
		t.Fatalf("cgroup.Detect() = %v", err)
	}
	_, err = sys.Plan(l)
	switch {
	case errors.Is(err, cgroup.ErrNoController):
		t.Skipf("needs the cgroup controllers of %v: %v", l, err)
	case errors.Is(err, cgroup.ErrNotDelegated) && os.Getenv("CI") != "true":
		t.Skipf("needs a cgroup delegated to uid %d (scripts/test.sh makes one): %v", os.Getuid(), err)
	case err != nil:
		t.Fatalf("Plan(%v) = %v", l, err)
	}
	return sys
}

// cgroupDir returns the directory of the cgroup of pid in the hierarchy
// of sys that holds controller c.
func cgroupDir(t *testing.T, sys *cgroup.System, pid int, c string) string {
	t.Helper()
	i := slices.IndexFunc(sys.Hierarchies, func(h cgroup.Hierarchy) bool { return h.Has(c) })
	h := sys.Hierarchies[i]
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == h.Options {
			if dir, ok := h.Dir(parts[2]); ok {
				return dir
			}
		}
	}
	t.Fatalf("process %d is in no cgroup of %s: %q", pid, h, b)
	return ""
}

// TestCgroupView checks what the sandbox sees of cgroups under the
// built-in strict profile: its own cgroup namespace (every line of
// /proc/self/cgroup is "/"), at /sys/fs/cgroup its own cgroup alone, with
// strict's limits (512 tasks, a quarter of the host's memory), read-only;
// and that the cgroup is gone once the command has ended.
func TestCgroupView(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	p := b.profile(t, "strict")
	want, err := sandbox.CgroupLimits(p.Limits)
	if err != nil {
		t.Fatal(err)
	}
	sys := requireCgroup(t, want)
	if want.Pids != 512 || want.Memory != (memTotal(t)/4)&^(1<<20-1) {
		t.Fatalf("strict's limits here = %v; want 512 tasks and a quarter of MemTotal", want)
	}
	var pidsMax, memMax string
	var mounts []string
	for _, c := range []string{"pids", "memory"} {
		i := slices.IndexFunc(sys.Hierarchies, func(h cgroup.Hierarchy) bool { return h.Has(c) })
		h := sys.Hierarchies[i]
		file := map[string]string{"pids": "pids.max", "memory": "memory.max"}[c]
		if h.Version == cgroup.V1 && c == "memory" {
			file = "memory.limit_in_bytes"
		}
		path := filepath.Join(h.Mount, file)
		if c == "pids" {
			pidsMax = path
		} else {
			memMax = path
		}
		if m := strings.TrimPrefix(h.Mount, cgroup.Root+"/"); !slices.Contains(mounts, m) && m != cgroup.Root {
			mounts = append(mounts, m)
		}
	}
	slices.Sort(mounts)
	script := fmt.Sprintf(`cat /proc/self/cgroup | cut -d: -f3 | sort -u
echo --
ls %s
echo --
cat %s %s
echo --
(echo 1 > %s) 2>&1; true`, cgroup.Root, pidsMax, memMax, pidsMax)
	var dir string
	r := run(t, b.build(t, p, "/bin/sh", "-c", script), "", func(proc *sandbox.Process) {
		dir = cgroupDir(t, sys, proc.Pid, "pids")
	})
	if r.err != nil || r.st != (sandbox.Status{}) {
		t.Fatalf("%v", r)
	}
	sections := strings.Split(r.stdout, "--\n")
	if len(sections) != 4 {
		t.Fatalf("output %q, want 4 sections", r.stdout)
	}
	if sections[0] != "/\n" {
		t.Errorf("cgroup paths in /proc/self/cgroup = %q, want only /", sections[0])
	}
	if len(mounts) > 0 && sections[1] != strings.Join(mounts, "\n")+"\n" {
		t.Errorf("ls %s = %q, want the sandbox's hierarchies %q only", cgroup.Root, sections[1], mounts)
	}
	if got, want := sections[2], fmt.Sprintf("%d\n%d\n", want.Pids, want.Memory); got != want {
		t.Errorf("limits inside = %q, want %q", got, want)
	}
	if !strings.Contains(sections[3], "Read-only file system") {
		t.Errorf("writing pids.max inside: %q, want EROFS", sections[3])
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the sandbox's cgroup %s is still there (%v)", dir, err)
	}
}

// TestCgroupViewWithoutLimits: a sandbox without cgroup limits has no
// cgroup of its own and sees an empty /sys/fs/cgroup, still in a cgroup
// namespace of its own.
func TestCgroupViewWithoutLimits(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	p := b.profile(t, "strict")
	p.Limits.Pids, p.Limits.Memory = nil, nil
	r := run(t, b.build(t, p, "/bin/sh", "-c", "cut -d: -f3 /proc/self/cgroup | sort -u; ls -A "+cgroup.Root), "", nil)
	if r.err != nil || r.st != (sandbox.Status{}) || r.stdout != "/\n" {
		t.Errorf("%v; want only / and an empty %s", r, cgroup.Root)
	}
}

// TestForkBombContained runs a fork probe that keeps trying (600 sleeps,
// retrying refused forks for a while) under strict: without a pids limit
// it starts them all; with strict's 512 the kernel refuses the rest, the
// host can still fork while the sandbox is full, and the status counts
// the refusals.
func TestForkBombContained(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	p := b.profile(t, "strict")
	sys := requireCgroup(t, cgroup.Limits{Pids: 512})

	unlimited := *p
	unlimited.Limits.Pids = nil
	r := run(t, b.probeUnder(t, &unlimited, "forks", "600"), "", nil)
	if r.err != nil || r.st != (sandbox.Status{}) || r.stdout != "started 600 refused 0\n" {
		t.Fatalf("baseline without a pids limit: %v; want all 600 started", r)
	}

	var full bool
	var hostErr error
	r = run(t, b.probeUnder(t, p, "forks", "600"), "", func(proc *sandbox.Process) {
		dir := cgroupDir(t, sys, proc.Pid, "pids")
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			cur, _ := os.ReadFile(filepath.Join(dir, "pids.current"))
			if strings.TrimSpace(string(cur)) == "512" {
				full = true
				break
			}
		}
		// The host is not the sandbox: it forks while the sandbox cannot.
		hostErr = exec.Command("/bin/true").Run()
	})
	if !full {
		t.Errorf("the sandbox never held 512 tasks")
	}
	if hostErr != nil {
		t.Errorf("the host could not run /bin/true while the sandbox was full: %v", hostErr)
	}
	var started, refused int
	if _, err := fmt.Sscanf(r.stdout, "started %d refused %d\n", &started, &refused); err != nil || r.err != nil ||
		started >= 600 || refused == 0 || r.st.Limits.PidsMax == 0 {
		t.Errorf("under strict: %v, limits %+v; want refused forks, counted", r, r.st.Limits)
	}
}

// TestMemoryHogContained runs a command that holds 512 MiB under strict
// with a 256 MiB memory limit: it runs to the end without the limit; with
// it the OOM killer ends it, and the status says so.
func TestMemoryHogContained(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	requireCgroup(t, cgroup.Limits{Memory: 256 << 20})
	const hog = "head -c 536870912 /dev/zero | tail | wc -c"
	p := b.profile(t, "strict")
	p.Limits.Memory = nil
	r := run(t, b.build(t, p, "/bin/sh", "-c", hog), "", nil)
	if r.err != nil || r.st != (sandbox.Status{}) || r.stdout != "536870912\n" {
		t.Fatalf("baseline without a memory limit: %v; want tail to hold 512 MiB", r)
	}
	limit := profiles.Share("256MiB")
	p.Limits.Memory = &limit
	// tail itself is the command, reading the same 512 MiB line, from
	// head on the host.
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
	defer head.Wait()
	defer in.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	st, err := sandbox.Run(b.build(t, p, "/usr/bin/tail"), sandbox.Stdio{Stdin: in, Stdout: devnull, Stderr: devnull}, nil)
	if err != nil || !st.OOMKilled() || st.ExitCode() != 137 || st.String() != "killed by the OOM killer (signal 9)" {
		t.Errorf("tail under a 256 MiB limit: %v, %v, limits %+v; want the OOM killer's SIGKILL, counted", st, err, st.Limits)
	}
}

// probeUnder builds the spec that runs the test binary's probe under p.
func (b *box) probeUnder(t *testing.T, p *profiles.Profile, args ...string) *sandbox.Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := b.options(append([]string{probeArg0}, args...)...)
	o.ExtraExec = []string{exe, "/bin/sleep"}
	s, err := sandbox.Build(p, o)
	if err != nil {
		t.Fatalf("Build(%q, probe %q): %v", p.Name, args, err)
	}
	s.Path = exe
	return s
}

// forkProbe starts n sleeps, retrying a refused fork (EAGAIN) until none
// has succeeded for two seconds, and prints how many it started and how
// many times it was refused. The sleeps die with the sandbox.
//
// The probe is a Go program inside the cgroup it fills, so it must never
// need a new OS thread once the cgroup is full: a failed pthread_create
// aborts the runtime. It therefore runs on one P with the collector off,
// forks with a raw clone (no scheduler hand-off while it waits), and
// starts a few threads up front that the runtime keeps idle and reuses
// for the hand-offs its few ordinary system calls (the final write) may
// still cause.
func forkProbe(n int) int {
	warmThreads(8)
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	argv0, _ := syscall.BytePtrFromString("/bin/sleep")
	argv, _ := syscall.SlicePtrFromStrings([]string{"/bin/sleep", "60"})
	envv, _ := syscall.SlicePtrFromStrings(nil)
	started, refused := 0, 0
	last := time.Now()
	for started < n && time.Since(last) < 2*time.Second {
		switch err := rawSpawn(argv0, &argv[0], &envv[0]); err {
		case 0:
			started++
			last = time.Now()
		case syscall.EAGAIN:
			refused++
			time.Sleep(time.Millisecond)
		default:
			fmt.Println(err)
			return 1
		}
	}
	fmt.Printf("started %d refused %d\n", started, refused)
	return 0
}

// rawSpawn forks with clone(SIGCHLD) and execs argv0 in the child, which
// makes raw system calls only: after fork(2) the child has one thread and
// must not enter the Go runtime. The child exits 127 if the exec fails.
func rawSpawn(argv0 *byte, argv, envv **byte) syscall.Errno {
	pid, _, err := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if err != 0 {
		return err
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(argv0)), uintptr(unsafe.Pointer(argv)), uintptr(unsafe.Pointer(envv)))
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
	}
	return 0
}

// warmThreads makes the runtime start n OS threads, n goroutines blocked
// in a system call at once, which it then keeps idle for later use.
func warmThreads(n int) {
	runtime.GOMAXPROCS(n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ts := syscall.Timespec{Nsec: int64(20 * time.Millisecond)}
			syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		})
	}
	wg.Wait()
}

// TestCgroupRemovedAfterSetupError: a sandbox whose command cannot start
// leaves no cgroup behind either. Not parallel: it looks for every cgroup
// of this process.
func TestCgroupRemovedAfterSetupError(t *testing.T) {
	b := newBox(t)
	sys := requireCgroup(t, cgroup.Limits{Pids: 512})
	for _, argv := range [][]string{{"vm-run-no-such-command"}, {"/usr/bin"}} {
		r := run(t, b.spec(t, "strict", argv...), "", nil)
		var se *sandbox.SetupError
		if !errors.As(r.err, &se) {
			t.Fatalf("run %q: %v; want a setup error", argv, r)
		}
	}
	mine := regexp.MustCompile(fmt.Sprintf(`^%d-[0-9]+$`, os.Getpid()))
	for _, h := range sys.Hierarchies {
		if !h.Has("pids") && !h.Has("memory") {
			continue
		}
		filepath.WalkDir(h.Mount, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && mine.MatchString(d.Name()) {
				t.Errorf("cgroup %s is left behind", p)
			}
			return nil
		})
	}
}
