package cgroup

import (
	"reflect"
	"strings"
	"testing"
)

// Mount tables and /proc/self/cgroup of the machines vm-run meets.
const (
	// This development VM: controllers on v1, a v2 mount without any.
	hybridMountinfo = `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
26 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
49 26 0:27 / /sys/fs/cgroup rw,relatime shared:7 - tmpfs tmpfs rw,mode=755
50 49 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:8 - cgroup cgroup rw,cpu
51 49 0:29 / /sys/fs/cgroup/cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpuacct
53 49 0:31 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
57 49 0:35 / /sys/fs/cgroup/pids rw,relatime shared:15 - cgroup cgroup rw,pids
58 49 0:36 / /sys/fs/cgroup/systemd rw,relatime shared:16 - cgroup cgroup rw,name=systemd
59 49 0:37 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw
`
	hybridCgroup = `9:name=systemd:/
8:pids:/
4:memory:/process_api/cc93
2:cpuacct:/
1:cpu:/
0::/
`
	// A current systemd distribution: v2 only.
	unifiedMountinfo = `25 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	unifiedCgroup = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-foot.scope\n"
	// RHEL 8: v1, cpu and cpuacct on one hierarchy, with symlinks.
	rhel8Mountinfo = `30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,cpu,cpuacct
38 30 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
41 30 0:37 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
`
	rhel8Cgroup = `11:pids:/system.slice/build.service
8:memory:/system.slice/build.service
4:cpu,cpuacct:/system.slice/build.service
1:name=systemd:/system.slice/build.service
`
)

func TestHierarchies(t *testing.T) {
	tests := []struct {
		name                  string
		mountinfo, procCgroup string
		want                  []Hierarchy
		wantErr               string
	}{
		{name: "hybrid", mountinfo: hybridMountinfo, procCgroup: hybridCgroup, want: []Hierarchy{
			{Version: V1, Mount: "/sys/fs/cgroup/systemd", Root: "/", Options: "name=systemd", Self: "/"},
			{Version: V1, Mount: "/sys/fs/cgroup/pids", Root: "/", Options: "pids", Controllers: []string{"pids"}, Self: "/"},
			{Version: V1, Mount: "/sys/fs/cgroup/memory", Root: "/", Options: "memory", Controllers: []string{"memory"}, Self: "/process_api/cc93"},
			{Version: V1, Mount: "/sys/fs/cgroup/cpuacct", Root: "/", Options: "cpuacct", Controllers: []string{"cpuacct"}, Self: "/"},
			{Version: V1, Mount: "/sys/fs/cgroup/cpu", Root: "/", Options: "cpu", Controllers: []string{"cpu"}, Self: "/"},
			{Version: V2, Mount: "/sys/fs/cgroup/unified", Root: "/", Self: "/"},
		}},
		{name: "unified", mountinfo: unifiedMountinfo, procCgroup: unifiedCgroup, want: []Hierarchy{
			{Version: V2, Mount: "/sys/fs/cgroup", Root: "/", Self: "/user.slice/user-1000.slice/user@1000.service/app.slice/app-foot.scope"},
		}},
		{name: "rhel8", mountinfo: rhel8Mountinfo, procCgroup: rhel8Cgroup, want: []Hierarchy{
			{Version: V1, Mount: "/sys/fs/cgroup/pids", Root: "/", Options: "pids", Controllers: []string{"pids"}, Self: "/system.slice/build.service"},
			{Version: V1, Mount: "/sys/fs/cgroup/memory", Root: "/", Options: "memory", Controllers: []string{"memory"}, Self: "/system.slice/build.service"},
			{Version: V1, Mount: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", Options: "cpu,cpuacct", Controllers: []string{"cpu", "cpuacct"}, Self: "/system.slice/build.service"},
			{Version: V1, Mount: "/sys/fs/cgroup/systemd", Root: "/", Options: "name=systemd", Self: "/system.slice/build.service"},
		}},
		{
			// A container without a cgroup namespace: the mount shows
			// its own subtree only, at its root.
			name:       "subtree mount",
			mountinfo:  "40 30 0:30 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n",
			procCgroup: "0::/docker/abc/app\n",
			want:       []Hierarchy{{Version: V2, Mount: "/sys/fs/cgroup", Root: "/docker/abc", Self: "/docker/abc/app"}},
		},
		{
			// The process is outside what the mount shows, or the mount
			// is of another hierarchy: nothing usable.
			name:       "not shown",
			mountinfo:  "40 30 0:30 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n41 30 0:31 / /mnt/mem rw - cgroup cgroup rw,memory\n",
			procCgroup: "0::/docker/abcdef\n5:pids:/\n",
		},
		{
			name:       "escaped mount point",
			mountinfo:  `41 30 0:31 / /mnt/my\040cgroups\134v2 rw - cgroup2 cgroup2 rw` + "\n",
			procCgroup: "0::/\n",
			want:       []Hierarchy{{Version: V2, Mount: `/mnt/my cgroups\v2`, Root: "/", Self: "/"}},
		},
		{
			name:       "outside the cgroup namespace",
			mountinfo:  unifiedMountinfo,
			procCgroup: "0::/../sibling\n",
			wantErr:    `/proc/self/cgroup line 1: "0::/../sibling": the cgroup is outside this cgroup namespace`,
		},
		{name: "short mountinfo line", mountinfo: "40 30 0:30 / /x - cgroup2\n", procCgroup: "0::/\n",
			wantErr: `mountinfo line 1: "40 30 0:30 / /x - cgroup2": want at least 6 fields, "-", type, source and options`},
		{name: "bad escape", mountinfo: `41 30 0:31 / /mnt/a\04 rw - cgroup2 cgroup2 rw` + "\n", procCgroup: "0::/\n",
			wantErr: `mountinfo line 1: "41 30 0:31 / /mnt/a\\04 rw - cgroup2 cgroup2 rw": bad escape in a path`},
		{name: "bad cgroup line", mountinfo: unifiedMountinfo, procCgroup: "zero::/\n",
			wantErr: `/proc/self/cgroup line 1: "zero::/": want ID:CONTROLLERS:PATH`},
		{name: "v1 line without controllers", mountinfo: unifiedMountinfo, procCgroup: "3::/\n",
			wantErr: `/proc/self/cgroup line 1: "3::/": want controllers for a v1 hierarchy and none for v2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Hierarchies([]byte(tt.mountinfo), []byte(tt.procCgroup))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Hierarchies() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Hierarchies() =\n%+v, %v\nwant\n%+v", got, err, tt.want)
			}
		})
	}
}

func TestHierarchyDir(t *testing.T) {
	h := Hierarchy{Mount: "/sys/fs/cgroup", Root: "/docker/abc"}
	tests := []struct {
		p, want string
		ok      bool
	}{
		{"/docker/abc", "/sys/fs/cgroup", true},
		{"/docker/abc/app/x", "/sys/fs/cgroup/app/x", true},
		{"/docker/abcdef", "", false},
		{"/docker", "", false},
		{"/docker/abc/../xyz", "", false},
		{"docker/abc/app", "", false},
	}
	for _, tt := range tests {
		if got, ok := h.Dir(tt.p); got != tt.want || ok != tt.ok {
			t.Errorf("Dir(%q) = %q, %v; want %q, %v", tt.p, got, ok, tt.want, tt.ok)
		}
	}
	if got, ok := (Hierarchy{Mount: "/m", Root: "/"}).Dir("/a/b"); got != "/m/a/b" || !ok {
		t.Errorf("Dir(/a/b) under root / = %q, %v; want /m/a/b, true", got, ok)
	}
}

func TestCgroupOf(t *testing.T) {
	hs, err := Hierarchies([]byte(rhel8Mountinfo), []byte(rhel8Cgroup))
	if err != nil {
		t.Fatal(err)
	}
	proc := []byte("11:pids:/vm-run/7-1\n8:memory:/vm-run/7-1\n4:cpu,cpuacct:/system.slice/build.service\n")
	want := map[string]string{"pids": "/vm-run/7-1", "memory": "/vm-run/7-1", "cpu,cpuacct": "/system.slice/build.service"}
	for _, h := range hs {
		got, ok := cgroupOf(proc, h)
		if w, listed := want[h.Options]; got != w || ok != listed {
			t.Errorf("cgroupOf(%s) = %q, %v; want %q, %v", h.Options, got, ok, w, listed)
		}
	}
}

func TestFlatKeyed(t *testing.T) {
	tests := []struct {
		data, key string
		want      uint64
		err       string
	}{
		{"low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n", "oom_kill", 2, ""},
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "oom_kill", 1, ""},
		{"max 7\n", "max", 7, ""},
		{"max 7", "max", 7, ""},
		{"oom_kill_disable 0\nunder_oom 0\n", "oom_kill", 0, `no "oom_kill" key`},
		{"max many\n", "max", 0, `strconv.ParseUint: parsing "many": invalid syntax`},
	}
	for _, tt := range tests {
		got, err := flatKeyed([]byte(tt.data), tt.key)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("flatKeyed(%q, %q) = %d, %v; want %d, %q", tt.data, tt.key, got, err, tt.want, tt.err)
		}
	}
}

func TestSettings(t *testing.T) {
	l := Limits{Pids: 512, Memory: 256 << 20, CPUMillis: 1500}
	tests := []struct {
		v    Version
		c    string
		want string
	}{
		{V2, "pids", "pids.max=512"},
		{V1, "pids", "pids.max=512"},
		{V2, "memory", "memory.max=268435456 memory.swap.max=0?"},
		{V1, "memory", "memory.limit_in_bytes=268435456 memory.memsw.limit_in_bytes=268435456?"},
		{V2, "cpu", "cpu.max=150000 100000"},
		{V1, "cpu", "cpu.cfs_period_us=100000 cpu.cfs_quota_us=150000"},
	}
	for _, tt := range tests {
		var parts []string
		for _, s := range settings(tt.v, tt.c, l) {
			p := s.file + "=" + s.value
			if s.optional {
				p += "?"
			}
			parts = append(parts, p)
		}
		if got := strings.Join(parts, " "); got != tt.want {
			t.Errorf("settings(%s, %s) = %q, want %q", tt.v, tt.c, got, tt.want)
		}
	}
}

func TestLimitsString(t *testing.T) {
	tests := []struct {
		l    Limits
		want string
	}{
		{Limits{}, "none"},
		{Limits{Pids: 512, Memory: 6 << 30, CPUMillis: 500}, "pids 512, memory 6 GiB, cpu 0.5"},
		{Limits{Memory: 6318718976, CPUMillis: 2000}, "memory 5.9 GiB, cpu 2"},
		{Limits{Memory: 1000, CPUMillis: 1250}, "memory 1000 B, cpu 1.25"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.l, got, tt.want)
		}
	}
}
