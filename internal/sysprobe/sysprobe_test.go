//go:build linux && amd64

package sysprobe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "VMRUN_SYSPROBE_CHILD"

// TestMain runs the ia32 probe in a child process when asked to: without ia32
// emulation int $0x80 kills the process with SIGSEGV, which must not take the
// test binary down.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "int80-getpid" {
		r := Int80(IA32Getpid, 0, 0, 0)
		fmt.Printf("%d %d\n", int64(r), os.Getpid())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestInt80Getpid(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=int80-getpid")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		ws := exit.Sys().(syscall.WaitStatus)
		if ws.Signaled() && ws.Signal() == syscall.SIGSEGV {
			t.Skip("kernel has no ia32 emulation (CONFIG_IA32_EMULATION or ia32_emulation=0)")
		}
	}
	if err != nil {
		t.Fatalf("int80 child: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("int80 child printed %q, want two numbers", out)
	}
	if f[0] != f[1] {
		t.Errorf("Int80(IA32Getpid) = %s, want the child's pid %s", f[0], f[1])
	}
}

func TestInt80Errno(t *testing.T) {
	if !ia32Emulation(t) {
		t.Skip("kernel has no ia32 emulation (CONFIG_IA32_EMULATION or ia32_emulation=0)")
	}
	// No ia32 syscall has number 0xfffff; the kernel answers -ENOSYS.
	if got := Errno(Int80(0xfffff, 0, 0, 0)); got != syscall.ENOSYS {
		t.Errorf("Errno(Int80(0xfffff)) = %v, want ENOSYS", got)
	}
}

// ia32Emulation runs the getpid probe in a child to learn whether int $0x80
// works here.
func ia32Emulation(t *testing.T) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=int80-getpid")
	return cmd.Run() == nil
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
