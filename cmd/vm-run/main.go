// Command vm-run runs an MCP server, or any command, inside a Linux kernel
// sandbox. See the README and `vm-run --help`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/selftest"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	Run      runCmd      `cmd:"" default:"withargs" help:"Run a command in the sandbox (the default: vm-run [flags] -- COMMAND [ARGS...])."`
	Doctor   doctorCmd   `cmd:"" help:"Show which kernel features this machine has and which profiles it can enforce."`
	Profiles profilesCmd `cmd:"" help:"List and show profiles."`
	Selftest selftestCmd `cmd:"" help:"Run the escape battery under a profile and report what got out."`
	Audit    auditCmd    `cmd:"" help:"Verify and query the audit ledger."`
	Policy   policyCmd   `cmd:"" help:"Generate a profile from what a recorded session used (record, generate, review, approve)."`
	Version  versionCmd  `cmd:"" help:"Print vm-run's version."`
}

func main() {
	// The hidden stages are recognised by argv[0] before kong sees anything:
	// they take no flags, and their input comes over inherited fds.
	switch os.Args[0] {
	case sandbox.InitArg0:
		sandbox.InitMain()
	case sandbox.NSCheckArg0:
		os.Exit(0)
	case selftest.ProbeArg0:
		os.Exit(selftest.ProbeMain(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("vm-run"),
		kong.Description("Run an MCP server, or any command, in a Linux kernel sandbox."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.BindTo(stdout, (*io.Writer)(nil)),
	)
	if err != nil {
		fmt.Fprintf(stderr, "vm-run: error: %v\n", err)
		return sandbox.ExitSetup
	}
	code := func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				c, ok := r.(exitCode)
				if !ok {
					panic(r)
				}
				code = int(c)
			}
		}()
		ctx, err := parser.Parse(args)
		if err != nil {
			fmt.Fprintf(stderr, "vm-run: error: %v\n", err)
			fmt.Fprintf(stderr, "vm-run: hint: see vm-run --help\n")
			return sandbox.ExitSetup
		}
		return report(ctx.Run(), stderr)
	}()
	return code
}

// exitCode carries kong's exit (after --help) out of its parser.
type exitCode int

// exitStatus is an error that only carries the status to exit with: the
// command's own, or a verdict such as `audit verify`'s. It prints nothing.
type exitStatus struct {
	Code int
	Err  error // printed when set
}

func (e *exitStatus) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *exitStatus) Unwrap() error { return e.Err }

// report prints err the house way and returns the exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var st *exitStatus
	if errors.As(err, &st) {
		if st.Err != nil {
			fmt.Fprintf(stderr, "vm-run: error: %v\n", st.Err)
		}
		return st.Code
	}
	var se *sandbox.SetupError
	if errors.As(err, &se) {
		fmt.Fprintf(stderr, "vm-run: error: %v\n", se)
		if se.Hint != "" {
			fmt.Fprintf(stderr, "vm-run: hint: %s\n", se.Hint)
		}
		return se.Code
	}
	var h interface{ Hint() string }
	fmt.Fprintf(stderr, "vm-run: error: %v\n", err)
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(stderr, "vm-run: hint: %s\n", h.Hint())
	}
	return sandbox.ExitSetup
}
