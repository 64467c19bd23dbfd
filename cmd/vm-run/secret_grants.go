package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/sandbox"
)

// approve puts the question for a secret under approve: ask to a person,
// unless a grant for the same profile, secret and value is still within
// its ttl, and records the question and its answer, each on disk before it
// takes effect. Any outcome but a yes is an error: the command does not
// start.
func (sl *secretLaunch) approve(ctx context.Context, name string, s profiles.Secret, sum string) error {
	rule := "secret:" + name
	ttl := time.Duration(s.TTL) * time.Second
	// The grant is for this profile (its file, when given by path) and
	// this server command, as a pin is: the question named them.
	profile := sl.profileArg
	if profile == "" {
		profile = sl.profile.Name
	}
	pk, err := pinKey(profile, sl.argv)
	if err != nil {
		return err
	}
	key := grantKey(pk.ID(), name, sum)
	if ttl > 0 {
		if sl.grants == nil {
			g, err := openGrants()
			if err != nil {
				return err
			}
			sl.grants = g
		}
		if g, ok, err := sl.grants.find(key, time.Now(), ttl); err != nil {
			return err
		} else if ok {
			return sl.log(ctx, audit.ApprovalGranted{ID: approval.NewID(), Channel: audit.ChannelRemembered, By: g.ID,
				Scope: audit.ScopeTTL, TTLNS: int64(time.Until(g.Expires)), Kind: "secret", Name: name, Rule: rule})
		}
	}
	if sl.approver == nil {
		return &sandbox.SetupError{Code: sandbox.ExitSetup,
			Msg: fmt.Sprintf("secret %q needs approval but no approval channel is available", name),
			Hint: fmt.Sprintf("start vm-run where `vm-run approvals` can answer it, or set approve: none for %q in profile %q "+
				"if no person needs to approve it", name, sl.profile.Name)}
	}
	timeout := sl.timeout
	if timeout <= 0 {
		timeout = secretAskTimeout
	}
	kind, where := s.Source()
	q := approval.Question{
		ID: approval.NewID(), Server: serverName(sl.profile.Name, sl.argv), Kind: "secret", Name: name, Rule: rule,
		Reason:   fmt.Sprintf("profile %s hands secret %s (%s %s) to the server", sl.profile.Name, name, kind, where),
		TTL:      ttl,
		Deadline: time.Now().Add(timeout),
	}
	if err := sl.log(ctx, audit.ApprovalRequested{ID: q.ID, Kind: q.Kind, Name: name, Rule: rule, Reason: q.Reason,
		Channels: []string{audit.ChannelCLI}, TimeoutNS: int64(timeout), TTLNS: int64(ttl)}); err != nil {
		return err
	}
	fmt.Fprintf(sl.stderr, "vm-run: secret %q waits for approval (question %s, %v): vm-run approvals approve %s\n",
		name, q.ID, timeout, q.ID)
	actx, cancel := context.WithDeadline(ctx, q.Deadline)
	ans, err := sl.approver.Ask(actx, q)
	cancel()
	switch {
	case err == nil && ans.Granted:
		scope := ans.Scope
		if scope != audit.ScopeTTL || ttl == 0 {
			scope = audit.ScopeOnce
		}
		g := audit.ApprovalGranted{ID: q.ID, Channel: ans.Channel, By: ans.By, Scope: scope, Kind: "secret", Name: name, Rule: rule}
		if scope == audit.ScopeTTL {
			g.TTLNS = int64(ttl)
		}
		if err := sl.log(ctx, g); err != nil {
			return err
		}
		if scope == audit.ScopeTTL {
			if err := sl.grants.add(key, q.ID, time.Now().Add(ttl)); err != nil {
				// The approval stands; the next session asks again.
				fmt.Fprintf(sl.stderr, "vm-run: warning: the approval of secret %q is not remembered: %v\n", name, err)
			}
		}
		return nil
	case err == nil:
		if lerr := sl.log(ctx, audit.ApprovalDenied{ID: q.ID, Channel: ans.Channel, By: ans.By, Reason: ans.Reason}); lerr != nil {
			return lerr
		}
		return &sandbox.SetupError{Code: sandbox.ExitSetup,
			Msg:  fmt.Sprintf("secret %q: approval denied by %s", name, ans.By),
			Hint: "nothing was started; run vm-run again to be asked again"}
	}
	reason, msg := "session end", fmt.Sprintf("secret %q: no approval: %v", name, err)
	if errors.Is(err, context.DeadlineExceeded) {
		reason, msg = "timeout", fmt.Sprintf("secret %q: no answer within %v", name, timeout)
	}
	if lerr := sl.log(ctx, audit.ApprovalExpired{ID: q.ID, Reason: reason}); lerr != nil {
		return lerr
	}
	return &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: msg,
		Hint: "nothing was started; answer with `vm-run approvals approve ID` while vm-run waits"}
}

func (sl *secretLaunch) log(ctx context.Context, ev audit.Event) error {
	if _, err := sl.ledger.Log(ctx, ev); err != nil {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "ledger", Msg: err.Error(),
			Hint: "nothing was started; check the ledger's disk (space, permissions)"}
	}
	return nil
}

// grantKey names a grant: the profile and server command (as a pin key's
// ID), the secret and the value's SHA-256, hashed together, so that a
// grant ends when the value changes, covers no other server, and the file
// says nothing of which profiles hold which secrets.
func grantKey(server, name, sum string) string {
	h := sha256.Sum256([]byte(server + "\x00" + name + "\x00" + sum))
	return hex.EncodeToString(h[:])
}

// grantStore is the file that remembers approvals of secrets with a ttl
// across sessions: secret-grants.json in the caller's approvals directory
// (approval.Dir: $XDG_RUNTIME_DIR/vm-run/approvals, /run/user/UID/...,
// or a directory of the caller's in the temp dir; each checked to be the
// caller's, mode 0700, not a link). The file must be the caller's, mode
// 0600 or stricter; it is locked (flock) while read and rewritten, since
// several vm-run processes may use it. The sandbox reaches none of these
// places (strict hides /run and /tmp).
type grantStore struct{ path string }

type grant struct {
	Key     string    `json:"key"`
	ID      string    `json:"id"` // the question that granted it
	Expires time.Time `json:"expires"`
}

func openGrants() (*grantStore, error) {
	dir, err := approval.Dir()
	if err != nil {
		se := &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: err.Error()}
		var de *approval.DirError
		if errors.As(err, &de) {
			se.Hint = de.Hint()
		}
		return nil, se
	}
	return &grantStore{path: filepath.Join(dir, "secret-grants.json")}, nil
}

// find returns the grant for key still running at now. A grant is
// believed only as far as the profile's ttl reaches today: an expiry later
// than now+ttl (a ttl since shortened, or a file tampered with) does not
// count.
func (g *grantStore) find(key string, now time.Time, ttl time.Duration) (grant, bool, error) {
	var found grant
	var ok bool
	err := g.update(func(gs []grant) []grant {
		for _, x := range gs {
			if x.Key == key && x.Expires.After(now) && !x.Expires.After(now.Add(ttl)) {
				found, ok = x, true
			}
		}
		return nil
	})
	return found, ok, err
}

func (g *grantStore) add(key, id string, expires time.Time) error {
	return g.update(func(gs []grant) []grant {
		return append(gs, grant{Key: key, ID: id, Expires: expires})
	})
}

// update reads the grants, drops the expired ones, and writes back what
// f returns (nil: nothing to write beyond pruning), under an exclusive
// lock of the file.
func (g *grantStore) update(f func([]grant) []grant) error {
	fd, err := syscall.Open(g.path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return g.fail(&os.PathError{Op: "open", Path: g.path, Err: err})
	}
	file := os.NewFile(uintptr(fd), g.path)
	defer file.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return g.fail(err)
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return g.fail(errors.New("not a regular file"))
	case int(st.Uid) != os.Geteuid():
		return g.fail(fmt.Errorf("owned by uid %d, not you", st.Uid))
	case st.Mode&0o077 != 0:
		return g.fail(fmt.Errorf("mode %04o, open to others", st.Mode&0o777))
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return g.fail(&os.SyscallError{Syscall: "flock", Err: err})
	}
	data, err := io.ReadAll(io.LimitReader(file, 1<<20))
	if err != nil {
		return g.fail(err)
	}
	var gs []grant
	if len(data) > 0 {
		if err := json.Unmarshal(data, &gs); err != nil {
			return g.fail(fmt.Errorf("unreadable: %w", err))
		}
	}
	now := time.Now()
	live := gs[:0]
	for _, x := range gs {
		if x.Expires.After(now) {
			live = append(live, x)
		}
	}
	add := f(live)
	if add == nil && len(live) == len(gs) {
		return nil
	}
	if add != nil {
		live = add
	}
	out, err := json.Marshal(live)
	if err != nil {
		return g.fail(err)
	}
	if err := file.Truncate(0); err != nil {
		return g.fail(err)
	}
	if _, err := file.WriteAt(out, 0); err != nil {
		return g.fail(err)
	}
	return nil
}

func (g *grantStore) fail(err error) error {
	return &sandbox.SetupError{Code: sandbox.ExitSetup,
		Msg:  fmt.Sprintf("approval grants %q: %v", g.path, err),
		Hint: fmt.Sprintf("remove it (rm %s); approvals of secrets are then asked for again", shellQuote([]string{g.path}))}
}
