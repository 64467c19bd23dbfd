package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns"
	"github.com/vm-run/vm-run/netns/egress"
)

// Network mode egress, both sides of it. The init stage, while it still
// holds CAP_NET_ADMIN in the sandbox's user namespace, creates the TUN
// device, hands it to the parent on the channel and waits until the parent
// has attached it (doc.go, "The channel"); then, after the mounts, it
// covers /etc/resolv.conf and /etc/hosts with vm-run's own. It drops every
// capability later, with the rest of build, before the command exists.

// resolvConf names the stub as the only resolver. Short timeouts: the stub
// answers at once or not at all (a record it could not write).
var resolvConf = "# vm-run: network mode egress; the one resolver answers the names the profile allows\n" +
	"nameserver " + egress.StubAddr.String() + "\n" +
	"options timeout:2 attempts:2\n"

// hostsFile leaves only localhost to /etc/hosts: a name the host's file
// maps would reach its real address past the stub, which the policy then
// sees as an address literal.
const hostsFile = "# vm-run: network mode egress; names resolve through the stub\n" +
	"127.0.0.1\tlocalhost " + hostname + "\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n"

// egressDevice raises lo, turns IPv6 off, creates the TUN device, sends it
// to the parent and waits for the parent's go-ahead. Its own copy is
// closed before it returns: from then on the parent holds the only one,
// and the sandbox's network ends with the parent (tun_chr_close).
func egressDevice(ch *channel) error {
	if err := netns.LoopbackUp(); err != nil {
		return setupErr("loopback", err, "")
	}
	if err := netns.DisableIPv6(); err != nil {
		return setupErr("network", err, "")
	}
	dev, err := netns.CreateTUN(netns.TUN{Name: egress.Device, MTU: egress.MTU, TxQueueLen: egress.TxQueueLen,
		Addr: netip.PrefixFrom(egress.SandboxAddr, egress.SyntheticPrefix.Bits())})
	if err != nil {
		return setupErr("network", err, tunHint(err))
	}
	err = ch.send(&chanMsg{Type: msgTUN}, int(dev.Fd()))
	dev.Close()
	if err != nil {
		return setupErr("network", fmt.Errorf("send the TUN device: %w", err), "")
	}
	m, err := ch.recv()
	if err != nil {
		return setupErr("network", fmt.Errorf("wait for the parent to attach the TUN device: %w", err), "")
	}
	if m.Type != msgNetwork {
		return setupErr("network", fmt.Errorf("got a %q message where the parent attaches the TUN device", m.Type), "")
	}
	return nil
}

// tunHint says what to do when the device cannot be made. Network mode
// egress never falls back to anything: without the device there is no
// network.
func tunHint(err error) string {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		return "the kernel's TUN device is missing: load it (modprobe tun); in a container, pass it in (--device /dev/net/tun)"
	case errors.Is(err, unix.EACCES):
		return fmt.Sprintf("uid %d cannot open /dev/net/tun; its usual mode is 0666, as udev sets it on Debian and Ubuntu: chmod 0666 /dev/net/tun", os.Getuid())
	case errors.Is(err, unix.EPERM):
		return "the kernel refused a TUN device in the sandbox's user namespace (a security module such as AppArmor or SELinux); run `vm-run doctor`"
	}
	return "run `vm-run doctor`"
}

// bindNetFiles covers the sandbox's resolv.conf and hosts (the files the
// /etc names lead to, e.Resolv and e.Hosts) with vm-run's, read-only. The
// files live in a detached tmpfs of their own (fsopen(2), fsmount(2)),
// each attached by a clone of its mount (open_tree(2), move_mount(2)), so
// the command has no other path to them. A target beneath a directory the
// sandbox hides is created there; any other must exist: nothing is ever
// created on the host's file systems.
func bindNetFiles(s *Spec) error {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("fsopen tmpfs", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "size", "64k"); err != nil {
		return os.NewSyscallError("fsconfig", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return os.NewSyscallError("fsconfig create", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return os.NewSyscallError("fsmount", err)
	}
	defer unix.Close(mnt)
	for _, f := range []struct{ name, content, target string }{
		{"resolv.conf", resolvConf, s.Egress.Resolv},
		{"hosts", hostsFile, s.Egress.Hosts},
	} {
		fd, err := unix.Openat(mnt, f.name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return os.NewSyscallError("create "+f.name, err)
		}
		_, err = unix.Write(fd, []byte(f.content))
		unix.Close(fd)
		if err != nil {
			return os.NewSyscallError("write "+f.name, err)
		}
		if err := netFileTarget(s, f.target); err != nil {
			return err
		}
		tree, err := unix.OpenTree(mnt, f.name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("open_tree "+f.name, err)
		}
		err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if err == nil {
			err = unix.MoveMount(tree, "", unix.AT_FDCWD, f.target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(tree)
		if err != nil {
			return os.NewSyscallError("mount "+f.name+" on "+f.target, err)
		}
	}
	return nil
}

// netFileTarget makes sure target exists to be mounted on: it must exist
// already unless it lies beneath a hidden directory, our own tmpfs.
func netFileTarget(s *Spec, target string) error {
	if _, err := os.Lstat(target); err == nil {
		return nil
	}
	for _, h := range append(s.Hide, s.TmpDir) {
		if h != "" && covers(h, target) {
			return mountPoint(target, false)
		}
	}
	return fmt.Errorf("cannot cover %s with the sandbox's own: it does not exist", target)
}

// attachNetwork takes the TUN device from the init stage's message and
// hands it to n. The descriptor must be a TUN device (character device
// 10:200, Documentation/admin-guide/devices.txt), whatever the message says.
func attachNetwork(n Network, fds []int) error {
	if len(fds) != 1 {
		closeFds(fds)
		return fmt.Errorf("the TUN message carried %d descriptors, want 1", len(fds))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		unix.Close(fds[0])
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 200 {
		unix.Close(fds[0])
		return errors.New("the TUN message carried something other than a TUN device")
	}
	if n == nil {
		unix.Close(fds[0])
		return errors.New("the profile's network mode is egress, but nothing carries its traffic")
	}
	return n.Attach(os.NewFile(uintptr(fds[0]), "/dev/net/tun"))
}
