package sandbox

import (
	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/sandbox/cgroup"
	"github.com/vm-run/vm-run/seccomp"
)

// InitArg0 is the argv[0] that makes vm-run run as the init stage. main
// checks it before kong parses anything.
const InitArg0 = "vm-run:init"

// Spec is everything the init stage needs to build the sandbox and start the
// command. The parent sends it as one JSON value over an inherited pipe; the
// init stage decodes it strictly (unknown fields are an error), so the two
// sides must come from the same binary.
type Spec struct {
	// Path is the program to execute: a name looked up in the PATH of Env,
	// or a path. Args is its argv, Args[0] included.
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`

	// UID and GID are the command's ids, the same inside and outside.
	UID int `json:"uid"`
	GID int `json:"gid"`

	// Loopback brings lo up in the fresh network namespace.
	Loopback bool `json:"loopback,omitempty"`
	// Egress gives the sandbox network mode egress: lo, and a TUN device
	// whose traffic the parent's [Network] carries.
	Egress *Egress `json:"egress,omitempty"`

	// Hide are directories covered by an empty tmpfs; Keep are host paths
	// beneath them bind-mounted back so that profile rules still reach
	// them. TmpDir (one of Hide, or beneath one) is the writable private
	// temp dir, of TmpSize bytes.
	Hide    []string `json:"hide,omitempty"`
	Keep    []Keep   `json:"keep,omitempty"`
	TmpDir  string   `json:"tmpdir,omitempty"`
	TmpSize uint64   `json:"tmp_size,omitempty"`

	// Overlay are directories the sandbox sees through a copy-on-write
	// layer whose writes live in memory and vanish with the sandbox.
	Overlay []string `json:"overlay,omitempty"`

	// PrivateHome is a host directory (one of Hide) that the command gets
	// as its home: the tmpfs there is its own, mode 0700. Trees are the
	// host paths beneath it that the profile grants, which the init stage
	// attaches from descriptors the parent opened (trees.go).
	PrivateHome string `json:"private_home,omitempty"`
	Trees       []Tree `json:"trees,omitempty"`

	Landlock landlock.Rules `json:"landlock"`
	Seccomp  seccomp.Config `json:"seccomp"`
	// SeccompBPF is Seccomp compiled by the parent (seccomp.Program), which
	// the init stage loads as it is.
	SeccompBPF []byte   `json:"seccomp_bpf"`
	Rlimits    []Rlimit `json:"rlimits,omitempty"`

	// Cgroup are the limits of the sandbox's own cgroup, which the parent
	// creates, with the init stage in it, before it sends the spec; none
	// when zero. CgroupBestEffort runs the sandbox without them when the
	// cgroup cannot be made (the profile's best_effort), with a warning.
	Cgroup           cgroup.Limits `json:"cgroup"`
	CgroupBestEffort bool          `json:"cgroup_best_effort,omitempty"`
	// Cgroupfs are the cgroup file systems the init stage mounts in its
	// own cgroup namespace to show the sandbox its cgroup, and only that,
	// at /sys/fs/cgroup; the parent fills them in. Without them an empty
	// tmpfs covers /sys/fs/cgroup.
	Cgroupfs []cgroup.Mount `json:"cgroupfs,omitempty"`

	// HostNetNS identifies the parent's network namespace (its inode);
	// the init stage refuses to go on if it finds itself still there.
	HostNetNS string `json:"host_netns"`
}

// Keep is a host path bind-mounted back beneath a hidden directory.
type Keep struct {
	Path string `json:"path"`
	// Writable is true when a write or overlay rule on a host path covers
	// it. Otherwise the bind is read-only: Landlock rules cover whatever
	// is mounted beneath their directory, so without it the write rule on
	// the private temp dir would reach a workspace kept inside it.
	Writable bool `json:"writable,omitempty"`
}

// Rlimit is one setrlimit(2) call; soft and hard are both Value.
type Rlimit struct {
	Name     string `json:"name"`
	Resource int    `json:"resource"`
	Value    uint64 `json:"value"`
}

// Egress is network mode egress as the init stage sets it up.
type Egress struct {
	// Resolv and Hosts are the files /etc/resolv.conf and /etc/hosts lead
	// to in the sandbox (through their symbolic links: on many hosts
	// /etc/resolv.conf names a file under /run), which the init stage
	// covers with vm-run's own.
	Resolv string `json:"resolv"`
	Hosts  string `json:"hosts"`
}
