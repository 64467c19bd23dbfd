//go:build linux

package stack

// The test harness's sandbox: the test binary, run again in a new user
// and network namespace, makes tun0 as vm-run's init stage does, hands
// the device to the test over a socketpair (SCM_RIGHTS), and then runs
// the client commands the test sends it on stdin, one JSON line each,
// answering each with one JSON line on stdout.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary run sandboxMain instead of the tests.
const childEnv = "VMRUN_STACK_TEST_SANDBOX"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(sandboxMain())
	}
	os.Exit(m.Run())
}

// cmd is one command to the sandbox; the fields used depend on Op.
type cmd struct {
	Op   string `json:"op"`
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	Name string `json:"name,omitempty"`
	Net  string `json:"net,omitempty"`
	Data string `json:"data,omitempty"`
	N    int    `json:"n,omitempty"`
	// MS is the command's timeout in milliseconds (default 5000).
	MS int `json:"ms,omitempty"`
}

// result is the sandbox's answer to one cmd.
type result struct {
	// Errno classifies the error: "" for none, "ECONNREFUSED",
	// "ECONNRESET", "EPIPE", "EOF", "timeout", "NXDOMAIN", "other".
	Errno  string    `json:"errno,omitempty"`
	Err    string    `json:"err,omitempty"`
	MS     float64   `json:"ms"`
	Data   string    `json:"data,omitempty"`
	Addrs  []string  `json:"addrs,omitempty"`
	Status int       `json:"status,omitempty"`
	Durs   []float64 `json:"durs,omitempty"`
	// Missing names the kernel feature the sandbox could not set up.
	Missing string `json:"missing,omitempty"`
}

// sandbox is a running child in its own namespaces.
type sandbox struct {
	t      testing.TB
	proc   *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
	// tun is the device the child made, for Start.
	tun *os.File
}

// newSandbox starts a sandbox and receives its TUN device. It skips the
// test (fails it when CI=true) when user namespaces or /dev/net/tun are
// not to be had.
func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(os.NewSyscallError("socketpair", err))
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "tun-channel"), os.NewFile(uintptr(pair[1]), "tun-channel-child")
	defer ours.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	p := exec.Command(self, "-test.run=^$")
	p.Env = append(os.Environ(), childEnv+"=1")
	p.ExtraFiles = []*os.File{theirs}
	p.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		Pdeathsig:   unix.SIGKILL,
	}
	sb := &sandbox{t: t, proc: p, stderr: &bytes.Buffer{}}
	p.Stderr = sb.stderr
	if sb.in, err = p.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sb.out = bufio.NewScanner(stdout)
	sb.out.Buffer(nil, 16<<20)
	if err := p.Start(); err != nil {
		theirs.Close()
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
			skipOrFail(t, "user namespaces for uid %d: %v", uid, err)
		}
		t.Fatalf("start sandbox: %v", err)
	}
	theirs.Close()
	t.Cleanup(sb.stop)

	first := sb.exchange("its setup", nil, setupBound)
	if first.Missing != "" {
		skipOrFail(t, "%s in a new user and network namespace as uid %d: %s", first.Missing, uid, first.Err)
	}
	if first.Err != "" {
		t.Fatalf("sandbox setup: %s\n%s", first.Err, sb.stderr)
	}
	// The sandbox sends the device right after its first answer; killed,
	// it closes its end and recvmsg returns.
	timer := time.AfterFunc(setupBound, func() { sb.proc.Process.Kill() })
	sb.tun, err = recvFile(int(ours.Fd()))
	if !timer.Stop() {
		t.Fatalf("sandbox sent no TUN device within %v: killed\n%s", setupBound, sb.stderr)
	}
	if err != nil {
		t.Fatalf("receive TUN device: %v\n%s", err, sb.stderr)
	}
	return sb
}

// setupBound is how long the sandbox may take to set up its device.
const setupBound = 30 * time.Second

// answerMargin is how much longer than a command's own timeout the
// harness waits for its answer before it kills the sandbox: every
// command ends by its timeout, so no answer by then is a hang (go test's
// -timeout does not cover benchmarks).
const answerMargin = 30 * time.Second

// skipOrFail skips the test for a missing kernel feature, except on CI,
// where every feature this kernel has must be tested.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("unavailable on CI: "+format, args...)
	}
	t.Skipf("unavailable: "+format, args...)
}

// do sends c and returns the sandbox's answer. A sandbox that has not
// answered within the command's timeout and answerMargin is killed and
// the test fails.
func (sb *sandbox) do(c cmd) result {
	sb.t.Helper()
	b, _ := json.Marshal(c)
	timeout := 5 * time.Second
	if c.MS > 0 {
		timeout = time.Duration(c.MS) * time.Millisecond
	}
	return sb.exchange(c.Op, append(b, '\n'), timeout+answerMargin)
}

// exchange writes line, unless nil, to the sandbox and returns its next
// answer; the sandbox is killed and the test fails when both have not
// happened within within.
func (sb *sandbox) exchange(what string, line []byte, within time.Duration) result {
	sb.t.Helper()
	// Killed, the sandbox closes its end of both pipes: the write and
	// Scan return.
	timer := time.AfterFunc(within, func() { sb.proc.Process.Kill() })
	var werr error
	if line != nil {
		_, werr = sb.in.Write(line)
	}
	ok := werr == nil && sb.out.Scan()
	if !timer.Stop() {
		sb.t.Fatalf("sandbox gave no answer to %s within %v: killed\n%s", what, within, sb.stderr)
	}
	if werr != nil {
		sb.t.Fatalf("send %s to sandbox: %v\n%s", what, werr, sb.stderr)
	}
	if !ok {
		sb.t.Fatalf("sandbox ended: %v\n%s", sb.out.Err(), sb.stderr)
	}
	var r result
	if err := json.Unmarshal(sb.out.Bytes(), &r); err != nil {
		sb.t.Fatalf("sandbox said %q: %v", sb.out.Bytes(), err)
	}
	return r
}

// stop ends the sandbox: its stdin closes and it exits.
func (sb *sandbox) stop() {
	sb.in.Close()
	done := make(chan struct{})
	go func() { sb.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		sb.proc.Process.Kill()
		<-done
	}
	if sb.tun != nil {
		sb.tun.Close()
	}
}

// recvFile receives one descriptor sent with SCM_RIGHTS (unix(7)).
func recvFile(sock int) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		return nil, os.NewSyscallError("recvmsg", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no descriptor in the message (%d control messages, %v)", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("want one descriptor, got %d (%v)", len(fds), err)
	}
	return os.NewFile(uintptr(fds[0]), "/dev/net/tun"), nil
}

// sandboxMain runs in the new namespaces: it makes tun0, sends it on fd
// 3, and serves commands until stdin closes.
func sandboxMain() int {
	out := json.NewEncoder(os.Stdout)
	tun, missing, err := makeTun()
	if err != nil {
		out.Encode(result{Err: err.Error(), Missing: missing})
		return 1
	}
	out.Encode(result{})
	ch := os.NewFile(3, "tun-channel")
	if err := unix.Sendmsg(int(ch.Fd()), []byte{0}, unix.UnixRights(int(tun.Fd())), nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, os.NewSyscallError("sendmsg", err))
		return 1
	}
	// Only the test's copy keeps the device alive from now on.
	tun.Close()
	ch.Close()
	c := newClient()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 16<<20)
	for in.Scan() {
		var req cmd
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			out.Encode(result{Err: err.Error(), Errno: "other"})
			continue
		}
		out.Encode(c.run(req))
	}
	return 0
}

// makeTun creates tun0 and sets it up as the init stage does: address
// SandboxAddr/15, MTU and queue length of package egress, up, default
// route through it; lo up. missing names the kernel feature when one is
// refused.
func makeTun() (*os.File, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "/dev/net/tun", os.NewSyscallError("open /dev/net/tun", err)
	}
	tun := os.NewFile(uintptr(fd), "/dev/net/tun")
	ifr, err := unix.NewIfreq("tun0")
	if err != nil {
		tun.Close()
		return nil, "", err
	}
	// IFF_NO_PI: raw IP packets without the 4-byte packet information
	// header (Documentation/networking/tuntap.rst).
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		tun.Close()
		return nil, "TUNSETIFF", os.NewSyscallError("ioctl TUNSETIFF", err)
	}
	if err := configureLinks(); err != nil {
		tun.Close()
		return nil, "rtnetlink", err
	}
	return tun, "", nil
}
