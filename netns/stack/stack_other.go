//go:build !linux

package stack

import (
	"errors"
	"os"

	"github.com/vm-run/vm-run/netns/egress"
)

// ErrNotSupported is returned by Start where there is no TUN device.
var ErrNotSupported = errors.New("the egress network stack needs Linux")

// Stack is the parent's TCP/IP stack on the sandbox's TUN device; only
// Linux has one.
type Stack struct{}

// Start closes tun and returns ErrNotSupported.
func Start(tun *os.File, cfg egress.Config) (*Stack, error) {
	if tun != nil {
		tun.Close()
	}
	return nil, ErrNotSupported
}

// Close does nothing.
func (s *Stack) Close() error { return nil }

// Stats returns zero counters.
func (s *Stack) Stats() Stats { return Stats{} }
