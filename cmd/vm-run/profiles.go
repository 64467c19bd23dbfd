package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

type profilesCmd struct {
	List profilesListCmd `cmd:"" help:"List the built-in profiles and yours."`
	Show profilesShowCmd `cmd:"" help:"Print a profile merged and expanded, as vm-run would enforce it."`
}

type profilesListCmd struct{}

func (profilesListCmd) Run(stdout io.Writer) error {
	infos, err := profiles.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tDESCRIPTION")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, i.Source, i.Description)
	}
	return tw.Flush()
}

type profilesShowCmd struct {
	Name      string `arg:"" help:"Profile name or path." placeholder:"NAME|PATH"`
	Workspace string `short:"w" help:"Workspace to expand $${WORKSPACE} with (default: the current directory)." placeholder:"DIR"`
	Policy    string `help:"A tool policy file, or builtin:NAME for a preset's, applied as vm-run --policy would: its deny rules add to the profile's, its allow rules and default replace them." placeholder:"FILE|builtin:NAME"`
}

func (c profilesShowCmd) Run(stdout io.Writer) error {
	ws := c.Workspace
	if ws == "" {
		ws, _ = os.Getwd()
	}
	home, _ := os.UserHomeDir()
	vars := profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir}
	p, err := profiles.Load(c.Name, vars)
	if err != nil {
		return err
	}
	if p, err = withPolicyFile(p, c.Policy, vars); err != nil {
		return err
	}
	out, err := p.YAML()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s, hash %s\n", p.Name, p.Hash())
	// The tool policy in force, a rule a line with the file it comes
	// from; the YAML below says the same with a comment on each rule.
	fmt.Fprintln(stdout, "#\n# tool policy in force (deny and ask rules accumulate down extends: and from --policy;")
	fmt.Fprintln(stdout, "# allow rules and the default come from the nearest tools: section):")
	for _, line := range strings.Split(strings.TrimSuffix(p.Tools.Describe(), "\n"), "\n") {
		fmt.Fprintf(stdout, "#   %s\n", line)
	}
	// Shares of the host's memory and CPUs, as they come out here.
	if c, err := sandbox.CgroupLimits(p.Limits); err == nil {
		fmt.Fprintf(stdout, "#\n# cgroup limits on this host: %s\n", cgroupLimits(p.Limits, c))
	}
	if p.Network.Mode == profiles.NetworkEgress {
		fmt.Fprintln(stdout, "#\n# network egress: the sandbox reaches these, by name, through vm-run; nothing else:")
		for _, r := range egressRows(p.Network, nil) {
			fmt.Fprintf(stdout, "#   %-14s  %s\n", r[0], r[1])
		}
	}
	_, err = stdout.Write(out)
	return err
}
