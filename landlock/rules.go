package landlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	golandlock "github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Feature names a Landlock capability a profile can require. The names are
// the ones profiles use under landlock.require.
type Feature string

// Landlock features, with the ABI version that introduced each (see
// Documentation/userspace-api/landlock.rst in the kernel tree). The features
// of ABI 6 and later also need erratum 2 to be fixed; see [Support.Has].
const (
	FeatureFilesystem        Feature = "filesystem"          // ABI 1
	FeatureRefer             Feature = "refer"               // ABI 2
	FeatureTruncate          Feature = "truncate"            // ABI 3
	FeatureTCP               Feature = "tcp"                 // ABI 4
	FeatureIoctlDev          Feature = "ioctl-dev"           // ABI 5
	FeatureScopeAbstractUnix Feature = "scope-abstract-unix" // ABI 6, erratum 2 fixed
	FeatureScopeSignal       Feature = "scope-signal"        // ABI 6, erratum 2 fixed
	FeatureResolveUnix       Feature = "resolve-unix"        // ABI 9, erratum 2 fixed
	FeatureUDP               Feature = "udp"                 // ABI 10, erratum 2 fixed
)

// Rules is the Landlock part of a sandbox spec. Paths are absolute and exist
// (the caller drops optional paths that do not). Rules travels to the init
// stage as JSON.
//
// Everything Rules does not grant is denied, as far as the kernel's Landlock
// ABI can tell operations apart: files, TCP ports, UDP ports (ABI 10),
// pathname unix sockets of other domains (ABI 9), abstract unix sockets and
// signals of processes outside the sandbox (ABI 6).
type Rules struct {
	// Read grants reading files and listing directories beneath each path.
	Read []string `json:"read,omitempty"`
	// Exec grants Read plus executing files beneath each path.
	Exec []string `json:"exec,omitempty"`
	// Write grants Read plus creating, writing, truncating, renaming and
	// removing beneath each path (not executing).
	Write []string `json:"write,omitempty"`
	// Devices grants read, write and device ioctls on each path.
	Devices []string `json:"devices,omitempty"`
	// ConnectTCP and BindTCP are the TCP ports allowed; empty means none.
	ConnectTCP []uint16 `json:"connect_tcp,omitempty"`
	BindTCP    []uint16 `json:"bind_tcp,omitempty"`
	// AnyTCP leaves TCP unrestricted: the ruleset does not handle TCP
	// bind and connect at all. For a sandbox whose network namespace holds
	// only its own loopback, where every port is the sandbox's own.
	AnyTCP bool `json:"any_tcp,omitempty"`
	// LogDenials asks the kernel to log the denials of the programs the
	// restricted process executes too (from ABI 7, with audit enabled):
	// set only when someone reads them (WatchDenials), since a hostile
	// program could otherwise fill the host's audit log for nobody.
	LogDenials bool `json:"log_denials,omitempty"`
	// Require lists the features that must be enforced; a kernel that
	// lacks one makes Restrict fail with a *MissingFeatureError unless
	// BestEffort is set. Some features are required without being listed:
	// see [Rules.Required].
	Require    []Feature `json:"require,omitempty"`
	BestEffort bool      `json:"best_effort,omitempty"`
}

// ErrNotSupported is returned on systems without Landlock at all.
var ErrNotSupported = errors.New("landlock is not supported on this system")

// ErrUnknownFeature is wrapped by the error for a feature name this vm-run
// does not know. A profile naming one is refused even with BestEffort: an
// unknown name is a typo or a newer profile, never a kernel shortcoming.
var ErrUnknownFeature = errors.New("unknown landlock feature")

// MissingFeatureError reports a required feature the running kernel lacks.
type MissingFeatureError struct {
	Feature Feature
	ABI     int    // the kernel's Landlock ABI version (0: none)
	Errata  int    // the kernel's fixed-errata bitmask
	Need    string // what would provide it, e.g. "ABI 6 with erratum 2"
	// Reason says why the kernel has no Landlock at all (ABI 0), e.g.
	// that it is disabled at boot; empty otherwise.
	Reason string
}

func (e *MissingFeatureError) Error() string {
	have := fmt.Sprintf("ABI %d", e.ABI)
	if e.ABI >= 6 && e.Errata&erratumScopedSignal == 0 {
		have += " without erratum 2"
	}
	msg := fmt.Sprintf("landlock feature %q is not available: the kernel has Landlock %s, %q needs %s",
		e.Feature, have, e.Feature, e.Need)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// Filesystem access rights each kind of grant gives, in the kernel's
// LANDLOCK_ACCESS_FS_* bits (Documentation/userspace-api/landlock.rst,
// "Filesystem flags"). Rights the running ABI does not know are dropped
// before use; the operations they guard are then not restricted at all.
const (
	accessRead = ll.AccessFSReadFile | ll.AccessFSReadDir
	accessExec = accessRead | ll.AccessFSExecute
	// accessWrite is everything but executing. Refer lets files move
	// between writable directories; the kernel denies it by default
	// even on ABI 1, where it cannot be granted.
	accessWrite = accessRead | ll.AccessFSWriteFile | ll.AccessFSRemoveDir |
		ll.AccessFSRemoveFile | ll.AccessFSMakeChar | ll.AccessFSMakeDir |
		ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo |
		ll.AccessFSMakeBlock | ll.AccessFSMakeSym | ll.AccessFSRefer |
		ll.AccessFSTruncate
	// accessDevice needs no truncate right for `>/dev/null`: open(2)
	// ignores O_TRUNC for anything but a regular file (do_open() in
	// fs/namei.c), so Landlock's truncate check never runs for a device.
	accessDevice = ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSIoctlDev
	// accessFile is all the kernel accepts in a rule for a path that is
	// not a directory (ACCESS_FILE in security/landlock/fs.c); more is
	// EINVAL from landlock_add_rule(2).
	accessFile = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile |
		ll.AccessFSTruncate | ll.AccessFSIoctlDev
)

// configs are go-landlock's configurations that handle every access right
// and scope of ABI 1 to maxABI, so that whatever the rules do not grant is
// denied; configs[n-1] is ABI n.
var configs = [maxABI]golandlock.Config{
	golandlock.V1, golandlock.V2, golandlock.V3, golandlock.V4,
	golandlock.V5, golandlock.V6, golandlock.V7, golandlock.V8,
	golandlock.V9, golandlock.V10, golandlock.V11,
}

// grant is one kind of path grant.
type grant struct {
	name   string // as in the profile, for errors
	paths  []string
	access golandlock.AccessFSSet
}

func (r Rules) grants() []grant {
	return []grant{
		{"read", r.Read, accessRead},
		{"exec", r.Exec, accessExec},
		{"write", r.Write, accessWrite},
		{"devices", r.Devices, accessDevice},
	}
}

// plan turns r into the go-landlock configuration and rules for Landlock
// ABI abi (1 to maxABI). It reads only file metadata: a path that is not a
// directory gets only the rights that apply to files.
func (r Rules) plan(abi int) (golandlock.Config, []golandlock.Rule, error) {
	if abi < 1 || abi > maxABI {
		return golandlock.Config{}, nil, fmt.Errorf("plan landlock rules: ABI %d is outside 1..%d", abi, maxABI)
	}
	cfg := configs[abi-1]
	if abi >= 7 && r.LogDenials {
		// LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON: the domain's denials
		// are logged after the init stage executes the command, too
		// (by default only those of the program that restricted
		// itself are). The kernel logs nothing unless audit is
		// enabled; vm-run reads them back with [WatchDenials].
		cfg = cfg.EnableLoggingForSubprocesses()
	}
	if r.AnyTCP {
		cfg.HandledAccessNet &^= ll.AccessNetConnectTCP | ll.AccessNetBindTCP
	}
	var rules []golandlock.Rule
	for _, g := range r.grants() {
		for _, p := range g.paths {
			if !filepath.IsAbs(p) {
				return golandlock.Config{}, nil, fmt.Errorf("plan landlock %s rule: path %q is not absolute", g.name, p)
			}
			fi, err := os.Stat(p)
			if err != nil {
				return golandlock.Config{}, nil, fmt.Errorf("plan landlock %s rule: %w", g.name, err)
			}
			access := g.access & cfg.HandledAccessFS
			if !fi.IsDir() {
				access &= accessFile
			}
			if access == 0 {
				// landlock_add_rule(2) refuses empty rights
				// (ENOMSG); nothing to grant at this ABI.
				continue
			}
			rules = append(rules, golandlock.PathAccess(access, p))
		}
	}
	if cfg.HandledAccessNet&ll.AccessNetConnectTCP != 0 {
		for _, port := range r.ConnectTCP {
			rules = append(rules, golandlock.ConnectTCP(port))
		}
	}
	if cfg.HandledAccessNet&ll.AccessNetBindTCP != 0 {
		for _, port := range r.BindTCP {
			rules = append(rules, golandlock.BindTCP(port))
		}
	}
	return cfg, rules, nil
}
