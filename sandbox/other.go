//go:build !linux

package sandbox

import "os"

// InitMain is not available off Linux.
func InitMain() { panic(ErrNotSupported) }

// Process is a running sandbox; there is none off Linux.
type Process struct{ Pid int }

// Stdio are the command's standard streams.
type Stdio struct{ Stdin, Stdout, Stderr *os.File }

// Run is not available off Linux.
func Run(*Spec, Stdio, func(*Process)) (Status, error) { return Status{}, ErrNotSupported }

// RunNetwork is not available off Linux.
func RunNetwork(*Spec, Stdio, Network, func(*Process)) (Status, error) {
	return Status{}, ErrNotSupported
}

// Pending is an init stage started before its spec; there is none off
// Linux.
type Pending struct{}

// Spawn is not available off Linux: Start reports ErrNotSupported.
func Spawn(uid, gid int, stdio Stdio) *Pending { return &Pending{} }

// Start is not available off Linux.
func (*Pending) Start(*Spec) (*Process, error) { return nil, ErrNotSupported }

// StartNetwork is not supported off Linux.
func (*Pending) StartNetwork(*Spec, Network) (*Process, error) { return nil, ErrNotSupported }

// Pid is 0 off Linux.
func (*Pending) Pid() int { return 0 }

// Abort does nothing off Linux.
func (*Pending) Abort() {}

// CompileSeccomp is not available off Linux.
func (*Spec) CompileSeccomp() error { return ErrNotSupported }

// hostMemory is 0 off Linux, where no sandbox runs.
func hostMemory() uint64 { return 0 }
