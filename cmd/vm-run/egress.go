package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/netns/stack"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// denialWindow is how often one kind of network denial is recorded: the
// ones in between are counted into the next (egress.RateLimit).
const denialWindow = 10 * time.Second

// egressNet is a session's network in mode egress: the stack that carries
// the sandbox's traffic under the profile's allowlist, recording to the
// session's ledger through a rate limiter of denials.
type egressNet struct {
	*stack.Network
	limited *egress.Limited
}

func newEgressNet(n profiles.Network, l *audit.Ledger, env []string) (*egressNet, error) {
	limited := egress.RateLimit(egress.LedgerRecorder(l), denialWindow)
	cfg, err := sandbox.EgressConfig(n, limited, env)
	if err != nil {
		return nil, err
	}
	return &egressNet{Network: stack.NewNetwork(cfg), limited: limited}, nil
}

// close ends the sandbox's connections, each with its net_close record,
// and writes the denials still counted: before session_end.
func (e *egressNet) close() {
	e.Network.Close()
	if err := e.limited.Flush(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "vm-run: error: ledger: the last network denials: %v\n", err)
	}
}
