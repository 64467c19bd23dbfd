package netns

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// tunChildEnv makes the test binary run tunChild instead of the tests.
const tunChildEnv = "VMRUN_NETNS_TUN_CHILD"

var testTUN = TUN{Name: "tun0", MTU: 65520, TxQueueLen: 5000, Addr: netip.MustParsePrefix("198.18.0.2/15")}

// tunChild runs in a fresh user and network namespace: it creates the
// device and checks what the kernel then reports of it.
func tunChild() error {
	// First, so that the device never sends an IPv6 router
	// solicitation.
	if err := DisableIPv6(); err != nil {
		return err
	}
	f, err := CreateTUN(testTUN)
	if err != nil {
		return err
	}
	defer f.Close()
	ifc, err := net.InterfaceByName("tun0")
	if err != nil {
		return err
	}
	if ifc.Flags&net.FlagUp == 0 || ifc.MTU != 65520 {
		return fmt.Errorf("tun0: flags %v, mtu %d; want up, 65520", ifc.Flags, ifc.MTU)
	}
	// Not /sys/class/net: this sysfs is the host namespace's.
	if q, err := txQueueLen("tun0"); err != nil || q != 5000 {
		return fmt.Errorf("tun0 txqueuelen = %d, %v; want 5000", q, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil || len(addrs) != 1 || addrs[0].String() != "198.18.0.2/15" {
		return fmt.Errorf("tun0 addresses = %v, %v; want [198.18.0.2/15]", addrs, err)
	}
	// The default route: destination 00000000 through tun0 (proc(5),
	// /proc/net/route).
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return err
	}
	found := false
	for _, l := range strings.Split(string(routes), "\n") {
		if fs := strings.Fields(l); len(fs) > 2 && fs[0] == "tun0" && fs[1] == "00000000" {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no default route through tun0:\n%s", routes)
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err == nil && !bytes.Equal(bytes.TrimSpace(v), []byte("1")) {
		return fmt.Errorf("disable_ipv6 = %q after DisableIPv6", v)
	}
	// A packet the namespace sends anywhere comes out of the device.
	c, err := net.Dial("udp4", "203.0.113.9:53")
	if err != nil {
		return err
	}
	c.Write([]byte("x"))
	c.Close()
	buf := make([]byte, 65535)
	n, err := f.Read(buf)
	if err != nil || n < 20 || buf[0]>>4 != 4 || !bytes.Equal(buf[16:20], []byte{203, 0, 113, 9}) {
		return fmt.Errorf("read from tun0: %d bytes % x, %v; want the IPv4 packet to 203.0.113.9", n, buf[:min(n, 20)], err)
	}
	return nil
}

func txQueueLen(name string) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFTXQLEN, ifr); err != nil {
		return 0, err
	}
	return ifr.Uint32(), nil
}

func TestCreateTUN(t *testing.T) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		failOrSkip(t, "TUN device (/dev/net/tun): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), tunChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(err.Error(), "operation not permitted") {
			failOrSkip(t, "user namespaces for uid %d: %v", uid, err)
		}
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("child said %q, want ok", out)
	}
}

// TestCreateTUNOutsideNamespace shows the capability check is real: the
// same call as uid 65534 in the host's namespace is refused.
func TestCreateTUNOutsideNamespace(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root holds CAP_NET_ADMIN in the host's namespace; this probe is for other users")
	}
	if f, err := CreateTUN(testTUN); err == nil {
		f.Close()
		t.Fatal("CreateTUN in the host's namespace as an ordinary user succeeded")
	}
}

func failOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("needed on CI: "+format, args...)
	}
	t.Skipf("needs "+format, args...)
}
