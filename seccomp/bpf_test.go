//go:build linux && cgo

package seccomp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// This file runs the BPF program that libseccomp generates on a small
// classic-BPF interpreter, so that the decisions of the filter are checked
// without loading it: the pseudo code of ExportPFC omits the x32 check, and a
// loaded filter can only be probed one call per process.

type insn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

// exportBPF builds the filter for c and returns its program.
func exportBPF(t *testing.T, c Config) []insn {
	t.Helper()
	f, err := Build(c)
	if err != nil {
		t.Fatalf("Build(%q): %v", c.Allow, err)
	}
	defer f.Release()
	var buf bytes.Buffer
	if err := export(f.ExportBPF, &buf); err != nil {
		t.Fatalf("export BPF: %v", err)
	}
	raw := buf.Bytes()
	if len(raw) == 0 || len(raw)%8 != 0 {
		t.Fatalf("BPF program of %d bytes, want a non-empty multiple of 8", len(raw))
	}
	prog := make([]insn, len(raw)/8)
	for i := range prog {
		b := raw[i*8:]
		prog[i] = insn{binary.NativeEndian.Uint16(b), b[2], b[3], binary.NativeEndian.Uint32(b[4:])}
	}
	return prog
}

// seccompData is struct seccomp_data (include/uapi/linux/seccomp.h).
type seccompData struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], d.nr)
	binary.NativeEndian.PutUint32(b[4:], d.arch)
	// instruction_pointer at 8 stays 0
	for i, a := range d.args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run executes prog on d the way the kernel does (Documentation/networking/
// filter.rst, kernel/seccomp.c) for the opcodes libseccomp emits, and
// returns the filter's return value.
func run(prog []insn, d seccompData) (uint32, error) {
	data := d.bytes()
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); {
		in := prog[pc]
		pc++
		switch in.code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.k%4 != 0 || in.k+4 > uint32(len(data)) {
				return 0, fmt.Errorf("pc %d: load at offset %d", pc-1, in.k)
			}
			a = binary.NativeEndian.Uint32(data[in.k:])
		case unix.BPF_LD | unix.BPF_MEM:
			a = mem[in.k%16]
		case unix.BPF_LDX | unix.BPF_MEM:
			x = mem[in.k%16]
		case unix.BPF_ST:
			mem[in.k%16] = a
		case unix.BPF_STX:
			mem[in.k%16] = x
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.k
		case unix.BPF_ALU | unix.BPF_OR | unix.BPF_K:
			a |= in.k
		case unix.BPF_MISC | unix.BPF_TAX:
			x = a
		case unix.BPF_MISC | unix.BPF_TXA:
			a = x
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.k)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += jump(a == in.k, in)
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			pc += jump(a > in.k, in)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += jump(a >= in.k, in)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += jump(a&in.k != 0, in)
		case unix.BPF_RET | unix.BPF_K:
			return in.k, nil
		case unix.BPF_RET | unix.BPF_A:
			return a, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x not in the interpreter", pc-1, in.code)
		}
	}
	return 0, fmt.Errorf("program fell off its end")
}

func jump(cond bool, in insn) int {
	if cond {
		return int(in.jt)
	}
	return int(in.jf)
}

// Decisions as the filter returns them.
const (
	allow       uint32 = unix.SECCOMP_RET_ALLOW
	killProcess uint32 = unix.SECCOMP_RET_KILL_PROCESS
)

func errnoRet(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

func decision(r uint32) string {
	switch {
	case r == allow:
		return "ALLOW"
	case r == killProcess:
		return "KILL_PROCESS"
	case r&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO:
		return "ERRNO(" + errnoName(unix.Errno(r&unix.SECCOMP_RET_DATA)) + ")"
	}
	return fmt.Sprintf("%#x", r)
}

func mustRun(t *testing.T, prog []insn, d seccompData) uint32 {
	t.Helper()
	r, err := run(prog, d)
	if err != nil {
		t.Fatalf("run BPF on nr %#x arch %#x: %v", d.nr, d.arch, err)
	}
	return r
}

// requireAMD64 skips tests that know the x86-64 audit arch and syscall table.
func requireAMD64(t *testing.T) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("test knows x86-64 syscall numbers only, this is %s", runtime.GOARCH)
	}
}

func TestForeignArchitecturesKilled(t *testing.T) {
	requireAMD64(t)
	prog := exportBPF(t, Config{})
	tests := []struct {
		name string
		d    seccompData
		want uint32
	}{
		{"native getpid", seccompData{nr: 39, arch: unix.AUDIT_ARCH_X86_64}, allow},
		{"ia32 getpid", seccompData{nr: 20, arch: unix.AUDIT_ARCH_I386}, killProcess},
		{"ia32 mount", seccompData{nr: 21, arch: unix.AUDIT_ARCH_I386}, killProcess},
		{"x32 getpid", seccompData{nr: 39 | 0x40000000, arch: unix.AUDIT_ARCH_X86_64}, killProcess},
		{"x32 unshare", seccompData{nr: 272 | 0x40000000, arch: unix.AUDIT_ARCH_X86_64}, killProcess},
		{"x32 base", seccompData{nr: 0x40000000, arch: unix.AUDIT_ARCH_X86_64}, killProcess},
		{"high number", seccompData{nr: 0x80000000, arch: unix.AUDIT_ARCH_X86_64}, killProcess},
		// -1 is what a tracer sets to skip a call; libseccomp lets it
		// through to the native rules, where nothing matches it.
		{"nr -1", seccompData{nr: 0xffffffff, arch: unix.AUDIT_ARCH_X86_64}, allow},
		{"aarch64", seccompData{nr: 39, arch: unix.AUDIT_ARCH_AARCH64}, killProcess},
	}
	for _, tt := range tests {
		if got := mustRun(t, prog, tt.d); got != tt.want {
			t.Errorf("%s: filter returns %s, want %s", tt.name, decision(got), decision(tt.want))
		}
	}
}

// argSamples returns values for the argument the rules of one syscall test:
// a few for unconditional rules, else the sample set plus each rule value
// with garbage outside the rule's mask and with its lowest mask bit flipped.
func argSamples(rs []Rule) []uint64 {
	if rs[0].Arg == nil {
		return []uint64{0, 0xffffffff, 1 << 63}
	}
	vs := sampleArgs()
	for _, r := range rs {
		v := r.Arg.Value
		vs = append(vs, v, v|^r.Arg.Mask&0xdead_beef_dead_beef, v^(r.Arg.Mask&-r.Arg.Mask))
	}
	return vs
}

// ruleKey groups rules by syscall and the argument they test.
func ruleKey(r Rule) string {
	if r.Arg == nil {
		return r.Syscall
	}
	return fmt.Sprintf("%s#%d", r.Syscall, r.Arg.Index)
}

func TestBPFDecisions(t *testing.T) {
	requireAMD64(t)
	configs := [][]string{nil, {"unix-sockets"}, {"numa"}, {"numa", "unix-sockets"}}
	for _, allowGroups := range configs {
		c := Config{Allow: allowGroups}
		prog := exportBPF(t, c)
		bySyscall := map[string][]Rule{}
		var names []string
		for _, r := range Rules() {
			if c.allows(r.Group) {
				r.Errno = 0 // lifted: the call must be allowed
			}
			// Rules of one syscall on different arguments are checked
			// apart: the other arguments hold 0xfeed, which no rule
			// matches.
			key := ruleKey(r)
			if _, ok := bySyscall[key]; !ok {
				names = append(names, key)
			}
			bySyscall[key] = append(bySyscall[key], r)
		}
		for _, key := range names {
			rs := bySyscall[key]
			name := rs[0].Syscall
			nr, present, err := resolve(name)
			if err != nil {
				t.Fatal(err)
			}
			if !present {
				continue
			}
			idx := uint(0)
			if rs[0].Arg != nil {
				idx = rs[0].Arg.Index
			}
			for _, v := range argSamples(rs) {
				d := seccompData{nr: uint32(nr), arch: unix.AUDIT_ARCH_X86_64,
					args: [6]uint64{0xfeed, 0xfeed, 0xfeed, 0xfeed, 0xfeed, 0xfeed}}
				d.args[idx] = v
				want := wantDecision(t, rs, v)
				if got := mustRun(t, prog, d); got != want {
					t.Fatalf("allow %q: %s(arg%d=%#x): filter returns %s, want %s",
						allowGroups, name, idx, v, decision(got), decision(want))
				}
			}
		}
		// Calls no rule names pass untouched.
		for _, nr := range []uint32{0, 1, 39, 57, 59, 61, 62, 53 /* socketpair */} {
			d := seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64}
			if got := mustRun(t, prog, d); got != allow {
				t.Errorf("allow %q: syscall %d: filter returns %s, want ALLOW", allowGroups, nr, decision(got))
			}
		}
	}
}

// wantDecision returns what the rules of one syscall decide for argument v;
// a rule with Errno 0 is lifted.
func wantDecision(t *testing.T, rs []Rule, v uint64) uint32 {
	t.Helper()
	var matched []unix.Errno
	for _, r := range rs {
		if r.Errno != 0 && (r.Arg == nil || r.Arg.Matches(v)) {
			matched = append(matched, r.Errno)
		}
	}
	if len(matched) == 0 {
		return allow
	}
	slices.Sort(matched)
	if matched = slices.Compact(matched); len(matched) > 1 {
		t.Fatalf("%s(%#x) matches rules with different errnos %v", rs[0].Syscall, v, matched)
	}
	return errnoRet(matched[0])
}

// TestBPFSpotChecks states decisions from the issue directly, independent of
// the rule table, so that a wrong table entry cannot agree with itself.
func TestBPFSpotChecks(t *testing.T) {
	requireAMD64(t)
	const (
		sysIoctl       = 16
		sysSocket      = 41
		sysSocketpair  = 53
		sysClone       = 56
		sysPersonality = 135
		sysUnshare     = 272
		sysClone3      = 435
		sysIoUringInit = 425
		sysMbind       = 237
	)
	eperm, eacces, enosys := errnoRet(unix.EPERM), errnoRet(unix.EACCES), errnoRet(unix.ENOSYS)
	tests := []struct {
		name  string
		allow []string
		nr    uint32
		arg   int
		v     uint64
		want  uint32
	}{
		{"TIOCSTI", nil, sysIoctl, 1, 0x5412, eperm},
		{"TIOCSTI with high garbage", nil, sysIoctl, 1, 0x1_0000_5412, eperm},
		{"TIOCLINUX with high garbage", nil, sysIoctl, 1, 0xffff_ffff_0000_541c, eperm},
		{"TCGETS", nil, sysIoctl, 1, 0x5401, allow},
		{"TIOCSTI in the fd argument", nil, sysIoctl, 0, 0x5412, allow},
		{"AF_UNIX", nil, sysSocket, 0, 1, eacces},
		{"AF_UNIX with high garbage", nil, sysSocket, 0, 0x1_0000_0001, eacces},
		{"AF_UNIX allowed", []string{"unix-sockets"}, sysSocket, 0, 1, allow},
		{"AF_VSOCK allowed group", []string{"unix-sockets"}, sysSocket, 0, 40, eperm},
		{"AF_ALG", nil, sysSocket, 0, 38, eperm},
		{"AF_INET", nil, sysSocket, 0, 2, allow},
		{"AF_NETLINK", nil, sysSocket, 0, 16, allow},
		{"socketpair AF_UNIX", nil, sysSocketpair, 0, 1, allow},
		{"clone thread", nil, sysClone, 0, 0x3d0f00, allow},
		{"clone fork", nil, sysClone, 0, 0x01200011, allow},
		{"clone CLONE_NEWUSER", nil, sysClone, 0, 0x10000000 | 0x11, eperm},
		{"clone CLONE_NEWCGROUP", nil, sysClone, 0, 0x02000000, eperm},
		{"clone CLONE_NEWTIME", nil, sysClone, 0, 0x80, eperm},
		{"clone all namespaces", nil, sysClone, 0, 0x7e020080, eperm},
		{"clone3", nil, sysClone3, 0, 0, enosys},
		{"unshare 0", nil, sysUnshare, 0, 0, eperm},
		{"io_uring_setup", nil, sysIoUringInit, 0, 8, eperm},
		{"mbind", nil, sysMbind, 0, 0, eperm},
		{"mbind allowed", []string{"numa"}, sysMbind, 0, 0, allow},
		{"personality query", nil, sysPersonality, 0, 0xffffffff, allow},
		{"personality PER_LINUX32|UNAME26", nil, sysPersonality, 0, 0x20008, allow},
		{"personality ADDR_NO_RANDOMIZE", nil, sysPersonality, 0, 0x0040000, eperm},
		{"personality ADDR_NO_RANDOMIZE, high garbage", nil, sysPersonality, 0, 0x1_0004_0000, eperm},
		{"personality 0xfffffffe", nil, sysPersonality, 0, 0xfffffffe, eperm},
	}
	progs := map[string][]insn{}
	for _, tt := range tests {
		key := fmt.Sprint(tt.allow)
		if progs[key] == nil {
			progs[key] = exportBPF(t, Config{Allow: tt.allow})
		}
		d := seccompData{nr: tt.nr, arch: unix.AUDIT_ARCH_X86_64}
		d.args[tt.arg] = tt.v
		if got := mustRun(t, progs[key], d); got != tt.want {
			t.Errorf("%s: syscall %d arg%d=%#x: filter returns %s, want %s",
				tt.name, tt.nr, tt.arg, tt.v, decision(got), decision(tt.want))
		}
	}
}
