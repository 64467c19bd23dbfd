package profiles

import (
	"math"
	"strings"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/policy"
)

// Profile is a merged, variable-expanded profile: what vm-run enforces.
// Paths are absolute and cleaned. Fields mirror the YAML schema documented in
// doc.go; the YAML key of each field is its yaml tag.
type Profile struct {
	Name        string `yaml:"name" json:"name" expand:"no"`
	Description string `yaml:"description,omitempty" json:"description,omitempty" expand:"no"`
	// Source is where the profile came from: "builtin:strict" or a file path.
	// For a profile that extends others, the chain, outermost first.
	Source []string `yaml:"-" json:"source"`
	// BestEffort allows running when the kernel lacks a feature the profile
	// names; without it a missing feature stops the launch.
	BestEffort bool `yaml:"best_effort,omitempty" json:"best_effort,omitempty"`

	Filesystem Filesystem `yaml:"filesystem" json:"filesystem"`
	// Network may be written as a scalar, its mode: "network: none".
	Network  Network  `yaml:"network" json:"network" short:"mode"`
	Landlock Landlock `yaml:"landlock" json:"landlock"`
	Syscalls Syscalls `yaml:"syscalls" json:"syscalls"`
	Limits   Limits   `yaml:"limits" json:"limits"`
	Env      Env      `yaml:"env" json:"env"`
	// Secrets are values vm-run reads outside the sandbox and hands to
	// the command through env.set (secrets.go); never the values.
	Secrets map[string]Secret `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	// Tools is the MCP tool policy, package policy's schema and semantics
	// (see tools.go). After Load it is never nil and is compiled: a profile
	// chain without a tools: section gets default_action deny for
	// everything, and an empty default_action is filled in as deny.
	Tools *policy.Policy `yaml:"tools,omitempty" json:"tools,omitempty"`
	Audit Audit          `yaml:"audit" json:"audit"`
}

// Filesystem lists paths by the access granted beneath them. An entry ending
// in "?" is optional: it is dropped when the path does not exist; any other
// missing path is an error at launch. Profiles keep the "?" so that the
// launcher, which sees the real filesystem, decides; see [SplitOptional].
type Filesystem struct {
	Read  []string `yaml:"read,omitempty" json:"read,omitempty"`
	Exec  []string `yaml:"exec,omitempty" json:"exec,omitempty"`
	Write []string `yaml:"write,omitempty" json:"write,omitempty"`
	// Overlay lists directories the sandbox sees through a copy-on-write
	// layer: reads come from the host, writes land in a private in-memory
	// layer that is discarded when the sandbox exits (overlayfs with a tmpfs
	// upper directory). For caches a tool insists on writing, such as npm's:
	// the tool works, the host copy cannot be poisoned. Overlay grants what
	// Write grants, but only on the private layer; add the path to Exec as
	// well to run programs from it.
	Overlay []string `yaml:"overlay,omitempty" json:"overlay,omitempty"`
	Devices []string `yaml:"devices,omitempty" json:"devices,omitempty"`
	// Hide lists directories covered by an empty tmpfs inside the sandbox
	// (host sockets live there: /run, /tmp, /var/run, /dev/shm). Profile
	// paths beneath a hidden directory are bind-mounted back.
	Hide []string `yaml:"hide,omitempty" json:"hide,omitempty"`
}

// Network modes. "off" is read as NetworkNone, so that "network: off"
// means what it says; a loaded profile holds only these three.
const (
	NetworkNone     = "none"
	NetworkLoopback = "loopback"
	// NetworkEgress gives the sandbox a network device whose far end is
	// vm-run (package netns/egress): it reaches, by name, exactly the
	// hosts and ports that Allow lists, and nothing else.
	NetworkEgress = "egress"
)

// Network says what the sandbox's fresh network namespace holds.
type Network struct {
	Mode string `yaml:"mode" json:"mode"` // NetworkNone, NetworkLoopback or NetworkEgress
	// ConnectTCP and BindTCP are loopback TCP ports allowed by Landlock
	// when Mode is loopback.
	ConnectTCP []uint16 `yaml:"connect_tcp,omitempty" json:"connect_tcp,omitempty"`
	BindTCP    []uint16 `yaml:"bind_tcp,omitempty" json:"bind_tcp,omitempty"`
	// AnyPort, with Mode loopback, leaves TCP ports to the namespace: the
	// launcher adds no Landlock TCP rule, so every port of the sandbox's
	// own loopback can be bound and connected to. Nothing outside the
	// sandbox is reachable either way: its namespace has only lo.
	AnyPort bool `yaml:"any_port,omitempty" json:"any_port,omitempty"`

	// The rest need Mode egress. A null value in an extending profile
	// removes the inherited one, so that a child can go back to another
	// mode.

	// Allow lists what the sandbox may reach, each rule normalised
	// ([egress.Rule.Normalize]) and listed once, in the order written.
	// Empty, nothing is reachable: every name is answered NXDOMAIN.
	Allow []egress.Rule `yaml:"allow,omitempty" json:"allow,omitempty" null:"removes"`
	// UpstreamProxy is the HTTP proxy through which vm-run itself reaches
	// allowed hosts, "http://[USER:PASSWORD@]HOST:PORT" as written; the
	// sandbox never sees it. Everything this package prints writes its
	// password "xxxxx" ([RedactURL]).
	UpstreamProxy string `yaml:"upstream_proxy,omitempty" json:"upstream_proxy,omitempty" expand:"no" redact:"url" null:"removes"`
	// Resolver is the DNS server, "IP:PORT" in canonical form, that vm-run
	// asks for the addresses of allowed names; empty, the host's own
	// (/etc/resolv.conf).
	Resolver string `yaml:"resolver,omitempty" json:"resolver,omitempty" expand:"no" null:"removes"`
	// Limits bound what the sandbox can make vm-run hold; see
	// [Network.EgressLimits]. nil, or a field nil, takes the default.
	Limits *NetLimits `yaml:"limits,omitempty" json:"limits,omitempty"`
}

// NetLimits are network.limits as written, in the schema's units; a nil
// field takes [egress.Limits.WithDefaults]'s value.
type NetLimits struct {
	// Connections is the most TCP connections open at once.
	Connections *uint64 `yaml:"connections,omitempty" json:"connections,omitempty" unit:"count"`
	// Handshakes is the most connections being decided and dialled at
	// once.
	Handshakes *uint64 `yaml:"handshakes,omitempty" json:"handshakes,omitempty" unit:"count"`
	// Buffer is each connection's TCP buffer inside the stack, each way.
	Buffer *uint64 `yaml:"buffer,omitempty" json:"buffer,omitempty" unit:"bytes"`
	// IdleTimeout closes a connection silent both ways for so long.
	IdleTimeout *uint64 `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty" unit:"seconds"`
	// DialTimeout bounds one upstream dial, name lookup included.
	DialTimeout *uint64 `yaml:"dial_timeout,omitempty" json:"dial_timeout,omitempty" unit:"seconds"`
}

// Landlock names the Landlock features the profile requires.
type Landlock struct {
	Require []landlock.Feature `yaml:"require,omitempty" json:"require,omitempty"`
}

// Syscalls names the seccomp groups the profile opts into (see package
// seccomp for the list).
type Syscalls struct {
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// Limits are the sandbox's resource limits. Pids, Memory and CPU are
// enforced by a cgroup of the sandbox's own (package sandbox/cgroup): they
// hold for the whole sandbox, every process and thread together, whatever
// uid it shares with others. The rest are setrlimit(2) limits of each
// process: a nil field leaves the inherited limit alone; a set one is both
// soft and hard. [Unlimited] stands for RLIM_INFINITY (and, for Pids, no
// limit). The unit tag says how the YAML value is written (see doc.go): a
// count, a size in bytes or a time in seconds.
type Limits struct {
	// Pids is the most tasks (processes and threads) the sandbox may
	// hold at once: its cgroup's pids.max.
	Pids *uint64 `yaml:"pids,omitempty" json:"pids,omitempty" unit:"count"`
	// Memory is the most memory the sandbox may use, swap included: its
	// cgroup's memory.max, with no swap. Reaching it wakes the kernel's
	// OOM killer inside the sandbox.
	Memory *Share `yaml:"memory,omitempty" json:"memory,omitempty" expand:"no"`
	// CPU is the sandbox's CPU bandwidth (cpu.max), in CPUs.
	CPU *Share `yaml:"cpu,omitempty" json:"cpu,omitempty" expand:"no"`

	NoFile  *uint64 `yaml:"nofile,omitempty" json:"nofile,omitempty" unit:"count"`
	NProc   *uint64 `yaml:"nproc,omitempty" json:"nproc,omitempty" unit:"count"`
	AS      *uint64 `yaml:"as,omitempty" json:"as,omitempty" unit:"bytes"`
	FSize   *uint64 `yaml:"fsize,omitempty" json:"fsize,omitempty" unit:"bytes"`
	CPUTime *uint64 `yaml:"cpu_time,omitempty" json:"cpu_time,omitempty" unit:"seconds"`
	Core    *uint64 `yaml:"core,omitempty" json:"core,omitempty" unit:"bytes"`
	// TmpSize is the size of the private /tmp in bytes (0: 256 MiB).
	TmpSize uint64 `yaml:"tmp_size,omitempty" json:"tmp_size,omitempty" unit:"bytes"`

	// MaxMessage is the largest MCP message the proxy passes, in bytes
	// (0: 256 MiB): a larger one is answered with an error at once and
	// never forwarded, and the proxy holds no more than one message.
	MaxMessage uint64 `yaml:"max_message,omitempty" json:"max_message,omitempty" unit:"bytes"`
	// CallTimeout is how long the proxy waits for the server's answer to
	// a client's request, counted from the request or from the server's
	// last progress notification for it (nil: 10 minutes; Unlimited: no
	// limit). A call that runs out is answered with an error, cancelled
	// at the server and recorded as timed out.
	CallTimeout *uint64 `yaml:"call_timeout,omitempty" json:"call_timeout,omitempty" unit:"seconds"`
}

// Cgroup reports whether the limits ask for a cgroup: a pids, memory or
// CPU limit other than unlimited.
func (l Limits) Cgroup() bool {
	return l.PidsMax() != 0 || l.Memory != nil && *l.Memory != ShareUnlimited ||
		l.CPU != nil && *l.CPU != ShareUnlimited
}

// Unlimited is the value of a limit written "unlimited": RLIM_INFINITY,
// which is all ones on Linux (getrlimit(2)).
const Unlimited uint64 = math.MaxUint64

// Env says which environment variables reach the command.
type Env struct {
	Pass []string          `yaml:"pass,omitempty" json:"pass,omitempty"`
	Set  map[string]string `yaml:"set,omitempty" json:"set,omitempty"`
}

// Audit configures the ledger (package audit).
type Audit struct {
	Ledger string   `yaml:"ledger,omitempty" json:"ledger,omitempty"`
	Redact []string `yaml:"redact,omitempty" json:"redact,omitempty"`
}

// Vars are the values substituted for ${WORKSPACE}, ${HOME} and ${TMPDIR}.
type Vars struct {
	Workspace string
	Home      string
	TmpDir    string // the sandbox's private temp dir, as seen inside
}

// SplitOptional splits the optional marker off a profile path: "/lib64?"
// gives ("/lib64", true), "/usr" gives ("/usr", false). Only one trailing
// "?" is a marker.
func SplitOptional(p string) (path string, optional bool) {
	if path, ok := strings.CutSuffix(p, "?"); ok {
		return path, true
	}
	return p, false
}
