package selftest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The harness's listeners write their token to every connection and close
// it; reading the token back proves the probe reached the host listener and
// not something of the same name inside the sandbox.

// readTokenFd reads what the peer sends on a connected socket, waiting at
// most a few seconds (SO_RCVTIMEO) so that a silent peer cannot hang the
// probe.
func readTokenFd(fd int, token string) (bool, error) {
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return false, &os.SyscallError{Syscall: "read", Err: err}
	}
	return bytes.Contains(buf[:n], []byte(token)), nil
}

// probeTCP: connect to the host's loopback listener addr=IP:PORT and read
// token=T from it.
func probeTCP(ps params) verdict {
	ap, err := netip.ParseAddrPort(ps.get("addr"))
	if err != nil || !ap.Addr().Is4() {
		return broken("addr %q: want IPv4:PORT", ps.get("addr"))
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return blocked(filterMechanism(err, errName(err)), "socket(AF_INET): %s", errName(err))
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if err := unix.Connect(fd, sa); err != nil {
		return blocked(tcpMechanism(err), "connect %s: %s", ap, errName(err))
	}
	ok, err := readTokenFd(fd, ps.get("token"))
	switch {
	case err != nil:
		return broken("connected to %s but reading: %v", ap, err)
	case !ok:
		return blocked("network namespace", "connected to %s, but to a listener that is not the host's", ap)
	}
	return escaped("connected to the host's listener on %s and read its token", ap)
}

// tcpMechanism: in an empty network namespace nothing listens on the host's
// port (ECONNREFUSED) or loopback is down (ENETUNREACH); Landlock refuses a
// TCP connect it does not grant with EACCES (landlock(7), ABI 4).
func tcpMechanism(err error) string {
	switch errnoOf(err) {
	case unix.ECONNREFUSED, unix.ENETUNREACH, unix.EHOSTUNREACH:
		return "network namespace"
	case unix.EACCES:
		return "landlock (tcp)"
	}
	return filterMechanism(err, errName(err))
}

// probeUnix: connect to a host unix socket, path=P or abstract name=N, and
// read token=T. Each layer that stands in the way is named: the socket
// call (seccomp), the path (hidden by a tmpfs), the abstract name (a
// separate network namespace has its own abstract names, unix(7); Landlock
// scopes them, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET).
func probeUnix(ps params) verdict {
	path, name := ps.get("path"), ps.get("name")
	var sa *unix.SockaddrUnix
	var what string
	mech, notes := "", []string(nil)
	switch {
	case path != "":
		sa, what = &unix.SockaddrUnix{Name: path}, path
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			notes = append(notes, fmt.Sprintf("stat %s: %s", path, errName(err)))
			mech = joinMechanism(mech, pathMechanism(err))
		}
	case name != "":
		sa, what = &unix.SockaddrUnix{Name: "@" + name}, "@"+name
	default:
		return broken("want path=P or name=N")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		// Landlock does not govern socket creation: an error here is the
		// filter's (or a kernel without AF_UNIX).
		notes = append(notes, fmt.Sprintf("socket(AF_UNIX): %s", errName(err)))
		mech = joinMechanism(filterMechanism(err, errName(err)), mech)
		return blocked(mech, "%s", strings.Join(notes, "; "))
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		notes = append(notes, fmt.Sprintf("connect %s: %s", what, errName(err)))
		mech = joinMechanism(mech, unixMechanism(err, path == ""))
		return blocked(mech, "%s", strings.Join(notes, "; "))
	}
	ok, err := readTokenFd(fd, ps.get("token"))
	switch {
	case err != nil:
		return broken("connected to %s but reading: %v", what, err)
	case !ok:
		return blocked("namespaces", "connected to %s, but not to the host's listener", what)
	}
	return escaped("connected to the host's unix socket %s and read its token", what)
}

func unixMechanism(err error, abstract bool) string {
	switch errnoOf(err) {
	case unix.ENOENT:
		return "mount hiding (path not visible)"
	case unix.ECONNREFUSED:
		if abstract {
			return "network namespace (own abstract names)"
		}
		return "ECONNREFUSED"
	case unix.EPERM:
		if abstract {
			return "landlock (abstract unix scoping)"
		}
	case unix.EACCES:
		return "landlock"
	}
	return errName(err)
}

// probeNetifs: list the network interfaces and look for a route off the
// machine. Connecting a UDP socket only looks the route up and sends
// nothing (udp(7)); 192.0.2.1 is TEST-NET-1 (RFC 5737), never a real host.
//
// In network mode egress (egress=DEV addr=A) the sandbox has one more
// device, DEV, with the default route through it: that is no escape in
// itself, since its far end is vm-run's stack, which the egress attacks
// test. What would be one is any other device, a DEV that is not a TUN
// device holding A and only A, or a route that leaves from another
// address.
func probeNetifs(ps params) verdict {
	names, how, err := interfaces()
	if err != nil {
		return broken("list interfaces: %v", err)
	}
	dev, want := ps.get("egress"), ps.get("addr")
	var other []string
	hasDev := false
	for _, n := range names {
		switch {
		case n == "lo":
		case dev != "" && n == dev:
			hasDev = true
		default:
			other = append(other, n)
		}
	}
	route := "no route to 192.0.2.1"
	routed := false
	var from netip.Addr
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}})
		if err == nil {
			routed = true
			route = "a route to 192.0.2.1"
			if sa, err := unix.Getsockname(fd); err == nil {
				if in, ok := sa.(*unix.SockaddrInet4); ok {
					from = netip.AddrFrom4(in.Addr)
					route += " from " + from.String()
				}
			}
		} else {
			route += " (" + errName(err) + ")"
		}
		unix.Close(fd)
	}
	detail := fmt.Sprintf("interfaces %s (%s); %s", strings.Join(names, ", "), how, route)
	if dev == "" {
		if len(other) > 0 || routed {
			return escaped("%s", detail)
		}
		v := blocked("network namespace", "%s", detail)
		return v.impossible("this machine has no network interface besides lo and no route off it")
	}
	var bad []string
	if len(other) > 0 {
		bad = append(bad, "devices besides lo and "+dev+": "+strings.Join(other, ", "))
	}
	if hasDev {
		if why := checkEgressDevice(dev, want); why != "" {
			bad = append(bad, why)
		}
	}
	if routed && from.String() != want {
		bad = append(bad, fmt.Sprintf("the route to 192.0.2.1 leaves from %s, not %s", from, want))
	}
	if len(bad) > 0 {
		return escaped("%s (%s)", strings.Join(bad, "; "), detail)
	}
	v := blocked("network namespace (only "+dev+", whose far end is vm-run's stack)", "%s", detail)
	return v.impossible("this machine has no network interface besides lo and no route off it")
}

// checkEgressDevice returns what is wrong with the sandbox's device dev,
// or "": it must be a TUN device (ARPHRD_NONE, which tun_net_init in
// drivers/net/tun.c gives IFF_TUN devices) whose IPv4 address is want.
func checkEgressDevice(dev, want string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket: " + errName(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return err.Error()
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return dev + ": SIOCGIFHWADDR: " + errName(err)
	}
	// The hardware address is a sockaddr whose family is the device type.
	if t := ifr.Uint16(); t != unix.ARPHRD_NONE {
		return fmt.Sprintf("%s has device type %d, not a TUN device's", dev, t)
	}
	ifr, _ = unix.NewIfreq(dev)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFADDR, ifr); err != nil {
		return dev + ": SIOCGIFADDR: " + errName(err)
	}
	a, err := ifr.Inet4Addr()
	if err != nil {
		return dev + ": " + err.Error()
	}
	if got := netip.AddrFrom4([4]byte(a)).String(); got != want {
		return fmt.Sprintf("%s holds %s, not %s", dev, got, want)
	}
	return ""
}

// interfaces lists interface names over netlink, or from /proc/net/dev
// (which shows the caller's network namespace) when netlink is refused.
func interfaces() ([]string, string, error) {
	ifs, err := net.Interfaces()
	if err == nil {
		names := make([]string, 0, len(ifs))
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return names, "netlink", nil
	}
	f, ferr := os.Open("/proc/net/dev")
	if ferr != nil {
		return nil, "", fmt.Errorf("netlink: %v; /proc/net/dev: %v", err, ferr)
	}
	defer f.Close()
	var names []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if n, _, ok := strings.Cut(s.Text(), ":"); ok {
			names = append(names, strings.TrimSpace(n))
		}
	}
	slices.Sort(names)
	return names, "/proc/net/dev", s.Err()
}
