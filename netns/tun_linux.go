//go:build linux

package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TUN describes the device [CreateTUN] makes: its name, MTU, transmit
// queue length, the address it holds and its prefix.
type TUN struct {
	Name       string
	MTU        uint32
	TxQueueLen uint32
	Addr       netip.Prefix
}

// CreateTUN creates the TUN device t in the calling thread's network
// namespace (IFF_TUN, IFF_NO_PI: bare IPv4 packets, no header), raises it
// with t's MTU and queue length, gives it t's address and routes every
// destination through it, and returns the open device. Needs
// CAP_NET_ADMIN over the namespace; the kernel checks it in the user
// namespace that owns the network namespace (tun_set_iff in
// drivers/net/tun.c, ns_capable(net->user_ns, CAP_NET_ADMIN)), so the init
// stage can, as root and as any user. The device belongs to the namespace
// it was created in and disappears when the last descriptor of it closes
// (tun_chr_close), so whoever holds the descriptor is the sandbox's
// network. Call [DisableIPv6] first, or the kernel gives the device an
// IPv6 link-local address and sends router solicitations through it.
//
// The queue length is set through rtnetlink (IFLA_TXQLEN): the
// SIOCSIFTXQLEN ioctl is refused in a user namespace.
func CreateTUN(t TUN) (*os.File, error) {
	if !t.Addr.Addr().Is4() {
		return nil, fmt.Errorf("create %s: want an IPv4 address, got %s", t.Name, t.Addr)
	}
	f, err := OpenTUN(t.Name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", t.Name, err)
	}
	if err := configure(t); err != nil {
		f.Close()
		return nil, fmt.Errorf("configure %s: %w", t.Name, err)
	}
	return f, nil
}

// OpenTUN creates the TUN device name (IFF_TUN, IFF_NO_PI) in the calling
// thread's network namespace and returns it, down and unconfigured. The
// device goes when the descriptor closes.
func OpenTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/net/tun", Err: err}
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		f.Close()
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		f.Close()
		return nil, os.NewSyscallError("ioctl TUNSETIFF", err)
	}
	return f, nil
}

// configure raises the device and gives it its address and the default
// route, over one rtnetlink socket (rtnetlink(7)).
func configure(t TUN) error {
	index, err := IfIndex(t.Name)
	if err != nil {
		return err
	}
	// The link first: a route through a device that is down is refused
	// (ENETDOWN).
	link := unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index), Flags: unix.IFF_UP, Change: unix.IFF_UP}
	msg := struct2bytes(unsafe.Pointer(&link), unix.SizeofIfInfomsg)
	msg = RtAttr(msg, unix.IFLA_MTU, u32(t.MTU))
	msg = RtAttr(msg, unix.IFLA_TXQLEN, u32(t.TxQueueLen))
	if err := Rtnetlink(unix.RTM_NEWLINK, 0, msg); err != nil {
		return fmt.Errorf("set link up, mtu %d, txqueuelen %d: %w", t.MTU, t.TxQueueLen, err)
	}
	if err := Rtnetlink(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, AddrMessage(index, t.Addr)); err != nil {
		return fmt.Errorf("add address %s: %w", t.Addr, err)
	}
	if err := Rtnetlink(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, RouteMessage(index, netip.PrefixFrom(netip.IPv4Unspecified(), 0))); err != nil {
		return fmt.Errorf("add default route: %w", err)
	}
	return nil
}

// AddrMessage is the body of an RTM_NEWADDR request giving interface
// index the address p: an ifaddrmsg with IFA_LOCAL and IFA_ADDRESS
// (rtnetlink(7)).
func AddrMessage(index int, p netip.Prefix) []byte {
	a4 := p.Addr().As4()
	addr := unix.IfAddrmsg{Family: unix.AF_INET, Prefixlen: uint8(p.Bits()), Index: uint32(index)}
	msg := struct2bytes(unsafe.Pointer(&addr), unix.SizeofIfAddrmsg)
	msg = RtAttr(msg, unix.IFA_LOCAL, a4[:])
	return RtAttr(msg, unix.IFA_ADDRESS, a4[:])
}

// RouteMessage is the body of an RTM_NEWROUTE request for a route to dst
// through interface index, on the link (rtmsg, RTA_DST unless dst is the
// default route, RTA_OIF; rtnetlink(7)).
func RouteMessage(index int, dst netip.Prefix) []byte {
	route := unix.RtMsg{Family: unix.AF_INET, Dst_len: uint8(dst.Bits()), Table: unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT, Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST}
	msg := struct2bytes(unsafe.Pointer(&route), unix.SizeofRtMsg)
	if dst.Bits() > 0 {
		a4 := dst.Addr().As4()
		msg = RtAttr(msg, unix.RTA_DST, a4[:])
	}
	return RtAttr(msg, unix.RTA_OIF, u32(uint32(index)))
}

// DisableIPv6 turns IPv6 off in the calling thread's network namespace,
// for every device present and to come: net.ipv6.conf.{all,default}.
// disable_ipv6 (ip-sysctl.rst). The files under /proc/sys/net belong to
// the namespace of whoever opens them. A kernel without IPv6 has no such
// files and nothing to turn off.
func DisableIPv6() error {
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		err := os.WriteFile(f, []byte("1\n"), 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("disable IPv6: %w", err)
		}
	}
	return nil
}

// IfIndex returns the index of interface name in the calling thread's
// network namespace.
func IfIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl SIOCGIFINDEX "+name, err)
	}
	return int(ifr.Uint32()), nil
}

// Rtnetlink sends one rtnetlink request of type typ with NLM_F_ACK and
// flags, over a socket of its own, and waits (at most five seconds) for
// the kernel's answer: an NLMSG_ERROR whose error is 0 on success
// (netlink(7), "NLMSG_ERROR ... error 0 ... acknowledgement"), or the
// errno it carries.
func Rtnetlink(typ uint16, flags uint16, body []byte) error {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("socket(AF_NETLINK)", err)
	}
	defer unix.Close(nl)
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	const seq = 1
	hdr := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: typ,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags, Seq: seq}
	msg := append(struct2bytes(unsafe.Pointer(&hdr), unix.SizeofNlMsghdr), body...)
	if err := unix.Sendto(nl, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(nl, buf, 0)
		if err != nil {
			return os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("short netlink error message")
			}
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
}

// RtAttr appends one rtattr: length and type, the payload, padding to
// four bytes (RTA_ALIGN).
func RtAttr(b []byte, typ uint16, payload []byte) []byte {
	l := unix.SizeofRtAttr + len(payload)
	var h [unix.SizeofRtAttr]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(l))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, payload...)
	for l%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
		l++
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func struct2bytes(p unsafe.Pointer, n int) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(p), n)...)
}
