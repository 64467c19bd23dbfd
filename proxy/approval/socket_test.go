package approval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// newSocket serves a socket in a fresh directory of the test's.
func newSocket(t *testing.T, lim limits) *Socket {
	t.Helper()
	s, err := listen(Options{Dir: privateDir(t), Logf: t.Logf}, lim)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// privateDir makes a directory the checks accept: the test's, mode 0700.
func privateDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "approvals")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func dial(t *testing.T, s *Socket) *Client {
	t.Helper()
	c, err := Dial(t.Context(), s.Path())
	if err != nil {
		t.Fatalf("dial %s: %v", s.Path(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// asking is a question being asked on its own goroutine.
type asking struct {
	cancel context.CancelFunc
	done   chan result
}

// ask asks q on s and returns once q is waiting, as a watcher sees it.
func ask(t *testing.T, s *Socket, q Question) *asking {
	t.Helper()
	w, err := Dial(t.Context(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch(t.Context()); err != nil {
		t.Fatalf("watch: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	a := &asking{cancel: cancel, done: make(chan result, 1)}
	go func() {
		ans, err := s.Ask(ctx, q)
		a.done <- result{ans, err}
	}()
	for ev := range w.Events() {
		if ev.Type == EventAsked && ev.Question.ID == q.ID {
			return a
		}
	}
	t.Fatalf("the watcher ended before %q was asked: %v", q.ID, w.Err())
	return nil
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s = %v, want error %s", what, err, code)
	}
}

func question(id string) Question {
	return Question{ID: id, Server: "strict: node server.js", Kind: "tool", Name: "write_file",
		Args: map[string]any{"path": "src/a.go"}, Rule: "ask-writes", Reason: "writes need a person"}
}

func TestApprove(t *testing.T) {
	by := fmt.Sprintf("uid=%d pid=%d", os.Geteuid(), os.Getpid())
	tests := []struct {
		name        string
		ttl         time.Duration
		scope       string
		wantRefusal string // the first approve's error code, then approve once
		want        Answer
	}{
		{name: "once", scope: audit.ScopeOnce,
			want: Answer{Granted: true, Scope: audit.ScopeOnce, Channel: audit.ChannelCLI, By: by}},
		{name: "default scope is once", scope: "",
			want: Answer{Granted: true, Scope: audit.ScopeOnce, Channel: audit.ChannelCLI, By: by}},
		{name: "ttl offered", ttl: time.Hour, scope: audit.ScopeTTL,
			want: Answer{Granted: true, Scope: audit.ScopeTTL, Channel: audit.ChannelCLI, By: by}},
		{name: "ttl not offered", scope: audit.ScopeTTL, wantRefusal: CodeTTLNotOffered,
			want: Answer{Granted: true, Scope: audit.ScopeOnce, Channel: audit.ChannelCLI, By: by}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSocket(t, defaultLimits)
			q := question("q1")
			q.TTL = tt.ttl
			a := ask(t, s, q)
			c := dial(t, s)
			ch, err := c.Challenge(t.Context(), q.ID)
			if err != nil {
				t.Fatalf("challenge: %v", err)
			}
			if ch.Question.ID != q.ID || ch.Question.Rule != q.Rule || ch.Question.TTL != q.TTL || !validCode(ch.Code) {
				t.Fatalf("challenge = %+v, want question %+v and a code", ch, q)
			}
			err = c.Approve(t.Context(), q.ID, tt.scope, ch.Code)
			if tt.wantRefusal != "" {
				wantCode(t, "approve "+tt.scope, err, tt.wantRefusal)
				// The refusal kept the challenge: approve once works.
				err = c.Approve(t.Context(), q.ID, audit.ScopeOnce, ch.Code)
			}
			if err != nil {
				t.Fatalf("approve: %v", err)
			}
			r := <-a.done
			if r.err != nil || r.a != tt.want {
				t.Fatalf("Ask = %+v, %v, want %+v", r.a, r.err, tt.want)
			}
			// Answered: it waits no more.
			if qs, err := c.List(t.Context()); err != nil || len(qs) != 0 {
				t.Fatalf("list after the answer = %v, %v, want none", qs, err)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	s := newSocket(t, defaultLimits)
	a := ask(t, s, question("q1"))
	c := dial(t, s)
	// Denying needs no challenge: a no is always safe.
	if err := c.Deny(t.Context(), "q1", "not today"); err != nil {
		t.Fatalf("deny: %v", err)
	}
	r := <-a.done
	want := Answer{Channel: audit.ChannelCLI, By: fmt.Sprintf("uid=%d pid=%d", os.Geteuid(), os.Getpid()), Reason: "not today"}
	if r.err != nil || r.a != want {
		t.Fatalf("Ask = %+v, %v, want %+v", r.a, r.err, want)
	}
}

func TestRefusedAnswers(t *testing.T) {
	s := newSocket(t, defaultLimits)
	a := ask(t, s, question("q1"))
	c, other := dial(t, s), dial(t, s)
	ctx := t.Context()

	_, err := c.Challenge(ctx, "nope")
	wantCode(t, "challenge of an unknown id", err, CodeUnknownID)
	wantCode(t, "approve of an unknown id", c.Approve(ctx, "nope", audit.ScopeOnce, "ABCDEF"), CodeUnknownID)
	wantCode(t, "deny of an unknown id", c.Deny(ctx, "nope", ""), CodeUnknownID)
	wantCode(t, "approve without a challenge", c.Approve(ctx, "q1", audit.ScopeOnce, "ABCDEF"), CodeNoChallenge)

	ch, err := other.Challenge(ctx, "q1")
	if err != nil {
		t.Fatal(err)
	}
	// Another connection's code is worth nothing here.
	wantCode(t, "approve with another connection's code", c.Approve(ctx, "q1", audit.ScopeOnce, ch.Code), CodeNoChallenge)

	wrong := "222222"
	if ch.Code == wrong {
		wrong = "333333"
	}
	wantCode(t, "approve with a wrong code", other.Approve(ctx, "q1", audit.ScopeOnce, wrong), CodeWrongCode)
	// One try: the right code no longer counts either.
	wantCode(t, "approve after a wrong code", other.Approve(ctx, "q1", audit.ScopeOnce, ch.Code), CodeNoChallenge)

	select {
	case r := <-a.done:
		t.Fatalf("Ask returned %+v, %v after refused answers only", r.a, r.err)
	default:
	}
	// A fresh challenge, typed in lower case as a person might.
	ch, err = other.Challenge(ctx, "q1")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Approve(ctx, "q1", audit.ScopeOnce, lower(ch.Code)); err != nil {
		t.Fatalf("approve with a fresh code: %v", err)
	}
	if r := <-a.done; r.err != nil || !r.a.Granted {
		t.Fatalf("Ask = %+v, %v, want granted", r.a, r.err)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestDeadlinePasses: the question expires while a person holds its
// challenge: the connection is told, the code no longer approves, and Ask
// returns DeadlineExceeded.
func TestDeadlinePasses(t *testing.T) {
	s := newSocket(t, defaultLimits)
	// The challenge must come before the deadline; on a loaded machine
	// that may take a few tries with longer deadlines.
	for margin := 500 * time.Millisecond; ; margin *= 2 {
		q := question(NewID())
		q.Deadline = time.Now().Add(margin)
		a := ask(t, s, q)
		c := dial(t, s)
		ch, err := c.Challenge(t.Context(), q.ID)
		if err != nil {
			if margin > time.Minute {
				t.Fatalf("challenge: %v", err)
			}
			<-a.done
			continue
		}
		ev, ok := <-c.Events()
		if want := (Event{Type: EventEnded, ID: q.ID, Why: EndedExpired}); !ok || ev.Type != want.Type || ev.ID != want.ID || ev.Why != want.Why {
			t.Fatalf("event = %+v (%v), want %+v", ev, c.Err(), want)
		}
		wantCode(t, "approve after the deadline", c.Approve(t.Context(), q.ID, audit.ScopeOnce, ch.Code), CodeUnknownID)
		if r := <-a.done; !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("Ask = %+v, %v, want %v", r.a, r.err, context.DeadlineExceeded)
		}
		return
	}
}

// TestWithdrawn: the caller's context ends (the client cancelled the
// call): the question is withdrawn, and both a watcher and the
// connection holding its challenge are told.
func TestWithdrawn(t *testing.T) {
	s := newSocket(t, defaultLimits)
	a := ask(t, s, question("q1"))
	c, w := dial(t, s), dial(t, s)
	if err := w.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := <-w.Events(); ev.Type != EventAsked || ev.Question.ID != "q1" {
		t.Fatalf("first watch event = %+v, want q1 asked", ev)
	}
	ch, err := c.Challenge(t.Context(), "q1")
	if err != nil {
		t.Fatal(err)
	}
	a.cancel()
	if r := <-a.done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Ask = %+v, %v, want %v", r.a, r.err, context.Canceled)
	}
	for _, cl := range []*Client{c, w} {
		if ev := <-cl.Events(); ev.Type != EventEnded || ev.ID != "q1" || ev.Why != EndedWithdrawn {
			t.Fatalf("event = %+v (%v), want q1 ended withdrawn", ev, cl.Err())
		}
	}
	wantCode(t, "approve after withdrawal", c.Approve(t.Context(), "q1", audit.ScopeOnce, ch.Code), CodeUnknownID)
}

func TestClose(t *testing.T) {
	s := newSocket(t, defaultLimits)
	a := ask(t, s, question("q1"))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if r := <-a.done; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Ask after Close = %+v, %v, want %v", r.a, r.err, ErrClosed)
	}
	if _, err := os.Lstat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v, want it removed", err)
	}
	if _, err := s.Ask(t.Context(), question("q2")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ask on a closed socket = %v, want %v", err, ErrClosed)
	}
}

func TestAskRefusesBadIDs(t *testing.T) {
	s := newSocket(t, defaultLimits)
	for _, id := range []string{"", "a b", "a\x1b[2J", string(make([]byte, 65))} {
		if _, err := s.Ask(t.Context(), question(id)); err == nil {
			t.Errorf("Ask(id %q) = nil error, want one", id)
		}
	}
	ask(t, s, question("dup"))
	if _, err := s.Ask(t.Context(), question("dup")); err == nil {
		t.Errorf("Ask of an id already waiting = nil error, want one")
	}
}
