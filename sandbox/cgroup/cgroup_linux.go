package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Detect finds the cgroup hierarchies mounted here and this process's
// cgroup in each, from /proc/self/mountinfo and /proc/self/cgroup. Call it
// anew for each sandbox: vm-run may have moved itself (see [Plan.Create]).
func Detect() (*System, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	hs, err := Hierarchies(mi, pc)
	if err != nil {
		return nil, err
	}
	s := &System{Hierarchies: hs, UID: os.Getuid(), fs: osFS{}, procs: osProcs{}, pid: os.Getpid()}
	s.readControllers()
	return s, nil
}

// osFS is cgroupfs as the kernel has it.
type osFS struct{}

func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// WriteFile writes data in one write(2): cgroupfs takes each write as one
// command and answers it with the write's error.
func (osFS) WriteFile(name, data string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Mkdir(name string) error { return os.Mkdir(name, 0o755) }

func (osFS) Rmdir(name string) error {
	if err := unix.Rmdir(name); err != nil {
		return &os.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

func (osFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// Writable uses access(2), which checks the real uid: vm-run's real and
// effective ids are the same.
func (osFS) Writable(name string) bool { return unix.Access(name, unix.W_OK) == nil }

type osProcs struct{}

func (osProcs) Alive(pid int) bool {
	return !errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// Kill kills pid through a pidfd, after checking that the process the
// pidfd refers to is in cgroup p: a pid read from cgroup.procs may have
// exited and been reused by the time it is signalled, a pidfd cannot
// (pidfd_open(2)).
func (osProcs) Kill(pid int, h Hierarchy, p string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return err
	}
	if got, ok := cgroupOf(b, h); !ok || got != p {
		return fmt.Errorf("process %d left cgroup %s", pid, p)
	}
	return os.NewSyscallError("pidfd_send_signal", unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0))
}

// Root is where the host's cgroup hierarchies are mounted.
const Root = "/sys/fs/cgroup"

// Mount is a cgroup file system the sandbox mounts, in its own cgroup
// namespace, to see its own cgroup at Target as the host mounts the
// hierarchy there.
type Mount struct {
	Target string   `json:"target"`
	Type   string   `json:"type"`            // "cgroup" (v1) or "cgroup2"
	Data   string   `json:"data,omitempty"`  // v1: the hierarchy's controllers and name=
	Links  []string `json:"links,omitempty"` // symlinks under Root to Target, as "cpu" to "cpu,cpuacct"
}

// Mounts are the mounts that give the sandbox the view of /sys/fs/cgroup
// the host has, narrowed to the group: each hierarchy of the group that
// the host mounts under [Root], and the symbolic links there that lead to
// one. Hierarchies mounted elsewhere are left out.
func (g *Group) Mounts() []Mount {
	var out []Mount
	for _, m := range g.parts {
		t := m.h.Mount
		if t != Root && !strings.HasPrefix(t, Root+"/") {
			continue
		}
		mt := Mount{Target: t, Type: "cgroup2"}
		if m.h.Version == V1 {
			mt.Type, mt.Data = "cgroup", m.h.Options
			ents, _ := os.ReadDir(Root)
			for _, e := range ents {
				if dest, err := os.Readlink(filepath.Join(Root, e.Name())); err == nil && filepath.Join(Root, dest) == t {
					mt.Links = append(mt.Links, e.Name())
				}
			}
		}
		out = append(out, mt)
	}
	return out
}
