package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/seccomp"
)

type doctorCmd struct{}

// Run prints what the kernel offers and which built-in profiles it can
// enforce, and fails when strict cannot be.
func (doctorCmd) Run(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tSTATUS\tDETAIL")
	row := func(name string, ok bool, detail string) {
		st := "ok"
		if !ok {
			st = "missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, st, detail)
	}
	sup := landlock.Detect()
	row("landlock", sup.ABI > 0, fmt.Sprintf("ABI %d, errata 0x%x %s", sup.ABI, sup.Errata, sup.Reason))
	for _, f := range sup.Features() {
		row("  landlock "+string(f.Feature), f.Available, "needs "+f.Need)
	}
	lvl, lerr := seccomp.APILevel()
	row("seccomp filters", lerr == nil, seccompDetail(lvl, lerr))
	for _, ns := range sandbox.Namespaces {
		err := sandbox.CheckNamespace(ns)
		detail := "unprivileged creation works"
		if os.Getuid() == 0 {
			detail = "creation works (as root)"
		}
		if err != nil {
			detail = err.Error()
		}
		row(ns.Name+" namespace", err == nil, detail)
	}
	tiocsti := strings.TrimSpace(readProc("/proc/sys/dev/tty/legacy_tiocsti"))
	switch tiocsti {
	case "1":
		row("dev.tty.legacy_tiocsti", true, "1: the kernel allows TIOCSTI injection; vm-run's seccomp filter blocks it")
	case "0":
		row("dev.tty.legacy_tiocsti", true, "0: the kernel refuses TIOCSTI without CAP_SYS_ADMIN; vm-run blocks it too")
	default:
		row("dev.tty.legacy_tiocsti", true, "absent: kernel older than 6.2; vm-run's seccomp filter blocks TIOCSTI")
	}
	if y := strings.TrimSpace(readProc("/proc/sys/kernel/yama/ptrace_scope")); y != "" {
		row("kernel.yama.ptrace_scope", true, y+" (vm-run denies ptrace in the sandbox regardless)")
	}
	tw.Flush()

	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tENFORCEABLE\tDETAIL")
	strictOK := false
	infos, err := profiles.List()
	if err != nil {
		return err
	}
	for _, info := range infos {
		ok, detail := enforceable(info.Name, sup)
		if info.Name == "strict" {
			strictOK = ok
		}
		verdict := "yes"
		if !ok {
			verdict = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", info.Name, verdict, detail)
	}
	tw.Flush()
	if !strictOK {
		return &exitStatus{Code: 1, Err: fmt.Errorf("the strict profile cannot be enforced on this machine")}
	}
	return nil
}

func seccompDetail(level uint, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("libseccomp API level %d; filter returns EPERM/ENOSYS, kills other architectures", level)
}

// enforceable reports whether a profile's Landlock requirements hold here.
func enforceable(name string, sup landlock.Support) (bool, string) {
	p, err := profiles.Load(name, profiles.Vars{Workspace: "/", Home: "/", TmpDir: sandbox.TmpDir})
	if err != nil {
		return false, err.Error()
	}
	rules := landlock.Rules{Require: p.Landlock.Require, BestEffort: p.BestEffort}
	warnings, err := rules.Check(sup)
	if err != nil {
		return false, err.Error()
	}
	if len(warnings) > 0 {
		return true, "best effort: " + strings.Join(warnings, "; ")
	}
	return true, "all required features present"
}

func readProc(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
