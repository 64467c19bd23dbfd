package selftest

import (
	"context"
	"os"
	"testing"
)

// TestBaselines runs every attack without the sandbox: each must work on
// this machine, or its probe must say why it cannot work here at all. A
// baseline that fails otherwise means a broken probe or fixture, and a
// blocked sandboxed run of it would prove nothing.
func TestBaselines(t *testing.T) {
	self := vmRunBinary(t)
	isolateHome(t)
	if inReachableCopy(t, self) {
		return
	}
	u := User{UID: os.Getuid(), GID: os.Getgid()}
	if u.UID == 0 {
		u = nobody
	}
	fx, prof, err := setup(Options{ProfileName: "strict"}, self, u)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	defer fx.close()
	r := &runner{self: self, opts: Options{ProfileName: "strict"}, profile: prof, fx: fx}
	for _, a := range battery() {
		t.Run(a.name, func(t *testing.T) {
			e, err := r.env(a, false)
			if err != nil {
				t.Fatalf("env: %v", err)
			}
			if a.skip != nil {
				if why := a.skip(e); why != "" {
					t.Logf("skipped by the battery: %s", why)
					return
				}
			}
			o, err := r.baseline(context.Background(), a)
			if err != nil {
				t.Fatalf("baseline: %v", err)
			}
			if err := fx.files(); err != nil {
				t.Fatalf("restore fixtures: %v", err)
			}
			var row Row
			judgeBaseline(&row, o)
			switch row.Baseline {
			case Proven:
				t.Logf("escapes: %s", row.BaselineDetail)
			case Impossible:
				t.Logf("impossible here: %s (%s)", row.Why, row.BaselineDetail)
			default:
				t.Errorf("baseline = %s: %s", row.Baseline, row.BaselineDetail)
			}
		})
	}
}
