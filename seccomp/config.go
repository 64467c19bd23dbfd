package seccomp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is the seccomp part of a sandbox spec; it travels to the init stage
// as JSON. The zero value is the full default deny list.
type Config struct {
	// Allow names opt-in groups that the default filter denies, for
	// example "unix-sockets". Unknown names are an error from Build.
	Allow []string `json:"allow,omitempty"`
}

// ErrNotSupported is returned on systems without seccomp filters.
var ErrNotSupported = errors.New("seccomp filters are not supported on this system")

// ErrUnknownGroup is wrapped by [Config.Validate] for a name in Allow that is
// not one of [OptInGroups].
var ErrUnknownGroup = errors.New("unknown syscall group")

// OptInGroups are the groups a profile may name under syscalls.allow. Each
// relaxes part of the default deny list. Pure Go so that package profiles can
// validate names without cgo.
var OptInGroups = []string{
	"unix-sockets", // socket(AF_UNIX, ...) (socketpair is always allowed)
	"numa",         // mbind, set_mempolicy, get_mempolicy, move_pages, migrate_pages, set_mempolicy_home_node
}

// Validate returns an error wrapping [ErrUnknownGroup] that names the first
// entry of c.Allow missing from [OptInGroups] and lists the valid ones. It
// needs no cgo, so profile validation can use it on any platform.
func (c Config) Validate() error {
	for _, g := range c.Allow {
		if !slices.Contains(OptInGroups, g) {
			return fmt.Errorf("%w %q (valid: %s)", ErrUnknownGroup, g,
				strings.Join(OptInGroups, ", "))
		}
	}
	return nil
}

// allows reports whether c lifts the rules of group g.
func (c Config) allows(g string) bool {
	return g != "" && slices.Contains(c.Allow, g)
}
