package selftest

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns"
	"github.com/vm-run/vm-run/netns/egress"
)

// The attack on the sandbox's own network configuration: a program that
// could create devices, addresses or routes could at least confuse what
// the sandbox's network looks like, and a second TUN device would be a
// device whose far end is the program itself. Each step needs
// CAP_NET_ADMIN over the network namespace, which the init stage gives up
// after it has created tun0 (tun_set_iff in drivers/net/tun.c checks
// ns_capable(net->user_ns, CAP_NET_ADMIN); rtnetlink_rcv_msg in
// net/core/rtnetlink.c checks netlink_net_capable(skb, CAP_NET_ADMIN)
// for every request that is not a dump).

// Addresses the probe adds: TEST-NET-1 (RFC 5737), nobody's.
var (
	probeAddr  = netip.MustParsePrefix("192.0.2.99/32")
	probeRoute = netip.MustParsePrefix("192.0.2.0/24")
)

// probeNetAdmin: create another TUN device, add an address to tun0, add
// a route through it. With setup=1 (the baseline, in a network namespace
// of its own) it first creates tun0 as the init stage does.
func probeNetAdmin(ps params) verdict {
	if ps.get("setup") == "1" {
		if err := netns.DisableIPv6(); err != nil {
			return broken("set up as the init stage does: %v", err)
		}
		dev, err := netns.CreateTUN(netns.TUN{Name: egress.Device, MTU: egress.MTU, TxQueueLen: egress.TxQueueLen,
			Addr: netip.PrefixFrom(egress.SandboxAddr, egress.SyntheticPrefix.Bits())})
		if err != nil {
			return broken("set up %s as the init stage does: %v", egress.Device, err)
		}
		defer dev.Close()
	}
	var done, notes []string
	mech := ""
	step := func(what string, err error) {
		if err == nil {
			done = append(done, what)
			return
		}
		notes = append(notes, fmt.Sprintf("%s: %s", what, errName(err)))
		mech = joinMechanism(mech, netAdminMechanism(err))
	}
	step("create TUN device vmrun-probe0", newTUN("vmrun-probe0"))
	index, err := netns.IfIndex(egress.Device)
	if err != nil {
		return broken("find %s: %v", egress.Device, err)
	}
	step(fmt.Sprintf("add %s to %s", probeAddr, egress.Device), create(unix.RTM_NEWADDR, netns.AddrMessage(index, probeAddr)))
	step(fmt.Sprintf("add a route to %s through %s", probeRoute, egress.Device), create(unix.RTM_NEWROUTE, netns.RouteMessage(index, probeRoute)))
	if len(done) > 0 {
		return escaped("%s", strings.Join(append(done, notes...), "; "))
	}
	return blocked(mech, "%s", strings.Join(notes, "; "))
}

// netAdminMechanism names what refused a step. The kernel answers EPERM
// without CAP_NET_ADMIN; no seccomp rule of vm-run's filters TUNSETIFF or
// netlink, and a netlink request's error comes from the kernel in an
// NLMSG_ERROR, never from a filter.
func netAdminMechanism(err error) string {
	switch errnoOf(err) {
	case unix.EPERM:
		if !hasCap(unix.CAP_NET_ADMIN) {
			return "no CAP_NET_ADMIN (EPERM)"
		}
		return filterMechanism(err, "kernel (EPERM)")
	case unix.ENOENT:
		return "no /dev/net/tun in the sandbox"
	case unix.EACCES:
		return "landlock (device not granted)"
	}
	return errName(err)
}

// newTUN creates a TUN device and closes it at once, which removes it
// (tun_chr_close).
func newTUN(name string) error {
	f, err := netns.OpenTUN(name)
	if err != nil {
		return err
	}
	return f.Close()
}

// create sends an rtnetlink request that creates something.
func create(typ uint16, body []byte) error {
	return netns.Rtnetlink(typ, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}
