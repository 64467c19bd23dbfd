package sandbox_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// The test binary stands in for vm-run and for the programs the tests run:
// re-executed with one of these argv[0], it becomes that program.
const (
	// parentArg0 is a vm-run parent: it reads a spec on stdin, runs it
	// with sandbox.Run and prints "started" once the command runs, so that
	// a test can kill it while its sandbox lives.
	parentArg0 = "vm-run-test:parent"
	// pendingParentArg0 is a vm-run parent that spawns an init stage for
	// the ids given as arguments, prints its pid and never sends a spec,
	// as vm-run is while it loads the profile.
	pendingParentArg0 = "vm-run-test:pending-parent"
	// probeArg0 runs inside a sandbox (the spec's Path is the test binary,
	// granted by Options.ExtraExec) to try what the shell cannot.
	probeArg0 = "vm-run-test:probe"
)

// copyEnv marks the run of the reachable copy of the test binary.
const copyEnv = "VMRUN_SANDBOX_TEST_COPY"

// nobody is the command's user when the tests run as root, as vm-run's
// default for root.
const nobody = 65534

func TestMain(m *testing.M) {
	switch os.Args[0] {
	case sandbox.InitArg0:
		sandbox.InitMain()
	case sandbox.NSCheckArg0:
		os.Exit(0)
	case parentArg0:
		os.Exit(parentMain())
	case pendingParentArg0:
		os.Exit(pendingParentMain(os.Args[1:]))
	case probeArg0:
		os.Exit(probeMain(os.Args[1:]))
	}
	if code, ran := runReachableCopy(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// runReachableCopy reruns the whole test binary from a copy that nobody can
// execute when the tests run as root from go test's private build
// directory: the probe tests run the binary inside the sandbox by its path,
// as the command's user. It reports whether it ran the copy, and the exit
// code to end with.
func runReachableCopy() (int, bool) {
	if os.Getuid() != 0 || os.Getenv(copyEnv) != "" {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "find the test binary: %v\n", err)
		return 1, true
	}
	if executableBy(exe, nobody, nobody) {
		return 0, false
	}
	dir, err := os.MkdirTemp(sandbox.TmpDir, "vm-run-sandbox-test-bin-")
	if err == nil {
		defer os.RemoveAll(dir)
		err = os.Chmod(dir, 0o755)
	}
	copied := filepath.Join(dir, "sandbox.test")
	if err == nil {
		err = copyFile(exe, copied)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "copy the test binary where uid %d can run it: %v\n", nobody, err)
		return 1, true
	}
	cmd := exec.Command(copied, os.Args[1:]...)
	cmd.Env = append(os.Environ(), copyEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), true
		}
		fmt.Fprintf(os.Stderr, "run the copy of the test binary: %v\n", err)
		return 1, true
	}
	return 0, true
}

// executableBy reports whether uid:gid can search every directory above path
// and execute path, by the permission bits alone (path_resolution(7)).
func executableBy(path string, uid, gid int) bool {
	for p := path; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return false
		}
		bit := uint32(0o001)
		switch {
		case int(st.Uid) == uid:
			bit = 0o100
		case int(st.Gid) == gid:
			bit = 0o010
		}
		if st.Mode&bit == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// parentMain is the parentArg0 program.
func parentMain() int {
	var s sandbox.Spec
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintf(os.Stderr, "decode spec: %v\n", err)
		return 2
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	st, err := sandbox.Run(&s, sandbox.Stdio{Stdin: devnull, Stdout: devnull, Stderr: devnull},
		func(*sandbox.Process) { fmt.Println("started") })
	if err != nil {
		fmt.Fprintf(os.Stderr, "run: %v\n", err)
		return 2
	}
	fmt.Println(st)
	return 0
}

// probeMain is the probeArg0 program. "tcp" listens on 127.0.0.1, connects
// to itself and echoes a byte; it prints "ok" or the first error.
// "signal-init" is signalInit, "forks N" forkProbe.
func probeMain(args []string) int {
	switch {
	case len(args) == 1 && args[0] == "tcp":
		if err := loopbackEcho(); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ok")
		return 0
	case len(args) == 2 && args[0] == "signal-init":
		return signalInit(args[1])
	case len(args) == 2 && args[0] == "forks":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Println(err)
			return 2
		}
		return forkProbe(n)
	}
	fmt.Fprintf(os.Stderr, "probe: unknown arguments %q\n", args)
	return 2
}

func loopbackEcho() error {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'x' {
		return fmt.Errorf("echo returned %q, want %q", b, "x")
	}
	return nil
}

// requireSandbox skips t unless this kernel lets the caller create every
// namespace a sandbox needs and enforce what the built-in profiles require
// of Landlock. On the CI machine neither is missing, so nothing is skipped.
func requireSandbox(t *testing.T) {
	t.Helper()
	why, err := sandboxMissing()
	if err != nil {
		t.Fatal(err)
	}
	if why != "" {
		t.Skip(why)
	}
}

// sandboxMissing says what this kernel lacks for a sandbox, once per test
// binary: each namespace check starts a process.
var sandboxMissing = sync.OnceValues(func() (string, error) {
	for _, ns := range sandbox.Namespaces {
		if err := sandbox.CheckNamespace(ns); err != nil {
			return fmt.Sprintf("needs a new user namespace with a %s namespace for uid %d: %v", ns.Name, os.Getuid(), err), nil
		}
	}
	for _, name := range []string{"strict", "dev"} {
		p, err := new(profiles.Loader).Load(name, profiles.Vars{Workspace: "/", Home: "/", TmpDir: sandbox.TmpDir})
		if err != nil {
			return "", fmt.Errorf("load profile %q: %w", name, err)
		}
		if _, err := (landlock.Rules{Require: p.Landlock.Require}).Check(landlock.Detect()); err != nil {
			return fmt.Sprintf("needs the Landlock features of profile %q: %v", name, err), nil
		}
	}
	return "", nil
})

// box is the host side of a sandbox: a workspace and a home in a fresh
// directory under the host's /tmp (which every profile hides, so both are
// bind-mounted back), reachable by the command's user.
type box struct {
	root, ws, home string
	uid, gid       int
}

func newBox(t *testing.T) *box {
	t.Helper()
	requireSandbox(t)
	b := &box{uid: os.Getuid(), gid: os.Getgid()}
	if b.uid == 0 {
		b.uid, b.gid = nobody, nobody
	}
	root, err := os.MkdirTemp(sandbox.TmpDir, "vm-run-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if b.root, err = filepath.EvalSymlinks(root); err != nil {
		t.Fatal(err)
	}
	b.ws, b.home = filepath.Join(b.root, "ws"), filepath.Join(b.root, "home")
	b.mkdir(t, b.root, false)
	b.mkdir(t, b.ws, true)
	b.mkdir(t, b.home, true)
	return b
}

// mkdir creates dir (if need be) searchable by everyone and, when own is
// set, owned by the command's user.
func (b *box) mkdir(t *testing.T, dir string, own bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if own && os.Getuid() == 0 {
		if err := os.Chown(dir, b.uid, b.gid); err != nil {
			t.Fatal(err)
		}
	}
}

// writeFile writes a file the command's user owns.
func (b *box) writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if err := os.Chown(path, b.uid, b.gid); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *box) vars() profiles.Vars {
	return profiles.Vars{Workspace: b.ws, Home: b.home, TmpDir: sandbox.TmpDir}
}

// profile loads a built-in profile for the box.
func (b *box) profile(t *testing.T, name string) *profiles.Profile {
	t.Helper()
	p, err := new(profiles.Loader).Load(name, b.vars())
	if err != nil {
		t.Fatalf("load profile %q: %v", name, err)
	}
	return p
}

// options are the launch options of argv in the box.
func (b *box) options(argv ...string) sandbox.Options {
	return sandbox.Options{
		Argv:      argv,
		Workspace: b.ws,
		HostEnv:   []string{"PATH=/usr/bin:/bin", "HOME=" + b.home, "LANG=C", "VMRUN_TEST_SECRET=host"},
		UID:       b.uid,
		GID:       b.gid,
	}
}

// spec builds the spec of argv under the built-in profile name.
func (b *box) spec(t *testing.T, name string, argv ...string) *sandbox.Spec {
	t.Helper()
	return b.build(t, b.profile(t, name), argv...)
}

// build builds the spec of argv under p.
func (b *box) build(t *testing.T, p *profiles.Profile, argv ...string) *sandbox.Spec {
	t.Helper()
	s, err := sandbox.Build(p, b.options(argv...))
	if err != nil {
		t.Fatalf("Build(%q, %q): %v", p.Name, argv, err)
	}
	return s
}

// sh builds the spec of a shell script under the built-in profile name.
func (b *box) sh(t *testing.T, name, script string) *sandbox.Spec {
	t.Helper()
	return b.spec(t, name, "/bin/sh", "-c", script)
}

// probe builds the spec that runs the test binary's probe under the
// built-in profile name.
func (b *box) probe(t *testing.T, name string, args ...string) *sandbox.Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := b.options(append([]string{probeArg0}, args...)...)
	o.ExtraExec = []string{exe}
	s, err := sandbox.Build(b.profile(t, name), o)
	if err != nil {
		t.Fatalf("Build(%q, probe %q): %v", name, args, err)
	}
	s.Path = exe
	return s
}

// result is how one sandboxed command went.
type result struct {
	stdout, stderr string
	st             sandbox.Status
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("status %v, error %v, stdout %q, stderr %q", r.st, r.err, r.stdout, r.stderr)
}

// run runs s with stdin as the command's input and collects its output.
func run(t *testing.T, s *sandbox.Spec, stdin string, started func(*sandbox.Process)) result {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.WriteString(inW, stdin)
		inW.Close()
	}()
	outc, errc := readAll(outR), readAll(errR)
	st, err := sandbox.Run(s, sandbox.Stdio{Stdin: inR, Stdout: outW, Stderr: errW}, started)
	inR.Close()
	outW.Close()
	errW.Close()
	return result{stdout: <-outc, stderr: <-errc, st: st, err: err}
}

func readAll(r *os.File) <-chan string {
	c := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		r.Close()
		c <- b.String()
	}()
	return c
}

// mustRun runs s and fails t unless the command exits 0.
func mustRun(t *testing.T, s *sandbox.Spec) string {
	t.Helper()
	r := run(t, s, "", nil)
	if r.err != nil || r.st != (sandbox.Status{}) {
		t.Fatalf("run %q: %v", s.Args, r)
	}
	return r.stdout
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
