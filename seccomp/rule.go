package seccomp

import (
	"fmt"
	"math/bits"
	"strings"
	"syscall"
)

// Rule is one entry of the deny list: calls of Syscall whose arguments match
// Arg fail with Errno instead of running. Calls from any architecture other
// than the native one never reach the rules; the filter kills the process
// (see the package documentation).
type Rule struct {
	// Syscall is the name as in syscalls(2) and libseccomp.
	Syscall string
	// Errno is what the call returns: EPERM in general, ENOSYS where callers
	// are known to fall back to an older call on it, EACCES for AF_UNIX
	// sockets, matching what Landlock answers for denied paths.
	Errno syscall.Errno
	// Arg, when not nil, limits the rule to calls whose argument matches.
	Arg *Arg
	// Group names the entry of [OptInGroups] that lifts the rule, or is
	// empty when nothing does.
	Group string
	// Reason says in a few words what the call would let the sandbox do.
	Reason string
}

// String renders the rule for humans, as in "socket: EACCES when
// arg0&0xffffffff == 0x1 [unix-sockets]".
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", r.Syscall, errnoName(r.Errno))
	if r.Arg != nil {
		fmt.Fprintf(&b, " when %s", r.Arg)
	}
	if r.Group != "" {
		fmt.Fprintf(&b, " [%s]", r.Group)
	}
	return b.String()
}

// errnoName returns the symbolic name of the errno values the rules use.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ENOSYS:
		return "ENOSYS"
	}
	return fmt.Sprintf("errno %d", int(e))
}

// Op is how an [Arg] compares a syscall argument.
type Op int

const (
	// OpMaskedEqual matches when arg&Mask == Value.
	OpMaskedEqual Op = iota + 1
	// OpBitsOutside matches when arg&Mask has a bit set that Value does not
	// have, unless arg&Mask == Mask. It expresses "anything but these flags,
	// or the all-ones query" for personality(2).
	OpBitsOutside
)

// Arg is a condition on one syscall argument. Masks below 1<<32 make the
// condition see only the low 32 bits, which is what the kernel sees of an
// argument it declares int or unsigned int: a caller may put anything in the
// upper half of the register (Documentation/userspace-api/seccomp_filter.rst
// warns that filters see the full 64-bit value).
type Arg struct {
	Index uint // argument position, from 0
	Op    Op
	Mask  uint64
	Value uint64
	// Name, when not empty, names Value for humans, e.g. "CLONE_NEWUSER".
	Name string
}

// String renders the condition, as in "arg0&0x10000000 == 0x10000000
// (CLONE_NEWUSER)".
func (a Arg) String() string {
	var s string
	switch a.Op {
	case OpMaskedEqual:
		s = fmt.Sprintf("arg%d&%#x == %#x", a.Index, a.Mask, a.Value)
	case OpBitsOutside:
		s = fmt.Sprintf("arg%d&%#x has bits outside %#x and is not %#x",
			a.Index, a.Mask, a.Value, a.Mask)
	default:
		s = fmt.Sprintf("arg%d: unknown op %d", a.Index, a.Op)
	}
	if a.Name != "" {
		s += " (" + a.Name + ")"
	}
	return s
}

// Matches reports whether argument value v satisfies the condition. It is the
// reference the generated filter is tested against.
func (a Arg) Matches(v uint64) bool {
	m := v & a.Mask
	switch a.Op {
	case OpMaskedEqual:
		return m == a.Value
	case OpBitsOutside:
		return m&^a.Value != 0 && m != a.Mask
	}
	return false
}

// maskedEqual is one libseccomp SCMP_CMP_MASKED_EQ comparison:
// arg&mask == value.
type maskedEqual struct{ mask, value uint64 }

// terms returns masked-equal comparisons whose union matches exactly the
// values a matches. libseccomp takes one comparison per argument in a rule
// (two on the same argument is an error), so a condition that is not a single
// comparison becomes several rules, one per term. An empty result means the
// condition matches nothing.
func (a Arg) terms() []maskedEqual {
	switch a.Op {
	case OpMaskedEqual:
		return []maskedEqual{{a.Mask, a.Value}}
	case OpBitsOutside:
		return bitsOutsideTerms(a.Mask, a.Value)
	}
	return nil
}

// bitsOutsideTerms covers {v : v&mask has a bit outside keep, v&mask != mask}
// with two-bit terms "bit j clear and bit t set". Let s0 < s1 < ... be the
// bits of mask outside keep (the "bad" bits). For each bad bit j the term
// pairs it with the next bad bit t in cyclic order; for each kept bit j it
// pairs it with s0.
//
// Every term lies in the set: t is bad and set, and j is clear so v&mask is
// not all ones. Every member v is covered: if some bad bit is set and some bad
// bit is clear, walking the cycle of bad bits finds a clear one followed by a
// set one; if all bad bits are set, some kept bit j is clear (v&mask != mask)
// and the term for j applies. No cover can be smaller than one term per mask
// bit, since mask with just bit j cleared is a member that only a term
// requiring bit j clear can hold.
func bitsOutsideTerms(mask, keep uint64) []maskedEqual {
	bad := mask &^ keep
	if bad == 0 {
		return nil
	}
	var badBits []int
	for b := bad; b != 0; b &= b - 1 {
		badBits = append(badBits, bits.TrailingZeros64(b))
	}
	var terms []maskedEqual
	for m := mask; m != 0; m &= m - 1 {
		j := bits.TrailingZeros64(m)
		t := badBits[0]
		for i, b := range badBits {
			if b == j {
				t = badBits[(i+1)%len(badBits)]
			}
		}
		if t == j {
			continue // j is the only bad bit; the kept bits' terms cover it
		}
		terms = append(terms, maskedEqual{mask: 1<<j | 1<<t, value: 1 << t})
	}
	return terms
}
