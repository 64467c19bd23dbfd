package selftest

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// baselineAs says whose credentials the unsandboxed run of a probe has.
type baselineAs int

const (
	// asCommand: the user the sandboxed command runs as, without the
	// caller's supplementary groups. Everything that file permissions or
	// ptrace rules would decide is then decided the same way with and
	// without the sandbox, so a difference is the sandbox's doing.
	asCommand baselineAs = iota
	// asCaller: the harness's own credentials, for attacks that need a
	// privilege the command's user lacks anyway (capabilities, uid 0,
	// CAP_DAC_READ_SEARCH): only the caller can show them working here.
	asCaller
	// asCommandWithGroups: the command's user keeping the caller's
	// supplementary groups, for the attack that tries to use them.
	asCommandWithGroups
)

// attack is one row of the battery: a probe and how to run it.
type attack struct {
	name  string
	probe string
	args  func(e runEnv) []string
	as    baselineAs
	// tty gives the probe the pseudo-terminal's slave as stderr; leak
	// opens descriptors without close-on-exec around the launch.
	tty, leak bool
	// inTmp runs the attack with the second workspace, the one in the
	// host directory named like the sandbox's private temp dir.
	inTmp bool
	// skip returns why the attack does not apply here, or "".
	skip func(e runEnv) string
	// baselineIn says where the run that proves the attack happens.
	baselineIn baselineWhere
	// check, if set, judges what the parent saw of a blocked sandboxed
	// run: the stack's records, the questions the battery's resolver got.
	check func(e runEnv, ev evidence) finding
}

// baselineWhere says where the baseline run of an attack happens.
type baselineWhere int

const (
	// onHost: unsandboxed, as baselineAs says.
	onHost baselineWhere = iota
	// withoutAllowlist: in the same sandbox, its stack allowing every
	// destination (openNet), for attacks only the allowlist can stop.
	withoutAllowlist
	// inOwnNetNS: unsandboxed, as uid 0 of a new user namespace that owns
	// a new network namespace: holding CAP_NET_ADMIN over it, as the init
	// stage does before it drops its capabilities. For the attacks on the
	// sandbox's network configuration, which on the host would need a
	// privilege the command's user lacks anyway, and must not change the
	// host's network. Needs asCaller: the new namespace maps uid 0 to the
	// caller.
	inOwnNetNS
)

// runEnv is what an attack's parameters depend on: the fixtures, the
// workspace and the profile loaded for it, and whether the run is
// sandboxed.
type runEnv struct {
	fx        *fixtures
	workspace string
	profile   *profiles.Profile
	sandboxed bool
}

// tmp is the writable temp dir: the sandbox's private one, or its stand-in.
func (e runEnv) tmp() string {
	if e.sandboxed {
		return sandbox.TmpDir
	}
	return e.fx.tmp
}

// writable reports whether the profile grants writing path.
func (e runEnv) writable(path string) bool {
	return ruleFor(e.profile.Filesystem.Write, path) != ""
}

// grantedBy returns the first rule of the profile that reaches path.
func grantedBy(p *profiles.Profile, path string) string {
	fs := p.Filesystem
	for _, list := range []struct {
		kind  string
		paths []string
	}{{"read", fs.Read}, {"exec", fs.Exec}, {"write", fs.Write}, {"devices", fs.Devices}, {"overlay", fs.Overlay}} {
		if dir := ruleFor(list.paths, path); dir != "" {
			return fmt.Sprintf("%s rule %q", list.kind, dir)
		}
	}
	return ""
}

// ruleFor returns the entry of rules that reaches the host path, if any.
// A rule on the private temp dir grants the sandbox's own tmpfs, not the
// host directory of that name, so it reaches no host path.
func ruleFor(rules []string, path string) string {
	for _, raw := range rules {
		dir, _ := profiles.SplitOptional(raw)
		dir = filepath.Clean(dir)
		if dir == sandbox.TmpDir {
			continue
		}
		if path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/") {
			return dir
		}
	}
	return ""
}

func fixed(args ...string) func(runEnv) []string {
	return func(runEnv) []string { return args }
}

func wsWritable(e runEnv) string {
	if e.writable(e.workspace) {
		return "the profile grants write access to the workspace"
	}
	return ""
}

func noTmpWorkspace(e runEnv) string {
	if e.fx.tmpWorkspace == "" {
		return fmt.Sprintf("the harness cannot create a workspace in the host's %s, or the profile does not hide it", sandbox.TmpDir)
	}
	return wsWritable(e)
}

func noHidden(e runEnv) string {
	if e.fx.hidden == "" {
		return "the profile hides no directory the harness can write to"
	}
	return ""
}

// victim returns the parameters that aim a probe at the victim, plus
// extra ones.
func victim(extra ...func(e runEnv) []string) func(runEnv) []string {
	return func(e runEnv) []string {
		fx := e.fx
		args := []string{param("pid", strconv.Itoa(fx.victim.Process.Pid)), param("token", fx.tokens["victim"])}
		for _, f := range extra {
			args = append(args, f(e)...)
		}
		return args
	}
}

// procFile aims the proc probe at /proc/PID/file.
func procFile(file string) func(runEnv) []string {
	return victim(func(e runEnv) []string {
		args := []string{param("file", file)}
		if file == "root" {
			args = append(args, param("secret", e.fx.secret), param("stoken", e.fx.tokens["secret"]))
		}
		return args
	})
}

func syscallAttack(name string) attack {
	return attack{name: name + "(2) reaches the kernel", probe: "syscall", args: fixed(param("name", name))}
}

// battery lists the attacks in the order of the report.
func battery() []attack {
	a := []attack{
		{name: "read a file outside the rules", probe: "read", args: func(e runEnv) []string {
			return []string{param("path", e.fx.secret), param("token", e.fx.tokens["secret"])}
		}},
		{name: "read a host file in a hidden dir", probe: "read", skip: noHidden, args: func(e runEnv) []string {
			return []string{param("path", e.fx.hiddenSecret), param("token", e.fx.tokens["hidden"])}
		}},
		{name: "follow a workspace symlink outside", probe: "read", args: func(e runEnv) []string {
			return []string{param("path", e.fx.wsLink), param("token", e.fx.tokens["secret"])}
		}},
		{name: "write a file outside the rules", probe: "write", args: func(e runEnv) []string {
			return []string{param("path", e.fx.secret)}
		}},
		{name: "create a file outside the rules", probe: "create", args: func(e runEnv) []string {
			return []string{param("dir", e.fx.outside)}
		}},
		{name: "write a read-only workspace file", probe: "write", skip: wsWritable, args: func(e runEnv) []string {
			return []string{param("path", e.fx.wsFile)}
		}},
		{name: "truncate a read-only workspace file", probe: "truncate", skip: wsWritable, args: func(e runEnv) []string {
			return []string{param("path", e.fx.wsFile)}
		}},
		// A workspace under the host's /tmp is bind-mounted back beneath
		// the private /tmp, whose write rule Landlock would extend to it:
		// rules reach everything beneath their directory, mount points
		// included (landlock(7)).
		{name: "write a read-only workspace in " + sandbox.TmpDir, probe: "write", inTmp: true, skip: noTmpWorkspace,
			args: func(e runEnv) []string {
				return []string{param("path", e.fx.tmpWsFile)}
			}},
		{name: "symlink in tmp to a file outside", probe: "symlink", args: func(e runEnv) []string {
			return []string{param("dir", e.tmp()), param("target", e.fx.secret), param("token", e.fx.tokens["secret"])}
		}},
		{name: "hardlink a file outside into reach", probe: "hardlink", args: func(e runEnv) []string {
			args := []string{param("target", e.fx.secret), param("token", e.fx.tokens["secret"]), param("dir", e.tmp())}
			if e.writable(e.fx.workspace) {
				args = append(args, param("dir", e.fx.workspace))
			}
			return args
		}},
		{name: "rename a workspace file out", probe: "rename", args: func(e runEnv) []string {
			args := []string{param("src", e.fx.wsFile), param("dst", e.fx.outside)}
			if !e.writable(e.fx.workspace) {
				args = append(args, param("dst", e.tmp()))
			}
			return args
		}},
		{name: "open a host file by handle", probe: "byhandle", as: asCaller, args: func(e runEnv) []string {
			return []string{param("type", strconv.Itoa(int(e.fx.handleType))),
				param("handle", hex.EncodeToString(e.fx.handle)),
				param("mount", e.fx.workspace), param("mount", e.fx.outside),
				param("token", e.fx.tokens["secret"])}
		}},

		{name: "/proc/PID/root of an outside process", probe: "proc", args: procFile("root")},
		{name: "/proc/PID/environ of an outside process", probe: "proc", args: procFile("environ")},
		{name: "/proc/PID/mem of an outside process", probe: "proc", args: procFile("mem")},
		{name: "/proc/PID/exe of an outside process", probe: "proc", args: procFile("exe")},
		{name: "signal an outside process", probe: "signal", args: victim()},
		{name: "ptrace an outside process", probe: "ptrace", args: victim()},
		{name: "process_vm_readv an outside process", probe: "vmread", args: victim(func(e runEnv) []string {
			return []string{param("addr", strconv.FormatUint(e.fx.stackAddr, 16)), param("len", strconv.Itoa(e.fx.stackLen))}
		})},
		{name: "pidfd_getfd an outside process's fd", probe: "pidfd", args: victim(func(e runEnv) []string {
			return []string{param("fd", "3"), param("stoken", e.fx.tokens["secret"])}
		})},

		{name: "connect to host loopback TCP", probe: "tcp", args: func(e runEnv) []string {
			return []string{param("addr", e.fx.tcpAddr), param("token", e.fx.tokens["tcp"])}
		}},
		{name: "connect to a host abstract unix socket", probe: "unix", args: func(e runEnv) []string {
			return []string{param("name", e.fx.sockName), param("token", e.fx.tokens["abstract"])}
		}},
		{name: "connect to a host pathname unix socket", probe: "unix", skip: noHidden, args: func(e runEnv) []string {
			return []string{param("path", e.fx.sockPath), param("token", e.fx.tokens["socket"])}
		}},
		{name: "network interfaces other than lo", probe: "netifs", args: netifsArgs},

		{name: "new user namespace via clone", probe: "userns", args: fixed(param("via", "clone"))},
		{name: "new user namespace via clone3", probe: "userns", args: fixed(param("via", "clone3"))},
		{name: "new user namespace via unshare", probe: "userns", args: fixed(param("via", "unshare"))},
	}
	for _, name := range []string{"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount",
		"move_mount", "open_tree", "fspick", "mount_setattr", "setns", "io_uring_setup", "bpf",
		"perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "name_to_handle_at"} {
		a = append(a, syscallAttack(name))
	}
	return append(a,
		attack{name: "socket(AF_VSOCK) to the hypervisor", probe: "syscall", args: fixed(param("name", "socket(AF_VSOCK)"))},
		attack{name: "socket(AF_ALG) kernel crypto", probe: "syscall", args: fixed(param("name", "socket(AF_ALG)"))},
		attack{name: "ia32 syscall via int $0x80", probe: "ia32", args: fixed()},
		attack{name: "x32 ABI syscall", probe: "x32", args: fixed()},
		attack{name: "personality READ_IMPLIES_EXEC/ADDR_NO_RANDOMIZE", probe: "personality", args: fixed()},
		attack{name: "TIOCSTI into the terminal", probe: "tiocsti", tty: true, args: fixed()},
		attack{name: "TIOCLINUX on the terminal", probe: "tioclinux", tty: true, args: fixed()},

		attack{name: "inherit leaked descriptors", probe: "fds", leak: true, args: func(e runEnv) []string {
			return []string{param("stoken", e.fx.tokens["secret"])}
		}},
		attack{name: "hold capabilities", probe: "caps", as: asCaller, args: fixed()},
		attack{name: "run without no_new_privs", probe: "nnp", args: fixed()},
		attack{name: "run without a seccomp filter", probe: "seccomp", args: fixed()},
		attack{name: "run as other ids than asked", probe: "ids", as: asCaller, args: func(e runEnv) []string {
			return []string{param("uid", strconv.Itoa(e.fx.uid)), param("gid", strconv.Itoa(e.fx.gid))}
		}},
		attack{name: "keep the caller's groups", probe: "groups", as: asCommandWithGroups,
			skip: func(e runEnv) string {
				if e.fx.groupFile == "" {
					return "only for a root caller with a supplementary group other than the command's"
				}
				return ""
			},
			args: func(e runEnv) []string {
				return []string{param("path", e.fx.groupFile), param("token", e.fx.tokens["group"])}
			}},
	)
}
