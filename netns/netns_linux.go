//go:build linux

package netns

import (
	"fmt"
	"os"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ID identifies the network namespace of the calling thread by device and
// inode, as "NS(dev:ino)". Two threads are in the same network namespace
// exactly when their IDs are equal (namespaces(7)).
func ID() (string, error) {
	// Not vnetns.Get: it names the thread by pid, and in a new PID
	// namespace our pid (1) is another process in the host's /proc.
	// thread-self is resolved by the kernel in the procfs's own namespace.
	h, err := vnetns.GetFromPath("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("open own network namespace: %w", err)
	}
	defer h.Close()
	return h.UniqueId(), nil
}

// LoopbackUp sets the IFF_UP flag on lo in the calling thread's network
// namespace. A fresh namespace has lo down (network_namespaces(7)); needs
// CAP_NET_ADMIN over the namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("name interface lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS lo", err)
	}
	return nil
}
