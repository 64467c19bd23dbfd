package selftest

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/netns/stack"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// A sandbox of a profile in network mode egress needs its network: the
// stack (package netns/stack) that carries the traffic of its tun0. The
// battery gives each sandboxed run a stack of its own, recording into
// memory, and closes it when the probe has ended, before it reads the
// records: the stack writes the last of them as it closes.

// egressMode reports whether the profile's network mode is egress.
func egressMode(p *profiles.Profile) bool { return p.Network.Mode == profiles.NetworkEgress }

// netRun says which network a sandboxed run gets in network mode egress.
type netRun int

const (
	// profileNet: the profile's own allowlist and vm-run's dialer, as
	// `vm-run run` would start it (sandbox.EgressConfig).
	profileNet netRun = iota
	// openNet: a policy that allows every name and destination, and a
	// dialer that connects every connection to the battery's loopback
	// listener, which stands in for the destination. A probe that reads
	// the listener's token through it shows that the path through tun0
	// and the stack works here, so that only the allowlist stops the
	// same probe under profileNet. The stack's own rules (DNS only to the
	// stub, no UDP, no synthetic address that was not handed out) hold
	// whatever the policy says.
	openNet
)

// memRecorder keeps the stack's records in memory. Safe for concurrent
// use.
type memRecorder struct {
	mu  sync.Mutex
	evs []audit.Event
}

// Record implements egress.Recorder.
func (m *memRecorder) Record(_ context.Context, ev audit.Event) error {
	m.mu.Lock()
	m.evs = append(m.evs, ev)
	m.mu.Unlock()
	return nil
}

func (m *memRecorder) events() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.evs...)
}

// openPolicy allows everything: the policy of openNet.
type openPolicy struct{}

// Name implements egress.Policy.
func (openPolicy) Name(name string) (*egress.Rule, bool) {
	return &egress.Rule{Host: name, Ports: []uint16{1}, Private: true, NoSNI: true}, true
}

// Connect implements egress.Policy.
func (openPolicy) Connect(name string, addr netip.Addr, port uint16) (*egress.Rule, string) {
	host := name
	if host == "" {
		host = addr.String()
	}
	return &egress.Rule{Host: host, Ports: []uint16{port}, Private: true, NoSNI: true}, ""
}

// standIn is the dialer of openNet: whatever the destination, it
// connects to the battery's loopback listener, so that nothing but the
// battery's own fixture is ever reached.
type standIn struct{ addr string }

// Dial implements egress.Dialer.
func (d standIn) Dial(ctx context.Context, _ string, _ netip.Addr, _ uint16, _ *egress.Rule) (net.Conn, string, string, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp4", d.addr)
	if err != nil {
		return nil, "", "", err
	}
	return c, d.addr, "", nil
}

// network returns the network of a sandboxed run under profile p and the
// recorder its stack writes to, or nils when p's network mode is not
// egress.
func (r *runner) network(p *profiles.Profile, which netRun) (*stack.Network, *memRecorder, error) {
	if !egressMode(p) {
		return nil, nil, nil
	}
	rec := &memRecorder{}
	if which == openNet {
		return stack.NewNetwork(egress.Config{
			Policy:   openPolicy{},
			Names:    egress.NewNames(),
			Dialer:   standIn{addr: r.fx.tcpAddr},
			Recorder: rec,
			Limits:   p.Network.EgressLimits().WithDefaults(),
		}), rec, nil
	}
	env := r.opts.Env
	if env == nil {
		env = os.Environ()
	}
	cfg, err := sandbox.EgressConfig(p.Network, rec, env)
	if err != nil {
		return nil, nil, err
	}
	return stack.NewNetwork(cfg), rec, nil
}

// watchResolver returns p, or a copy of it whose network.resolver is the
// battery's DNS fixture when p is in network mode egress and names no
// resolver of its own: vm-run's dialer would otherwise ask the host's,
// which the battery cannot watch. A profile's own resolver is kept.
func (r *runner) watchResolver(p *profiles.Profile) *profiles.Profile {
	if !egressMode(p) || p.Network.Resolver != "" || r.fx.egress.dns == nil {
		return p
	}
	c := *p
	c.Network.Resolver = r.fx.egress.dns.addr
	r.watched = true
	return &c
}

// runSandbox is sandbox.Run with a network: n is attached to the
// sandbox's TUN device in network mode egress, and must be nil in the
// other modes. Like sandbox.Run it keeps the goroutine on its OS thread
// for the sandbox's lifetime (the init stage's parent-death signal is
// per thread, prctl(2) PR_SET_PDEATHSIG).
func runSandbox(s *sandbox.Spec, stdio sandbox.Stdio, n sandbox.Network, started func(*sandbox.Process)) (sandbox.Status, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	trees, err := s.OpenTrees()
	if err != nil {
		return sandbox.Status{}, err
	}
	pending := sandbox.SpawnTrees(s.UID, s.GID, stdio, trees)
	for _, f := range trees {
		f.Close()
	}
	p, err := pending.StartNetwork(s, n)
	if err != nil {
		return sandbox.Status{}, err
	}
	if started != nil {
		started(p)
	}
	return p.Wait()
}
