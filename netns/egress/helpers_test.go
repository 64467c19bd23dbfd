package egress

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/vm-run/vm-run/audit"
)

// fakeRecorder keeps what it is given, or fails with err when set.
type fakeRecorder struct {
	mu     sync.Mutex
	events []audit.Event
	err    error
}

func (f *fakeRecorder) Record(_ context.Context, ev audit.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeRecorder) all() []audit.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.Event(nil), f.events...)
}

var errDiskFull = errors.New("ledger: no space left on device")

// mustAllowlist builds an allowlist of short-form rules.
func mustAllowlist(t testing.TB, rules ...string) *Allowlist {
	t.Helper()
	var rs []Rule
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		rs = append(rs, r)
	}
	a, err := NewAllowlist(rs)
	if err != nil {
		t.Fatalf("NewAllowlist(%q): %v", rules, err)
	}
	return a
}

// ruleString is r.String(), or "" for nil.
func ruleString(r *Rule) string {
	if r == nil {
		return ""
	}
	return r.String()
}
