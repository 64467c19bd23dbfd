package testkit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/landlock"
)

// skipRecorder is a testing.TB whose Skipf records the message instead of
// ending the test.
type skipRecorder struct {
	testing.TB
	skipped string
}

func (r *skipRecorder) Helper() {}

func (r *skipRecorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}

func TestRequireLandlockABI(t *testing.T) {
	s := landlock.Detect()
	r := &skipRecorder{TB: t}
	RequireLandlockABI(r, 99)
	want := fmt.Sprintf("needs Landlock ABI 99, have %s", s)
	if !strings.HasPrefix(r.skipped, want) {
		t.Errorf("RequireLandlockABI(99) skipped with %q, want a message starting %q", r.skipped, want)
	}
	if s.EnforcedABI() >= 1 {
		r := &skipRecorder{TB: t}
		RequireLandlockABI(r, s.EnforcedABI())
		if r.skipped != "" {
			t.Errorf("RequireLandlockABI(%d) on %v skipped: %q", s.EnforcedABI(), s, r.skipped)
		}
	}
}

func TestRequireLandlockFeature(t *testing.T) {
	r := &skipRecorder{TB: t}
	RequireLandlockFeature(r, "teleport")
	if !strings.Contains(r.skipped, `needs Landlock feature "teleport": unknown landlock feature`) {
		t.Errorf("RequireLandlockFeature(teleport) skipped with %q, want it to name the feature", r.skipped)
	}
	s := landlock.Detect()
	for _, fs := range s.Features() {
		r := &skipRecorder{TB: t}
		RequireLandlockFeature(r, fs.Feature)
		if skipped := r.skipped != ""; skipped == fs.Available {
			t.Errorf("RequireLandlockFeature(%q) on %v skipped with %q, want skip = %v",
				fs.Feature, s, r.skipped, !fs.Available)
		}
		if !fs.Available && !strings.Contains(r.skipped, fs.Need) {
			t.Errorf("RequireLandlockFeature(%q) skipped with %q, want it to name %q", fs.Feature, r.skipped, fs.Need)
		}
	}
}
