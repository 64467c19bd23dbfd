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
func probeNetifs(params) verdict {
	names, how, err := interfaces()
	if err != nil {
		return broken("list interfaces: %v", err)
	}
	var other []string
	for _, n := range names {
		if n != "lo" {
			other = append(other, n)
		}
	}
	route := "no route to 192.0.2.1"
	routed := false
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}})
		if err == nil {
			routed = true
			route = "a route to 192.0.2.1"
			if sa, err := unix.Getsockname(fd); err == nil {
				if in, ok := sa.(*unix.SockaddrInet4); ok {
					route += " from " + netip.AddrFrom4(in.Addr).String()
				}
			}
		} else {
			route += " (" + errName(err) + ")"
		}
		unix.Close(fd)
	}
	if len(other) > 0 || routed {
		return escaped("interfaces %s (%s); %s", strings.Join(names, ", "), how, route)
	}
	v := blocked("network namespace", "interfaces %s (%s); %s", strings.Join(names, ", "), how, route)
	return v.impossible("this machine has no network interface besides lo and no route off it")
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
