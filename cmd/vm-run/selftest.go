package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/selftest"
)

type selftestCmd struct {
	Profile string `short:"p" default:"strict" help:"Profile to attack: a name or a path." placeholder:"NAME|PATH"`
}

// Run runs the escape battery: every probe first unsandboxed, to show the
// attack works on this machine, then under the profile. A profile in
// network mode egress gets the egress attacks too, each sandbox its own
// network, as run starts it.
func (c selftestCmd) Run(stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find vm-run's own executable: %w", err)
	}
	// ${HOME} is the home of the user the probes run as: nobody's when
	// root runs the battery, as for vm-run run.
	who, err := commandIDs("")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := selftest.Run(ctx, selftest.Options{
		ProfileName: c.Profile,
		Load: func(workspace string) (*profiles.Profile, error) {
			return profiles.Load(c.Profile, profiles.Vars{Workspace: workspace, Home: who.home, TmpDir: sandbox.TmpDir})
		},
		Self:   self,
		Stderr: os.Stderr,
		// In network mode egress vm-run's dialer reads HTTPS_PROXY from
		// here when the profile names no upstream proxy, as for run.
		Env: os.Environ(),
	})
	if err != nil {
		return err
	}
	rep.WriteTable(stdout)
	if rep.Escaped() {
		return &exitStatus{Code: 1, Err: fmt.Errorf("selftest: something got out of the %s profile (see the table)", c.Profile)}
	}
	return nil
}
