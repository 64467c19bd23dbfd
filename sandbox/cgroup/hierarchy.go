package cgroup

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Version is the version of a cgroup hierarchy's interface.
type Version int

// The two cgroup interfaces (cgroups(7)). V1 hierarchies each hold some
// controllers and are mounted one per directory; the V2 hierarchy is
// unified, one for every controller enabled in it.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string { return "v" + strconv.Itoa(int(v)) }

// Hierarchy is one mounted cgroup hierarchy as this process sees it.
type Hierarchy struct {
	Version Version
	// Mount is where the hierarchy is mounted; Root is the cgroup shown
	// at Mount (the mountinfo root field: "/" unless the mount shows only
	// a subtree, as in a container).
	Mount, Root string
	// Options are the controllers and name= of a V1 hierarchy as
	// /proc/self/cgroup lists them: what mount(2) needs to mount the same
	// hierarchy again ("cpu,cpuacct"). Empty for V2.
	Options string
	// Controllers are the controllers bound to the hierarchy: for V1 from
	// Options, for V2 those in the cgroup.controllers file at Mount.
	Controllers []string
	// Self is this process's cgroup in the hierarchy, from
	// /proc/self/cgroup.
	Self string
}

// Dir returns the directory of the cgroup p (a path in the hierarchy,
// such as Self), and false when the mount does not show it.
func (h Hierarchy) Dir(p string) (string, bool) {
	if p == h.Root {
		return h.Mount, true
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(h.Root, "/")+"/")
	if !ok || !path.IsAbs(p) || path.Clean(p) != p {
		return "", false
	}
	return path.Join(h.Mount, rel), true
}

// Has reports whether controller c is bound to h.
func (h Hierarchy) Has(c string) bool { return slices.Contains(h.Controllers, c) }

func (h Hierarchy) String() string {
	if h.Version == V2 {
		return "cgroup v2 at " + h.Mount
	}
	return fmt.Sprintf("cgroup v1 %s at %s", h.Options, h.Mount)
}

// Hierarchies joins /proc/self/mountinfo and /proc/self/cgroup: the cgroup
// hierarchies mounted here with this process's cgroup in each. A hierarchy
// this process is in but that is not mounted, or mounted only at a subtree
// that does not show its cgroup, is left out; of several mounts of one
// hierarchy the first that shows it counts. The controllers of a V2
// hierarchy are left for the caller to read from its cgroup.controllers.
func Hierarchies(mountinfo, procCgroup []byte) ([]Hierarchy, error) {
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return nil, err
	}
	self, err := parseProcCgroup(procCgroup)
	if err != nil {
		return nil, err
	}
	var out []Hierarchy
	for _, s := range self {
		for _, m := range mounts {
			if (m.fstype == "cgroup2") != (s.options == "") {
				continue
			}
			h := Hierarchy{Version: V2, Mount: m.point, Root: m.root, Self: s.path}
			if s.options != "" {
				opts := strings.Split(s.options, ",")
				if !subset(opts, m.super) {
					continue
				}
				h.Version, h.Options = V1, s.options
				for _, o := range opts {
					if !strings.HasPrefix(o, "name=") {
						h.Controllers = append(h.Controllers, o)
					}
				}
			}
			if _, ok := h.Dir(s.path); ok {
				out = append(out, h)
				break
			}
		}
	}
	return out, nil
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// mount is one cgroup or cgroup2 line of mountinfo.
type mount struct {
	root, point, fstype string
	super               []string
}

// parseMountinfo reads the cgroup and cgroup2 mounts of a mountinfo file
// (proc_pid_mountinfo(5)): ID, parent ID, major:minor, root, mount point,
// mount options, optional fields ending with "-", file system type,
// source, super options. Paths escape space, tab, newline and backslash
// as octal (\040).
func parseMountinfo(data []byte) ([]mount, error) {
	var out []mount
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			return nil, fmt.Errorf("mountinfo line %d: %q: want at least 6 fields, \"-\", type, source and options", n+1, line)
		}
		fstype := f[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		root, err1 := unescape(f[3])
		point, err2 := unescape(f[4])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: %q: bad escape in a path", n+1, line)
		}
		out = append(out, mount{root: root, point: point, fstype: fstype, super: strings.Split(f[sep+3], ",")})
	}
	return out, nil
}

// unescape undoes the octal escapes of mountinfo paths (show_path in
// fs/proc_namespace.c escapes " \t\n\\").
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 >= len(s) {
			return "", fmt.Errorf("short escape in %q", s)
		}
		x, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(x))
		i += 3
	}
	return b.String(), nil
}

// membership is one line of /proc/PID/cgroup: a V1 hierarchy's controllers
// and name= ("cpu,cpuacct"), or "" for V2, and the cgroup's path.
type membership struct {
	options, path string
}

// parseProcCgroup reads /proc/PID/cgroup (cgroups(7)): lines
// "hierarchy-ID:controller-list:cgroup-path", the V2 one "0::PATH". A path
// outside the reader's cgroup namespace starts with "/.." and cannot be
// used; it is an error.
func parseProcCgroup(data []byte) ([]membership, error) {
	var out []membership
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		opts, p, ok2 := strings.Cut(rest, ":")
		if _, err := strconv.Atoi(id); err != nil || !ok1 || !ok2 || !path.IsAbs(p) {
			return nil, fmt.Errorf("/proc/self/cgroup line %d: %q: want ID:CONTROLLERS:PATH", n+1, line)
		}
		if p == "/.." || strings.HasPrefix(p, "/../") {
			return nil, fmt.Errorf("/proc/self/cgroup line %d: %q: the cgroup is outside this cgroup namespace", n+1, line)
		}
		if id == "0" && opts != "" || id != "0" && opts == "" {
			return nil, fmt.Errorf("/proc/self/cgroup line %d: %q: want controllers for a v1 hierarchy and none for v2", n+1, line)
		}
		out = append(out, membership{options: opts, path: path.Clean(p)})
	}
	return out, nil
}

// cgroupOf returns the path of the cgroup in h that a /proc/PID/cgroup file
// lists.
func cgroupOf(procCgroup []byte, h Hierarchy) (string, bool) {
	ms, err := parseProcCgroup(procCgroup)
	if err != nil {
		return "", false
	}
	for _, m := range ms {
		if m.options == h.Options {
			return m.path, true
		}
	}
	return "", false
}
