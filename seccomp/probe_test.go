//go:build linux && cgo

package seccomp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Probes run in a re-executed test binary because a loaded filter cannot be
// removed, and because some probes must kill the process. Each probe runs
// three times (after bubblewrap's tests/try-syscall.c and gVisor's
// TestRealDeal):
//
//   - unfiltered, to show that the call reaches the kernel and what the
//     kernel answers: harmless bad arguments (bad fds, NULL or unmapped
//     pointers, invalid flags or magic numbers) make it fail with EBADF,
//     EFAULT, EINVAL and the like, or it succeeds where that is harmless;
//   - under the real filter, expecting the rule's errno or death by SIGSYS;
//   - under the same filter with each rule's errno replaced by a marker
//     (markerBase plus the rule's index), expecting the marker of the rule the
//     probe is about. No kernel returns those numbers, so this run fails
//     without the filter even where the kernel itself answers EPERM to an
//     unprivileged caller (reboot, swapoff, ...), and it names the rule.
//
// Rules answering ENOSYS keep it in the marker filter: glibc's
// pthread_create, which the Go runtime calls for new threads in a cgo
// binary, tries clone3 first and falls back to clone only on ENOSYS. For
// those probes the unfiltered run must not be ENOSYS, which proves that the
// kernel has the call and the ENOSYS is the filter's.
const (
	probeEnv = "VMRUN_SECCOMP_PROBE" // probe name; set only in the child
	modeEnv  = "VMRUN_SECCOMP_MODE"  // modeNone, modeFilter or modeMarker
	allowEnv = "VMRUN_SECCOMP_ALLOW" // groups for Config.Allow, comma-separated

	modeNone   = "none"
	modeFilter = "filter"
	modeMarker = "marker"

	markerBase = 3000 // below MAX_ERRNO (4095), above every real errno
)

// Results are compared as strings: "ok", an errno name such as "EPERM",
// "errno 3007" for a marker, or "signal SIGSYS".
const (
	ok     = "ok"
	sigsys = "signal SIGSYS"
	// noIA32: int $0x80 faulted, the kernel has no ia32 entry
	// (sysprobe.ErrNoIA32).
	noIA32 = "fault (no ia32 entry)"
	// kernelAnswer as a probe's want means: the filter must not change
	// what the kernel answers.
	kernelAnswer = "same as unfiltered"
)

type probe struct {
	name string
	// rule is the syscall whose rule must answer, and argName the
	// Arg.Name of that rule when the syscall has several.
	rule, argName string
	allow         []string // groups lifted in the filtered runs
	// beforeLoad, if set, runs in the child before the filter is loaded.
	beforeLoad func()
	call       func() string
	// kernel lists what the kernel may answer without the filter to a
	// caller with CAP_SYS_ADMIN; user, if set, to one without capabilities.
	kernel, user []string
	want         string
	// since names the first kernel with the syscall; an older one answers
	// ENOSYS unfiltered and the probe is skipped.
	since string
	// beforeEntry lists unfiltered answers that come before system call
	// entry, where seccomp runs: the filtered runs must answer the same.
	beforeEntry []string
}

func TestMain(m *testing.M) {
	if name := os.Getenv(probeEnv); name != "" {
		os.Exit(probeChild(name, os.Getenv(modeEnv), os.Getenv(allowEnv)))
	}
	os.Exit(m.Run())
}

// probeChild runs one probe and prints its result.
func probeChild(name, mode, allow string) int {
	i := slices.IndexFunc(probes, func(p probe) bool { return p.name == name })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "no probe %q\n", name)
		return 2
	}
	p := probes[i]
	// A SIGSYS death would otherwise leave a core file behind.
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	// Keep the probe on the thread that loads the filter; TSYNC covers the
	// others, and the tsync probe checks that separately.
	runtime.LockOSThread()
	if p.beforeLoad != nil {
		p.beforeLoad()
	}
	if mode != modeNone {
		c := Config{}
		if allow != "" {
			c.Allow = strings.Split(allow, ",")
		}
		var errnoOf func(int) syscall.Errno
		if mode == modeMarker {
			errnoOf = markerErrno
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "set no_new_privs: %v\n", err)
			return 2
		}
		if err := load(c, errnoOf); err != nil {
			fmt.Fprintf(os.Stderr, "load: %v\n", err)
			return 2
		}
	}
	fmt.Println(p.call())
	return 0
}

// markerErrno is the errno rule i answers in the marker filter.
func markerErrno(i int) syscall.Errno {
	if rules[i].Errno == syscall.ENOSYS {
		return syscall.ENOSYS
	}
	return syscall.Errno(markerBase + i)
}

// errnoResult renders the outcome of a raw syscall.
func errnoResult(errno syscall.Errno) string {
	if errno == 0 {
		return ok
	}
	if n := unix.ErrnoName(errno); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// runProbe runs p in a child process in the given mode and returns its
// result.
func runProbe(t *testing.T, p probe, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"="+p.name, modeEnv+"="+mode,
		allowEnv+"="+strings.Join(p.allow, ","),
		// A race-enabled child would sleep a second at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws := exit.Sys().(syscall.WaitStatus); ws.Signaled() {
			return "signal " + unix.SignalName(ws.Signal())
		}
	}
	if err != nil {
		t.Fatalf("probe %s (%s): %v; stderr: %s", p.name, mode, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// privileged reports whether this process has CAP_SYS_ADMIN, which decides
// what the kernel answers to several probes before it looks at arguments.
func privileged(t *testing.T) bool {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, found := strings.CutPrefix(s.Text(), "CapEff:"); found {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// requireLoadable skips when this libseccomp and kernel cannot load the
// filter, naming what is missing.
func requireLoadable(t *testing.T) {
	t.Helper()
	api, err := APILevel()
	if err != nil || api < minAPI {
		t.Skipf("libseccomp %s API level %d (%v): need %d for TSYNC and SECCOMP_RET_KILL_PROCESS",
			LibraryVersion(), api, err, minAPI)
	}
}

func TestProbes(t *testing.T) {
	requireAMD64(t) // the probes use x86-64 syscall numbers
	requireLoadable(t)
	priv := privileged(t)
	t.Logf("CAP_SYS_ADMIN: %v", priv)
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			kernel := runProbe(t, p, modeNone)
			if kernel == "ENOSYS" && p.since != "" {
				t.Skipf("kernel lacks %s (%s)", p.rule, p.since)
			}
			wantKernel := p.kernel
			if !priv && p.user != nil {
				wantKernel = p.user
			}
			if !slices.Contains(wantKernel, kernel) {
				t.Errorf("unfiltered: %s, want one of %q", kernel, wantKernel)
			}

			want := p.want
			if want == kernelAnswer {
				want = kernel
			}
			if slices.Contains(p.beforeEntry, kernel) {
				t.Logf("unfiltered: %s, before system call entry: the filter cannot be shown here", kernel)
				want = kernel
			}
			filtered := runProbe(t, p, modeFilter)
			if filtered != want {
				t.Errorf("filtered (allow %q): %s, want %s (unfiltered: %s)", p.allow, filtered, want, kernel)
			}

			wantMarker := want
			if p.want != kernelAnswer && p.want != sigsys {
				wantMarker = markerFor(t, p)
			}
			if p.want == "ENOSYS" && kernel == "ENOSYS" {
				t.Errorf("unfiltered: ENOSYS, so the filtered ENOSYS proves nothing")
			}
			marker := runProbe(t, p, modeMarker)
			if marker != wantMarker {
				t.Errorf("marker filter (allow %q): %s, want %s (%s)", p.allow, marker, wantMarker, describeMarker(marker))
			}
			t.Logf("unfiltered %s, filtered %s, marker %s", kernel, filtered, marker)
		})
	}
}

// markerFor returns the marker result of the rule p is about, and checks
// that the rule's errno is what p wants.
func markerFor(t *testing.T, p probe) string {
	t.Helper()
	for i, r := range Rules() {
		if r.Syscall != p.rule || (p.argName != "" && (r.Arg == nil || r.Arg.Name != p.argName)) {
			continue
		}
		if got := errnoResult(r.Errno); got != p.want {
			t.Fatalf("probe wants %s but rule %q answers %s", p.want, r, got)
		}
		return errnoResult(markerErrno(i))
	}
	t.Fatalf("no rule for syscall %q with argument %q", p.rule, p.argName)
	return ""
}

// describeMarker names the rule behind a marker result, for failure messages.
func describeMarker(result string) string {
	n, err := strconv.Atoi(strings.TrimPrefix(result, "errno "))
	if i := n - markerBase; err == nil && i >= 0 && i < len(rules) {
		return "rule " + rules[i].String()
	}
	return "no rule"
}

func TestEveryRuleProbed(t *testing.T) {
	requireAMD64(t)
	probed := map[string]bool{}
	for _, p := range probes {
		probed[p.rule+"/"+p.argName] = true
	}
	count := map[string]int{}
	for _, r := range Rules() {
		count[r.Syscall]++
	}
	for _, r := range Rules() {
		_, present, err := resolve(r.Syscall)
		if err != nil {
			t.Fatal(err)
		}
		if !present {
			continue // no such syscall on this architecture
		}
		key := r.Syscall + "/"
		if count[r.Syscall] > 1 {
			key += r.Arg.Name
		}
		if !probed[key] {
			t.Errorf("rule %q has no probe", r)
		}
	}
}
