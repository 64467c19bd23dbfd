// GOMAXPROCS stays the machine's CPU count: reading the cgroup CPU limit at
// start and re-reading it every second (Go 1.25's container-aware
// GOMAXPROCS) cost every sandbox start, and the init stage is a Go process
// too, while vm-run never needs more than a couple of threads busy.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command vm-run runs an MCP server, or any command, inside a Linux kernel
// sandbox. See the README and `vm-run --help`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/selftest"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	VersionFlag versionFlag `name:"version" help:"Print vm-run's version and exit."`

	Run      runCmd      `cmd:"" default:"withargs" help:"Run a command in the sandbox (the default: vm-run [flags] -- COMMAND [ARGS...])."`
	Doctor   doctorCmd   `cmd:"" help:"Show which kernel features this machine has and which profiles it can enforce."`
	Profiles profilesCmd `cmd:"" help:"List and show profiles."`
	Selftest selftestCmd `cmd:"" help:"Run the escape battery under a profile and report what got out."`
	Audit    auditCmd    `cmd:"" help:"Verify and query the audit ledger."`
	Policy   policyCmd   `cmd:"" help:"Generate a profile from what a recorded session used (record, generate, review, approve)."`
	Version  versionCmd  `cmd:"" help:"Print vm-run's version."`
	Pins     pinsCmd     `cmd:"" help:"List, show and accept the tool definitions pinned per profile and server (tools.on_change)."`

	Approvals approvalsCmd `cmd:"" help:"Answer the questions of ask rules from another terminal: list, approve, deny, watch."`
}

func main() {
	// The hidden stages are recognised by argv[0] before kong sees anything:
	// they take no flags, and their input comes over inherited fds.
	switch os.Args[0] {
	case sandbox.InitArg0:
		sandbox.InitMain()
	case sandbox.NSCheckArg0:
		os.Exit(0)
	case sandbox.HolderArg0:
		sandbox.HolderMain()
	case selftest.ProbeArg0:
		os.Exit(selftest.ProbeMain(os.Args[1:]))
	}
	homeFromPasswd()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// homeFromPasswd sets HOME from the password database when the caller left
// it unset or relative, as some MCP clients and service managers start
// servers without it: profiles say ${HOME}, the ledger lives under it, and
// the command expects one. Where the account has no absolute home either,
// HOME stays as it was and whatever needs it says so.
func homeFromPasswd() {
	if filepath.IsAbs(os.Getenv("HOME")) {
		return
	}
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err == nil && filepath.IsAbs(u.HomeDir) {
		os.Setenv("HOME", u.HomeDir)
	}
}

// runCLI is the grammar of the default command alone. Building kong's model
// of the whole cli costs about a millisecond of reflection on every start,
// so a plain `vm-run [run] --flag... -- COMMAND` is parsed with this one; see
// quickParse.
type runCLI struct {
	Run runCmd `cmd:"" default:"withargs"`
}

func run(args []string, stdout, stderr io.Writer) int {
	if runOnly(args) {
		if code, ok := parse(&runCLI{}, args, stdout, stderr, true); ok {
			return code
		}
	}
	code, _ := parse(&cli{}, args, stdout, stderr, false)
	return code
}

// runOnly reports whether args can only mean the run command: they start
// with "run" or a flag, and ask for no help before "--".
func runOnly(args []string) bool {
	if len(args) == 0 || args[0] != "run" && !strings.HasPrefix(args[0], "-") {
		return false
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "help" {
			return false
		}
	}
	return true
}

// parse parses args with grammar and runs the command they name. When
// tentative, a parse error returns ok false and prints nothing, so the whole
// cli can parse the same args again: errors and help read the same either
// way.
func parse(grammar any, args []string, stdout, stderr io.Writer, tentative bool) (code int, ok bool) {
	parser, err := kong.New(grammar,
		kong.Name("vm-run"),
		kong.Description("Run an MCP server, or any command, in a Linux kernel sandbox."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.BindTo(stdout, (*io.Writer)(nil)),
	)
	if err != nil {
		if tentative {
			return 0, false
		}
		fmt.Fprintf(stderr, "vm-run: error: %v\n", err)
		return sandbox.ExitSetup, true
	}
	defer func() {
		if r := recover(); r != nil {
			c, isExit := r.(exitCode)
			if !isExit {
				panic(r)
			}
			code, ok = int(c), true
		}
	}()
	ctx, err := parser.Parse(args)
	if err != nil {
		if tentative {
			return 0, false
		}
		fmt.Fprintf(stderr, "vm-run: error: %v\n", err)
		fmt.Fprintf(stderr, "vm-run: hint: see vm-run --help\n")
		return sandbox.ExitSetup, true
	}
	return report(ctx.Run(), stderr), true
}

// versionFlag is --version: the version command's output, then exit 0.
type versionFlag bool

// BeforeReset runs when the flag is seen, before kong checks the rest of
// the command line, as kong's own VersionFlag does.
func (versionFlag) BeforeReset(app *kong.Kong) error {
	if err := (versionCmd{}).Run(app.Stdout); err != nil {
		return err
	}
	app.Exit(0)
	return nil
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
