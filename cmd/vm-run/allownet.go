package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// allowNetHint says what --allow-net takes.
const allowNetHint = "--allow-net takes one HOST:PORT: a name (api.github.com:443), a domain's subdomains " +
	"('*.slack.com:443', quoted for the shell), an IPv4 address (10.0.0.5:5432) or host-loopback:PORT " +
	"for the host's own 127.0.0.1; repeat the flag for more"

// withAllowNet applies --allow-net to the loaded profile: its rules are
// added to network.allow and the profile switches to mode egress
// ([profiles.Profile.WithAllow]). ref is the --profile given, for the hint.
// A loopback profile with port rules is refused rather than have them
// silently stop applying.
func withAllowNet(p *profiles.Profile, flags []string, ref string) (*profiles.Profile, error) {
	if len(flags) == 0 {
		return p, nil
	}
	rules := make([]egress.Rule, 0, len(flags))
	for _, v := range flags {
		r, err := egress.ParseRule(v)
		if err != nil {
			// ParseRule may name the value itself; the flag says it once.
			msg := strings.TrimPrefix(err.Error(), strconv.Quote(v)+": ")
			return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: fmt.Sprintf("--allow-net %q", v),
				Msg: msg, Hint: allowNetHint}
		}
		rules = append(rules, r)
	}
	q, err := p.WithAllow(rules...)
	if errors.Is(err, profiles.ErrLoopbackPorts) {
		n := p.Network
		var has, drop []string
		if n.AnyPort {
			has, drop = append(has, "any_port"), append(drop, "any_port: false")
		}
		for _, l := range []struct {
			key   string
			ports []uint16
		}{{"connect_tcp", n.ConnectTCP}, {"bind_tcp", n.BindTCP}} {
			if len(l.ports) == 0 {
				continue
			}
			has = append(has, l.key)
			var rm []string
			for _, port := range l.ports {
				rm = append(rm, fmt.Sprintf(`"!%d"`, port))
			}
			drop = append(drop, l.key+": ["+strings.Join(rm, ", ")+"]")
		}
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--allow-net",
			Msg: fmt.Sprintf("profile %q has network mode loopback with %s; --allow-net switches it to mode egress, "+
				"which replaces loopback mode and its port rules", p.Name, strings.Join(has, " and ")),
			Hint: fmt.Sprintf("use a profile in mode none or egress (strict, standard), or write one with "+
				"extends: %s and network: {mode: egress, %s}", ref, strings.Join(drop, ", "))}
	}
	if err != nil {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "--allow-net", Msg: err.Error()}
	}
	return q, nil
}

// egressRows describe a network in mode egress, a [key, value] pair a
// line: each rule with its flags, the upstream proxy (password hidden),
// the resolver and the limits in force. getenv, when not nil, is the
// environment vm-run runs with, to say which proxy variable applies.
func egressRows(n profiles.Network, getenv func(string) string) [][2]string {
	var out [][2]string
	if len(n.Allow) == 0 {
		out = append(out, [2]string{"allow", "(empty) allows no host: every name is answered NXDOMAIN, nothing is reachable"})
	}
	for _, r := range n.Allow {
		out = append(out, [2]string{"allow", profiles.DescribeRule(r)})
	}
	proxy := "none in the profile: vm-run dials directly, or through $HTTPS_PROXY of its own environment if set"
	switch {
	case n.UpstreamProxy != "":
		proxy = profiles.RedactURL(n.UpstreamProxy) + " (HTTP CONNECT; the sandbox never sees it)"
	case getenv != nil:
		proxy = "none: vm-run dials directly ($HTTPS_PROXY is not set)"
		for _, k := range []string{"HTTPS_PROXY", "https_proxy"} {
			if v := getenv(k); v != "" {
				proxy = "none in the profile; $" + k + " of vm-run's environment: " + profiles.RedactURL(v)
				break
			}
		}
	}
	out = append(out, [2]string{"upstream proxy", proxy})
	resolver := "the host's (/etc/resolv.conf)"
	if n.Resolver != "" {
		resolver = n.Resolver
	}
	out = append(out, [2]string{"resolver", resolver + ", asked only for allowed names"})
	out = append(out, [2]string{"egress limits", n.DescribeLimits()})
	return out
}

// tunDevice is the TUN clone device mode egress needs.
const tunDevice = "/dev/net/tun"

// tunCheck reports whether the TUN clone device at path opens read-write,
// as mode egress needs it to in the sandbox's namespace, and what to do
// when it does not. It only opens and closes the device: creating the
// interface (TUNSETIFF) is the launch's job, in the namespace it belongs
// to (Documentation/networking/tuntap.rst).
func tunCheck(path string) (ok bool, detail string) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err == nil {
		f.Close()
		return true, path + " opens read-write (the device itself is created in the sandbox's namespace at launch)"
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	switch errno {
	case syscall.ENOENT, syscall.ENODEV, syscall.ENXIO:
		return false, fmt.Sprintf("%v: profiles with network mode egress cannot start "+
			"(hint: modprobe tun; in a container, pass --device %s)", err, tunDevice)
	case syscall.EACCES, syscall.EPERM:
		return false, fmt.Sprintf("%v: profiles with network mode egress cannot start (hint: the device "+
			"should be mode 0666; in a container, pass --device %s; SELinux or AppArmor may refuse it too)", err, tunDevice)
	}
	return false, fmt.Sprintf("%v: profiles with network mode egress cannot start", err)
}
