// Command benchfloor is the least a Go sandbox launcher built as vm-run is
// must do, for `make bench` to show as a floor: re-execute itself into new
// user, network, PID, IPC, UTS and mount namespaces (Go's os/exec, as
// vm-run's sandbox package does), and from there execute the command. No
// profile, ledger, mounts, Landlock or seccomp. Its time against
// bubblewrap's bounds what any launcher of this design can reach.
//
//	benchfloor /bin/true
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

const initArg0 = "benchfloor:init"

func main() {
	if os.Args[0] == initArg0 {
		err := syscall.Exec(os.Args[1], os.Args[1:], []string{})
		fmt.Fprintf(os.Stderr, "benchfloor: exec %q: %v\n", os.Args[1], err)
		os.Exit(127)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchfloor COMMAND [ARGS...]")
		os.Exit(2)
	}
	uid, gid := os.Getuid(), os.Getgid()
	cmd := &exec.Cmd{
		Path:   "/proc/self/exe",
		Args:   append([]string{initArg0}, os.Args[1:]...),
		Env:    []string{},
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
			Setsid:      true,
		},
	}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "benchfloor: %v\n", err)
		os.Exit(125)
	}
}
