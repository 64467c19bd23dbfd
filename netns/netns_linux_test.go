package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary run inNewNamespace instead of the tests.
const childEnv = "VMRUN_NETNS_TEST_CHILD"

func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv(tunChildEnv); ok {
		if err := tunChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	if host, ok := os.LookupEnv(childEnv); ok {
		if err := inNewNamespace(host); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// inNewNamespace runs in a fresh user and network namespace: its ID differs
// from the host's, only lo exists and is down, and LoopbackUp raises it.
func inNewNamespace(host string) error {
	id, err := ID()
	if err != nil {
		return err
	}
	if id == host {
		return fmt.Errorf("ID() = %q inside a new network namespace, the same as the host's", id)
	}
	names, err := Interfaces()
	if err != nil {
		return err
	}
	if !slices.Equal(names, []string{"lo"}) {
		return fmt.Errorf("Interfaces() = %q in a new network namespace, want [lo]", names)
	}
	if up, err := loUp(); err != nil || up {
		return fmt.Errorf("lo up before LoopbackUp = %v, %v; want down", up, err)
	}
	if err := LoopbackUp(); err != nil {
		return fmt.Errorf("LoopbackUp() = %v", err)
	}
	if up, err := loUp(); err != nil || !up {
		return fmt.Errorf("lo up after LoopbackUp = %v, %v; want up", up, err)
	}
	return nil
}

func loUp() (bool, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return false, err
	}
	return lo.Flags&net.FlagUp != 0, nil
}

func TestNewNamespace(t *testing.T) {
	host, err := ID()
	if err != nil {
		t.Fatalf("ID() = %v", err)
	}
	if !strings.HasPrefix(host, "NS(") {
		t.Errorf("ID() = %q, want NS(dev:ino)", host)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+host)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		AmbientCaps: []uintptr{unix.CAP_NET_ADMIN},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(err.Error(), "operation not permitted") || strings.Contains(err.Error(), "no space left") {
			t.Skipf("user namespaces unavailable to uid %d: %v", uid, err)
		}
		t.Fatalf("child in a new network namespace: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("child in a new network namespace said %q, want ok", out)
	}
}
