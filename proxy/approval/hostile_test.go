package approval

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// rawConn connects to s and reads its hello, speaking the protocol by
// hand, as a hostile client would.
func rawConn(t *testing.T, s *Socket) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br := bufio.NewReader(nc)
	if r := readReply(t, br); r.Type != ReplyHello {
		t.Fatalf("first line = %+v, want hello", r)
	}
	return nc, br
}

func readReply(t *testing.T, br *bufio.Reader) Reply {
	t.Helper()
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	var r Reply
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return r
}

// wantClosed checks that the socket hung up after the replies read.
func wantClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if line, err := br.ReadBytes('\n'); err == nil {
		t.Fatalf("read %q, want the connection closed", line)
	}
}

// TestHostileClients: what a client sends can neither crash nor stall the
// socket: after each, a question is still answered.
func TestHostileClients(t *testing.T) {
	lim := defaultLimits
	lim.conns, lim.idle = 3, time.Second
	s := newSocket(t, lim)

	t.Run("garbage, then a request", func(t *testing.T) {
		nc, br := rawConn(t, s)
		for _, line := range []string{"", "{", "null", `{"op":"list","x":1}`, `{"op":"approve"}`,
			`{"op":"deny","id":"a b"}`, `{"op":"list"} {"op":"list"}`, "\xff\xfe", `{"op":"list","id":"q"}`} {
			nc.Write([]byte(line + "\n"))
			if r := readReply(t, br); r.Type != ReplyError || r.Error.Code != CodeBadRequest {
				t.Fatalf("reply to %q = %+v, want %s", line, r, CodeBadRequest)
			}
		}
		nc.Write([]byte(`{"op":"list"}` + "\n"))
		if r := readReply(t, br); r.Type != ReplyQuestions {
			t.Fatalf("reply to list after garbage = %+v, want questions", r)
		}
	})

	t.Run("line over the limit", func(t *testing.T) {
		nc, br := rawConn(t, s)
		go nc.Write([]byte(`{"op":"deny","id":"q","reason":"` + strings.Repeat("x", 2*MaxRequest) + "\"}\n"))
		if r := readReply(t, br); r.Type != ReplyError || r.Error.Code != CodeTooLong {
			t.Fatalf("reply to a long line = %+v, want %s", r, CodeTooLong)
		}
		wantClosed(t, br)
	})

	t.Run("silent client", func(t *testing.T) {
		_, br := rawConn(t, s)
		if r := readReply(t, br); r.Type != ReplyError || r.Error.Code != CodeTimeout {
			t.Fatalf("reply to silence = %+v, want %s", r, CodeTimeout)
		}
		wantClosed(t, br)
	})

	t.Run("too many connections", func(t *testing.T) {
		var held []net.Conn
		for range lim.conns {
			nc, _ := rawConn(t, s)
			held = append(held, nc)
		}
		nc, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		if r := readReply(t, br); r.Type != ReplyError || r.Error.Code != CodeBusy {
			t.Fatalf("reply past the limit = %+v, want %s", r, CodeBusy)
		}
		wantClosed(t, br)
		for _, c := range held {
			c.Close()
		}
		// The slots come free as the socket sees the hang-ups.
		for {
			c, err := Dial(t.Context(), s.Path())
			if err == nil {
				c.Close()
				break
			}
			wantCode(t, "dial after the hang-ups", err, CodeBusy)
		}
	})

	t.Run("a watcher that never reads", func(t *testing.T) {
		lim := defaultLimits
		lim.queue = 4
		s := newSocket(t, lim)
		nc, _ := rawConn(t, s)
		nc.Write([]byte(`{"op":"watch"}` + "\n"))
		// Questions with large arguments fill the socket's buffer and the
		// watcher's queue; each Ask must still go through.
		big := strings.Repeat("x", 256<<10)
		for i := range 16 {
			q := question(NewID())
			q.Args = map[string]any{"content": big, "n": i}
			a := ask(t, s, q)
			a.cancel()
			<-a.done
		}
	})

	// After all of that, a person still gets through.
	a := ask(t, s, question("last"))
	c := dial(t, s)
	ch, err := c.Challenge(t.Context(), "last")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Approve(t.Context(), "last", audit.ScopeOnce, ch.Code); err != nil {
		t.Fatal(err)
	}
	if r := <-a.done; r.err != nil || !r.a.Granted {
		t.Fatalf("Ask = %+v, %v, want granted", r.a, r.err)
	}
}

func TestDirChecks(t *testing.T) {
	uid := os.Geteuid()
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	open := mk("open", 0o755)
	writable := mk("writable", 0o777)
	link := filepath.Join(base, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		ok   bool
	}{
		{private, true},
		{open, false},
		{link, false},
		{file, false},
		{filepath.Join(base, "missing"), false},
	}
	for _, tt := range tests {
		err := checkDir(tt.path, uid)
		var de *DirError
		if (err == nil) != tt.ok || err != nil && (!errors.As(err, &de) || de.Hint() == "") {
			t.Errorf("checkDir(%q) = %v, want ok %v (and a DirError with a hint)", tt.path, err, tt.ok)
		}
	}
	if err := checkDir(private, uid+1); err == nil {
		t.Errorf("checkDir(%q) for uid %d = nil, want an error: the directory is uid %d's", private, uid+1, uid)
	}

	t.Setenv("XDG_RUNTIME_DIR", private)
	d, err := Dir()
	if want := filepath.Join(private, "vm-run", "approvals"); err != nil || d != want {
		t.Fatalf("Dir() = %q, %v, want %q", d, err, want)
	}
	if err := checkDir(filepath.Join(private, "vm-run"), uid); err != nil {
		t.Errorf("Dir made %v", err)
	}
	for _, x := range []string{writable, "relative/dir", filepath.Join(base, "missing")} {
		t.Setenv("XDG_RUNTIME_DIR", x)
		if d, err := Dir(); err == nil {
			t.Errorf("Dir() with XDG_RUNTIME_DIR=%q = %q, want an error", x, d)
		}
	}
}

// FuzzParseRequest: whatever a client sends, parseRequest does not panic,
// and a request it accepts is one the broker can act on (a valid ID where
// the op takes one, a known scope, a code of the right form) and survives
// a round trip through its JSON form unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"list"}`, `{"op":"watch"}`, `{"op":"challenge","id":"q1"}`,
		`{"op":"approve","id":"q1","scope":"ttl","code":"ABC234"}`,
		`{"op":"approve","id":"q1","code":"abc234"}`,
		`{"op":"deny","id":"q1","reason":"no"}`, `{"op":"deny","id":"q1","reason":"\u001b[2J"}`,
		`{"op":"approve","id":"q1","scope":"forever","code":"ABC234"}`,
		`{"op":"list","op":"watch"}`, `{"op":"list"}{}`, `{"OP":"list"}`, `[]`, `""`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseRequest(line)
		if err != nil {
			return
		}
		switch r.Op {
		case OpChallenge, OpApprove, OpDeny:
			if !validID(r.ID) {
				t.Fatalf("parseRequest(%q) accepted id %q", line, r.ID)
			}
		case OpList, OpWatch:
		default:
			t.Fatalf("parseRequest(%q) accepted op %q", line, r.Op)
		}
		if r.Op == OpApprove && (r.Scope != "once" && r.Scope != "ttl" || !validCode(r.Code)) {
			t.Fatalf("parseRequest(%q) accepted approve %+v", line, r)
		}
		if len(r.Reason) > MaxReason {
			t.Fatalf("parseRequest(%q) accepted a reason of %d bytes", line, len(r.Reason))
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseRequest(b)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("parseRequest(%q) = %+v; its JSON %s parses to %+v, %v", line, r, b, again, err)
		}
	})
}
