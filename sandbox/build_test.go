package sandbox_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/landlock"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
	"github.com/vm-run/vm-run/sandbox/cgroup"
)

// tree creates the directories (names ending in "/"), files and symlinks
// ("name -> target") of spec under a fresh directory and returns its real
// path.
//
// The tree is made outside the sandbox's private temp dir (/tmp), which the
// init stage always covers: paths beneath it would be kept as well.
func tree(t *testing.T, spec ...string) string {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "vm-run-build-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range spec {
		var err error
		switch name, target, link := strings.Cut(e, " -> "); {
		case link:
			err = os.Symlink(filepath.Join(dir, target), filepath.Join(dir, name))
		case strings.HasSuffix(e, "/"):
			err = os.MkdirAll(filepath.Join(dir, e), 0o755)
		default:
			err = os.WriteFile(filepath.Join(dir, e), nil, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// in prefixes each of names with dir; a trailing "?" stays.
func in(dir string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

// wantSetupError fails t unless err is a *sandbox.SetupError with code whose
// text names every one of words.
func wantSetupError(t *testing.T, err error, code int, words ...string) {
	t.Helper()
	var se *sandbox.SetupError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want a *sandbox.SetupError", err, err)
	}
	if se.Code != code {
		t.Errorf("SetupError.Code = %d, want %d (%v)", se.Code, code, err)
	}
	for _, w := range words {
		if !strings.Contains(se.Error(), w) {
			t.Errorf("SetupError %q does not name %q", se.Error(), w)
		}
	}
}

func TestBuildPaths(t *testing.T) {
	dir := tree(t, "a/", "b/", "f")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		fs      profiles.Filesystem
		want    landlock.Rules // Read, Exec, Write and Devices
		overlay []string
	}{
		{
			name: "optional missing path dropped",
			fs:   profiles.Filesystem{Read: in(dir, "a", "missing?"), Exec: in(dir, "missing?")},
			want: landlock.Rules{Read: in(dir, "a")},
		},
		{
			name: "optional existing path kept without its marker",
			fs:   profiles.Filesystem{Read: in(dir, "a?"), Devices: in(dir, "f?")},
			want: landlock.Rules{Read: in(dir, "a"), Devices: in(dir, "f")},
		},
		{
			name: "duplicates removed after cleaning",
			fs: profiles.Filesystem{
				Exec:  []string{dir + "/a", dir + "/a/", dir + "/./a", dir + "/b/../a?", dir + "/b"},
				Write: in(dir, "b", "b"),
			},
			want: landlock.Rules{Exec: in(dir, "a", "b"), Write: in(dir, "b")},
		},
		{
			name:    "overlay is also written to",
			fs:      profiles.Filesystem{Write: in(dir, "b"), Overlay: in(dir, "a", "missing?")},
			want:    landlock.Rules{Write: in(dir, "b", "a")},
			overlay: in(dir, "a"),
		},
		{
			name:    "overlay already writable is listed once",
			fs:      profiles.Filesystem{Write: in(dir, "a"), Overlay: in(dir, "a")},
			want:    landlock.Rules{Write: in(dir, "a")},
			overlay: in(dir, "a"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&profiles.Profile{Filesystem: tt.fs}, sandbox.Options{Argv: []string{"true"}, Workspace: dir})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got := landlock.Rules{Read: s.Landlock.Read, Exec: s.Landlock.Exec, Write: s.Landlock.Write, Devices: s.Landlock.Devices}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Build(%+v) rules = %+v, want %+v", tt.fs, got, tt.want)
			}
			if !slices.Equal(s.Overlay, tt.overlay) {
				t.Errorf("Build(%+v) Overlay = %q, want %q", tt.fs, s.Overlay, tt.overlay)
			}
		})
	}
	t.Run("missing required path", func(t *testing.T) {
		for _, fs := range []profiles.Filesystem{
			{Read: []string{dir, missing}},
			{Exec: []string{missing}},
			{Write: []string{missing}},
			{Devices: []string{missing}},
			{Overlay: []string{missing}},
			{Hide: []string{missing}},
		} {
			_, err := sandbox.Build(&profiles.Profile{Filesystem: fs}, sandbox.Options{Argv: []string{"true"}, Workspace: dir})
			wantSetupError(t, err, sandbox.ExitSetup, missing)
		}
	})
	t.Run("extra exec", func(t *testing.T) {
		p := &profiles.Profile{Filesystem: profiles.Filesystem{Exec: in(dir, "a")}}
		s, err := sandbox.Build(p, sandbox.Options{Argv: []string{"true"}, ExtraExec: in(dir, "f")})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		if want := in(dir, "a", "f"); !slices.Equal(s.Landlock.Exec, want) {
			t.Errorf("Exec = %q, want %q", s.Landlock.Exec, want)
		}
	})
}

func TestBuildHide(t *testing.T) {
	dir := tree(t, "h/sub/", "h/w/", "h/ws/", "h/ov/", "h/f", "hl -> h", "out/", "parent/h2/x/")
	h := filepath.Join(dir, "h")
	tests := []struct {
		name string
		fs   profiles.Filesystem
		ws   string
		hide []string
		keep []sandbox.Keep
	}{
		{
			name: "symlinked and repeated hidden dirs resolved and listed once",
			fs:   profiles.Filesystem{Hide: in(dir, "hl", "h", "h/", "missing?")},
			hide: []string{h},
		},
		{
			name: "granted paths beneath a hidden dir kept read-only",
			fs: profiles.Filesystem{
				Read: in(dir, "h/sub", "h/f", "out"), Exec: in(dir, "h/sub"), Hide: in(dir, "h"),
			},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "sub")}, {Path: filepath.Join(h, "f")}},
		},
		{
			name: "granted through a symlink kept by its real path",
			fs:   profiles.Filesystem{Read: in(dir, "hl/sub"), Hide: in(dir, "h")},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "sub")}},
		},
		{
			name: "host write rule makes a kept path writable",
			fs:   profiles.Filesystem{Read: in(dir, "h/sub"), Write: in(dir, "hl/w"), Hide: in(dir, "h")},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "sub")}, {Path: filepath.Join(h, "w"), Writable: true}},
		},
		{
			name: "write rule on the hidden dir does not reach kept paths",
			fs:   profiles.Filesystem{Read: in(dir, "h/sub"), Write: in(dir, "h"), Hide: in(dir, "hl")},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "sub")}},
		},
		{
			name: "write rule above the hidden dir reaches kept paths",
			fs:   profiles.Filesystem{Read: in(dir, "h/sub"), Write: []string{dir}, Hide: in(dir, "h")},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "sub"), Writable: true}},
		},
		{
			name: "overlay beneath a hidden dir kept writable",
			fs:   profiles.Filesystem{Overlay: in(dir, "h/ov"), Hide: in(dir, "h")},
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "ov"), Writable: true}},
		},
		{
			name: "workspace beneath a hidden dir kept without a rule",
			fs:   profiles.Filesystem{Hide: in(dir, "h")},
			ws:   filepath.Join(h, "ws"),
			hide: []string{h},
			keep: []sandbox.Keep{{Path: filepath.Join(h, "ws")}},
		},
		{
			name: "hidden dir itself and paths above it are not kept",
			fs:   profiles.Filesystem{Read: []string{dir, h}, Hide: in(dir, "h", "parent/h2")},
			hide: in(dir, "h", "parent/h2"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := tt.ws
			if ws == "" {
				ws = filepath.Join(dir, "out")
			}
			s, err := sandbox.Build(&profiles.Profile{Filesystem: tt.fs}, sandbox.Options{Argv: []string{"true"}, Workspace: ws})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !slices.Equal(s.Hide, tt.hide) {
				t.Errorf("Hide = %q, want %q", s.Hide, tt.hide)
			}
			if !slices.Equal(s.Keep, tt.keep) {
				t.Errorf("Keep = %+v, want %+v", s.Keep, tt.keep)
			}
		})
	}
}

// TestBuildHideSystem checks the built-in profiles against this host's
// /var/run and /tmp: a workspace in the private temp dir's place is kept,
// writable only when the profile grants writes to the workspace itself.
func TestBuildHideSystem(t *testing.T) {
	ws, err := os.MkdirTemp(sandbox.TmpDir, "vm-run-sandbox-test-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	if ws, err = filepath.EvalSymlinks(ws); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	for _, tt := range []struct {
		profile  string
		writable bool
	}{
		{"strict", false},
		{"standard", true},
		{"dev", true},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			p, err := new(profiles.Loader).Load(tt.profile, profiles.Vars{Workspace: ws, Home: home, TmpDir: sandbox.TmpDir})
			if err != nil {
				t.Fatal(err)
			}
			s, err := sandbox.Build(p, sandbox.Options{Argv: []string{"true"}, Workspace: ws})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if want := []sandbox.Keep{{Path: ws, Writable: tt.writable}}; !slices.Equal(s.Keep, want) {
				t.Errorf("Keep = %+v, want %+v", s.Keep, want)
			}
			if !slices.Contains(s.Landlock.Write, sandbox.TmpDir) {
				t.Errorf("Write = %q, want the private temp dir %q in it", s.Landlock.Write, sandbox.TmpDir)
			}
			var reals []string
			for _, h := range s.Hide {
				real, err := filepath.EvalSymlinks(h)
				if err != nil || real != h {
					t.Errorf("Hide lists %q, which is not a real path (%q, %v)", h, real, err)
				}
				if slices.Contains(reals, real) {
					t.Errorf("Hide lists %q twice", real)
				}
				reals = append(reals, real)
			}
			if real, err := filepath.EvalSymlinks("/var/run"); err == nil && !slices.Contains(s.Hide, real) {
				t.Errorf("Hide = %q, want /var/run's real path %q", s.Hide, real)
			}
		})
	}
}

func TestBuildProtect(t *testing.T) {
	dir := tree(t, "ws/", "state/", "other/", "wslink -> ws", "statelink -> state", "ws/file")
	ws := filepath.Join(dir, "ws")
	tests := []struct {
		name    string
		fs      profiles.Filesystem
		protect string
		rule    string // the rule the error must name; "" for no error
	}{
		{"ledger inside a read dir", profiles.Filesystem{Read: []string{ws}}, filepath.Join(ws, "ledger.jsonl"), ws},
		{"ledger deep inside an exec dir", profiles.Filesystem{Exec: []string{dir}}, filepath.Join(dir, "state/ledger.jsonl"), dir},
		{"ledger's dir writable", profiles.Filesystem{Write: in(dir, "state")}, filepath.Join(dir, "state/ledger.jsonl"), filepath.Join(dir, "state")},
		{"ledger inside an overlay", profiles.Filesystem{Overlay: in(dir, "state")}, filepath.Join(dir, "state/ledger.jsonl"), filepath.Join(dir, "state")},
		{"ledger granted as a file", profiles.Filesystem{Read: in(dir, "ws/file")}, filepath.Join(ws, "file"), filepath.Join(ws, "file")},
		{"ledger outside every rule", profiles.Filesystem{Read: []string{ws}, Write: in(dir, "other")}, filepath.Join(dir, "state/ledger.jsonl"), ""},
		{"ledger beside a granted dir with a common prefix", profiles.Filesystem{Read: in(dir, "ws")}, filepath.Join(dir, "ws2/ledger.jsonl"), ""},
		{"no ledger", profiles.Filesystem{Read: []string{dir}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sandbox.Build(&profiles.Profile{Filesystem: tt.fs},
				sandbox.Options{Argv: []string{"true"}, Workspace: ws, Protect: []string{tt.protect}})
			if tt.rule == "" {
				if err != nil {
					t.Errorf("Build(protect %q) = %v, want no error", tt.protect, err)
				}
				return
			}
			wantSetupError(t, err, sandbox.ExitSetup, tt.protect, tt.rule)
		})
	}
	// A rule and the ledger may name the same place by different paths:
	// the ledger is reachable all the same.
	for _, tt := range []struct {
		name    string
		fs      profiles.Filesystem
		protect string
	}{
		{"ledger named through a symlink", profiles.Filesystem{Read: []string{ws}}, filepath.Join(dir, "wslink/ledger.jsonl")},
		{"rule named through a symlink", profiles.Filesystem{Write: in(dir, "statelink")}, filepath.Join(dir, "state/ledger.jsonl")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sandbox.Build(&profiles.Profile{Filesystem: tt.fs},
				sandbox.Options{Argv: []string{"true"}, Workspace: ws, Protect: []string{tt.protect}})
			wantSetupError(t, err, sandbox.ExitSetup, "ledger")
		})
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		p     profiles.Profile
		argv  []string
		words []string
	}{
		{"no command", profiles.Profile{}, nil, []string{"no command"}},
		{"empty command", profiles.Profile{}, []string{}, []string{"no command"}},
		{"unknown network mode", profiles.Profile{Network: profiles.Network{Mode: "allow-list"}}, []string{"true"}, []string{"allow-list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&tt.p, sandbox.Options{Argv: tt.argv, Workspace: dir})
			if s != nil {
				t.Errorf("Build returned a spec with error %v", err)
			}
			wantSetupError(t, err, sandbox.ExitSetup, tt.words...)
		})
	}
}

func TestBuildNetwork(t *testing.T) {
	ports := profiles.Network{ConnectTCP: []uint16{5432}, BindTCP: []uint16{8080, 8081}}
	tests := []struct {
		name     string
		net      profiles.Network
		loopback bool
		connect  []uint16
		bind     []uint16
		any      bool
	}{
		{name: "empty mode is none", net: profiles.Network{}},
		{name: "none ignores ports", net: profiles.Network{Mode: profiles.NetworkNone, ConnectTCP: ports.ConnectTCP, BindTCP: ports.BindTCP, AnyPort: true}},
		{
			name: "loopback with ports", net: profiles.Network{Mode: profiles.NetworkLoopback, ConnectTCP: ports.ConnectTCP, BindTCP: ports.BindTCP},
			loopback: true, connect: ports.ConnectTCP, bind: ports.BindTCP,
		},
		{name: "loopback any port", net: profiles.Network{Mode: profiles.NetworkLoopback, AnyPort: true}, loopback: true, any: true},
		{name: "loopback without ports", net: profiles.Network{Mode: profiles.NetworkLoopback}, loopback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&profiles.Profile{Network: tt.net}, sandbox.Options{Argv: []string{"true"}})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			r := s.Landlock
			if s.Loopback != tt.loopback || !slices.Equal(r.ConnectTCP, tt.connect) || !slices.Equal(r.BindTCP, tt.bind) || r.AnyTCP != tt.any {
				t.Errorf("Build(%+v) = loopback %v, connect %v, bind %v, any %v; want %v, %v, %v, %v",
					tt.net, s.Loopback, r.ConnectTCP, r.BindTCP, r.AnyTCP, tt.loopback, tt.connect, tt.bind, tt.any)
			}
		})
	}
}

func TestBuildEnv(t *testing.T) {
	host := []string{"A=1", "B=2", "C=x=y", "EMPTY=", "NOEQUALS", "SECRET=s"}
	tests := []struct {
		name    string
		env     profiles.Env
		pass    []string // --pass-env
		set     []string // --env
		want    []string
		without []string
	}{
		{name: "pass copies present vars only", env: profiles.Env{Pass: []string{"A", "MISSING", "C", "EMPTY", "NOEQUALS"}}, want: []string{"A=1", "C=x=y", "EMPTY="}},
		{name: "nothing passed by default"},
		{name: "set overrides pass", env: profiles.Env{Pass: []string{"A", "B"}, Set: map[string]string{"A": "set", "Z": "z"}}, want: []string{"A=set", "B=2", "Z=z"}},
		{name: "--env overrides set and pass", env: profiles.Env{Pass: []string{"B"}, Set: map[string]string{"A": "set"}}, set: []string{"A=flag", "B=flag", "N=new=v"}, want: []string{"A=flag", "B=flag", "N=new=v"}},
		{name: "last --env wins", set: []string{"A=one", "A=two"}, want: []string{"A=two"}},
		{name: "--pass-env adds host vars", env: profiles.Env{Pass: []string{"A"}}, pass: []string{"SECRET", "MISSING", "A"}, want: []string{"A=1", "SECRET=s"}},
		{name: "--env beats --pass-env", pass: []string{"SECRET"}, set: []string{"SECRET=flag"}, want: []string{"SECRET=flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&profiles.Profile{Env: tt.env},
				sandbox.Options{Argv: []string{"true"}, HostEnv: host, Env: tt.set, PassEnv: tt.pass})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got := slices.Sorted(slices.Values(s.Env))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Env = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuildLimits(t *testing.T) {
	n := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name    string
		limits  profiles.Limits
		want    []sandbox.Rlimit
		tmpSize uint64
	}{
		{name: "none", tmpSize: 256 << 20},
		{
			name:   "all",
			limits: profiles.Limits{NoFile: n(4096), NProc: n(64), AS: n(1 << 30), FSize: n(1 << 20), CPUTime: n(profiles.Unlimited), Core: n(0), TmpSize: 1 << 20},
			want: []sandbox.Rlimit{
				{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Value: 4096},
				{Name: "nproc", Resource: unix.RLIMIT_NPROC, Value: 64},
				{Name: "as", Resource: unix.RLIMIT_AS, Value: 1 << 30},
				{Name: "fsize", Resource: unix.RLIMIT_FSIZE, Value: 1 << 20},
				{Name: "cpu_time", Resource: unix.RLIMIT_CPU, Value: unix.RLIM_INFINITY},
				{Name: "core", Resource: unix.RLIMIT_CORE, Value: 0},
			},
			tmpSize: 1 << 20,
		},
		{
			name:    "some",
			limits:  profiles.Limits{Core: n(0), NoFile: n(10)},
			want:    []sandbox.Rlimit{{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Value: 10}, {Name: "core", Resource: unix.RLIMIT_CORE, Value: 0}},
			tmpSize: 256 << 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&profiles.Profile{Limits: tt.limits}, sandbox.Options{Argv: []string{"true"}})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !slices.Equal(s.Rlimits, tt.want) {
				t.Errorf("Rlimits = %+v, want %+v", s.Rlimits, tt.want)
			}
			if s.TmpSize != tt.tmpSize {
				t.Errorf("TmpSize = %d, want %d", s.TmpSize, tt.tmpSize)
			}
		})
	}
}

// TestBuildCgroupLimits checks the cgroup limits Build resolves: counts as
// written, shares of the machine's memory and CPUs, none for unlimited.
func TestBuildCgroupLimits(t *testing.T) {
	n := func(v uint64) *uint64 { return &v }
	share := func(s string) *profiles.Share { v := profiles.Share(s); return &v }
	mem := memTotal(t)
	tests := []struct {
		name   string
		limits profiles.Limits
		best   bool
		want   cgroup.Limits
	}{
		{name: "none"},
		{name: "unlimited", limits: profiles.Limits{Pids: n(profiles.Unlimited), Memory: share("unlimited"), CPU: share("unlimited")}},
		{name: "amounts", limits: profiles.Limits{Pids: n(512), Memory: share("256MiB"), CPU: share("0.5")},
			want: cgroup.Limits{Pids: 512, Memory: 256 << 20, CPUMillis: 500}},
		{name: "shares", limits: profiles.Limits{Memory: share("50%"), CPU: share("100%")}, best: true,
			want: cgroup.Limits{Memory: (mem / 2) &^ (1<<20 - 1), CPUMillis: uint64(runtime.NumCPU()) * 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sandbox.Build(&profiles.Profile{Limits: tt.limits, BestEffort: tt.best}, sandbox.Options{Argv: []string{"true"}})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if s.Cgroup != tt.want || s.CgroupBestEffort != tt.best {
				t.Errorf("Cgroup = %+v, best effort %v; want %+v, %v", s.Cgroup, s.CgroupBestEffort, tt.want, tt.best)
			}
		})
	}
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("needs /proc/meminfo for the host's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("MemTotal %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// TestBuildSpec checks the fields Build copies and that the spec survives
// the trip to the init stage, which decodes it strictly.
func TestBuildSpec(t *testing.T) {
	ws := t.TempDir()
	p, err := new(profiles.Loader).Load("dev", profiles.Vars{Workspace: ws, Home: t.TempDir(), TmpDir: sandbox.TmpDir})
	if err != nil {
		t.Fatal(err)
	}
	p.BestEffort = true
	argv := []string{"node", "server.js"}
	s, err := sandbox.Build(p, sandbox.Options{Argv: argv, Workspace: ws, UID: 1234, GID: 5678})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	argv[1] = "changed"
	if s.Path != "node" || !slices.Equal(s.Args, []string{"node", "server.js"}) || s.Dir != ws || s.UID != 1234 || s.GID != 5678 {
		t.Errorf("Build = path %q, args %q, dir %q, ids %d:%d; want %q, %q, %q, 1234:5678",
			s.Path, s.Args, s.Dir, s.UID, s.GID, "node", []string{"node", "server.js"}, ws)
	}
	if s.TmpDir != sandbox.TmpDir {
		t.Errorf("TmpDir = %q, want %q", s.TmpDir, sandbox.TmpDir)
	}
	if !slices.Equal(s.Seccomp.Allow, p.Syscalls.Allow) || len(s.Seccomp.Allow) == 0 {
		t.Errorf("Seccomp.Allow = %q, want the profile's %q", s.Seccomp.Allow, p.Syscalls.Allow)
	}
	if !slices.Equal(s.Landlock.Require, p.Landlock.Require) || !s.Landlock.BestEffort {
		t.Errorf("Landlock Require %q, BestEffort %v; want %q, true", s.Landlock.Require, s.Landlock.BestEffort, p.Landlock.Require)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var got sandbox.Spec
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if !reflect.DeepEqual(&got, s) {
		t.Errorf("spec after JSON = %+v, want %+v", got, *s)
	}
}
