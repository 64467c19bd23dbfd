//go:build linux

package stack

// Just enough rtnetlink (rtnetlink(7)) for the test sandbox to set up its
// links: the same requests `ip link set`, `ip addr add` and `ip route
// add` make. SIOCSIFTXQLEN is refused in a user namespace; RTM_NEWLINK
// with IFLA_TXQLEN is not (EGRESS.md).

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns/egress"
)

// configureLinks raises lo, and sets tun0 up with egress's MTU, queue
// length, the sandbox's address and a default route.
func configureLinks() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	tun, err := net.InterfaceByName(egress.Device)
	if err != nil {
		return err
	}
	// The sandbox speaks IPv4 only; an IPv6 tun0 would send router
	// solicitations into the stack.
	os.WriteFile("/proc/sys/net/ipv6/conf/"+egress.Device+"/disable_ipv6", []byte("1"), 0)
	if err := setLink(lo.Index, nil); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	attrs := append(nlAttr(unix.IFLA_MTU, u32(egress.MTU)), nlAttr(unix.IFLA_TXQLEN, u32(egress.TxQueueLen))...)
	if err := setLink(tun.Index, attrs); err != nil {
		return fmt.Errorf("set %s up: %w", egress.Device, err)
	}
	a := egress.SandboxAddr.As4()
	ifa := make([]byte, unix.SizeofIfAddrmsg)
	ifa[0] = unix.AF_INET
	ifa[1] = uint8(egress.SyntheticPrefix.Bits())
	ifa[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(ifa[4:], uint32(tun.Index))
	ifa = append(ifa, nlAttr(unix.IFA_LOCAL, a[:])...)
	ifa = append(ifa, nlAttr(unix.IFA_ADDRESS, a[:])...)
	if err := nlRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifa); err != nil {
		return fmt.Errorf("add address %s: %w", egress.SandboxAddr, err)
	}
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0] = unix.AF_INET
	rt[4] = unix.RT_TABLE_MAIN
	rt[5] = unix.RTPROT_BOOT
	rt[6] = unix.RT_SCOPE_LINK
	rt[7] = unix.RTN_UNICAST
	rt = append(rt, nlAttr(unix.RTA_OIF, u32(uint32(tun.Index)))...)
	if err := nlRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, rt); err != nil {
		return fmt.Errorf("add default route: %w", err)
	}
	return nil
}

// setLink sets the link up, with attrs.
func setLink(index int, attrs []byte) error {
	ifi := make([]byte, unix.SizeofIfInfomsg)
	ifi[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(ifi[4:], uint32(index))
	binary.NativeEndian.PutUint32(ifi[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(ifi[12:], unix.IFF_UP)
	return nlRequest(unix.RTM_NEWLINK, 0, append(ifi, attrs...))
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// nlAttr encodes one route attribute, padded to 4 bytes.
func nlAttr(typ uint16, val []byte) []byte {
	b := make([]byte, unix.SizeofRtAttr, unix.SizeofRtAttr+len(val)+3)
	binary.NativeEndian.PutUint16(b, uint16(unix.SizeofRtAttr+len(val)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlRequest sends one request and waits for the kernel's acknowledgement.
func nlRequest(typ uint16, flags uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("socket netlink", err)
	}
	defer unix.Close(fd)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg, uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto netlink", err)
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return os.NewSyscallError("recvfrom netlink", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return syscall.Errno(-e)
			}
			return nil
		}
	}
	return fmt.Errorf("no acknowledgement from the kernel")
}
