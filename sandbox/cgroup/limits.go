package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Limits are what a sandbox's cgroup enforces, resolved to numbers. A zero
// field sets no limit.
type Limits struct {
	// Pids is the most tasks, processes and threads together: pids.max.
	Pids uint64 `json:"pids,omitempty"`
	// Memory is the most memory in bytes, swap included where the kernel
	// accounts swap: memory.max with memory.swap.max 0 (v2),
	// memory.limit_in_bytes and memory.memsw.limit_in_bytes (v1).
	Memory uint64 `json:"memory,omitempty"`
	// CPUMillis is the CPU bandwidth in thousandths of a CPU: a quota of
	// CPUMillis/1000 periods per period (cpu.max; v1 cpu.cfs_quota_us).
	CPUMillis uint64 `json:"cpu_millis,omitempty"`
}

// CPUPeriod is the bandwidth period vm-run sets, in microseconds: the
// kernel's default (sched-bwc.rst).
const CPUPeriod = 100000

// IsZero reports whether l sets no limit at all.
func (l Limits) IsZero() bool { return l == Limits{} }

// Controllers lists the controllers that enforce l.
func (l Limits) Controllers() []string {
	var out []string
	if l.Pids != 0 {
		out = append(out, "pids")
	}
	if l.Memory != 0 {
		out = append(out, "memory")
	}
	if l.CPUMillis != 0 {
		out = append(out, "cpu")
	}
	return out
}

func (l Limits) String() string {
	var parts []string
	if l.Pids != 0 {
		parts = append(parts, fmt.Sprintf("pids %d", l.Pids))
	}
	if l.Memory != 0 {
		parts = append(parts, "memory "+FormatBytes(l.Memory))
	}
	if l.CPUMillis != 0 {
		parts = append(parts, "cpu "+strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%d.%03d", l.CPUMillis/1000, l.CPUMillis%1000), "0"), "."))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// FormatBytes writes n in the largest binary unit that keeps one decimal
// honest: "512 MiB", "5.9 GiB", "1000 B".
func FormatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i, div := 0, uint64(1)
	for i < len(units)-1 && n >= div<<10 {
		i++
		div <<= 10
	}
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(div), units[i])
}

// setting is one value written to a controller's file.
type setting struct {
	file, value string
	// optional files may be missing: memory.swap.max and
	// memory.memsw.limit_in_bytes exist only where the kernel accounts
	// swap (CONFIG_MEMCG_SWAP, not swapaccount=0), and then there is no
	// swap to limit beyond memory.
	optional bool
}

// settings are the writes that set l on a cgroup of version v for one
// controller, in order: v1 requires memory.limit_in_bytes before
// memory.memsw.limit_in_bytes, which may not be lower
// (cgroup-v1/memory.rst, 2.5), and the period before the quota.
func settings(v Version, controller string, l Limits) []setting {
	n := func(x uint64) string { return strconv.FormatUint(x, 10) }
	quota := l.CPUMillis * CPUPeriod / 1000
	switch {
	case controller == "pids":
		return []setting{{file: "pids.max", value: n(l.Pids)}}
	case controller == "memory" && v == V2:
		return []setting{{file: "memory.max", value: n(l.Memory)},
			{file: "memory.swap.max", value: "0", optional: true}}
	case controller == "memory":
		return []setting{{file: "memory.limit_in_bytes", value: n(l.Memory)},
			{file: "memory.memsw.limit_in_bytes", value: n(l.Memory), optional: true}}
	case controller == "cpu" && v == V2:
		return []setting{{file: "cpu.max", value: n(quota) + " " + n(CPUPeriod)}}
	case controller == "cpu":
		return []setting{{file: "cpu.cfs_period_us", value: n(CPUPeriod)},
			{file: "cpu.cfs_quota_us", value: n(quota)}}
	}
	return nil
}

// Events are what the kernel refused a sandbox because of its cgroup's
// limits, counted while it ran.
type Events struct {
	// OOMKills counts processes the OOM killer killed because the cgroup
	// reached its memory limit (memory.events oom_kill; v1
	// memory.oom_control oom_kill).
	OOMKills uint64
	// PidsMax counts fork(2) and clone(2) calls that failed with EAGAIN
	// because the cgroup held pids.max tasks (pids.events max).
	PidsMax uint64
}

// Any reports whether any limit was reached.
func (e Events) Any() bool { return e != Events{} }

// eventSource is the file and key a controller counts one event in.
type eventSource struct {
	file, key string
	count     func(*Events) *uint64
}

func eventSources(v Version, controller string) []eventSource {
	oom := func(e *Events) *uint64 { return &e.OOMKills }
	switch {
	case controller == "memory" && v == V2:
		return []eventSource{{"memory.events", "oom_kill", oom}}
	case controller == "memory":
		return []eventSource{{"memory.oom_control", "oom_kill", oom}}
	case controller == "pids":
		return []eventSource{{"pids.events", "max", func(e *Events) *uint64 { return &e.PidsMax }}}
	}
	return nil
}

// flatKeyed reads key from a flat keyed file ("key value" lines, as
// cgroup-v2.rst "Interface Files" defines them; v1's memory.oom_control
// and pids.events have the same form). A missing key is an error: the
// kernel writes every key of these files, so its absence means a kernel
// that does not count the event, and 0 would be a lie.
func flatKeyed(data []byte, key string) (uint64, error) {
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q key", key)
}

// parsePids reads a cgroup.procs file: one pid a line.
func parsePids(data []byte) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("cgroup.procs: %q is not a pid", f)
		}
		out = append(out, pid)
	}
	return out, nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist), shortened for the many
// optional files.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
