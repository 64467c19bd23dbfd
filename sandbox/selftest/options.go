package selftest

import (
	"io"

	"github.com/vm-run/vm-run/profiles"
)

// Options configure [Run].
type Options struct {
	// ProfileName is the profile under test as --profile takes it: a name
	// or a path. Unless Load is set, Run loads it with profiles.Load and
	// ${WORKSPACE} set to the workspace it creates for the battery, which
	// is what the workspace attacks need. It also names the report.
	ProfileName string
	// Load, if set, loads the profile under test for the battery's
	// workspace, in place of profiles.Load(ProfileName, ...).
	Load func(workspace string) (*profiles.Profile, error)
	// Profile, when neither Load nor ProfileName is set, is the profile
	// under test, already loaded. Its ${WORKSPACE} then is not the
	// battery's workspace, so the workspace attacks test whatever it
	// grants there.
	Profile *profiles.Profile
	// Self is the vm-run binary, run as the probes with argv[0]
	// ProbeArg0 (default: this process's executable).
	Self string
	// Stderr, if set, gets one progress line per attack.
	Stderr io.Writer
	// User is whom the sandboxed probes run as; nil means what vm-run
	// picks: the caller, or nobody (65534:65534) for root.
	User *User
	// Env is the environment vm-run's dialer reads HTTPS_PROXY from in
	// network mode egress, when the profile names no upstream proxy, as
	// `vm-run run` passes its own (nil: this process's).
	Env []string
}

// User is a uid and gid pair.
type User struct {
	UID, GID int
}

// nobody is the user vm-run runs commands as when started by root.
var nobody = User{UID: 65534, GID: 65534}
