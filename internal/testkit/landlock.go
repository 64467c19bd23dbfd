package testkit

import (
	"testing"

	"github.com/vm-run/vm-run/landlock"
)

// RequireLandlockABI skips t unless vm-run can enforce Landlock ABI n on
// the running kernel (landlock.Support.EnforcedABI: from ABI 6 on that
// needs erratum 2 fixed). The skip message names the kernel's ABI and what
// is missing.
func RequireLandlockABI(t testing.TB, n int) {
	t.Helper()
	s := landlock.Detect()
	if got := s.EnforcedABI(); got < n {
		why := s.String()
		if s.ABI >= n {
			why += ", without erratum 2 (scoped signal handling)"
		}
		t.Skipf("needs Landlock ABI %d, have %s: enforceable up to ABI %d", n, why, got)
	}
}

// RequireLandlockFeature skips t unless vm-run can enforce f on the running
// kernel; the skip message is the *landlock.MissingFeatureError text,
// naming the feature, the kernel's ABI and what would provide f.
func RequireLandlockFeature(t testing.TB, f landlock.Feature) {
	t.Helper()
	_, err := landlock.Rules{Require: []landlock.Feature{f}}.Check(landlock.Detect())
	if err != nil {
		t.Skipf("needs Landlock feature %q: %v", f, err)
	}
}
