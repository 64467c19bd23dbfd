package stack

import (
	"os"
	"sync"

	"github.com/vm-run/vm-run/netns/egress"
)

// Network runs a [Stack] on the TUN device a sandbox hands over: it is the
// sandbox.Network of network mode egress (package sandbox declares the
// interface; this package does not import it). Attach once, Close when the
// sandbox has ended.
type Network struct {
	cfg   egress.Config
	mu    sync.Mutex
	stack *Stack
}

// NewNetwork returns a Network that starts its stack with cfg.
func NewNetwork(cfg egress.Config) *Network { return &Network{cfg: cfg} }

// Attach starts the stack on dev, which it owns from then on.
func (n *Network) Attach(dev *os.File) error {
	st, err := Start(dev, n.cfg)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.stack = st
	n.mu.Unlock()
	return nil
}

// Close closes the stack, if one was started: every connection ends with
// its net_close record, and the sandbox's network with it.
func (n *Network) Close() error {
	n.mu.Lock()
	st := n.stack
	n.stack = nil
	n.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.Close()
}

// Stats returns the stack's counters; zero before Attach.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stack == nil {
		return Stats{}
	}
	return n.stack.Stats()
}
