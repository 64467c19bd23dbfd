package profiles

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/landlock"
)

func u64(x uint64) *uint64 { return &x }

func TestExtendsMerge(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml": `name: base
description: the base
best_effort: true
filesystem:
  read: [/a, "/b?", /c]
  write:
    - ${TMPDIR}
network:
  mode: loopback
  connect_tcp: [80, 443]
landlock:
  require: [filesystem, tcp]
limits:
  nofile: 100
  nproc: 50
  as: 1GiB
env:
  pass: [PATH, HOME]
  set: {A: "1", B: "2"}
audit:
  redact: [token]
`,
		"child.yaml": `extends: base.yaml
filesystem:
  read: ["!/b", /d, /a]
  exec: [/usr]
network:
  connect_tcp: ["!80", 8080]
landlock:
  require: ["!tcp", truncate]
limits:
  nofile: 200
  nproc: ~
env:
  pass: [TERM]
  set: {B: ~, C: "3", A: "one"}
`,
	})
	p, err := (&Loader{}).Load(filepath.Join(dir, "child.yaml"), testVars)
	if err != nil {
		t.Fatalf("Load(child.yaml) = %v", err)
	}
	want := &Profile{
		Name:       "child", // from the file name: name is not inherited
		Source:     []string{filepath.Join(dir, "child.yaml"), filepath.Join(dir, "base.yaml")},
		BestEffort: true, // other scalars are
		Filesystem: Filesystem{
			Read:  []string{"/a", "/c", "/d"},
			Exec:  []string{"/usr"},
			Write: []string{"/tmp"},
		},
		Network:  Network{Mode: NetworkLoopback, ConnectTCP: []uint16{443, 8080}},
		Landlock: Landlock{Require: []landlock.Feature{"filesystem", "truncate"}},
		Limits:   Limits{NoFile: u64(200), AS: u64(1 << 30)},
		Env: Env{
			Pass: []string{"PATH", "HOME", "TERM"},
			Set:  map[string]string{"A": "one", "C": "3"},
		},
		Tools: denyAll(), // no tools: anywhere in the chain
		Audit: Audit{Redact: []string{"token"}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Load(child.yaml) =\n%#v\nwant\n%#v", p, want)
	}
}

func TestExtendsOverridesScalars(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml":  "network:\n  mode: loopback\n  any_port: true\nlimits:\n  cpu_time: 1h\n",
		"child.yaml": "extends: ./base.yaml\nnetwork:\n  mode: none\n  any_port: false\nlimits:\n  cpu_time: 90s\n",
	})
	p, err := (&Loader{}).Load(filepath.Join(dir, "child.yaml"), testVars)
	if err != nil {
		t.Fatalf("Load(child.yaml) = %v", err)
	}
	if p.Network.Mode != NetworkNone || p.Network.AnyPort || *p.Limits.CPUTime != 90 {
		t.Errorf("Load(child.yaml): network %+v, cpu_time %d; want mode none, any_port false, cpu_time 90",
			p.Network, *p.Limits.CPUTime)
	}
}

// TestRemovalIgnoresOptionalMarker checks that "!/x" removes "/x?" and
// "!/x?" removes "/x".
func TestRemovalIgnoresOptionalMarker(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml":  "filesystem:\n  read: [\"/x?\", /y, /z]\n",
		"child.yaml": "extends: base.yaml\nfilesystem:\n  read: [\"!/x\", \"!/y?\"]\n",
	})
	p, err := (&Loader{}).Load(filepath.Join(dir, "child.yaml"), testVars)
	if err != nil {
		t.Fatalf("Load(child.yaml) = %v", err)
	}
	if want := []string{"/z"}; !slices.Equal(p.Filesystem.Read, want) {
		t.Errorf("filesystem.read = %q, want %q", p.Filesystem.Read, want)
	}
}

func TestExpansion(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": `filesystem:
  read:
    - ${HOME}/.config/x
    - ${WORKSPACE}/./docs/../src/
    - "${WORKSPACE}/a?"
    - ${WORKSPACE}/a
    - /opt?
    - /opt?
  write:
    - ${TMPDIR}
env:
  set:
    PS1: "$$ "
    DIRS: ${WORKSPACE}:${HOME}
    PORT: 8080
    FLAG: true
description: costs $5
`})
	v := Vars{Workspace: "/w/", Home: "/home//ann", TmpDir: "/tmp"}
	p, err := (&Loader{}).Load(filepath.Join(dir, "p.yaml"), v)
	if err != nil {
		t.Fatalf("Load(p.yaml) = %v", err)
	}
	wantRead := []string{"/home/ann/.config/x", "/w/src", "/w/a", "/opt?"}
	if !slices.Equal(p.Filesystem.Read, wantRead) {
		t.Errorf("filesystem.read = %q, want %q", p.Filesystem.Read, wantRead)
	}
	wantSet := map[string]string{"PS1": "$ ", "DIRS": "/w:/home/ann", "PORT": "8080", "FLAG": "true"}
	if !reflect.DeepEqual(p.Env.Set, wantSet) {
		t.Errorf("env.set = %q, want %q", p.Env.Set, wantSet)
	}
	if p.Description != "costs $5" {
		t.Errorf("description = %q, want it unexpanded", p.Description)
	}
}

func TestLimitValues(t *testing.T) {
	tests := []struct {
		yaml string
		want Limits
	}{
		{"nofile: 1024\nnproc: unlimited", Limits{NoFile: u64(1024), NProc: u64(Unlimited)}},
		{"as: 4k\nfsize: 512MiB\ncore: 0", Limits{AS: u64(4096), FSize: u64(512 << 20), Core: u64(0)}},
		{"as: 2 GiB\nfsize: 1Ti\ncore: 7b", Limits{AS: u64(2 << 30), FSize: u64(1 << 40), Core: u64(7)}},
		{"as: unlimited\ntmp_size: 64M", Limits{AS: u64(Unlimited), TmpSize: 64 << 20}},
		{"cpu_time: 30", Limits{CPUTime: u64(30)}},
		{"cpu_time: 10m", Limits{CPUTime: u64(600)}},
		{"cpu_time: 2h", Limits{CPUTime: u64(7200)}},
		{"cpu_time: unlimited", Limits{CPUTime: u64(Unlimited)}},
		{"pids: 512", Limits{Pids: u64(512)}},
		{"pids: unlimited", Limits{Pids: u64(Unlimited)}},
		{"memory: 512MiB", Limits{Memory: share("512MiB")}},
		{"memory: 536870912", Limits{Memory: share("512MiB")}},
		{"memory: 1000", Limits{Memory: share("1000")}},
		{"memory: 2 g", Limits{Memory: share("2GiB")}},
		{"memory: 25%", Limits{Memory: share("25%")}},
		{"memory: 100%", Limits{Memory: share("100%")}},
		{"memory: unlimited", Limits{Memory: share("unlimited")}},
		{"cpu: 0.5", Limits{CPU: share("0.5")}},
		{"cpu: 2", Limits{CPU: share("2")}},
		{"cpu: 1.250", Limits{CPU: share("1.25")}},
		{"cpu: 0.01", Limits{CPU: share("0.01")}},
		{"cpu: \"0.5\"", Limits{CPU: share("0.5")}},
		{"cpu: 50%", Limits{CPU: share("50%")}},
		{"cpu: unlimited", Limits{CPU: share("unlimited")}},
	}
	for _, tt := range tests {
		data := "limits:\n  " + strings.ReplaceAll(tt.yaml, "\n", "\n  ") + "\n"
		p, err := (&Loader{}).Parse("p.yaml", []byte(data), testVars)
		if err != nil {
			t.Errorf("Parse(%q) = %v", tt.yaml, err)
			continue
		}
		if !reflect.DeepEqual(p.Limits, tt.want) {
			t.Errorf("Parse(%q).Limits = %s, want %s", tt.yaml, fmtLimits(p.Limits), fmtLimits(tt.want))
		}
	}
}

func fmtLimits(l Limits) string {
	b, _ := (&Profile{Limits: l}).YAML()
	return strings.TrimSpace(string(b))
}

func TestBuiltins(t *testing.T) {
	if got, want := builtinNames(), []string{"dev", "server-everything", "server-fetch", "server-filesystem", "server-git", "server-memory", "server-sequential-thinking", "server-time", "standard", "strict"}; !slices.Equal(got, want) {
		t.Fatalf("builtinNames() = %q, want %q", got, want)
	}
	load := func(name string) *Profile {
		t.Helper()
		p, err := (&Loader{}).Load(name, testVars)
		if err != nil {
			t.Fatalf("Load(%q) = %v", name, err)
		}
		return p
	}
	strict, standard, dev := load("strict"), load("standard"), load("dev")

	if strict.Network.Mode != NetworkNone || len(strict.Syscalls.Allow) != 0 {
		t.Errorf("strict: network %+v, syscalls %q; want mode none and no opt-in groups",
			strict.Network, strict.Syscalls.Allow)
	}
	if !slices.Equal(strict.Filesystem.Write, []string{"/tmp"}) {
		t.Errorf("strict: filesystem.write = %q, want only the private temp dir", strict.Filesystem.Write)
	}
	if !slices.Contains(strict.Filesystem.Exec, testVars.Workspace) {
		t.Errorf("strict: filesystem.exec = %q, want the workspace (read-only) in it", strict.Filesystem.Exec)
	}
	if strict.Env.Set["TMPDIR"] != "/tmp" || slices.Contains(strict.Env.Pass, "SSH_AUTH_SOCK") {
		t.Errorf("strict: env = %+v, want TMPDIR set and a short pass list", strict.Env)
	}
	for _, f := range knownFeatures[:7] { // through ABI 6: what this vm-run's kernels have
		if !slices.Contains(strict.Landlock.Require, f) {
			t.Errorf("strict: landlock.require = %q, want %q in it", strict.Landlock.Require, f)
		}
	}
	if strict.Limits.PidsMax() != 512 || strict.Limits.Memory == nil || *strict.Limits.Memory != "25%" ||
		strict.Limits.CPU != nil {
		t.Errorf("strict: limits %s; want pids 512, memory 25%%, no cpu limit", fmtLimits(strict.Limits))
	}
	if !slices.Equal(strict.Source, []string{"builtin:strict"}) {
		t.Errorf("strict: Source = %q", strict.Source)
	}

	if want := []string{"/tmp", testVars.Workspace}; !slices.Equal(standard.Filesystem.Write, want) {
		t.Errorf("standard: filesystem.write = %q, want %q", standard.Filesystem.Write, want)
	}
	s := *standard
	s.Name, s.Description, s.Source = strict.Name, strict.Description, strict.Source
	s.Filesystem.Write = strict.Filesystem.Write
	s.Tools = strict.Tools // compared in TestBuiltinTools
	if !reflect.DeepEqual(&s, strict) {
		t.Errorf("standard differs from strict by more than the workspace being writable")
	}

	if dev.Network.Mode != NetworkLoopback || !dev.Network.AnyPort ||
		!slices.Equal(dev.Syscalls.Allow, []string{"unix-sockets"}) ||
		slices.Contains(dev.Landlock.Require, landlock.FeatureTCP) {
		t.Errorf("dev: network %+v, syscalls %q, landlock %q; want loopback with any_port, unix-sockets, no tcp",
			dev.Network, dev.Syscalls.Allow, dev.Landlock.Require)
	}
	if dev.Limits.PidsMax() != 1024 || *dev.Limits.Memory != *strict.Limits.Memory {
		t.Errorf("dev: limits %s; want pids 1024 and strict's memory", fmtLimits(dev.Limits))
	}
	if want := []string{"builtin:dev", "builtin:standard", "builtin:strict"}; !slices.Equal(dev.Source, want) {
		t.Errorf("dev: Source = %q, want %q", dev.Source, want)
	}
}

// TestLookupOrder checks user dir, then system dir, then built-ins, with
// shadowing, and that a profile extending its own name gets the next one.
func TestLookupOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"user/both.yaml":     "description: user\n",
		"system/both.yaml":   "description: system\n",
		"system/only.yaml":   "description: system only\n",
		"user/strict.yaml":   "description: my strict\nextends: strict\nlimits:\n  nofile: 64\n",
		"system/strict.yaml": "description: site strict\nextends: strict\nenv:\n  pass: [\"!TERM\"]\n",
		"user/standard.yaml": "description: loops\nextends: standard\n",
		"user/dir.yaml/x":    "",
		"system/dir.yaml":    "description: unreachable\n",
	})
	user, system := filepath.Join(dir, "user"), filepath.Join(dir, "system")
	l := &Loader{Dirs: []string{user, system}}
	tests := []struct {
		name       string
		wantDesc   string
		wantSource []string
	}{
		{"both", "user", []string{user + "/both.yaml"}},
		{"only", "system only", []string{system + "/only.yaml"}},
		{"strict", "my strict", []string{user + "/strict.yaml", system + "/strict.yaml", "builtin:strict"}},
		{"dev", "standard, plus the sandbox's own loopback (any TCP port) and unix sockets",
			[]string{"builtin:dev", "builtin:standard", "builtin:strict"}}, // built-ins extend built-ins
	}
	for _, tt := range tests {
		p, err := l.Load(tt.name, testVars)
		if err != nil {
			t.Errorf("Load(%q) = %v", tt.name, err)
			continue
		}
		if p.Description != tt.wantDesc || !slices.Equal(p.Source, tt.wantSource) {
			t.Errorf("Load(%q): description %q, source %q; want %q, %q",
				tt.name, p.Description, p.Source, tt.wantDesc, tt.wantSource)
		}
	}
	p, err := l.Load("strict", testVars)
	if err == nil && (*p.Limits.NoFile != 64 || slices.Contains(p.Env.Pass, "TERM")) {
		t.Errorf("Load(strict): nofile %d, env.pass %q; want both refinements", *p.Limits.NoFile, p.Env.Pass)
	}
	// user/standard.yaml extends standard: the built-in, whose strict is
	// the built-in too, not user/strict.yaml.
	if p, err := l.Load("standard", testVars); err != nil || *p.Limits.NoFile != 4096 {
		t.Errorf("Load(standard) = %v; want the built-in strict's nofile 4096 through it", err)
	}
	// A profile file that cannot be read is an error, not a fallback.
	if _, err := l.Load("dir", testVars); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) = %v, want an error for user/dir.yaml", err)
	}
	// A path into a search dir behaves as the name does.
	p, err = l.Load(filepath.Join(user, "strict.yaml"), testVars)
	if err != nil || !slices.Equal(p.Source, []string{user + "/strict.yaml", system + "/strict.yaml", "builtin:strict"}) {
		t.Errorf("Load(user/strict.yaml) = %v, %v", p, err)
	}
}

func TestDefaultDirs(t *testing.T) {
	t.Setenv("HOME", "/home/ann")
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if got, want := DefaultDirs(), []string{"/cfg/vm-run/profiles", "/etc/vm-run/profiles"}; !slices.Equal(got, want) {
		t.Errorf("DefaultDirs() with XDG_CONFIG_HOME = %q, want %q", got, want)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative")
	if got, want := DefaultDirs(), []string{"/home/ann/.config/vm-run/profiles", "/etc/vm-run/profiles"}; !slices.Equal(got, want) {
		t.Errorf("DefaultDirs() with a relative XDG_CONFIG_HOME = %q, want %q", got, want)
	}
}

func TestList(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"user/strict.yaml":   "description: mine\nextends: strict\n",
		"user/broken.yaml":   "filesystem: [\n",
		"user/notes.txt":     "not a profile",
		"system/strict.yaml": "description: site\n",
		"system/extra.yaml":  "description: extra\n",
	})
	user, system := filepath.Join(dir, "user"), filepath.Join(dir, "system")
	l := &Loader{Dirs: []string{user, system, filepath.Join(dir, "absent")}}
	infos, err := l.List()
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	type row struct{ name, desc, source, shadowedBy string }
	var got []row
	for _, i := range infos {
		got = append(got, row{i.Name, i.Description, i.Source, i.ShadowedBy})
		if (i.Err != nil) != (i.Name == "broken") {
			t.Errorf("List(): %s has Err %v", i.Source, i.Err)
		}
	}
	builtinDesc := func(name string) string {
		p, err := (&Loader{}).Load(name, testVars)
		if err != nil {
			t.Fatal(err)
		}
		return p.Description
	}
	want := []row{
		{"broken", "", user + "/broken.yaml", ""},
		{"dev", builtinDesc("dev"), "builtin:dev", ""},
		{"extra", "extra", system + "/extra.yaml", ""},
		{"server-everything", builtinDesc("server-everything"), "builtin:server-everything", ""},
		{"server-fetch", builtinDesc("server-fetch"), "builtin:server-fetch", ""},
		{"server-filesystem", builtinDesc("server-filesystem"), "builtin:server-filesystem", ""},
		{"server-git", builtinDesc("server-git"), "builtin:server-git", ""},
		{"server-memory", builtinDesc("server-memory"), "builtin:server-memory", ""},
		{"server-sequential-thinking", builtinDesc("server-sequential-thinking"), "builtin:server-sequential-thinking", ""},
		{"server-time", builtinDesc("server-time"), "builtin:server-time", ""},
		{"standard", builtinDesc("standard"), "builtin:standard", ""},
		{"strict", "mine", user + "/strict.yaml", ""},
		{"strict", "site", system + "/strict.yaml", user + "/strict.yaml"},
		{"strict", builtinDesc("strict"), "builtin:strict", user + "/strict.yaml"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() =\n%q\nwant\n%q", got, want)
	}
}

func TestListUnreadableDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{"file": ""})
	// A file where a directory should be is "absent" (ENOTDIR) ...
	if _, err := (&Loader{Dirs: []string{filepath.Join(dir, "file")}}).List(); err != nil {
		t.Errorf("List() with a file as dir = %v, want it skipped", err)
	}
	// ... but a directory that cannot be read is an error.
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory: cannot test an unreadable one")
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Loader{Dirs: []string{locked}}).List(); err == nil {
		t.Errorf("List() with an unreadable dir = nil error")
	}
}

func TestSplitOptional(t *testing.T) {
	tests := []struct {
		in       string
		path     string
		optional bool
	}{
		{"/lib64?", "/lib64", true},
		{"/usr", "/usr", false},
		{"/a??", "/a?", true},
		{"", "", false},
	}
	for _, tt := range tests {
		path, optional := SplitOptional(tt.in)
		if path != tt.path || optional != tt.optional {
			t.Errorf("SplitOptional(%q) = %q, %v, want %q, %v", tt.in, path, optional, tt.path, tt.optional)
		}
	}
}

func share(s string) *Share { v := Share(s); return &v }

// TestShareResolve checks how limits resolve against a host: percentages of
// its memory (to whole MiB) and CPUs, sizes and CPU counts as written.
func TestShareResolve(t *testing.T) {
	const host = 24 << 30 // 24 GiB
	tests := []struct {
		l          Limits
		cpus       int
		wantMem    uint64
		wantMillis uint64
		wantPids   uint64
		wantCgroup bool
	}{
		{Limits{}, 2, 0, 0, 0, false},
		{Limits{Pids: u64(Unlimited), Memory: share("unlimited"), CPU: share("unlimited")}, 2, 0, 0, 0, false},
		{Limits{Pids: u64(512)}, 2, 0, 0, 512, true},
		{Limits{Memory: share("25%")}, 2, 6 << 30, 0, 0, true},
		{Limits{Memory: share("33%")}, 2, (host * 33 / 100) &^ (1<<20 - 1), 0, 0, true},
		{Limits{Memory: share("100%")}, 2, host, 0, 0, true},
		{Limits{Memory: share("512MiB")}, 2, 512 << 20, 0, 0, true},
		{Limits{Memory: share("1000")}, 2, 1000, 0, 0, true},
		{Limits{CPU: share("0.5")}, 2, 0, 500, 0, true},
		{Limits{CPU: share("1.25")}, 2, 0, 1250, 0, true},
		{Limits{CPU: share("50%")}, 2, 0, 1000, 0, true},
		{Limits{CPU: share("1%")}, 1, 0, 10, 0, true},
		{Limits{CPU: share("100%")}, 8, 0, 8000, 0, true},
	}
	for _, tt := range tests {
		name := fmtLimits(tt.l)
		mem, err := tt.l.MemoryMax(host)
		if err != nil || mem != tt.wantMem {
			t.Errorf("%s: MemoryMax(%d) = %d, %v; want %d", name, uint64(host), mem, err, tt.wantMem)
		}
		m, err := tt.l.CPUMillis(tt.cpus)
		if err != nil || m != tt.wantMillis {
			t.Errorf("%s: CPUMillis(%d) = %d, %v; want %d", name, tt.cpus, m, err, tt.wantMillis)
		}
		if p := tt.l.PidsMax(); p != tt.wantPids {
			t.Errorf("%s: PidsMax() = %d, want %d", name, p, tt.wantPids)
		}
		if c := tt.l.Cgroup(); c != tt.wantCgroup {
			t.Errorf("%s: Cgroup() = %v, want %v", name, c, tt.wantCgroup)
		}
	}
	// Limits built by hand rather than loaded are checked again.
	for _, l := range []Limits{{Memory: share("0%")}, {Memory: share("lots")}, {Memory: share("1%")}} {
		if got, err := l.MemoryMax(50 << 20); err == nil {
			t.Errorf("%s: MemoryMax(50MiB) = %d, want an error", fmtLimits(l), got)
		}
	}
	for _, l := range []Limits{{CPU: share("0.001")}, {CPU: share("two")}, {CPU: share("200%")}} {
		if got, err := l.CPUMillis(2); err == nil {
			t.Errorf("%s: CPUMillis(2) = %d, want an error", fmtLimits(l), got)
		}
	}
}
