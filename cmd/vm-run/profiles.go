package main

import (
	"fmt"
	"io"
	"os"
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
}

func (c profilesShowCmd) Run(stdout io.Writer) error {
	ws := c.Workspace
	if ws == "" {
		ws, _ = os.Getwd()
	}
	home, _ := os.UserHomeDir()
	p, err := profiles.Load(c.Name, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
	if err != nil {
		return err
	}
	out, err := p.YAML()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s, hash %s\n", p.Name, p.Hash())
	_, err = stdout.Write(out)
	return err
}
