package selftest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// reexecEnv marks the copy of the test binary that inReachableCopy runs.
const reexecEnv = "VMRUN_SELFTEST_REEXEC"

// TestBatteryStrict runs the whole battery against the built-in strict
// profile: nothing may escape, and every attack must be proven possible
// without the sandbox or shown impossible on this machine, with the reason.
func TestBatteryStrict(t *testing.T) {
	bin := vmRunBinary(t)
	isolateHome(t)
	if inReachableCopy(t, bin) {
		return
	}
	rep, err := Run(context.Background(), Options{ProfileName: "strict", Self: bin})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b bytes.Buffer
	rep.WriteTable(&b)
	b.WriteString("\n")
	rep.WriteDetails(&b)
	t.Log("\n" + b.String())
	if len(rep.Rows) != len(battery()) {
		t.Errorf("report has %d rows, want one per attack (%d)", len(rep.Rows), len(battery()))
	}
	for _, row := range rep.Rows {
		switch row.Got {
		case GotBlocked:
		case GotSkipped:
			if row.Why == "" {
				t.Errorf("%s: skipped without a reason", row.Attack)
			}
		default:
			t.Errorf("%s: got %s, want %s: %s", row.Attack, row.Got, GotBlocked, row.Detail)
		}
		switch row.Baseline {
		case Proven, NotRun:
		case Impossible:
			if row.Why == "" {
				t.Errorf("%s: baseline impossible without a reason", row.Attack)
			}
		default:
			t.Errorf("%s: baseline %s, want %s: %s", row.Attack, row.Baseline, Proven, row.BaselineDetail)
		}
	}
	if rep.Escaped() {
		t.Errorf("Escaped() = true")
	}
	if err := rep.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

// isolateHome points HOME at a fresh directory when the test runs as
// root: the strict profile's optional ${HOME} rules would otherwise name
// directories in root's home (~/.npm), which the command, running as
// nobody, cannot enter, and the sandbox refuses to start over them. The
// battery is about the sandbox, not about what root's home holds. Call it
// after vmRunBinary: the go tool finds its caches through HOME.
func isolateHome(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 && os.Getenv(reexecEnv) == "" {
		t.Setenv("HOME", reachableDir(t))
	}
}

// inReachableCopy reruns the calling test in a child, from a copy of the
// test binary that the sandboxed command's user can execute when this one
// is out of its reach (go test builds in a directory only its owner may
// enter): the sandbox's init stage is the running binary (sandbox.Start
// executes os.Executable()) and starts as that user. As root, the child
// also gets supplementary group 0, as root has it under sudo and su, so
// that the attack on the caller's groups has something to try. bin is the
// vm-run binary for the child's probes. It reports whether it ran the
// test; the caller then returns.
func inReachableCopy(t *testing.T, bin string) bool {
	t.Helper()
	if os.Getenv(reexecEnv) != "" {
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	u := User{UID: os.Getuid(), GID: os.Getgid()}
	if u.UID == 0 {
		u = nobody
	}
	reachable := executableBy(exe, u.UID, u.GID)
	if reachable && os.Getuid() != 0 {
		return false
	}
	child := exe
	if !reachable {
		dir := reachableDir(t)
		child = filepath.Join(dir, "selftest.test")
		copyFile(t, exe, child)
		if bin == exe {
			bin = child
		}
	}
	cmd := exec.Command(child, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), reexecEnv+"=1", "VMRUN_BIN="+bin)
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0}}}
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s in a child (%s):\n%s", t.Name(), child, out)
	if err != nil {
		t.Fatalf("%s in the child: %v", t.Name(), err)
	}
	return true
}

// reachableDir returns a new directory that every user may enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vm-run-selftest-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// vmRunBinary returns the vm-run binary the probes run as: $VMRUN_BIN, or
// a fresh build of ./cmd/vm-run. When the go tool cannot build it here
// (an unprivileged user without a module cache, or a tree in the middle of
// a change), the test binary stands in: its TestMain dispatches the probe
// argv[0] to ProbeMain just as vm-run's main does.
func vmRunBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("VMRUN_BIN"); bin != "" {
		if os.Getuid() != 0 || executableBy(bin, nobody.UID, nobody.GID) {
			return bin
		}
		// A checkout under /root (mode 0700): the probes, run as nobody,
		// run a copy.
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		copied := filepath.Join(reachableDir(t), "vm-run")
		if err := os.WriteFile(copied, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return copied
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Logf("probes run as the test binary: %v", err)
		return exe
	}
	bin := filepath.Join(reachableDir(t), "vm-run")
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gotool, "build", "-o", bin, "./cmd/vm-run")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("probes run as the test binary: go build ./cmd/vm-run: %v\n%s", err, out)
		return exe
	}
	return bin
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/vm-run/vm-run") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
