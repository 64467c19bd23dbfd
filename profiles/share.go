package profiles

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Share is a cgroup limit as a profile writes it: an amount, a share of
// what the host has, or "unlimited". limits.memory is a SIZE ("512MiB") or
// "N%" of the host's memory; limits.cpu is a number of CPUs ("0.5", "2")
// or "N%" of the host's CPUs. After Load a Share is in canonical form:
// "25%", "512MiB", "1.5" or "unlimited". The launcher resolves it against
// the machine it runs on ([Limits.MemoryMax], [Limits.CPUMillis]); this
// package never looks at the host.
type Share string

// ShareUnlimited is a Share that sets no limit.
const ShareUnlimited Share = "unlimited"

// Percent returns N for a share written "N%".
func (s Share) Percent() (uint64, bool) {
	num, ok := strings.CutSuffix(string(s), "%")
	if !ok {
		return 0, false
	}
	n, ok := decimal(num)
	return n, ok
}

// minCPUMillis is the smallest CPU share: the kernel refuses a bandwidth
// quota under 1 ms per period (cpu.max, cfs_quota_us; sched-bwc.rst), and
// vm-run's period is 100 ms.
const minCPUMillis = 10

// parseMemoryShare reads limits.memory into its canonical form.
func parseMemoryShare(v string) (Share, error) {
	if Share(v) == ShareUnlimited {
		return ShareUnlimited, nil
	}
	if strings.HasSuffix(v, "%") {
		return parsePercent(v, "of the host's memory")
	}
	x, err := parseSize(v)
	if err != nil {
		return "", fmt.Errorf(`want a size such as "512MiB", a share of the host's memory such as "25%%", or "unlimited": %v`, err)
	}
	if x == 0 {
		return "", fmt.Errorf("0 bytes would stop the command from starting")
	}
	return Share(formatNumber(x, opts{unit: "bytes"}).Value), nil
}

// parseCPUShare reads limits.cpu into its canonical form: a number of CPUs
// with at most three decimals, or a share of the host's CPUs.
func parseCPUShare(v string) (Share, error) {
	if Share(v) == ShareUnlimited {
		return ShareUnlimited, nil
	}
	if strings.HasSuffix(v, "%") {
		return parsePercent(v, "of the host's CPUs")
	}
	if n := strings.TrimRight(v, "smh"); n != v {
		if _, ok := decimal(n); ok {
			return "", fmt.Errorf(`%q is not a number of CPUs: limits.cpu is the sandbox's CPU bandwidth, 0.5 for half a CPU, 2 for two, "50%%" for half the host's; the CPU-time rlimit is limits.cpu_time`, v)
		}
	}
	millis, ok := parseMillis(v)
	if !ok {
		return "", fmt.Errorf(`want a number of CPUs such as 0.5 or 2 (at most 3 decimals), a share of the host's CPUs such as "50%%", or "unlimited", got %q`, v)
	}
	if millis < minCPUMillis {
		return "", fmt.Errorf("%q is below 0.01 CPU, the smallest bandwidth the kernel allows (1 ms per 100 ms)", v)
	}
	return Share(formatMillis(millis)), nil
}

func parsePercent(v, of string) (Share, error) {
	n, ok := Share(v).Percent()
	if !ok || n == 0 || n > 100 {
		return "", fmt.Errorf("want a whole percentage from 1%% to 100%% %s, got %q", of, v)
	}
	return Share(strconv.FormatUint(n, 10) + "%"), nil
}

// parseMillis reads a decimal number with at most three decimals as
// thousandths.
func parseMillis(v string) (uint64, bool) {
	whole, frac, dot := strings.Cut(v, ".")
	w, ok := decimal(whole)
	if !ok || dot && (frac == "" || len(frac) > 3) {
		return 0, false
	}
	var f uint64
	if dot {
		if f, ok = decimal(frac); !ok {
			return 0, false
		}
		for range 3 - len(frac) {
			f *= 10
		}
	}
	hi, lo := bits.Mul64(w, 1000)
	if hi != 0 || lo > math.MaxUint64-f {
		return 0, false
	}
	return lo + f, true
}

func formatMillis(m uint64) string {
	s := strconv.FormatUint(m/1000, 10)
	if frac := m % 1000; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", frac), "0")
	}
	return s
}

// PidsMax is limits.pids as the cgroup's pids.max: 0 for no limit.
func (l Limits) PidsMax() uint64 {
	if l.Pids == nil || *l.Pids == Unlimited {
		return 0
	}
	return *l.Pids
}

// MemoryMax resolves limits.memory against hostBytes, the host's memory:
// the cgroup's memory limit in bytes, 0 for none. A share is rounded down
// to a whole MiB.
func (l Limits) MemoryMax(hostBytes uint64) (uint64, error) {
	if l.Memory == nil || *l.Memory == ShareUnlimited {
		return 0, nil
	}
	if pct, ok := l.Memory.Percent(); ok {
		if pct == 0 || pct > 100 {
			return 0, fmt.Errorf("limits.memory %q: want 1%% to 100%%", *l.Memory)
		}
		hi, lo := bits.Mul64(hostBytes, pct)
		b, _ := bits.Div64(hi, lo, 100)
		b &^= 1<<20 - 1
		if b == 0 {
			return 0, fmt.Errorf("limits.memory %q of this host's %d bytes is less than 1 MiB", *l.Memory, hostBytes)
		}
		return b, nil
	}
	x, err := parseSize(string(*l.Memory))
	if err != nil || x == 0 || x == Unlimited {
		return 0, fmt.Errorf("limits.memory %q: not a size", *l.Memory)
	}
	return x, nil
}

// CPUMillis resolves limits.cpu against hostCPUs, the CPUs the host has:
// the cgroup's CPU bandwidth in thousandths of a CPU, 0 for none.
func (l Limits) CPUMillis(hostCPUs int) (uint64, error) {
	if l.CPU == nil || *l.CPU == ShareUnlimited {
		return 0, nil
	}
	if pct, ok := l.CPU.Percent(); ok {
		if pct == 0 || pct > 100 || hostCPUs < 1 {
			return 0, fmt.Errorf("limits.cpu %q: want 1%% to 100%% of at least one CPU", *l.CPU)
		}
		return max(uint64(hostCPUs)*pct*10, minCPUMillis), nil
	}
	m, ok := parseMillis(string(*l.CPU))
	if !ok || m < minCPUMillis {
		return 0, fmt.Errorf("limits.cpu %q: not a number of CPUs from 0.01", *l.CPU)
	}
	return m, nil
}
