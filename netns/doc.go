// Package netns sets up the sandbox's network namespace: the init stage
// checks with [ID] that it is no longer in the host's namespace and, when
// the profile asks for loopback, brings lo up with [LoopbackUp]. A fresh
// network namespace holds only a loopback interface, down, so a profile with
// network mode "none" reaches nothing at all, not even 127.0.0.1.
//
//	id, err := netns.ID() // "NS(4:4026531840)"
//	if err == nil && id == hostID {
//		// still in the host's namespace: refuse to go on
//	}
//
// Namespace handles come from github.com/vishvananda/netns; the loopback is
// raised with the SIOCSIFFLAGS ioctl (netdevice(7)), which needs
// CAP_NET_ADMIN over the namespace and nothing else.
package netns
