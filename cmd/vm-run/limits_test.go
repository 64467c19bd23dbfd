package main

import (
	"strings"
	"testing"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// TestReportLimits: what vm-run says on stderr when the sandbox reached a
// limit, naming the cause and where to raise it; nothing when none.
func TestReportLimits(t *testing.T) {
	l := cgroup.Limits{Pids: 512, Memory: 256 << 20}
	const where = "a profile that extends strict"
	tests := []struct {
		name string
		st   sandbox.Status
		want string
	}{
		{"none", sandbox.Status{Code: 1}, ""},
		{"command OOM-killed", sandbox.Status{Signal: 9, Limits: cgroup.Events{OOMKills: 1}},
			"vm-run: the command was killed by the kernel's OOM killer: the sandbox reached the profile's memory limit (256 MiB)\n" +
				"vm-run: hint: raise limits.memory in a profile that extends strict, e.g. \"limits: {memory: 4GiB}\" or \"50%\" of the host's\n"},
		{"child OOM-killed", sandbox.Status{Code: 137, Limits: cgroup.Events{OOMKills: 2}},
			"vm-run: the kernel's OOM killer killed 2 processes in the sandbox: it reached the profile's memory limit (256 MiB)\n" +
				"vm-run: hint: raise limits.memory in a profile that extends strict, e.g. \"limits: {memory: 4GiB}\" or \"50%\" of the host's\n"},
		{"command SIGKILLed by someone, a child OOM-killed", sandbox.Status{Signal: 9, Limits: cgroup.Events{OOMKills: 1}},
			"vm-run: the command was killed by the kernel's OOM killer"},
		{"forks refused", sandbox.Status{Code: 2, Limits: cgroup.Events{PidsMax: 3}},
			"vm-run: the sandbox reached the profile's process limit (512 processes and threads): 3 forks failed\n" +
				"vm-run: hint: raise limits.pids in a profile that extends strict, e.g. \"limits: {pids: 2048}\"\n"},
		{"one fork refused", sandbox.Status{Code: 2, Limits: cgroup.Events{PidsMax: 1}},
			"(512 processes and threads): 1 fork failed\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if tt.st.Limits.Any() {
			reportLimits(&b, tt.st, l, where)
		}
		if got := b.String(); tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: reportLimits wrote\n%s\nwant it to contain\n%s", tt.name, got, tt.want)
		}
	}
}

// TestCgroupLimitsLine: how --dry-run and profiles show write the limits,
// shares of the host next to what they come to.
func TestCgroupLimitsLine(t *testing.T) {
	share := func(s string) *profiles.Share { v := profiles.Share(s); return &v }
	tests := []struct {
		p    profiles.Limits
		c    cgroup.Limits
		want string
	}{
		{profiles.Limits{}, cgroup.Limits{}, "none"},
		{profiles.Limits{Memory: share("25%")}, cgroup.Limits{Pids: 512, Memory: 6318718976}, "pids=512 memory=5.9GiB (25% of the host's)"},
		{profiles.Limits{Memory: share("1GiB"), CPU: share("50%")}, cgroup.Limits{Memory: 1 << 30, CPUMillis: 1000}, "memory=1GiB cpu=1 (50% of the host's)"},
		{profiles.Limits{CPU: share("0.25")}, cgroup.Limits{CPUMillis: 250}, "cpu=0.25"},
	}
	for _, tt := range tests {
		if got := cgroupLimits(tt.p, tt.c); got != tt.want {
			t.Errorf("cgroupLimits(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
