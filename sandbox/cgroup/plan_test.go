package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	vmrunPID = 4242
	userUID  = 1000
)

var allLimits = Limits{Pids: 512, Memory: 256 << 20, CPUMillis: 500}

// v2host is a systemd host on cgroup v2: a user's terminal in an app scope
// under user@1000.service, which systemd delegates to the user.
func v2host(t *testing.T) (*fakeFS, []Hierarchy, string) {
	t.Helper()
	const user = "/user.slice/user-1000.slice/user@1000.service"
	f, hs := newFakeFS(t, []Hierarchy{{Version: V2, Mount: "cgroup", Root: "/", Self: user + "/app.slice/app-term.scope"}},
		"cpu", "memory", "pids", "io")
	root := hs[0].Mount
	for _, d := range []string{"", "/user.slice", "/user.slice/user-1000.slice", user, user + "/app.slice"} {
		f.mkdirs(filepath.Join(root, d))
		f.WriteFile(filepath.Join(root, d, "cgroup.subtree_control"), "+cpu +memory +pids")
	}
	f.mkdirs(filepath.Join(root, user, "app.slice/app-term.scope"))
	f.WriteFile(filepath.Join(root, user, "app.slice/app-term.scope/cgroup.procs"), "17") // the shell
	f.WriteFile(filepath.Join(root, user, "app.slice/app-term.scope/cgroup.procs"), strconv.Itoa(vmrunPID))
	return f, hs, root
}

// v1host is a RHEL 8 host: cpu and cpuacct share a hierarchy.
func v1host(t *testing.T, self string) (*fakeFS, []Hierarchy) {
	t.Helper()
	var hs []Hierarchy
	for _, o := range []string{"pids", "memory", "cpu,cpuacct", "name=systemd"} {
		h := Hierarchy{Version: V1, Mount: o, Root: "/", Options: o, Self: self}
		if !strings.HasPrefix(o, "name=") {
			h.Controllers = strings.Split(o, ",")
		}
		hs = append(hs, h)
	}
	f, hs := newFakeFS(t, hs)
	for _, h := range hs {
		dir, _ := h.Dir(self)
		f.mkdirs(dir)
		f.WriteFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(vmrunPID))
	}
	return f, hs
}

// checkFile fails t unless the file holds want.
func checkFile(t *testing.T, name, want string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q, %v; want %q", name, b, err, want)
	}
}

func gone(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", dir, err)
	}
}

func TestV2AsRoot(t *testing.T) {
	f, hs, root := v2host(t)
	procs := &fakeProcs{f: f}
	s := f.system(hs, 0, vmrunPID, procs)
	plan, err := s.Plan(allLimits)
	if err != nil {
		t.Fatalf("Plan() = %v", err)
	}
	g, err := plan.Create()
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	dir := filepath.Join(root, "vm-run", strconv.Itoa(vmrunPID)+"-"+strconv.FormatUint(seq.Load(), 10))
	if got := g.Dirs(); !slices.Equal(got, []string{dir}) {
		t.Fatalf("Dirs() = %q, want %q", got, dir)
	}
	checkFile(t, filepath.Join(root, "vm-run/cgroup.subtree_control"), "pids memory cpu")
	checkFile(t, filepath.Join(dir, "pids.max"), "512")
	checkFile(t, filepath.Join(dir, "memory.max"), "268435456")
	checkFile(t, filepath.Join(dir, "memory.swap.max"), "0")
	checkFile(t, filepath.Join(dir, "cpu.max"), "50000 100000")
	if err := g.Add(99); err != nil {
		t.Fatalf("Add(99) = %v", err)
	}
	checkFile(t, filepath.Join(dir, "cgroup.procs"), "99")
	f.WriteFile(filepath.Join(dir, "memory.events"), "low 0\nhigh 0\nmax 40\noom 2\noom_kill 1\n")
	f.WriteFile(filepath.Join(dir, "pids.events"), "max 3\n")
	if ev, err := g.Events(); err != nil || ev != (Events{OOMKills: 1, PidsMax: 3}) {
		t.Errorf("Events() = %+v, %v; want 1 OOM kill, 3 pids.max hits", ev, err)
	}
	// 99 is still there: Remove kills it with cgroup.kill.
	if err := g.Remove(); err != nil {
		t.Errorf("Remove() = %v", err)
	}
	gone(t, dir)
	if len(procs.killed) != 0 {
		t.Errorf("killed %v one by one; want cgroup.kill", procs.killed)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second Remove() = %v, want nil", err)
	}
}

func TestV2Delegated(t *testing.T) {
	const user = "/user.slice/user-1000.slice/user@1000.service"
	tests := []struct {
		name string
		// setup changes the host of v2host; self is vm-run's own cgroup.
		setup   func(f *fakeFS, root string)
		self    string
		wantDir string // the sandbox's parent, relative to the mount
		wantErr string
		// wantSelf is where vm-run is afterwards.
		wantSelf string
	}{
		{
			name: "user manager",
			setup: func(f *fakeFS, root string) {
				f.deny(root, root+"/user.slice", root+"/user.slice/user-1000.slice")
			},
			self:     user + "/app.slice/app-term.scope",
			wantDir:  user + "/vm-run",
			wantSelf: user + "/app.slice/app-term.scope",
		},
		{
			// systemd-run --user --scope -p Delegate=yes vm-run: the
			// scope is vm-run's alone, and not yet an inner node.
			name: "scope of its own",
			setup: func(f *fakeFS, root string) {
				f.mkdirs(root + user + "/app.slice/run-1.scope")
				f.WriteFile(root+user+"/app.slice/run-1.scope/cgroup.procs", strconv.Itoa(vmrunPID))
				f.deny(root, root+"/user.slice", root+"/user.slice/user-1000.slice", root+user, root+user+"/app.slice")
			},
			self:     user + "/app.slice/run-1.scope",
			wantDir:  user + "/app.slice/run-1.scope/vm-run",
			wantSelf: user + "/app.slice/run-1.scope/vm-run-4242",
		},
		{
			name: "scope shared with another process",
			setup: func(f *fakeFS, root string) {
				f.deny(root, root+"/user.slice", root+"/user.slice/user-1000.slice", root+user, root+user+"/app.slice")
			},
			self:    user + "/app.slice/app-term.scope",
			wantErr: "the cgroup holds processes (pids 17, 4242)",
		},
		{
			name: "session scope",
			setup: func(f *fakeFS, root string) {
				f.mkdirs(root + "/user.slice/user-1000.slice/session-2.scope")
				f.WriteFile(root+"/user.slice/user-1000.slice/session-2.scope/cgroup.procs", strconv.Itoa(vmrunPID))
				f.deny(root, root+"/user.slice", root+"/user.slice/user-1000.slice", root+"/user.slice/user-1000.slice/session-2.scope")
			},
			self:    "/user.slice/user-1000.slice/session-2.scope",
			wantErr: "uid 1000 may not write its own cgroup",
		},
		{
			name: "controllers not delegated",
			setup: func(f *fakeFS, root string) {
				f.WriteFile(root+"/user.slice/user-1000.slice/cgroup.subtree_control", "-memory")
				os.WriteFile(root+user+"/cgroup.controllers", []byte("cpu pids"), 0o644)
				f.deny(root, root+"/user.slice", root+"/user.slice/user-1000.slice")
			},
			self:    user + "/app.slice/app-term.scope",
			wantErr: `the memory controller is not delegated to this cgroup (its cgroup.controllers: "cpu pids")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, hs, root := v2host(t)
			tt.setup(f, root)
			hs[0].Self = tt.self
			s := f.system(hs, userUID, vmrunPID, &fakeProcs{f: f})
			plan, err := s.Plan(allLimits)
			var g *Group
			if err == nil {
				g, err = plan.Create()
			}
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNotDelegated) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Plan+Create() = %v; want ErrNotDelegated saying %q", err, tt.wantErr)
				}
				var ce *Error
				if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "Delegate=yes") || !strings.Contains(ce.Hint, "best_effort: true") {
					t.Errorf("hint = %q, want systemd's Delegate=yes and best_effort", ce.Hint)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan+Create() = %v", err)
			}
			defer g.Remove()
			want := filepath.Join(root, tt.wantDir, g.Name())
			if got := g.Dirs(); !slices.Equal(got, []string{want}) {
				t.Errorf("Dirs() = %q, want %q", got, want)
			}
			checkFile(t, filepath.Join(want, "memory.max"), "268435456")
			if b, _ := os.ReadFile(filepath.Join(root, tt.wantSelf, "cgroup.procs")); !slices.Contains(strings.Fields(string(b)), strconv.Itoa(vmrunPID)) {
				t.Errorf("vm-run is not in %s (its cgroup.procs: %q)", tt.wantSelf, b)
			}
		})
	}
}

func TestV1(t *testing.T) {
	tests := []struct {
		name    string
		uid     int
		self    string
		deny    []string // cgroups not writable by uid, in every hierarchy
		noSwap  bool
		wantDir string
		wantErr string
	}{
		{name: "root", uid: 0, self: "/system.slice/build.service", wantDir: "/vm-run"},
		{name: "root without swap accounting", uid: 0, self: "/", noSwap: true, wantDir: "/vm-run"},
		{name: "delegated", uid: userUID, self: "/delegated/user/session", deny: []string{"/", "/delegated"}, wantDir: "/delegated/user/vm-run"},
		{name: "not delegated", uid: userUID, self: "/system.slice/build.service", deny: []string{"/", "/system.slice", "/system.slice/build.service"},
			wantErr: "uid 1000 may not write its own cgroup (cgroup v1 pids at "},
		{name: "read-only for root", uid: 0, self: "/", deny: []string{"/"},
			wantErr: "uid 0 may not write its own cgroup (cgroup v1 pids at "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, hs := v1host(t, tt.self)
			f.noSwap = tt.noSwap
			for _, h := range hs {
				for _, d := range tt.deny {
					dir, _ := h.Dir(d)
					f.deny(dir)
				}
			}
			s := f.system(hs, tt.uid, vmrunPID, &fakeProcs{f: f})
			plan, err := s.Plan(allLimits)
			if tt.wantErr != "" {
				var ce *Error
				wantHint := "chown 1000 /sys/fs/cgroup/$h/NAME /sys/fs/cgroup/$h/NAME/cgroup.procs"
				if tt.uid == 0 {
					wantHint = "not writable here even by root, as in most containers"
				}
				if !errors.Is(err, ErrNotDelegated) || !strings.Contains(err.Error(), tt.wantErr) ||
					!errors.As(err, &ce) || !strings.Contains(ce.Hint, wantHint) {
					t.Fatalf("Plan() = %v; want ErrNotDelegated saying %q, with a hint", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan() = %v", err)
			}
			g, err := plan.Create()
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			var want []string
			for _, h := range hs[:3] {
				dir, _ := h.Dir(tt.wantDir + "/" + g.Name())
				want = append(want, dir)
			}
			if got := g.Dirs(); !slices.Equal(got, want) {
				t.Fatalf("Dirs() = %q, want %q", got, want)
			}
			checkFile(t, filepath.Join(want[0], "pids.max"), "512")
			checkFile(t, filepath.Join(want[1], "memory.limit_in_bytes"), "268435456")
			if !tt.noSwap {
				checkFile(t, filepath.Join(want[1], "memory.memsw.limit_in_bytes"), "268435456")
			}
			checkFile(t, filepath.Join(want[2], "cpu.cfs_quota_us"), "50000")
			if err := g.Add(99); err != nil {
				t.Fatalf("Add(99) = %v", err)
			}
			for _, d := range want {
				checkFile(t, filepath.Join(d, "cgroup.procs"), "99")
			}
			f.WriteFile(filepath.Join(want[1], "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
			if ev, err := g.Events(); err != nil || ev != (Events{OOMKills: 2}) {
				t.Errorf("Events() = %+v, %v; want 2 OOM kills", ev, err)
			}
			if err := g.Remove(); err != nil {
				t.Errorf("Remove() = %v", err)
			}
			for _, d := range want {
				gone(t, d)
			}
		})
	}
}

// TestNoController: a kernel without a controller the limits need stops
// the plan; one that has it elsewhere than the others is used there.
func TestNoController(t *testing.T) {
	f, hs := newFakeFS(t, []Hierarchy{
		{Version: V1, Mount: "pids", Root: "/", Options: "pids", Controllers: []string{"pids"}, Self: "/"},
		{Version: V2, Mount: "unified", Root: "/", Self: "/"},
	}, "memory")
	s := f.system(hs, 0, vmrunPID, &fakeProcs{f: f})
	if _, err := s.Plan(Limits{CPUMillis: 100}); !errors.Is(err, ErrNoController) || !strings.Contains(err.Error(), "no cpu controller") {
		t.Errorf("Plan(cpu) = %v, want ErrNoController for cpu", err)
	}
	plan, err := s.Plan(Limits{Pids: 10, Memory: 1 << 20})
	if err != nil {
		t.Fatalf("Plan(pids, memory) = %v", err)
	}
	want := []string{"pids: cgroup v1 pids at " + hs[0].Mount + ", sandboxes under " + hs[0].Mount + "/vm-run",
		"memory: cgroup v2 at " + hs[1].Mount + ", sandboxes under " + hs[1].Mount + "/vm-run"}
	if got := plan.Describe(); !slices.Equal(got, want) {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
}

// TestCreateFails: a limit the kernel refuses leaves nothing behind.
func TestCreateFails(t *testing.T) {
	f, hs, root := v2host(t)
	s := f.system(hs, 0, vmrunPID, &fakeProcs{f: f})
	plan, err := s.Plan(allLimits)
	if err != nil {
		t.Fatal(err)
	}
	// cpu is not passed on to vm-run's children: cpu.max is missing.
	os.MkdirAll(filepath.Join(root, "vm-run"), 0o755)
	f.populate(filepath.Join(root, "vm-run"), []string{"cpu", "memory", "pids"})
	f.readOnly[filepath.Join(root, "vm-run/cgroup.subtree_control")] = true
	os.WriteFile(filepath.Join(root, "vm-run/cgroup.subtree_control"), []byte("memory pids"), 0o644)
	if g, err := plan.Create(); err == nil {
		t.Fatalf("Create() = %q, want an error", g.Dirs())
	}
	if names, _ := f.ReadDir(filepath.Join(root, "vm-run")); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}
}

// TestSweep: cgroups of vm-run processes that are gone are removed; those
// of live ones, busy ones and others' are not.
func TestSweep(t *testing.T) {
	f, hs := v1host(t, "/")
	procs := &fakeProcs{f: f, alive: map[int]bool{200: true}}
	s := f.system(hs, 0, vmrunPID, procs)
	base := filepath.Join(hs[0].Mount, "vm-run")
	for _, n := range []string{"", "100-1", "100-2", "200-1", "300-1", "4242-1", "other", "0-1"} {
		f.Mkdir(filepath.Join(base, n))
	}
	f.WriteFile(filepath.Join(base, "300-1/cgroup.procs"), "555") // busy
	plan, err := s.Plan(Limits{Pids: 5})
	if err != nil {
		t.Fatal(err)
	}
	g, err := plan.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	names, _ := f.ReadDir(base)
	want := []string{"0-1", "200-1", "300-1", "4242-1", "other", g.Name()}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("after sweep: %q, want %q", names, want)
	}
}

// TestRemoveKillsV1: a V1 cgroup has no cgroup.kill; Remove kills what is
// left one by one.
func TestRemoveKillsV1(t *testing.T) {
	f, hs := v1host(t, "/")
	procs := &fakeProcs{f: f}
	s := f.system(hs, 0, vmrunPID, procs)
	plan, _ := s.Plan(Limits{Pids: 5})
	g, err := plan.Create()
	if err != nil {
		t.Fatal(err)
	}
	g.Add(31)
	g.Add(32)
	dirs := g.Dirs()
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	if !slices.Equal(procs.killed, []int{31, 32}) {
		t.Errorf("killed %v, want [31 32]", procs.killed)
	}
	gone(t, dirs[0])
}
