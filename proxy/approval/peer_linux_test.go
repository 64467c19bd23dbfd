package approval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a client of the socket named by its
// first argument: it prints "hello" when admitted, else the error code the
// socket sent, else the error.
const helperEnv = "VMRUN_APPROVAL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "dial" {
		os.Exit(helperDial(os.Args[1]))
	}
	os.Exit(m.Run())
}

func helperDial(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	var e *Error
	switch {
	case err == nil:
		fmt.Println("hello")
		c.Close()
	case errors.As(err, &e):
		fmt.Println(e.Code)
	default:
		fmt.Println("error:", err)
	}
	return 0
}

// helper returns a command that runs the test binary as a client of path.
// The binary is copied where any uid can run it.
func helper(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := searchableDir(t)
	bin := filepath.Join(dir, "approval.test")
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, path)
	cmd.Env = []string{helperEnv + "=dial"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// searchableDir makes a directory that every uid can search, parents
// included.
func searchableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tmp := filepath.Clean(os.TempDir())
	for d := dir; d != tmp && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runHelper(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %v: %v\n%s", cmd.Args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPeers: who the socket admits. Each refusal is proven against a
// client that is admitted when only the refused property differs, and the
// refused client did connect (it reads the refusal), so the socket's own
// check refused it, not the file system.
func TestPeers(t *testing.T) {
	s := newSocket(t, defaultLimits)

	t.Run("same uid, same user namespace", func(t *testing.T) {
		if got := runHelper(t, helper(t, s.Path())); got != "hello" {
			t.Fatalf("helper as uid %d = %q, want hello", os.Geteuid(), got)
		}
	})

	t.Run("another uid", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skipf("needs root to connect as uid 65534 (running as uid %d); scripts/test.sh runs it as root", os.Geteuid())
		}
		// The approvals directory keeps uid 65534 out; a hard link to the
		// socket in a directory it can search, with the socket's mode
		// opened, leaves only the socket's own check in the way.
		link := filepath.Join(searchableDir(t), "link.sock")
		if err := os.Link(s.Path(), link); err != nil {
			t.Fatalf("link the socket: %v", err)
		}
		if err := os.Chmod(link, 0o666); err != nil {
			t.Fatal(err)
		}
		if got := runHelper(t, helper(t, link)); got != "hello" {
			t.Fatalf("helper as root through the link = %q, want hello", got)
		}
		cmd := helper(t, link)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
		if got := runHelper(t, cmd); got != CodePeerRefused {
			t.Fatalf("helper as uid 65534 = %q, want %s", got, CodePeerRefused)
		}
	})

	t.Run("nested user namespace", func(t *testing.T) {
		// What the sandbox is: a user namespace of the caller's whose uid
		// maps to the caller's. Should the socket ever be reachable in
		// one, the uid alone would admit it.
		uid, gid := os.Geteuid(), os.Getegid()
		cmd := helper(t, s.Path())
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		out, err := cmd.CombinedOutput()
		if err != nil && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EACCES)) {
			t.Skipf("needs a new user namespace for uid %d: %v", uid, err)
		}
		if err != nil {
			t.Fatalf("helper in a user namespace: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != CodePeerRefused {
			t.Fatalf("helper in a nested user namespace = %q, want %s", got, CodePeerRefused)
		}
	})
}
