package sandbox_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vm-run/vm-run/sandbox"
)

// TestRunFds leaks a descriptor into vm-run, as a careless caller would: the
// command must see its standard streams and nothing else.
func TestRunFds(t *testing.T) {
	// Not parallel: the leaked descriptor would reach every process the
	// other tests start meanwhile.
	b := newBox(t)
	leak := filepath.Join(b.root, "leaked")
	b.writeFile(t, leak, "secret\n", 0o644)
	fd, err := syscall.Open(leak, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	out := mustRun(t, b.spec(t, "strict", "ls", "-l", "/proc/self/fd/"))
	var fds []int
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue // "total 0"
		}
		n, err := strconv.Atoi(f[len(f)-3])
		if err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
		target := f[len(f)-1]
		// ls lists the directory through a descriptor of its own.
		if n > 2 && !(strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd")) {
			t.Errorf("the command has fd %d -> %s, want only 0, 1, 2 and ls's own", n, target)
		}
		fds = append(fds, n)
	}
	if len(fds) < 3 || !slices.Equal(fds[:3], []int{0, 1, 2}) {
		t.Errorf("fds %v in\n%s\nwant 0, 1 and 2 first", fds, out)
	}
}

func TestRunEnv(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	s := b.spec(t, "strict", "env")
	got := slices.Sorted(slices.Values(lines(mustRun(t, s))))
	want := slices.Sorted(slices.Values(s.Env))
	if !slices.Equal(got, want) {
		t.Errorf("env = %q, want the spec's %q", got, want)
	}
	for _, kv := range got {
		if strings.HasPrefix(kv, "VMRUN_TEST_SECRET=") {
			t.Errorf("env has %q, which the strict profile does not pass", kv)
		}
	}
	if !slices.Contains(got, "TMPDIR="+sandbox.TmpDir) || !slices.Contains(got, "HOME="+b.home) {
		t.Errorf("env = %q, want TMPDIR=%s and HOME=%s", got, sandbox.TmpDir, b.home)
	}
}

// TestRunCredentials reads the command's own /proc/self/status.
func TestRunCredentials(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	out := mustRun(t, b.spec(t, "strict", "cat", "/proc/self/status"))
	st := map[string]string{}
	for _, l := range lines(out) {
		if k, v, ok := strings.Cut(l, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	ids := func(id int) string { return strings.Repeat(strconv.Itoa(id)+"\t", 3) + strconv.Itoa(id) }
	want := map[string]string{
		"CapInh":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2", // SECCOMP_MODE_FILTER (proc_pid_status(5))
		"Uid":        ids(b.uid),
		"Gid":        ids(b.gid),
	}
	if os.Getuid() == 0 {
		want["Groups"] = "" // root's supplementary groups are dropped
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("/proc/self/status %s = %q, want %q", k, st[k], v)
		}
	}
}

func TestRunHostname(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	if out := mustRun(t, b.sh(t, "strict", "uname -n; cat /proc/sys/kernel/hostname")); out != "vm-run\nvm-run\n" {
		t.Errorf("hostname = %q, want vm-run twice", out)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if host == "vm-run" {
		t.Errorf("the host's hostname became %q", host)
	}
}

// TestRunPrivateTmp checks that /tmp is a fresh tmpfs: writable, holding
// only the way to the kept workspace, its writes invisible to the host.
func TestRunPrivateTmp(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	hostFile, err := os.CreateTemp(sandbox.TmpDir, "vm-run-sandbox-test-host-")
	if err != nil {
		t.Fatal(err)
	}
	hostFile.Close()
	t.Cleanup(func() { os.Remove(hostFile.Name()) })
	inside := filepath.Join(sandbox.TmpDir, filepath.Base(b.root)+"-inside")
	script := fmt.Sprintf(`ls -A /tmp; echo --; ls -A %s; echo --; stat -f -c %%T /tmp; echo data > %s && cat %s`, b.root, inside, inside)
	out := mustRun(t, b.sh(t, "strict", script))
	want := fmt.Sprintf("%s\n--\nws\n--\ntmpfs\ndata\n", filepath.Base(b.root))
	if out != want {
		t.Errorf("in the sandbox:\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s on the host = %v, want it not to exist", inside, err)
	}
}

// TestRunHiddenDirs grants reading the hidden directories themselves: each
// is an empty tmpfs, however much the host's holds.
func TestRunHiddenDirs(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	if f, err := os.CreateTemp("/dev/shm", "vm-run-sandbox-test-"); err == nil {
		f.Close()
		t.Cleanup(func() { os.Remove(f.Name()) })
	}
	dirs := []string{"/run", "/var/run/", "/dev/shm", "/var/tmp"}
	p := b.profile(t, "strict")
	p.Filesystem.Read = append(p.Filesystem.Read, "/run", "/dev/shm", "/var/tmp")
	script := `for d in "$@"; do echo "$d:"; ls -A "$d" || exit 1; done`
	out := mustRun(t, b.build(t, p, append([]string{"/bin/sh", "-c", script, "sh"}, dirs...)...))
	var want string
	for _, d := range dirs {
		want += d + ":\n"
	}
	if out != want {
		t.Errorf("ls -A each of %q =\n%s\nwant\n%s", dirs, out, want)
	}
}

// TestRunWorkspace writes to the workspace under strict, where it is
// read-only though it sits in the private temp dir's place (which strict
// makes writable), and under standard, where writes reach the host.
func TestRunWorkspace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		profile  string
		writable bool
	}{
		{"strict", false},
		{"standard", true},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			t.Parallel()
			b := newBox(t)
			b.writeFile(t, filepath.Join(b.ws, "old"), "old\n", 0o644)
			b.writeFile(t, filepath.Join(b.ws, "gone"), "", 0o644)
			script := `cat old
for step in "echo new > new" "echo more >> old" "rm gone" "mkdir dir" "mv old moved"; do
	if sh -c "$step" 2>/dev/null; then echo "ok: $step"; else echo "denied: $step"; fi
done`
			out := mustRun(t, b.sh(t, tt.profile, script))
			verdict := "denied: "
			if tt.writable {
				verdict = "ok: "
			}
			want := "old\n" + verdict + "echo new > new\n" + verdict + "echo more >> old\n" + verdict + "rm gone\n" +
				verdict + "mkdir dir\n" + verdict + "mv old moved\n"
			if out != want {
				t.Errorf("in the sandbox:\n%s\nwant\n%s", out, want)
			}
			entries, err := os.ReadDir(b.ws)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			wantNames := []string{"gone", "old"}
			if tt.writable {
				wantNames = []string{"dir", "moved", "new"}
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("the host's workspace holds %q, want %q", names, wantNames)
			}
			if tt.writable {
				if b, _ := os.ReadFile(filepath.Join(b.ws, "moved")); string(b) != "old\nmore\n" {
					t.Errorf("moved = %q, want %q", b, "old\nmore\n")
				}
			}
		})
	}
}

// TestRunOverlay writes into strict's overlay (~/.npm): the sandbox sees
// its writes, the host's directory does not change.
func TestRunOverlay(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	npm := filepath.Join(b.home, ".npm")
	b.mkdir(t, npm, true)
	b.writeFile(t, filepath.Join(npm, "cached"), "host\n", 0o644)
	b.writeFile(t, filepath.Join(npm, "stale"), "stale\n", 0o644)
	s := b.sh(t, "strict", `cd ~/.npm && cat cached && echo inside > cached && echo new > new && mkdir dir && rm stale && cat cached new && ls`)
	if !slices.Contains(s.Overlay, npm) {
		t.Fatalf("Overlay = %q, want %q in it", s.Overlay, npm)
	}
	if out, want := mustRun(t, s), "host\ninside\nnew\ncached\ndir\nnew\n"; out != want {
		t.Errorf("in the sandbox:\n%s\nwant\n%s", out, want)
	}
	entries, err := os.ReadDir(npm)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"cached", "stale"}; !slices.Equal(names, want) {
		t.Errorf("the host's %s holds %q, want %q", npm, names, want)
	}
	if data, _ := os.ReadFile(filepath.Join(npm, "cached")); string(data) != "host\n" {
		t.Errorf("the host's cached = %q, want %q", data, "host\n")
	}
}

// TestRunPIDNamespace lists the processes the command can see: its own
// namespace's, with the init stage as PID 1.
func TestRunPIDNamespace(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	out := mustRun(t, b.sh(t, "strict", `echo $$; tr '\0' ' ' </proc/1/cmdline; echo; ls /proc`))
	l := lines(out)
	if len(l) < 3 {
		t.Fatalf("output %q, want the shell's pid, PID 1's command line and /proc", out)
	}
	self, err := strconv.Atoi(l[0])
	if err != nil || self == 1 {
		t.Errorf("the command's pid = %q, want a number other than 1", l[0])
	}
	if got := strings.TrimSpace(l[1]); got != sandbox.InitArg0 {
		t.Errorf("PID 1 runs %q, want the init stage %q", got, sandbox.InitArg0)
	}
	var pids []int
	for _, name := range l[2:] {
		if n, err := strconv.Atoi(name); err == nil {
			pids = append(pids, n)
		}
	}
	// The init stage, the shell and whatever it forked for ls.
	if !slices.Contains(pids, 1) || !slices.Contains(pids, self) || len(pids) > 3 {
		t.Errorf("/proc lists pids %v, want 1, %d and at most one more", pids, self)
	}
	if host := os.Getpid(); slices.Contains(pids, host) && host > 3 {
		t.Errorf("/proc lists the test's own pid %d", host)
	}
}

// TestRunNetwork checks that the sandbox's network namespace holds only lo,
// up only when the profile asks for loopback.
func TestRunNetwork(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		profile string
		tcp     bool
	}{
		{"strict", false},
		{"dev", true},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			t.Parallel()
			b := newBox(t)
			var ifaces []string
			for i, l := range lines(mustRun(t, b.spec(t, tt.profile, "cat", "/proc/net/dev"))) {
				if name, _, ok := strings.Cut(l, ":"); ok && i >= 2 {
					ifaces = append(ifaces, strings.TrimSpace(name))
				}
			}
			if !slices.Equal(ifaces, []string{"lo"}) {
				t.Errorf("interfaces %q, want only lo", ifaces)
			}
			s := b.probe(t, tt.profile, "tcp")
			if s.Loopback != tt.tcp {
				t.Errorf("Loopback = %v, want %v", s.Loopback, tt.tcp)
			}
			r := run(t, s, "", nil)
			if r.err != nil {
				t.Fatalf("run the tcp probe: %v", r)
			}
			if ok := r.stdout == "ok\n" && r.st == (sandbox.Status{}); ok != tt.tcp {
				t.Errorf("TCP echo over 127.0.0.1: %v, want success = %v", r, tt.tcp)
			}
		})
	}
}
