package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// NSCheckArg0 is the argv[0] of a child that only proves it was started in
// the namespaces asked for; it exits 0 at once.
const NSCheckArg0 = "vm-run:nscheck"

// Namespace is a kind of namespace vm-run creates.
type Namespace struct {
	Name string
	Flag uintptr
}

// Namespaces are the namespaces of every sandbox, user first: the others
// are created by an unprivileged caller only together with a user namespace.
var Namespaces = []Namespace{
	{"user", unix.CLONE_NEWUSER},
	{"network", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID},
	{"mount", unix.CLONE_NEWNS},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	// The init stage unshares it once the parent has moved it into the
	// sandbox's cgroup, so that its root is that cgroup.
	{"cgroup", unix.CLONE_NEWCGROUP},
}

// CheckNamespace starts a child of vm-run in a new user namespace plus ns
// and reports why it could not be done.
func CheckNamespace(ns Namespace) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	uid, gid := os.Getuid(), os.Getgid()
	cmd := &exec.Cmd{
		Path: self,
		Args: []string{NSCheckArg0},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | ns.Flag,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		},
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w %s", err, out)
	}
	return nil
}
