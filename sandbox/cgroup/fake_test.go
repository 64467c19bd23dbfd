package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeFS is cgroupfs as far as this package uses it, kept in a temp dir:
// mkdir fills a cgroup with the interface files of its hierarchy's
// controllers (for V2, those its parent enables), and writes to
// cgroup.subtree_control, cgroup.procs and cgroup.kill do what the kernel
// does with them, errors included: ENOENT for a missing file or a
// controller the cgroup does not have, EBUSY for controllers enabled in a
// non-root cgroup with processes and for rmdir of a cgroup in use. It lets
// the V2 logic run where the kernel has no V2 controllers.
type fakeFS struct {
	t     *testing.T
	roots map[string]Version  // mount point → version
	v1    map[string][]string // V1 mount point → its controllers
	// readOnly are the paths this user may not write.
	readOnly map[string]bool
	// noSwap leaves out the swap files, as a kernel that does not
	// account swap does.
	noSwap bool
}

// newFakeFS makes a fake with a hierarchy per entry of hs, each mounted at
// dir/MOUNT; v2controllers are what the V2 root offers. It rewrites hs's
// mount points to point there.
func newFakeFS(t *testing.T, hs []Hierarchy, v2controllers ...string) (*fakeFS, []Hierarchy) {
	t.Helper()
	dir := t.TempDir()
	f := &fakeFS{t: t, roots: map[string]Version{}, v1: map[string][]string{}, readOnly: map[string]bool{}}
	out := slices.Clone(hs)
	for i, h := range out {
		h.Mount = filepath.Join(dir, h.Mount)
		out[i] = h
		if err := os.MkdirAll(h.Mount, 0o755); err != nil {
			t.Fatal(err)
		}
		f.roots[h.Mount] = h.Version
		if h.Version == V1 {
			f.v1[h.Mount] = h.Controllers
		}
		f.populate(h.Mount, v2controllers)
	}
	return f, out
}

// system is a System over the fake for a caller with uid and pid.
func (f *fakeFS) system(hs []Hierarchy, uid, pid int, p *fakeProcs) *System {
	s := &System{Hierarchies: hs, UID: uid, fs: f, procs: p, pid: pid}
	s.readControllers()
	return s
}

// root returns the mount point name lies beneath.
func (f *fakeFS) root(name string) (string, Version) {
	for r, v := range f.roots {
		if name == r || strings.HasPrefix(name, r+"/") {
			return r, v
		}
	}
	f.t.Fatalf("fake cgroupfs: %s is in no hierarchy", name)
	return "", 0
}

// mkdirs creates the cgroups of a path beneath a mount, as the host's
// manager (systemd) would have.
func (f *fakeFS) mkdirs(dir string) {
	f.t.Helper()
	r, _ := f.root(dir)
	rel, _ := filepath.Rel(r, dir)
	p := r
	for _, c := range strings.Split(rel, "/") {
		p = filepath.Join(p, c)
		if err := f.Mkdir(p); err != nil && !errors.Is(err, os.ErrExist) {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeFS) populate(dir string, controllers []string) {
	_, v := f.root(dir)
	files := map[string]string{"cgroup.procs": ""}
	if v == V2 {
		files["cgroup.controllers"] = strings.Join(controllers, " ")
		files["cgroup.subtree_control"] = ""
		files["cgroup.events"] = "populated 0\nfrozen 0\n"
		files["cgroup.kill"] = ""
	} else {
		files["tasks"] = ""
		r, _ := f.root(dir)
		controllers = f.v1[r]
	}
	for _, c := range controllers {
		switch {
		case c == "pids":
			files["pids.max"], files["pids.events"] = "max", "max 0\n"
		case c == "memory" && v == V2:
			files["memory.max"], files["memory.events"] = "max", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"
			if !f.noSwap {
				files["memory.swap.max"] = "max"
			}
		case c == "memory":
			files["memory.limit_in_bytes"] = "9223372036854771712"
			files["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
			if !f.noSwap {
				files["memory.memsw.limit_in_bytes"] = "9223372036854771712"
			}
		case c == "cpu" && v == V2:
			files["cpu.max"] = "max 100000"
		case c == "cpu":
			files["cpu.cfs_period_us"], files["cpu.cfs_quota_us"] = "100000", "-1"
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

func (f *fakeFS) Mkdir(name string) error {
	if f.readOnly[filepath.Dir(name)] {
		return &os.PathError{Op: "mkdir", Path: name, Err: syscall.EACCES}
	}
	if err := os.Mkdir(name, 0o755); err != nil {
		return err
	}
	var enabled []string
	if _, v := f.root(name); v == V2 {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(name), "cgroup.subtree_control"))
		if err != nil {
			return err
		}
		enabled = strings.Fields(string(b))
	}
	f.populate(name, enabled)
	return nil
}

func (f *fakeFS) WriteFile(name, data string) error {
	fail := func(errno syscall.Errno) error { return &os.PathError{Op: "write", Path: name, Err: errno} }
	old, err := os.ReadFile(name)
	if err != nil {
		return err // a missing file: ENOENT, as open(2) says
	}
	if f.readOnly[name] {
		return &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	dir := filepath.Dir(name)
	r, _ := f.root(name)
	switch filepath.Base(name) {
	case "cgroup.subtree_control":
		have := strings.Fields(string(old))
		avail := strings.Fields(f.read(filepath.Join(dir, "cgroup.controllers")))
		for _, tok := range strings.Fields(data) {
			c := tok[1:]
			if !slices.Contains(avail, c) {
				return fail(syscall.ENOENT)
			}
			if tok[0] == '+' && dir != r && strings.TrimSpace(f.read(filepath.Join(dir, "cgroup.procs"))) != "" {
				return fail(syscall.EBUSY)
			}
			if tok[0] == '+' && !slices.Contains(have, c) {
				have = append(have, c)
			}
		}
		data = strings.Join(have, " ")
	case "cgroup.procs":
		pid := strings.TrimSpace(data)
		if _, err := strconv.Atoi(pid); err != nil {
			return fail(syscall.EINVAL)
		}
		filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "cgroup.procs" {
				f.setPids(filepath.Dir(p), func(pids []string) []string {
					return slices.DeleteFunc(pids, func(x string) bool { return x == pid })
				})
			}
			return nil
		})
		f.setPids(dir, func(pids []string) []string { return append(pids, pid) })
		return nil
	case "cgroup.kill":
		f.setPids(dir, func([]string) []string { return nil })
		return nil
	}
	return os.WriteFile(name, []byte(data), 0o644)
}

func (f *fakeFS) read(name string) string {
	b, _ := os.ReadFile(name)
	return string(b)
}

func (f *fakeFS) setPids(dir string, change func([]string) []string) {
	pids := change(strings.Fields(f.read(filepath.Join(dir, "cgroup.procs"))))
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strings.Join(pids, "\n")), 0o644)
}

func (f *fakeFS) Rmdir(name string) error {
	fail := func(errno syscall.Errno) error { return &os.PathError{Op: "rmdir", Path: name, Err: errno} }
	subs, err := f.ReadDir(name)
	if err != nil {
		return err
	}
	if len(subs) > 0 || strings.TrimSpace(f.read(filepath.Join(name, "cgroup.procs"))) != "" {
		return fail(syscall.EBUSY)
	}
	return os.RemoveAll(name)
}

func (f *fakeFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, err
}

func (f *fakeFS) Writable(name string) bool { return !f.readOnly[name] }

// deny makes the cgroups at dirs, their cgroup.procs and
// cgroup.subtree_control, not writable by the caller: not delegated.
func (f *fakeFS) deny(dirs ...string) {
	for _, d := range dirs {
		f.readOnly[d] = true
		f.readOnly[filepath.Join(d, "cgroup.procs")] = true
		f.readOnly[filepath.Join(d, "cgroup.subtree_control")] = true
	}
}

// fakeProcs is the processes of a fake: alive ones, and the kills sent,
// which empty the cgroup the process was in.
type fakeProcs struct {
	f      *fakeFS
	alive  map[int]bool
	killed []int
}

func (p *fakeProcs) Alive(pid int) bool { return p.alive[pid] }

func (p *fakeProcs) Kill(pid int, h Hierarchy, cg string) error {
	p.killed = append(p.killed, pid)
	dir, _ := h.Dir(cg)
	p.f.setPids(dir, func(pids []string) []string {
		return slices.DeleteFunc(pids, func(x string) bool { return x == strconv.Itoa(pid) })
	})
	return nil
}
