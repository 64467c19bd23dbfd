package sandbox

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/profiles"
)

// Network is the host side of a sandbox's network in mode egress: what
// carries the traffic of the TUN device the init stage creates in the
// sandbox's network namespace (package netns/stack does, under the
// profile's allowlist).
//
// Attach is called once per sandbox, from [Pending.StartNetwork], before
// the command runs and while the init stage waits for it. dev is the
// device, configured and up, and Attach owns it from then on: the sandbox
// has a network exactly as long as dev stays open, and no other copy of it
// exists. Attach must return promptly; an error stops the launch (exit
// 125), and Attach has then closed dev.
type Network interface {
	Attach(dev *os.File) error
}

// egressFiles finds the files the sandbox's /etc/resolv.conf and
// /etc/hosts lead to, which the init stage covers.
func egressFiles() (*Egress, error) {
	var e Egress
	for _, f := range []struct {
		name string
		to   *string
	}{{"/etc/resolv.conf", &e.Resolv}, {"/etc/hosts", &e.Hosts}} {
		t, err := linkTarget(f.name)
		if err != nil {
			return nil, &SetupError{Code: ExitSetup, Op: "network", Msg: err.Error()}
		}
		*f.to = t
	}
	return &e, nil
}

// linkTarget follows the symlinks of path, a file whose last component
// may not exist, to the file the sandbox really opens.
func linkTarget(path string) (string, error) {
	for range 40 { // the kernel's own limit on followed links
		dir, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			return "", err
		}
		path = filepath.Join(dir, filepath.Base(path))
		t, err := os.Readlink(path)
		if err != nil {
			// Not a link, or missing: this is the file.
			return path, nil
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(dir, t)
		}
		path = filepath.Clean(t)
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// EgressConfig turns a profile's network section (mode egress) into what
// the stack needs: the allowlist as its policy, a fresh table of synthetic
// names, and the host dialer, through the profile's upstream proxy or,
// when it names none, the caller's HTTPS_PROXY from env. Records go to rec.
func EgressConfig(n profiles.Network, rec egress.Recorder, env []string) (egress.Config, error) {
	allow, err := egress.NewAllowlist(n.Allow)
	if err != nil {
		return egress.Config{}, &SetupError{Code: ExitSetup, Op: "network", Msg: err.Error()}
	}
	var proxy *url.URL
	if n.UpstreamProxy != "" {
		if proxy, err = url.Parse(n.UpstreamProxy); err != nil {
			return egress.Config{}, &SetupError{Code: ExitSetup, Op: "network",
				Msg: "upstream_proxy: " + profiles.RedactURL(err.Error())}
		}
	} else if proxy, err = egress.ProxyFromEnv(env); err != nil {
		return egress.Config{}, &SetupError{Code: ExitSetup, Op: "network", Msg: "HTTPS_PROXY: " + profiles.RedactURL(err.Error()),
			Hint: "set network.upstream_proxy in the profile, or HTTPS_PROXY=http://HOST:PORT"}
	}
	limits := n.EgressLimits().WithDefaults()
	return egress.Config{
		Policy:   allow,
		Names:    egress.NewNames(),
		Dialer:   &egress.HostDialer{Resolver: n.Resolver, Proxy: proxy, Timeout: limits.DialTimeout},
		Recorder: rec,
		Limits:   limits,
	}, nil
}
