//go:build linux && cgo

package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		wantErr []string // substrings of the error
	}{
		{"unknown group", []string{"bogus"}, []string{`"bogus"`, "unix-sockets", "numa"}},
		{"known then unknown", []string{"numa", "mount"}, []string{`"mount"`, "valid: unix-sockets, numa"}},
		{"empty name", []string{""}, []string{`""`}},
		{"case matters", []string{"Unix-Sockets"}, []string{`"Unix-Sockets"`}},
	}
	for _, tt := range tests {
		c := Config{Allow: tt.allow}
		f, err := Build(c)
		if err == nil {
			f.Release()
			t.Errorf("%s: Build(%q) = nil error, want one", tt.name, tt.allow)
			continue
		}
		if !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("%s: Build(%q) = %v, want it to wrap ErrUnknownGroup", tt.name, tt.allow, err)
		}
		for _, want := range tt.wantErr {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Build(%q) = %v, want it to contain %s", tt.name, tt.allow, err, want)
			}
		}
		// The same check guards ExportPFC and Load, before anything is
		// loaded into this process.
		if err := ExportPFC(c, &bytes.Buffer{}); !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("%s: ExportPFC(%q) = %v, want ErrUnknownGroup", tt.name, tt.allow, err)
		}
		if err := Load(c); !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("%s: Load(%q) = %v, want ErrUnknownGroup", tt.name, tt.allow, err)
		}
	}
	for _, allow := range [][]string{nil, {"numa"}, {"unix-sockets"}, {"numa", "unix-sockets", "numa"}} {
		f, err := Build(Config{Allow: allow})
		if err != nil {
			t.Errorf("Build(%q) = %v, want nil", allow, err)
			continue
		}
		f.Release()
	}
}

func TestResolve(t *testing.T) {
	if _, _, err := resolve("no_such_syscall"); err == nil || !strings.Contains(err.Error(), `"no_such_syscall"`) {
		t.Errorf("resolve(%q) = %v, want an error naming it", "no_such_syscall", err)
	}
	// Where libseccomp knows a syscall, its number must agree with the
	// fallback table.
	for name, want := range unifiedNumbers {
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			continue // libseccomp too old for it; the table answers
		}
		if int(nr) != want {
			t.Errorf("libseccomp resolves %q to %d, unifiedNumbers says %d", name, nr, want)
		}
	}
	for _, r := range Rules() {
		if _, _, err := resolve(r.Syscall); err != nil {
			t.Errorf("rule %q: %v", r, err)
		}
	}
}

func TestRulesTable(t *testing.T) {
	type shape struct {
		conditional bool
		index       uint
	}
	seen := map[string]shape{}
	for _, r := range Rules() {
		if r.Reason == "" {
			t.Errorf("rule %q has no reason", r)
		}
		if r.Errno == 0 {
			t.Errorf("rule %q has no errno", r)
		}
		if err := (Config{Allow: []string{r.Group}}).Validate(); r.Group != "" && err != nil {
			t.Errorf("rule %q names a group that is not in OptInGroups: %v", r, err)
		}
		s := shape{r.Arg != nil, 0}
		if r.Arg != nil {
			s.index = r.Arg.Index
		}
		// The BPF and probe tests assume that the rules of one syscall
		// test the same argument, or are a single unconditional rule.
		if prev, ok := seen[ruleKey(r)]; ok && (prev != s || !s.conditional) {
			t.Errorf("rules for %q mix conditions or repeat an unconditional rule", r.Syscall)
		}
		if _, ok := seen[r.Syscall]; ok && r.Arg == nil {
			t.Errorf("rules for %q mix conditions or repeat an unconditional rule", r.Syscall)
		}
		seen[ruleKey(r)] = s
		seen[r.Syscall] = s
	}
	// Rules returns a copy.
	rs := Rules()
	for i := range rs {
		if rs[i].Arg != nil {
			rs[i].Arg.Value = 0xbad
		}
		rs[i].Errno = 0
	}
	for _, r := range Rules() {
		if r.Errno == 0 || (r.Arg != nil && r.Arg.Value == 0xbad) {
			t.Fatalf("changing the result of Rules changed the deny list: %q", r)
		}
	}
}

// pfcBlock is the pseudo code for one syscall.
type pfcBlock struct {
	name string
	text string
}

var pfcHeader = regexp.MustCompile(`(?m)^  # filter for syscall "([^"]+)" \((\d+)\)`)

// exportPFC returns the text ExportPFC writes for c and its blocks by number.
func exportPFC(t *testing.T, c Config) (string, map[int]pfcBlock) {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportPFC(c, &buf); err != nil {
		t.Fatalf("ExportPFC(%q): %v", c.Allow, err)
	}
	text := buf.String()
	blocks := map[int]pfcBlock{}
	locs := pfcHeader.FindAllStringSubmatchIndex(text, -1)
	for i, loc := range locs {
		end := strings.Index(text, "  # default action")
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		nr, _ := strconv.Atoi(text[loc[4]:loc[5]])
		if _, dup := blocks[nr]; dup {
			t.Fatalf("syscall %d has two blocks in the PFC", nr)
		}
		blocks[nr] = pfcBlock{name: text[loc[2]:loc[3]], text: text[loc[0]:end]}
	}
	return text, blocks
}

func TestExportPFC(t *testing.T) {
	requireAMD64(t)
	for _, allow := range [][]string{nil, {"unix-sockets"}, {"numa"}, {"numa", "unix-sockets"}} {
		c := Config{Allow: allow}
		text, blocks := exportPFC(t, c)

		// One architecture, allow by default, kill anything else.
		for _, want := range []string{
			"allowed groups: ",
			"# x32 calls (nr & 0x40000000, nr != -1) take the invalid architecture action",
			"if ($arch == 3221225534)\n", // AUDIT_ARCH_X86_64
			"  # default action\n  action ALLOW;\n",
			"# invalid architecture action\naction KILL_PROCESS;\n",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("allow %q: PFC lacks %q", allow, want)
			}
		}
		if n := strings.Count(text, "($arch =="); n != 1 {
			t.Errorf("allow %q: PFC tests the architecture %d times, want once (native only)", allow, n)
		}

		wantBlocks := map[int]bool{}
		for _, r := range Rules() {
			nr, present, err := resolve(r.Syscall)
			if err != nil {
				t.Fatal(err)
			}
			b, ok := blocks[int(nr)]
			if !present || c.allows(r.Group) {
				// A leftover unconditional rule shows up as an
				// unwanted block below.
				if ok && r.Arg != nil && strings.Contains(b.text, pfcLines(r)[0]) {
					t.Errorf("allow %q: PFC has lifted rule %q:\n%s", allow, r, b.text)
				}
				continue
			}
			wantBlocks[int(nr)] = true
			if !ok {
				t.Errorf("allow %q: PFC has no block for %q (%d)", allow, r.Syscall, nr)
				continue
			}
			if _, known := unifiedNumbers[r.Syscall]; b.name != r.Syscall && !(known && b.name == "UNKNOWN") {
				t.Errorf("allow %q: block for %d is named %q, want %q", allow, nr, b.name, r.Syscall)
			}
			for _, line := range pfcLines(r) {
				if !strings.Contains(b.text, line) {
					t.Errorf("allow %q: block for %q lacks %q:\n%s", allow, r, line, b.text)
				}
			}
			if r.Arg == nil && strings.Contains(b.text, "if ($a") {
				t.Errorf("allow %q: unconditional rule %q has argument checks:\n%s", allow, r, b.text)
			}
		}
		for nr, b := range blocks {
			if !wantBlocks[nr] {
				t.Errorf("allow %q: PFC has a block for %q (%d) that no active rule asks for", allow, b.name, nr)
			}
		}
	}
}

// pfcLines returns lines the PFC block of r must contain: for conditional
// rules, each masked comparison on the low half followed by the action.
func pfcLines(r Rule) []string {
	action := fmt.Sprintf("action ERRNO(%d);", int(r.Errno))
	if r.Arg == nil {
		return []string{"    " + action + "\n"}
	}
	lines := []string{fmt.Sprintf("    if ($a%d.hi32 & 0x%08x == %d)\n",
		r.Arg.Index, uint32(r.Arg.Mask>>32), 0)}
	for _, t := range r.Arg.terms() {
		lines = append(lines, fmt.Sprintf("      if ($a%d.lo32 & 0x%08x == %d)\n        %s\n",
			r.Arg.Index, uint32(t.mask), uint32(t.value), action))
	}
	// Lead with the most specific line, which tells rules of one syscall
	// apart.
	return append(lines[1:], lines[0])
}

func TestExportPFCIoctlMask(t *testing.T) {
	requireAMD64(t)
	_, blocks := exportPFC(t, Config{})
	// ioctl is 16; the request is compared on its low 32 bits only, so a
	// request with garbage in the upper half is caught as well.
	want := "  if ($syscall == 16)\n" +
		"    if ($a1.hi32 & 0x00000000 == 0)\n" +
		"      if ($a1.lo32 & 0xffffffff == 21532)\n" + // TIOCLINUX
		"        action ERRNO(1);\n" +
		"      if ($a1.lo32 & 0xffffffff == 21522)\n" + // TIOCSTI
		"        action ERRNO(1);\n"
	if b := blocks[16].text; !strings.Contains(b, want) {
		t.Errorf("ioctl block:\n%s\nwant it to contain:\n%s", b, want)
	}
}
