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
