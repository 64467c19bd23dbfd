package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
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
		st := "ok"
		if !f.Available {
			st = "absent"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", "  landlock "+string(f.Feature), st, "needs "+f.Need)
	}
	lvl, lerr := seccomp.APILevel()
	if ok, why := landlock.AuditStatus(); ok {
		row("landlock denial records", true, why+": a failed session names the paths Landlock refused it")
	} else {
		row("landlock denial records", false, why)
	}
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
	cgroupRows(row)
	tunOK, tunDetail := egressCheck()
	row("network mode egress", tunOK, tunDetail)
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
	if !sup.Has(landlock.FeatureResolveUnix) {
		row("host unix sockets", true, "Landlock here cannot mediate connect(2) on pathname sockets: vm-run hides /run, /tmp, /dev/shm under empty tmpfs and refuses socket(AF_UNIX) unless a profile opts in")
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

// cgroupRows say, for each controller a profile's limits use, where the
// sandbox's cgroup would go for this user, or why it cannot be made.
func cgroupRows(row func(name string, ok bool, detail string)) {
	sys, err := cgroup.Detect()
	if err != nil {
		row("cgroups", false, err.Error())
		return
	}
	for _, c := range []struct {
		name   string
		limits cgroup.Limits
	}{{"pids", cgroup.Limits{Pids: 1}}, {"memory", cgroup.Limits{Memory: 1}}, {"cpu", cgroup.Limits{CPUMillis: 1}}} {
		plan, err := sys.Plan(c.limits)
		if err != nil {
			detail := err.Error()
			var ce *cgroup.Error
			if errors.As(err, &ce) && ce.Hint != "" {
				detail += " (hint: " + ce.Hint + ")"
			}
			row("cgroup "+c.name+" (limits."+c.name+")", false, detail)
			continue
		}
		row("cgroup "+c.name+" (limits."+c.name+")", true, strings.TrimPrefix(plan.Describe()[0], c.name+": "))
	}
}

func seccompDetail(level uint, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("libseccomp API level %d; filter returns EPERM/ENOSYS, kills other architectures", level)
}

// enforceable reports whether a profile can be enforced here: its Landlock
// requirements, stated and implied, hold, and /bin/true really runs under it.
func enforceable(name string, sup landlock.Support) (bool, string) {
	return enforceableRun(runCmd{Profile: name}, sup)
}

// enforceableRun is enforceable for the profile and flags of r, with a
// fresh workspace and /bin/true as the command.
func enforceableRun(r runCmd, sup landlock.Support) (bool, string) {
	ws, err := os.MkdirTemp("", "vm-run-doctor-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(ws)
	os.Chmod(ws, 0o755)
	r.Workspace, r.Cmd = ws, []string{"/bin/true"}
	l, err := r.prepare()
	if err != nil {
		return false, err.Error()
	}
	egress := l.profile.Network.Mode == profiles.NetworkEgress
	if egress {
		if ok, detail := tunCheck(tunDevice); !ok {
			return false, "network mode egress: " + detail
		}
	}
	warnings, err := l.spec.Landlock.Check(sup)
	if err != nil {
		return false, err.Error()
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false, err.Error()
	}
	defer devnull.Close()
	st, err := launchProbe(l, devnull, egress)
	if err != nil {
		return false, "launch: " + err.Error()
	}
	if st.ExitCode() != 0 {
		return false, "launch: /bin/true ended with " + st.String()
	}
	if len(warnings) > 0 {
		return true, "best effort: " + strings.Join(warnings, "; ")
	}
	return true, "launched /bin/true; every required feature present"
}

// tunProbe is the network of doctor's launches in mode egress: it takes
// the TUN device the init stage made in the sandbox's namespace and
// closes it, so /bin/true runs with no network at all.
type tunProbe struct{ attached bool }

func (t *tunProbe) Attach(dev *os.File) error {
	t.attached = true
	return dev.Close()
}

// launchProbe runs the launch's /bin/true with devnull as its stdio. In
// mode egress the init stage really creates the TUN device and hands it
// over, as at every launch: that is the step AppArmor's or SELinux's
// rules on user namespaces refuse, which opening /dev/net/tun here does
// not show.
func launchProbe(l *launch, devnull *os.File, egress bool) (sandbox.Status, error) {
	stdio := sandbox.Stdio{Stdin: devnull, Stdout: devnull, Stderr: devnull}
	if !egress {
		return sandbox.Run(l.spec, stdio, nil)
	}
	probe := &tunProbe{}
	st, err := sandbox.RunNetwork(l.spec, stdio, probe, nil)
	if err == nil && !probe.attached {
		err = errors.New("the sandbox started without handing over its TUN device")
	}
	return st, err
}

// egressCheck is doctor's row for network mode egress: the device opens,
// and a sandbox under strict with one --allow-net entry launches, its
// device made in its own namespace and handed over.
func egressCheck() (bool, string) {
	if ok, detail := tunCheck(tunDevice); !ok {
		return false, detail
	}
	ok, detail := enforceableRun(runCmd{Profile: "strict", AllowNet: []string{"doctor.invalid:443"}}, landlock.Detect())
	if !ok {
		return false, detail
	}
	return true, "a sandbox created its TUN device in its own network namespace and handed it over (uid " + strconv.Itoa(os.Getuid()) + ")"
}

func readProc(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
