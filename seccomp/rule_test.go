//go:build linux

package seccomp

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		allow   []string
		wantErr string // substring; "" for no error
	}{
		{nil, ""},
		{[]string{"unix-sockets"}, ""},
		{[]string{"numa", "unix-sockets"}, ""},
		{[]string{"unix"}, `unknown syscall group "unix" (valid: unix-sockets, numa)`},
		{[]string{"numa", "ptrace"}, `"ptrace"`},
		{[]string{""}, `unknown syscall group ""`},
		{[]string{"NUMA"}, `"NUMA"`},
	}
	for _, tt := range tests {
		err := Config{Allow: tt.allow}.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want nil", tt.allow, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Validate(%q) = %v, want error containing %q", tt.allow, err, tt.wantErr)
		case tt.wantErr != "" && !errors.Is(err, ErrUnknownGroup):
			t.Errorf("Validate(%q) = %v, want it to wrap ErrUnknownGroup", tt.allow, err)
		}
	}
}

// termsMatch reports whether v matches the union of terms.
func termsMatch(terms []maskedEqual, v uint64) bool {
	for _, t := range terms {
		if v&t.mask == t.value {
			return true
		}
	}
	return false
}

// sampleArgs returns argument values that exercise a 32-bit mask: every value
// with at most two bits set or at most two bits clear, with and without
// garbage in the upper half, and random values.
func sampleArgs() []uint64 {
	var vs []uint64
	add := func(v uint32) {
		vs = append(vs, uint64(v), uint64(v)|0xdead_beef_0000_0000, uint64(v)|1<<32)
	}
	add(0)
	add(0xffffffff)
	for i := range 32 {
		add(1 << i)
		add(^uint32(1 << i))
		for j := i + 1; j < 32; j++ {
			add(1<<i | 1<<j)
			add(^uint32(1<<i | 1<<j))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 4000 {
		vs = append(vs, r.Uint64())
		add(r.Uint32() & 0x0042_000f) // near the personality flags
	}
	return vs
}

func TestBitsOutsideTerms(t *testing.T) {
	tests := []struct {
		mask, keep uint64
		wantTerms  int
	}{
		{0xffffffff, perLinux32 | uname26, 32}, // personality
		{0xffffffff, 0, 32},
		{0xff, 0x0f, 8},
		{0x3, 0x1, 1}, // one bad bit: only the kept bit's term
		{0x1, 0x0, 0}, // the only value with the bad bit is the excluded all-ones
		{0x3, 0x3, 0}, // nothing is outside keep
	}
	args := sampleArgs()
	for _, tt := range tests {
		a := Arg{Op: OpBitsOutside, Mask: tt.mask, Value: tt.keep}
		terms := a.terms()
		if len(terms) != tt.wantTerms {
			t.Errorf("terms(%#x, keep %#x): %d terms, want %d", tt.mask, tt.keep, len(terms), tt.wantTerms)
		}
		for _, v := range args {
			if got, want := termsMatch(terms, v), a.Matches(v); got != want {
				t.Fatalf("terms(%#x, keep %#x) match %#x = %v, want %v", tt.mask, tt.keep, v, got, want)
			}
		}
		// Small masks: check every value.
		if tt.mask <= 0xff {
			for v := range uint64(0x200) {
				if got, want := termsMatch(terms, v), a.Matches(v); got != want {
					t.Errorf("terms(%#x, keep %#x) match %#x = %v, want %v", tt.mask, tt.keep, v, got, want)
				}
			}
		}
	}
}

func TestPersonalityArg(t *testing.T) {
	a := Arg{Op: OpBitsOutside, Mask: 0xffffffff, Value: perLinux32 | uname26}
	tests := []struct {
		v    uint64
		want bool
	}{
		{0, false},
		{perLinux32, false},
		{uname26, false},
		{perLinux32 | uname26, false},
		{0xffffffff, false},            // query
		{0xffff_ffff_ffff_ffff, false}, // query as the kernel sees it
		{1 << 32, false},               // the kernel sees PER_LINUX
		{0x0040000, true},              // ADDR_NO_RANDOMIZE
		{0x0400000, true},              // READ_IMPLIES_EXEC
		{0x0100000, true},              // MMAP_PAGE_ZERO
		{1<<32 | 0x0040000, true},      // high garbage does not hide it
		{0xfffffffe, true},             // all but one bit
		{perLinux32 | 0x0040000, true}, // a harmless flag does not excuse a bad one
		{0x0001, true},                 // PER_SVR4 execution domain
	}
	for _, tt := range tests {
		if got := a.Matches(tt.v); got != tt.want {
			t.Errorf("personality rule Matches(%#x) = %v, want %v", tt.v, got, tt.want)
		}
		if got := termsMatch(a.terms(), tt.v); got != tt.want {
			t.Errorf("personality terms match %#x = %v, want %v", tt.v, got, tt.want)
		}
	}
	if n := bits.OnesCount64(a.Mask); len(a.terms()) != n {
		t.Errorf("personality rule expands to %d terms, want %d (one per mask bit)", len(a.terms()), n)
	}
}

func TestRuleString(t *testing.T) {
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{Syscall: "bpf", Errno: 1}, "bpf: EPERM"},
		{Rule{Syscall: "clone3", Errno: 38}, "clone3: ENOSYS"},
		{Rule{Syscall: "socket", Errno: 13, Group: "unix-sockets",
			Arg: &Arg{Op: OpMaskedEqual, Mask: 0xffffffff, Value: 1, Name: "AF_UNIX"}},
			"socket: EACCES when arg0&0xffffffff == 0x1 (AF_UNIX) [unix-sockets]"},
		{Rule{Syscall: "personality", Errno: 1,
			Arg: &Arg{Op: OpBitsOutside, Mask: 0xffffffff, Value: 0x20008}},
			"personality: EPERM when arg0&0xffffffff has bits outside 0x20008 and is not 0xffffffff"},
	}
	for _, tt := range tests {
		if got := tt.rule.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
