//go:build !linux

package cgroup

import "errors"

// ErrNotSupported is what Detect returns off Linux.
var ErrNotSupported = errors.New("cgroups need Linux")

// Detect is not available off Linux.
func Detect() (*System, error) { return nil, ErrNotSupported }

// Root is where Linux mounts the cgroup hierarchies.
const Root = "/sys/fs/cgroup"

// Mount is a cgroup file system a sandbox mounts; there is none off Linux.
type Mount struct {
	Target string   `json:"target"`
	Type   string   `json:"type"`
	Data   string   `json:"data,omitempty"`
	Links  []string `json:"links,omitempty"`
}

// Mounts is empty off Linux.
func (g *Group) Mounts() []Mount { return nil }
