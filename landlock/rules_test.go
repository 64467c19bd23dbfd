package landlock

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rules := Rules{
		Read:       []string{dir},
		Exec:       []string{dir},
		Write:      []string{dir, file},
		Devices:    []string{file},
		ConnectTCP: []uint16{443},
		BindTCP:    []uint16{8080},
	}
	const writeV1 = "write_file,read_file,read_dir,remove_dir,remove_file,make_char," +
		"make_dir,make_reg,make_sock,make_fifo,make_block,make_sym"
	for _, tt := range []struct {
		abi  int
		want []string // String() of each rule
	}{
		{1, []string{
			"{read_file,read_dir} for paths [" + dir + "]",
			"{execute,read_file,read_dir} for paths [" + dir + "]",
			"{" + writeV1 + "} for paths [" + dir + "]",
			"{write_file,read_file} for paths [" + file + "]",
			"{write_file,read_file} for paths [" + file + "]",
		}},
		{2, []string{
			"{read_file,read_dir} for paths [" + dir + "]",
			"{execute,read_file,read_dir} for paths [" + dir + "]",
			"{" + writeV1 + ",refer} for paths [" + dir + "]",
			"{write_file,read_file} for paths [" + file + "]",
			"{write_file,read_file} for paths [" + file + "]",
		}},
		{4, []string{
			"{read_file,read_dir} for paths [" + dir + "]",
			"{execute,read_file,read_dir} for paths [" + dir + "]",
			"{" + writeV1 + ",refer,truncate} for paths [" + dir + "]",
			"{write_file,read_file,truncate} for paths [" + file + "]",
			"{write_file,read_file} for paths [" + file + "]",
			"ALLOW {connect_tcp} on port 443",
			"ALLOW {bind_tcp} on port 8080",
		}},
		{11, []string{
			"{read_file,read_dir} for paths [" + dir + "]",
			"{execute,read_file,read_dir} for paths [" + dir + "]",
			"{" + writeV1 + ",refer,truncate} for paths [" + dir + "]",
			"{write_file,read_file,truncate} for paths [" + file + "]",
			"{write_file,read_file,ioctl_dev} for paths [" + file + "]",
			"ALLOW {connect_tcp} on port 443",
			"ALLOW {bind_tcp} on port 8080",
		}},
	} {
		cfg, got, err := rules.plan(tt.abi)
		if err != nil {
			t.Errorf("plan(%d) = %v", tt.abi, err)
			continue
		}
		if want := configs[tt.abi-1]; cfg != want {
			t.Errorf("plan(%d) config = %v, want %v", tt.abi, cfg, want)
		}
		var strs []string
		for _, r := range got {
			strs = append(strs, strings.TrimPrefix(fmt.Sprint(r), "REQUIRE "))
		}
		if !slices.Equal(strs, tt.want) {
			t.Errorf("plan(%d) rules =\n\t%s\nwant\n\t%s", tt.abi,
				strings.Join(strs, "\n\t"), strings.Join(tt.want, "\n\t"))
		}
	}
}

// TestConfigsHandleEverything guards the premise of Restrict: each config
// handles every right and scope of its ABI, so what is not granted is
// denied. The counts are those of Documentation/userspace-api/landlock.rst:
// 13 filesystem rights in ABI 1, refer (2), truncate (3), TCP bind and
// connect (4), ioctl_dev (5), two scopes (6), resolve_unix (9), UDP (10).
func TestConfigsHandleEverything(t *testing.T) {
	type counts struct{ fs, net, scopes int }
	want := [maxABI]counts{
		{13, 0, 0}, {14, 0, 0}, {15, 0, 0}, {15, 2, 0}, {16, 2, 0}, {16, 2, 2},
		{16, 2, 2}, {16, 2, 2}, {17, 2, 2}, {17, 4, 2}, {17, 4, 2},
	}
	for abi := 1; abi <= maxABI; abi++ {
		cfg := configs[abi-1]
		got := counts{
			bits.OnesCount64(uint64(cfg.HandledAccessFS)),
			bits.OnesCount64(uint64(cfg.HandledAccessNet)),
			bits.OnesCount64(uint64(cfg.Scoped)),
		}
		if got != want[abi-1] {
			t.Errorf("configs[%d] = %v handles %+v rights, want %+v for ABI %d", abi-1, cfg, got, want[abi-1], abi)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		rules Rules
		want  string
	}{
		{Rules{Read: []string{"usr"}}, `plan landlock read rule: path "usr" is not absolute`},
		{Rules{Write: []string{missing}}, "plan landlock write rule: stat " + missing + ": no such file or directory"},
	} {
		_, _, err := tt.rules.plan(7)
		if err == nil || err.Error() != tt.want {
			t.Errorf("plan(%+v) = %v, want %q", tt.rules, err, tt.want)
		}
	}
	if _, _, err := (Rules{}).plan(0); err == nil {
		t.Errorf("plan(0) = nil, want an error")
	}
}

// TestPlanLogDenials: the command's denials are logged (LOG_NEW_EXEC_ON)
// only when asked, and only from ABI 7, which has the flag.
func TestPlanLogDenials(t *testing.T) {
	for _, tt := range []struct {
		abi  int
		log  bool
		want bool
	}{{6, true, false}, {7, false, false}, {7, true, true}, {maxABI, true, true}} {
		cfg, _, err := Rules{LogDenials: tt.log}.plan(tt.abi)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg != configs[tt.abi-1]; got != tt.want {
			t.Errorf("plan(%d) with LogDenials %v = %v, want the logging flag %v", tt.abi, tt.log, cfg, tt.want)
		} else if tt.want && cfg != configs[tt.abi-1].EnableLoggingForSubprocesses() {
			t.Errorf("plan(%d) with LogDenials = %v, want only LOG_NEW_EXEC_ON added", tt.abi, cfg)
		}
	}
}
