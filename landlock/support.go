package landlock

import (
	"fmt"
	"slices"
)

// erratumScopedSignal is the bit of erratum 2 ("Scoped signal handling") in
// the bitmask landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_ERRATA)
// returns: erratum N is bit N-1 (security/landlock/setup.c, compute_errata).
//
// Without the fix, a thread may not signal another thread of its own process
// that sits in a different Landlock domain (security/landlock/errata/abi-6.h;
// Documentation/userspace-api/landlock.rst, "Errata"). Below ABI 8 every
// thread is in a different domain after Restrict: go-landlock enforces the
// ruleset thread by thread through psx, and each landlock_restrict_self(2)
// call creates a new domain. The Go runtime signals its own threads (async
// preemption sends SIGURG with tgkill) and psx signals every thread to run a
// system call, so on such a kernel signal scoping would break vm-run itself.
const erratumScopedSignal = 1 << (2 - 1)

// maxABI is the newest ABI go-landlock v0.11.0 knows (landlock.V11); a newer
// kernel is used at this level.
const maxABI = 11

// featureInfo is what a feature needs from the kernel and what is left
// unenforced without it.
type featureInfo struct {
	feature Feature
	abi     int
	erratum int // erratum number that must be fixed, 0 for none
	what    string
	// unenforced says what the sandbox can do without the feature, for
	// best-effort warnings.
	unenforced string
}

// features lists every feature in ABI order.
//
// Every feature from ABI 6 on needs erratum 2. For scope-signal that is the
// kernel bug described at erratumScopedSignal. For the others it is
// go-landlock: its ABI detection (landlock/internal/abi.go in v0.11.0)
// reports ABI 5 for any kernel of ABI 6 or later without erratum 2 and then
// refuses every configuration beyond ABI 5, so such a kernel cannot be
// asked for them.
var features = []featureInfo{
	{FeatureFilesystem, 1, 0,
		"restrict reading, writing and executing files to the profile's paths",
		"the sandbox can read, write and execute any file its uid can"},
	{FeatureRefer, 2, 0,
		"allow renaming and linking files between writable directories",
		"renaming or linking files between directories fails with EXDEV"},
	{FeatureTruncate, 3, 0,
		"restrict truncating files to writable paths",
		"the sandbox can truncate any file it can open, even read-only ones"},
	{FeatureTCP, 4, 0,
		"restrict TCP connect and bind to the profile's ports",
		"the sandbox can connect and bind to any TCP port"},
	{FeatureIoctlDev, 5, 0,
		"restrict ioctl on device files to the profile's devices",
		"the sandbox can use any ioctl on any device file it can open"},
	{FeatureScopeAbstractUnix, 6, 2,
		"deny connecting to abstract unix sockets outside the sandbox",
		"the sandbox can connect to abstract unix sockets of its network namespace"},
	{FeatureScopeSignal, 6, 2,
		"deny signals to processes outside the sandbox",
		"the sandbox can signal processes outside it that its uid may signal"},
	{FeatureResolveUnix, 9, 2,
		"deny connecting to pathname unix sockets made outside the sandbox",
		"the sandbox can connect to any pathname unix socket it can see"},
	{FeatureUDP, 10, 2,
		"deny UDP bind and send",
		"the sandbox can bind and send UDP on any port"},
}

func lookupFeature(f Feature) (featureInfo, bool) {
	for _, fi := range features {
		if fi.feature == f {
			return fi, true
		}
	}
	return featureInfo{}, false
}

// need says what provides fi, e.g. "ABI 6 with erratum 2".
func (fi featureInfo) need() string {
	if fi.erratum != 0 {
		return fmt.Sprintf("ABI %d with erratum %d", fi.abi, fi.erratum)
	}
	return fmt.Sprintf("ABI %d", fi.abi)
}

// Support is what the running kernel offers, as reported by [Detect].
type Support struct {
	// ABI is the kernel's Landlock ABI version; 0 when Landlock is not
	// built in or disabled at boot.
	ABI int
	// Errata is the bitmask of fixed errata (erratum N is bit N-1).
	Errata int
	// Reason says why ABI is 0, in words a user can act on.
	Reason string
}

// EnforcedABI is the ABI level Restrict enforces on s: the kernel's, capped
// at the newest go-landlock knows (11), and at 5 when erratum 2 is not fixed
// (see [Support.Has]).
func (s Support) EnforcedABI() int {
	abi := min(s.ABI, maxABI)
	if abi >= 6 && s.Errata&erratumScopedSignal == 0 {
		abi = 5
	}
	return max(abi, 0)
}

// Has reports whether Restrict enforces f on this kernel. It is false for
// features this package does not know.
func (s Support) Has(f Feature) bool {
	fi, ok := lookupFeature(f)
	if !ok {
		return false
	}
	if fi.erratum != 0 && s.Errata&(1<<(fi.erratum-1)) == 0 {
		return false
	}
	return s.EnforcedABI() >= fi.abi
}

// FeatureStatus is one line of `vm-run doctor`: a feature, what it needs and
// whether this kernel has it.
type FeatureStatus struct {
	Feature     Feature `json:"feature"`
	ABI         int     `json:"abi"`               // ABI version that introduced it
	Erratum     int     `json:"erratum,omitempty"` // erratum that must be fixed, 0 for none
	Need        string  `json:"need"`              // e.g. "ABI 6 with erratum 2"
	Description string  `json:"description"`
	Available   bool    `json:"available"`
}

// Features lists every feature this package knows, in ABI order, with its
// availability on s.
func (s Support) Features() []FeatureStatus {
	out := make([]FeatureStatus, 0, len(features))
	for _, fi := range features {
		out = append(out, FeatureStatus{
			Feature:     fi.feature,
			ABI:         fi.abi,
			Erratum:     fi.erratum,
			Need:        fi.need(),
			Description: fi.what,
			Available:   s.Has(fi.feature),
		})
	}
	return out
}

// missing returns the error for f on s; f must be known.
func (s Support) missing(fi featureInfo) *MissingFeatureError {
	e := &MissingFeatureError{
		Feature: fi.feature,
		ABI:     s.ABI,
		Errata:  s.Errata,
		Need:    fi.need(),
	}
	if s.ABI == 0 {
		e.Reason = s.Reason
	}
	return e
}

// String describes s for `vm-run doctor`, e.g. "Landlock ABI 7, errata 0x7".
func (s Support) String() string {
	if s.ABI == 0 {
		if s.Reason == "" {
			return "no Landlock"
		}
		return "no Landlock: " + s.Reason
	}
	return fmt.Sprintf("Landlock ABI %d, errata %#x", s.ABI, s.Errata)
}

// Required returns the features r needs enforced: those in r.Require plus
// those its grants imply, without duplicates, in the order of r.Require
// followed by the implied ones.
//
// A grant implies the feature that makes it an allow-list: paths imply
// filesystem, ports imply tcp, devices imply ioctl-dev. Without the feature
// the grant still works, but so does everything it was meant to be the only
// exception to, and a profile that states a rule gets it enforced or vm-run
// refuses to start (DESIGN.md, "Profiles").
func (r Rules) Required() []Feature {
	var out []Feature
	add := func(f Feature) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, f := range r.Require {
		add(f)
	}
	if len(r.Read)+len(r.Exec)+len(r.Write)+len(r.Devices) > 0 {
		add(FeatureFilesystem)
	}
	if len(r.ConnectTCP)+len(r.BindTCP) > 0 {
		add(FeatureTCP)
	}
	if len(r.Devices) > 0 {
		add(FeatureIoctlDev)
	}
	return out
}

// Check reports whether s enforces every feature r requires (see
// [Rules.Required]). The first one missing makes it return a
// *MissingFeatureError, unless r.BestEffort is set: then it returns one
// warning per missing feature that names what will not be enforced. A
// feature name this package does not know is an error wrapping
// [ErrUnknownFeature] even with BestEffort.
func (r Rules) Check(s Support) (warnings []string, err error) {
	for _, f := range r.Required() {
		fi, ok := lookupFeature(f)
		if !ok {
			return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownFeature, f, knownFeatures())
		}
		if s.Has(f) {
			continue
		}
		e := s.missing(fi)
		if !r.BestEffort {
			return nil, e
		}
		warnings = append(warnings, fmt.Sprintf("%v; best_effort: %s", e, fi.unenforced))
	}
	return warnings, nil
}

func knownFeatures() string {
	s := ""
	for i, fi := range features {
		if i > 0 {
			s += ", "
		}
		s += string(fi.feature)
	}
	return s
}
