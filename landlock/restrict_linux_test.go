//go:build linux

package landlock_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/internal/testkit"
	"github.com/vm-run/vm-run/landlock"
)

// fixture is a directory tree for one child, named by the grant each
// directory gets in fixture.rules:
//
//	ro/   Read    file, true, sub/
//	rw/   Write   file, true
//	rw2/  Write   (empty)
//	x/    Exec    true
//	out/  nothing file
type fixture struct {
	ro, rw, rw2, x, out string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	fx := fixture{
		ro:  filepath.Join(root, "ro"),
		rw:  filepath.Join(root, "rw"),
		rw2: filepath.Join(root, "rw2"),
		x:   filepath.Join(root, "x"),
		out: filepath.Join(root, "out"),
	}
	for _, d := range []string{fx.ro, fx.ro + "/sub", fx.rw, fx.rw2, fx.x, fx.out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{fx.ro + "/file", fx.rw + "/file", fx.out + "/file"} {
		if err := os.WriteFile(f, []byte("data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{fx.ro, fx.rw, fx.x} {
		copyFile(t, lookPath(t, "true"), d+"/true")
	}
	return fx
}

// rules grants the fixture's directories and what executing a dynamically
// linked /usr/bin/true needs: execve(2) also checks the ELF interpreter.
func (fx fixture) rules() landlock.Rules {
	return landlock.Rules{
		Read:  []string{fx.ro},
		Exec:  append([]string{fx.x}, systemDirs()...),
		Write: []string{fx.rw, fx.rw2},
	}
}

func systemDirs() []string {
	var dirs []string
	for _, d := range []string{"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("need %q: %v", name, err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// restrictCase is one table entry: probes that must all succeed without
// Landlock and give want under rules, each run in a fresh fixture.
type restrictCase struct {
	name    string
	feature landlock.Feature // skip unless enforced
	rules   func(fx fixture) landlock.Rules
	probes  func(fx fixture) []probe
	want    []string
}

func p(op string, args ...string) probe { return probe{Op: op, Args: args} }

func runRestrictCases(t *testing.T, cases []restrictCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.feature != "" {
				testkit.RequireLandlockFeature(t, tc.feature)
			}
			base := tc.probes(newFixture(t))
			for i, got := range runChild(t, nil, base...) {
				if got != "" {
					t.Errorf("without Landlock, %s %q = %q, want success", base[i].Op, base[i].Args, got)
				}
			}
			fx := newFixture(t)
			rules := tc.rules(fx)
			probes := tc.probes(fx)
			got := runChild(t, &rules, probes...)
			for i := range probes {
				if got[i] != tc.want[i] {
					t.Errorf("restricted, %s %q = %q, want %q", probes[i].Op, probes[i].Args, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestRestrictFilesystem(t *testing.T) {
	testkit.RequireLandlockABI(t, 1)
	fixtureRules := func(fx fixture) landlock.Rules { return fx.rules() }
	runRestrictCases(t, []restrictCase{{
		name:  "read outside the rules",
		rules: fixtureRules,
		probes: func(fx fixture) []probe {
			return []probe{p("read", fx.out+"/file"), p("readdir", fx.out), p("read", fx.ro+"/file"), p("readdir", fx.ro)}
		},
		want: []string{"open: EACCES", "open: EACCES", "", ""},
	}, {
		name:  "write in a read-only dir",
		rules: fixtureRules,
		probes: func(fx fixture) []probe {
			return []probe{
				p("write", fx.ro+"/file"), p("create", fx.ro+"/new"), p("mkdir", fx.ro+"/dir"),
				p("remove", fx.ro+"/file"), p("remove", fx.ro+"/sub"),
				p("write", fx.rw+"/file"), p("create", fx.rw+"/new"), p("mkdir", fx.rw+"/dir"),
				p("remove", fx.rw+"/new"),
			}
		},
		want: []string{
			"open: EACCES", "open: EACCES", "mkdir: EACCES", "remove: EACCES", "remove: EACCES",
			"", "", "", "",
		},
	}, {
		name:  "execute outside exec dirs",
		rules: fixtureRules,
		probes: func(fx fixture) []probe {
			return []probe{p("exec", fx.ro+"/true"), p("exec", fx.rw+"/true"), p("exec", fx.x+"/true")}
		},
		want: []string{"exec: EACCES", "exec: EACCES", ""},
	}, {
		name:  "a file rule grants that file only",
		rules: func(fx fixture) landlock.Rules { return landlock.Rules{Write: []string{fx.rw + "/file"}} },
		probes: func(fx fixture) []probe {
			return []probe{p("write", fx.rw+"/file"), p("truncate", fx.rw+"/file"), p("readdir", fx.rw), p("read", fx.rw+"/true")}
		},
		want: []string{"", "", "open: EACCES", "open: EACCES"},
	}})
}

func TestRestrictRefer(t *testing.T) {
	testkit.RequireLandlockFeature(t, landlock.FeatureRefer)
	runRestrictCases(t, []restrictCase{{
		name:  "rename and link between dirs",
		rules: func(fx fixture) landlock.Rules { return fx.rules() },
		probes: func(fx fixture) []probe {
			return []probe{
				p("rename", fx.rw+"/file", fx.rw2+"/moved"),
				p("link", fx.rw2+"/moved", fx.rw+"/linked"),
				p("rename", fx.rw+"/linked", fx.ro+"/moved"),
				p("link", fx.rw+"/true", fx.ro+"/linked"),
				p("link", fx.ro+"/file", fx.rw+"/linked2"),
				p("rename", fx.ro+"/file", fx.rw+"/moved2"),
			}
		},
		// Into ro/: no make_reg there. Out of ro/: no remove_file
		// there for rename; for link, ro/ lacks refer, which is
		// EXDEV (Documentation/userspace-api/landlock.rst,
		// LANDLOCK_ACCESS_FS_REFER).
		want: []string{"", "", "rename: EACCES", "link: EACCES", "link: EXDEV", "rename: EACCES"},
	}})
}

func TestRestrictTruncate(t *testing.T) {
	testkit.RequireLandlockFeature(t, landlock.FeatureTruncate)
	runRestrictCases(t, []restrictCase{{
		name:  "truncate",
		rules: func(fx fixture) landlock.Rules { return fx.rules() },
		probes: func(fx fixture) []probe {
			return []probe{p("truncate", fx.ro+"/file"), p("truncate", fx.rw+"/file")}
		},
		want: []string{"truncate: EACCES", ""},
	}})
}

func TestRestrictIoctlDev(t *testing.T) {
	testkit.RequireLandlockFeature(t, landlock.FeatureIoctlDev)
	runRestrictCases(t, []restrictCase{{
		name:   "ioctl on a device that is only readable",
		rules:  func(fx fixture) landlock.Rules { return landlock.Rules{Read: []string{"/dev/zero"}} },
		probes: func(fx fixture) []probe { return []probe{p("ioctl", "/dev/zero"), p("read", "/dev/null")} },
		want:   []string{"ioctl: EACCES", "open: EACCES"},
	}, {
		name:  "devices grant ioctl and O_TRUNC opens",
		rules: func(fx fixture) landlock.Rules { return landlock.Rules{Devices: []string{"/dev/zero", "/dev/null"}} },
		probes: func(fx fixture) []probe {
			return []probe{p("ioctl", "/dev/zero"), p("open-trunc", "/dev/null"), p("write", "/dev/null")}
		},
		want: []string{"", "", ""},
	}})
}

func TestRestrictTCP(t *testing.T) {
	testkit.RequireLandlockFeature(t, landlock.FeatureTCP)
	// The listener is outside the child's domain and made before it
	// restricts itself.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	portStr := strconv.Itoa(port)
	runRestrictCases(t, []restrictCase{{
		name:   "no ports granted",
		rules:  func(fx fixture) landlock.Rules { return landlock.Rules{} },
		probes: func(fx fixture) []probe { return []probe{p("connect-tcp", portStr), p("bind-tcp", "0")} },
		want:   []string{"connect: EACCES", "bind: EACCES"},
	}, {
		name: "granted ports",
		rules: func(fx fixture) landlock.Rules {
			return landlock.Rules{ConnectTCP: []uint16{uint16(port)}, BindTCP: []uint16{0}}
		},
		probes: func(fx fixture) []probe { return []probe{p("connect-tcp", portStr), p("bind-tcp", "0")} },
		want:   []string{"", ""},
	}})
}

// TestRestrictScopes covers what Landlock denies between the sandbox and
// the rest of the system without any rule: IPC scopes (ABI 6), pathname
// unix sockets (ABI 9) and UDP (ABI 10).
func TestRestrictScopes(t *testing.T) {
	name := fmt.Sprintf("vm-run-landlock-test-%d", os.Getpid())
	ln, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	parent := strconv.Itoa(os.Getpid())
	sock := filepath.Join(t.TempDir(), "sock")
	pathLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pathLn.Close()
	runRestrictCases(t, []restrictCase{{
		name:    "abstract unix socket outside the sandbox",
		feature: landlock.FeatureScopeAbstractUnix,
		rules:   func(fx fixture) landlock.Rules { return landlock.Rules{} },
		probes:  func(fx fixture) []probe { return []probe{p("connect-abstract", name)} },
		want:    []string{"connect: EPERM"},
	}, {
		name:    "signal to a process outside the sandbox",
		feature: landlock.FeatureScopeSignal,
		rules:   func(fx fixture) landlock.Rules { return landlock.Rules{} },
		probes:  func(fx fixture) []probe { return []probe{p("kill", parent)} },
		want:    []string{"kill: EPERM"},
	}, {
		name:    "pathname unix socket outside the sandbox",
		feature: landlock.FeatureResolveUnix,
		rules:   func(fx fixture) landlock.Rules { return landlock.Rules{} },
		probes:  func(fx fixture) []probe { return []probe{p("connect-unix", sock)} },
		want:    []string{"connect: EACCES"},
	}, {
		name:    "UDP",
		feature: landlock.FeatureUDP,
		rules:   func(fx fixture) landlock.Rules { return landlock.Rules{} },
		probes:  func(fx fixture) []probe { return []probe{p("bind-udp")} },
		want:    []string{"bind: EACCES"},
	}})
}

// TestRestrictSignalChildren pins the contract in Rules.Restrict's doc: a
// child started after Restrict can be signalled from the thread that
// started it, and below ABI 8 from no other thread.
func TestRestrictSignalChildren(t *testing.T) {
	testkit.RequireLandlockFeature(t, landlock.FeatureScopeSignal)
	sleep := lookPath(t, "sleep")
	otherThread := "kill: EPERM"
	if landlock.Detect().EnforcedABI() >= 8 {
		otherThread = ""
	}
	runRestrictCases(t, []restrictCase{{
		name: "children",
		rules: func(fx fixture) landlock.Rules {
			return landlock.Rules{Exec: systemDirs(), Read: []string{"/proc"}}
		},
		probes: func(fx fixture) []probe {
			return []probe{p("kill-own-child", sleep), p("kill-child-from-other-thread", sleep)}
		},
		want: []string{"", otherThread},
	}})
}

// TestRestrictStackLimit triggers landlock_restrict_self's E2BIG: a process
// can be in at most 16 nested domains (LANDLOCK_MAX_NUM_LAYERS in
// security/landlock/limits.h).
func TestRestrictStackLimit(t *testing.T) {
	testkit.RequireLandlockABI(t, 1)
	rules := landlock.Rules{}
	got := runChild(t, &rules, p("restrict-until-error"))[0]
	want := "after 16: landlock_restrict_self: E2BIG\n"
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "16 nested Landlock domains") {
		t.Errorf("Restrict() 17 times = %q, want %q and a hint", got, want)
	}
}

func TestRestrictBadRules(t *testing.T) {
	testkit.RequireLandlockABI(t, 1)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		rules landlock.Rules
		want  string
	}{
		{landlock.Rules{Read: []string{missing}}, "stat " + missing},
		{landlock.Rules{Read: []string{"relative"}}, `path "relative" is not absolute`},
	} {
		// plan fails before anything is enforced, so this may run
		// in the test process itself.
		err := tt.rules.Restrict()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Restrict(%+v) = %v, want an error containing %q", tt.rules, err, tt.want)
		}
	}
	err := landlock.Rules{Require: []landlock.Feature{"teleport"}}.Restrict()
	if !errors.Is(err, landlock.ErrUnknownFeature) {
		t.Errorf("Restrict(require teleport) = %v, want ErrUnknownFeature", err)
	}
}

func TestDetect(t *testing.T) {
	s := landlock.Detect()
	if s.ABI == 0 && s.Reason == "" {
		t.Errorf("Detect() = %+v: ABI 0 without a reason", s)
	}
	if s.ABI != 0 && s.Reason != "" {
		t.Errorf("Detect() = %+v: a reason although Landlock is there", s)
	}
	t.Logf("Detect() = %v", s)
}
