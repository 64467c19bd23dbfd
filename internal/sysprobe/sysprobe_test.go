//go:build linux && amd64

package sysprobe

import (
	"errors"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "VMRUN_SYSPROBE_CHILD"

// TestMain runs a bare Int80 in a child process when asked to, for
// TestInt80Fault: without the ia32 entry it ends the process.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "int80-getpid" {
		Int80(IA32Getpid, 0, 0, 0)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTryInt80Getpid runs getpid through the ia32 entry in the test process
// itself: with ia32 emulation it must return the pid, and without it the
// fault must come back as ErrNoIA32 instead of killing the process.
func TestTryInt80Getpid(t *testing.T) {
	r, err := TryInt80(IA32Getpid, 0, 0, 0)
	switch {
	case errors.Is(err, ErrNoIA32):
		t.Logf("TryInt80(IA32Getpid): %v", err)
	case err != nil:
		t.Fatalf("TryInt80(IA32Getpid) = %d, %v; want the pid or ErrNoIA32", r, err)
	case r != uintptr(os.Getpid()):
		t.Errorf("TryInt80(IA32Getpid) = %d, want the pid %d", int64(r), os.Getpid())
	}
}

// TestTryInt80Repeat faults (or not) many times on one goroutine and checks
// that each answer is the first one and that the caller's panic-on-fault
// setting is restored: a recovered fault must leave nothing behind.
func TestTryInt80Repeat(t *testing.T) {
	_, first := TryInt80(IA32Getpid, 0, 0, 0)
	for i := range 100 {
		if r, err := TryInt80(IA32Getpid, 0, 0, 0); err != first || (err == nil && r != uintptr(os.Getpid())) {
			t.Fatalf("call %d: TryInt80(IA32Getpid) = %d, %v; want the pid or ErrNoIA32 as the first call (%v)", i, int64(r), err, first)
		}
	}
	if debug.SetPanicOnFault(false) {
		t.Errorf("SetPanicOnFault left on after TryInt80")
	}
	debug.SetPanicOnFault(true)
	TryInt80(IA32Getpid, 0, 0, 0)
	if !debug.SetPanicOnFault(false) {
		t.Errorf("SetPanicOnFault(true) of the caller turned off by TryInt80")
	}
}

// TestInt80Fault shows why TryInt80 exists: a bare Int80 on a kernel without
// the ia32 entry ends the process by the Go runtime's "fatal error: fault"
// (exit status 2), not by SIGSEGV, so the fault must be caught in process.
func TestInt80Fault(t *testing.T) {
	if _, err := TryInt80(IA32Getpid, 0, 0, 0); err == nil {
		t.Skip("int $0x80 works on this kernel: nothing faults")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=int80-getpid")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "fatal error: fault") {
		t.Errorf("bare Int80 without ia32: %v, output %q; want exit status 2 and %q", err, firstLine(out), "fatal error: fault")
	}
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(string(b), "\n")
	return l
}

func TestInt80Errno(t *testing.T) {
	// No ia32 syscall has number 0xfffff; the kernel answers -ENOSYS.
	r, err := TryInt80(0xfffff, 0, 0, 0)
	if errors.Is(err, ErrNoIA32) {
		t.Skip("kernel has no ia32 entry (CONFIG_IA32_EMULATION, ia32_emulation=0, or a platform that does not route int $0x80)")
	}
	if got := Errno(r); err != nil || got != syscall.ENOSYS {
		t.Errorf("TryInt80(0xfffff) = %v, %v; want errno ENOSYS", got, err)
	}
}

func TestX32Getpid(t *testing.T) {
	r, errno := X32Syscall(X32Getpid, 0, 0, 0)
	switch want := kernelConfig(t, "CONFIG_X86_X32_ABI"); {
	case errno == 0 && r == uintptr(os.Getpid()) && want != "n":
	case errno == syscall.ENOSYS && want != "y":
	default:
		t.Errorf("X32Syscall(X32Getpid) = %d, %v; want the pid, or ENOSYS "+
			"without CONFIG_X86_X32_ABI (config says %q)", r, errno, want)
	}
}

// kernelConfig returns "y" or "n" for option from /proc/config.gz, or "" when
// the running kernel does not publish its configuration.
func kernelConfig(t *testing.T, option string) string {
	t.Helper()
	out, err := exec.Command("zcat", "/proc/config.gz").Output()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if line == option+"=y" {
			return "y"
		}
	}
	return "n"
}

func TestErrno(t *testing.T) {
	tests := []struct {
		r    uintptr
		want syscall.Errno
	}{
		{0, 0},
		{1234, 0},
		{^uintptr(0), syscall.EPERM},
		{^uintptr(0) - 37, syscall.ENOSYS},
		{^uintptr(0) - 4094, 4095},
		{^uintptr(0) - 4095, 0},
	}
	for _, tt := range tests {
		if got := Errno(tt.r); got != tt.want {
			t.Errorf("Errno(%#x) = %d, want %d", tt.r, got, tt.want)
		}
	}
}
