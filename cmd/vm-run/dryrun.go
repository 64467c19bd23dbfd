package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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
	row("namespaces", "user net pid ipc uts mount")
	if s.Loopback {
		row("network", "loopback only")
	} else {
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
	var env []string
	for _, kv := range s.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = append(env, k)
	}
	row("environment", list(env))
	return tw.Flush()
}
