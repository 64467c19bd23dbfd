//go:build linux

package landlock_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/landlock"
)

// Landlock cannot be undone, so every restricted probe runs in a re-exec'd
// copy of the test binary: TestMain sees childEnv and runs the childSpec it
// holds instead of the tests.
const childEnv = "VMRUN_LANDLOCK_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what one child does: apply Rules (none when nil), then run
// each probe and report its outcome.
type childSpec struct {
	Rules  *landlock.Rules
	Probes []probe
}

// probe is one operation; its outcome is "" for success or "step: ERRNO".
type probe struct {
	Op   string
	Args []string
}

type childReport struct {
	Restrict string   // error from Restrict, "" for none
	Outcomes []string // one per probe
}

func childMain(specJSON string) int {
	// Restrict, fork and kill from one thread: below ABI 8 each thread
	// has its own domain (see Rules.Restrict).
	runtime.LockOSThread()
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "child: parse spec: %v\n", err)
		return 2
	}
	var report childReport
	if spec.Rules != nil {
		if err := spec.Rules.Restrict(); err != nil {
			report.Restrict = err.Error()
		}
	}
	if report.Restrict == "" {
		for _, p := range spec.Probes {
			report.Outcomes = append(report.Outcomes, p.run(spec.Rules))
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
		fmt.Fprintf(os.Stderr, "child: write report: %v\n", err)
		return 2
	}
	return 0
}

// runChild runs spec in a child and returns one outcome per probe.
func runChild(t *testing.T, rules *landlock.Rules, probes ...probe) []string {
	t.Helper()
	spec, err := json.Marshal(childSpec{Rules: rules, Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\nstderr:\n%s", spec, err, stderr.Bytes())
	}
	var report childReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("child %s: parse report %q: %v\nstderr:\n%s", spec, stdout.Bytes(), err, stderr.Bytes())
	}
	if report.Restrict != "" {
		t.Fatalf("child: Restrict() = %s", report.Restrict)
	}
	return report.Outcomes
}

// outcome describes err from step: "" for nil, else "step: ENAME".
func outcome(step string, err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return ""
	case errors.As(err, &errno):
		return step + ": " + unix.ErrnoName(errno)
	default:
		return step + ": " + err.Error()
	}
}

func (p probe) run(rules *landlock.Rules) string {
	arg := func(i int) string { return p.Args[i] }
	switch p.Op {
	case "read":
		_, err := os.ReadFile(arg(0))
		return outcome("open", err)
	case "readdir":
		_, err := os.ReadDir(arg(0))
		return outcome("open", err)
	case "write":
		f, err := os.OpenFile(arg(0), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return outcome("open", err)
		}
		defer f.Close()
		_, err = f.WriteString("x")
		return outcome("write", err)
	case "create":
		f, err := os.OpenFile(arg(0), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			f.Close()
		}
		return outcome("open", err)
	case "open-trunc":
		f, err := os.OpenFile(arg(0), os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			f.Close()
		}
		return outcome("open", err)
	case "mkdir":
		return outcome("mkdir", os.Mkdir(arg(0), 0o755))
	case "remove":
		return outcome("remove", os.Remove(arg(0)))
	case "truncate":
		return outcome("truncate", syscall.Truncate(arg(0), 0))
	case "rename":
		return outcome("rename", os.Rename(arg(0), arg(1)))
	case "link":
		return outcome("link", os.Link(arg(0), arg(1)))
	case "exec":
		// Give the command our stderr: exec.Cmd would otherwise
		// open /dev/null, which the rules may not grant.
		cmd := exec.Command(arg(0))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr, os.Stderr
		return outcome("exec", cmd.Run())
	case "ioctl":
		return probeIoctl(arg(0))
	case "connect-tcp", "bind-tcp":
		return probeTCP(p.Op, arg(0))
	case "connect-abstract":
		return probeUnix("@" + arg(0))
	case "connect-unix":
		return probeUnix(arg(0))
	case "bind-udp":
		return probeBindUDP()
	case "kill":
		pid, _ := strconv.Atoi(arg(0))
		return outcome("kill", syscall.Kill(pid, 0))
	case "kill-own-child":
		return probeKillChild(arg(0), false)
	case "kill-child-from-other-thread":
		return probeKillChild(arg(0), true)
	case "restrict-until-error":
		return probeStack(rules)
	}
	return "unknown probe " + p.Op
}

// probeIoctl opens a device and sends it FIONREAD, which Landlock does not
// always allow (is_masked_device_ioctl() in security/landlock/fs.c lists
// the ones it does). ENOTTY means the ioctl reached the device driver.
func probeIoctl(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return outcome("open", err)
	}
	defer f.Close()
	_, err = unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ) // FIONREAD
	if errors.Is(err, syscall.ENOTTY) {
		err = nil
	}
	return outcome("ioctl", err)
}

// probeTCP uses a plain TCP socket: Landlock's TCP rights do not cover
// MPTCP, which net.Listen may choose.
func probeTCP(op, port string) string {
	n, _ := strconv.Atoi(port)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return outcome("socket", err)
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrInet4{Port: n, Addr: [4]byte{127, 0, 0, 1}}
	if op == "bind-tcp" {
		return outcome("bind", unix.Bind(fd, addr))
	}
	return outcome("connect", unix.Connect(fd, addr))
}

// probeUnix connects to a unix stream socket; a leading "@" names an
// abstract one (unix(7)).
func probeUnix(name string) string {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return outcome("socket", err)
	}
	defer unix.Close(fd)
	return outcome("connect", unix.Connect(fd, &unix.SockaddrUnix{Name: name}))
}

func probeBindUDP() string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return outcome("socket", err)
	}
	defer unix.Close(fd)
	return outcome("bind", unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
}

// probeKillChild starts path (a long sleep) from this locked thread and
// sends it signal 0, from this thread or from another one.
func probeKillChild(path string, otherThread bool) string {
	cmd := exec.Command(path, "60")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return outcome("start", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if !otherThread {
		return outcome("kill", syscall.Kill(pid, 0))
	}
	mine := syscall.Gettid()
	done := make(chan string)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with it
		if syscall.Gettid() == mine {
			done <- "ran on the forking thread"
			return
		}
		done <- outcome("kill", syscall.Kill(pid, 0))
	}()
	return <-done
}

// probeStack applies rules again until Restrict fails and reports how many
// domains it stacked in all and the failed call.
func probeStack(rules *landlock.Rules) string {
	for n := 2; n <= 32; n++ {
		err := rules.Restrict()
		var sysErr *os.SyscallError
		switch {
		case err == nil:
			continue
		case errors.As(err, &sysErr):
			return fmt.Sprintf("after %d: %s\n%v", n-1, outcome(sysErr.Syscall, sysErr.Err), err)
		default:
			return fmt.Sprintf("after %d: %v", n-1, err)
		}
	}
	return "no error after 32 domains"
}
