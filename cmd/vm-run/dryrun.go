package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// printSpec prints the effective sandbox of a resolved run: what --dry-run
// shows. Environment values are shown only for variables the profile or
// --env set; passed-through ones are named, since they may hold secrets.
func printSpec(w io.Writer, l *launch) error {
	s := l.spec
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	list := func(v []string) string {
		if len(v) == 0 {
			return "-"
		}
		return strings.Join(v, " ")
	}
	row("profile", l.profile.Name+" ("+strings.Join(l.profile.Source, " <- ")+")")
	row("profile hash", l.profile.Hash())
	row("command", list(s.Args))
	row("workspace", s.Dir)
	row("uid:gid", fmt.Sprintf("%d:%d", s.UID, s.GID))
	row("namespaces", "user net pid ipc uts mount cgroup")
	switch {
	case l.profile.Network.Mode == profiles.NetworkEgress:
		row("network", "egress: the hosts allowed below, by name, through vm-run; nothing else")
		for _, r := range egressRows(l.profile.Network, os.Getenv) {
			row("  "+r[0], r[1])
		}
	case s.Loopback:
		row("network", "loopback only")
	default:
		row("network", "none (empty network namespace)")
	}
	row("read", list(s.Landlock.Read))
	row("exec", list(s.Landlock.Exec))
	row("write", list(s.Landlock.Write))
	row("devices", list(s.Landlock.Devices))
	features := make([]string, len(s.Landlock.Require))
	for i, f := range s.Landlock.Require {
		features[i] = string(f)
	}
	row("landlock requires", list(features))
	if s.Landlock.BestEffort {
		row("best effort", "yes: missing landlock features are warned about, not enforced")
	}
	row("hidden (empty tmpfs)", list(s.Hide))
	var kept []string
	for _, k := range s.Keep {
		mode := "ro"
		if k.Writable {
			mode = "rw"
		}
		kept = append(kept, k.Path+" ("+mode+")")
	}
	row("bound back", list(kept))
	row("private tmp", fmt.Sprintf("%s (%d MiB tmpfs)", s.TmpDir, s.TmpSize>>20))
	row("seccomp opt-ins", list(s.Seccomp.Allow))
	var lims []string
	for _, r := range s.Rlimits {
		lims = append(lims, fmt.Sprintf("%s=%d", r.Name, r.Value))
	}
	row("limits", list(lims))
	row("cgroup limits", cgroupLimits(l.profile.Limits, s.Cgroup))
	if !s.Cgroup.IsZero() {
		row("cgroup", cgroupPlace(s))
	}
	var env []string
	for _, kv := range s.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = append(env, k)
	}
	row("environment", list(env))
	for _, r := range secretRows(l.profile) { // secrets.go
		row("secret "+r[0], r[1])
	}
	return tw.Flush()
}

// cgroupLimits describes the sandbox's cgroup limits, with the profile's
// shares of the host next to what they come to here.
func cgroupLimits(p profiles.Limits, c cgroup.Limits) string {
	if c.IsZero() {
		return "none"
	}
	var out []string
	if c.Pids != 0 {
		out = append(out, fmt.Sprintf("pids=%d", c.Pids))
	}
	share := func(name string, s *profiles.Share, v string) {
		if _, pct := s.Percent(); pct {
			v += " (" + string(*s) + " of the host's)"
		}
		out = append(out, name+"="+v)
	}
	if c.Memory != 0 {
		share("memory", p.Memory, strings.ReplaceAll(cgroup.FormatBytes(c.Memory), " ", ""))
	}
	if c.CPUMillis != 0 {
		share("cpu", p.CPU, strings.TrimPrefix(cgroup.Limits{CPUMillis: c.CPUMillis}.String(), "cpu "))
	}
	return strings.Join(out, " ")
}

// cgroupPlace says where the sandbox's cgroup would go, or why it cannot
// be made and what happens then.
func cgroupPlace(s *sandbox.Spec) string {
	sys, err := cgroup.Detect()
	var plan *cgroup.Plan
	if err == nil {
		plan, err = sys.Plan(s.Cgroup)
	}
	if err != nil {
		if s.CgroupBestEffort {
			return "cannot be created (" + err.Error() + "); best effort: runs without the limits"
		}
		return "cannot be created, the run would stop: " + err.Error()
	}
	return strings.Join(plan.Describe(), "; ")
}
