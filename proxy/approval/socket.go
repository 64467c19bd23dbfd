package approval

import (
	"bufio"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vm-run/vm-run/audit"
)

// Socket is the approval channel of `vm-run approvals`: the unix socket of
// one vm-run process, on which the questions its proxy asks wait until a
// person approves or denies them from another terminal. It implements
// [Approver].
//
// The socket listens from [Listen] until [Socket.Close], whether or not a
// question waits, and admits only peers of the caller's uid in the
// caller's user namespace (see "Who may connect" in the package manual).
type Socket struct {
	ln   *net.UnixListener
	path string
	name string
	self peerIdentity // whom peers must match
	logf func(format string, args ...any)
	lim  limits

	mu      sync.Mutex
	closed  bool
	asked   uint64 // questions asked so far, for their order
	waiting map[string]*waiter
	conns   map[*conn]struct{}

	slots chan struct{} // one per connection being served
	wg    sync.WaitGroup
}

// Options configure [Listen].
type Options struct {
	// Dir is the approvals directory; "" means [Dir]'s. It must pass the
	// checks [Dir] makes.
	Dir string
	// Logf, when set, is told of every connection the socket refused and
	// why. It is called from the socket's own goroutines.
	Logf func(format string, args ...any)
}

// limits bound what one client can take of the socket; the defaults are
// defaultLimits, and tests shorten them.
type limits struct {
	// conns is how many connections are served at once; more are refused.
	conns int
	// idle is how long a connection may take to send its next request,
	// unless it watches or holds a challenge.
	idle time.Duration
	// write bounds each reply's write: a client that stops reading is
	// dropped, never waited for.
	write time.Duration
	// queue is how many replies may wait for a slow reader.
	queue int
	// challenge is how long a connection holding a challenge for a
	// question without a deadline may wait for the person to type.
	challenge time.Duration
}

var defaultLimits = limits{conns: 32, idle: 30 * time.Second, write: 5 * time.Second, queue: 256, challenge: 10 * time.Minute}

// waiter is a question waiting for its answer. Whoever removes it from
// Socket.waiting (an answer, its Ask giving up, Close) sends its one
// result.
type waiter struct {
	q      Question
	order  uint64
	result chan result // buffered 1
}

type result struct {
	a   Answer
	err error
}

// Listen creates the approval socket of this process in the approvals
// directory and starts serving it. The socket's name is the pid and a
// random suffix; it is mode 0600 in a 0700 directory.
func Listen(opts Options) (*Socket, error) { return listen(opts, defaultLimits) }

func listen(opts Options, lim limits) (*Socket, error) {
	self, err := ownIdentity()
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = Dir(); err != nil {
			return nil, err
		}
	} else if err := checkDir(dir, self.uid); err != nil {
		return nil, err
	}
	name := strconv.Itoa(os.Getpid()) + "-" + randomString(8) + socketSuffix
	path := filepath.Join(dir, name)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on approval socket %q: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	// The directory already keeps everyone else out; the mode says so too.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("approval socket %q: %w", path, err)
	}
	s := &Socket{ln: ln, path: path, name: name, self: self, logf: opts.Logf, lim: lim,
		waiting: map[string]*waiter{}, conns: map[*conn]struct{}{}}
	s.start()
	return s, nil
}

// socketSuffix ends the name of every approval socket.
const socketSuffix = ".sock"

func (s *Socket) start() {
	s.slots = make(chan struct{}, s.lim.conns)
	s.wg.Add(1)
	go s.accept()
}

// Path returns the socket's path.
func (s *Socket) Path() string { return s.path }

// Ask puts q on the socket and waits for a person's answer: an approve
// with the one-time code of a challenge this same connection received, or
// a deny. Ask meets the [Approver] contract; besides ctx, q.Deadline (when
// set) ends the wait, with context.DeadlineExceeded. An answer the socket
// accepted (telling its sender so) before Ask saw ctx done is returned:
// no one is told that an answer counted when it did not.
//
// q.ID must be unique among the questions waiting on s and satisfy what
// [NewID] returns: 1 to 64 letters, digits, '-' or '_'.
func (s *Socket) Ask(ctx context.Context, q Question) (Answer, error) {
	if !validID(q.ID) {
		return Answer{}, fmt.Errorf("question id %q: want 1 to %d letters, digits, '-' or '_'", q.ID, maxIDLen)
	}
	if !q.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, q.Deadline)
		defer cancel()
	}
	w := &waiter{q: q, result: make(chan result, 1)}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return Answer{}, ErrClosed
	case s.waiting[q.ID] != nil:
		s.mu.Unlock()
		return Answer{}, fmt.Errorf("question id %q is already waiting", q.ID)
	}
	s.asked++
	w.order = s.asked
	s.waiting[q.ID] = w
	s.broadcast(func(c *conn) bool { return c.watching }, Reply{Type: ReplyEvent, Event: &Event{Type: EventAsked, Question: &w.q}})
	s.mu.Unlock()

	select {
	case r := <-w.result:
		return r.a, r.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.waiting[q.ID] == w {
		why := EndedWithdrawn
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = EndedExpired
		}
		s.end(w, why, result{err: ctx.Err()})
	}
	s.mu.Unlock()
	r := <-w.result
	return r.a, r.err
}

// end removes w, sends its result and tells the connections that watch or
// hold a challenge for it. s.mu is held.
func (s *Socket) end(w *waiter, why string, r result) {
	delete(s.waiting, w.q.ID)
	w.result <- r
	id := w.q.ID
	s.broadcast(func(c *conn) bool {
		_, challenged := c.challenges[id]
		delete(c.challenges, id)
		return c.watching || challenged
	}, Reply{Type: ReplyEvent, Event: &Event{Type: EventEnded, ID: id, Why: why}})
}

// broadcast queues r on every connection that match selects. s.mu is held.
func (s *Socket) broadcast(match func(*conn) bool, r Reply) {
	for c := range s.conns {
		if match(c) {
			c.send(r)
		}
	}
}

// questions returns the questions waiting, oldest first. s.mu is held.
func (s *Socket) questions() []Question {
	ws := make([]*waiter, 0, len(s.waiting))
	for _, w := range s.waiting {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *waiter) int { return cmp.Compare(a.order, b.order) })
	qs := make([]Question, len(ws))
	for i, w := range ws {
		qs[i] = w.q
	}
	return qs
}

// Close stops listening, removes the socket file, ends every question
// still waiting (their Ask returns [ErrClosed]) and drops every connection.
// It returns once the socket's goroutines have ended.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for _, w := range s.waiting {
		s.end(w, EndedClosed, result{err: ErrClosed})
	}
	for c := range s.conns {
		c.kill()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("close approval socket %q: %w", s.path, err)
	}
	return nil
}

// answer handles approve and deny from c. s.mu is held.
func (s *Socket) answer(c *conn, r Request) Reply {
	w := s.waiting[r.ID]
	if w == nil {
		return errorReply(CodeUnknownID, "no question %q waits in this vm-run process (pid %d)", r.ID, os.Getpid())
	}
	a := Answer{Channel: audit.ChannelCLI, By: c.peer.String(), Reason: r.Reason}
	if r.Op == OpApprove {
		if r.Scope == audit.ScopeTTL && w.q.TTL <= 0 {
			return errorReply(CodeTTLNotOffered, "question %q offers approve once only: its rule has no ttl", r.ID)
		}
		code, ok := c.challenges[r.ID]
		if !ok {
			return errorReply(CodeNoChallenge, "approving %q needs the code of a challenge on this connection", r.ID)
		}
		// One try per code: a wrong one voids it.
		delete(c.challenges, r.ID)
		if subtle.ConstantTimeCompare([]byte(strings.ToUpper(r.Code)), []byte(code)) != 1 {
			return errorReply(CodeWrongCode, "the code is not the one shown for %q; ask for a new one", r.ID)
		}
		a.Granted, a.Scope, a.Reason = true, r.Scope, ""
	}
	if !w.q.Deadline.IsZero() && !time.Now().Before(w.q.Deadline) {
		return errorReply(CodeExpired, "question %q expired at %s", r.ID, w.q.Deadline.Format(time.RFC3339))
	}
	s.end(w, EndedAnswered, result{a: a})
	return Reply{Type: ReplyDone}
}

func errorReply(code, format string, args ...any) Reply {
	return Reply{Type: ReplyError, Error: &Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// accept admits connections until the listener closes.
func (s *Socket) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: wait, and let the connections
			// being served end, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.admit(nc)
	}
}

// admit checks a new connection's peer and starts serving it, or refuses
// it with a reply the peer can read and closes it. Nothing here waits on
// the peer: the refusal is one short write into an empty socket buffer,
// under a deadline.
func (s *Socket) admit(nc *net.UnixConn) {
	refuse := func(code, format string, args ...any) {
		r := errorReply(code, format, args...)
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		writeReply(nc, r)
		nc.Close()
		if s.logf != nil {
			s.logf("approval socket %s: refused a connection: %s", s.path, r.Error.Message)
		}
	}
	peer, err := peerOf(nc)
	if err == nil {
		err = s.self.admits(peer)
	}
	if err != nil {
		refuse(CodePeerRefused, "%v", err)
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		refuse(CodeBusy, "%d connections are being served already (%s)", s.lim.conns, peer)
		return
	}
	c := newConn(s, nc, peer)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		<-s.slots
		return
	}
	s.conns[c] = struct{}{}
	c.send(Reply{Type: ReplyHello, Hello: &Hello{Proto: ProtocolVersion, PID: os.Getpid(), Socket: s.name}})
	s.mu.Unlock()
	s.wg.Add(2)
	go c.write()
	go c.read()
}

// conn is one client of the socket. Its reader goroutine reads and answers
// requests; its writer goroutine writes what is queued on out, the
// reader's replies and the socket's events alike, in order. Nothing the
// socket does waits on a client: a reply that finds the queue full drops
// the connection.
type conn struct {
	s    *Socket
	nc   *net.UnixConn
	peer peerIdentity
	out  chan Reply

	// Guarded by s.mu.
	watching   bool
	challenges map[string]string // question ID → its code
	dead       bool              // killed: send nothing more
}

func newConn(s *Socket, nc *net.UnixConn, peer peerIdentity) *conn {
	return &conn{s: s, nc: nc, peer: peer, out: make(chan Reply, s.lim.queue), challenges: map[string]string{}}
}

// send queues r for the writer. The caller holds s.mu, or is the reader
// (which alone closes out, and only after it left s.conns).
func (c *conn) send(r Reply) {
	if c.dead {
		return
	}
	select {
	case c.out <- r:
	default:
		c.kill()
	}
}

// kill drops the connection: its reader's next read fails, and it ends.
func (c *conn) kill() {
	c.dead = true
	c.nc.Close()
}

// write writes the queued replies, each under the write deadline, until
// the reader closes the queue; then it closes the connection.
func (c *conn) write() {
	defer c.s.wg.Done()
	failed := false
	for r := range c.out {
		if failed {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.s.lim.write))
		if err := writeReply(c.nc, r); err != nil {
			failed = true
			c.nc.Close()
		}
	}
	c.nc.Close()
}

func writeReply(w io.Writer, r Reply) error {
	b, err := json.Marshal(r)
	if err != nil {
		// Args that do not marshal (a value of a type JSON cannot hold)
		// must not take the connection down with a half line.
		b, _ = json.Marshal(errorReply(CodeBadRequest, "reply: %v", err))
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// read reads requests until the client hangs up, sends a line over
// MaxRequest, stays silent past its deadline, or is killed.
func (c *conn) read() {
	s := c.s
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		c.dead = true
		s.mu.Unlock()
		close(c.out)
		<-s.slots
		s.wg.Done()
	}()
	br := bufio.NewReaderSize(c.nc, MaxRequest)
	for {
		c.nc.SetReadDeadline(c.readDeadline())
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			c.reply(errorReply(CodeTooLong, "request over %d bytes", MaxRequest))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.reply(errorReply(CodeTimeout, "no request within %s", s.lim.idle))
			return
		case err != nil:
			// EOF, a half line before it, or the connection killed.
			return
		}
		r, err := parseRequest(line[:len(line)-1])
		if err != nil {
			c.reply(errorReply(CodeBadRequest, "%v", err))
			continue
		}
		c.handle(r)
	}
}

// reply queues a reply of the reader's own.
func (c *conn) reply(r Reply) {
	c.s.mu.Lock()
	c.send(r)
	c.s.mu.Unlock()
}

// readDeadline is how long the reader waits for the next request: the idle
// limit; while the client watches, for ever (it sends nothing, and the
// number of connections is bounded); while it holds a challenge, until the
// latest of those questions' deadlines, for a person is reading and typing.
func (c *conn) readDeadline() time.Time {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.watching {
		return time.Time{}
	}
	d := time.Now().Add(s.lim.idle)
	for id := range c.challenges {
		w := s.waiting[id]
		if w == nil {
			continue
		}
		until := w.q.Deadline
		if until.IsZero() {
			until = time.Now().Add(s.lim.challenge)
		}
		if until.After(d) {
			d = until
		}
	}
	return d
}

// handle answers one well-formed request.
func (c *conn) handle(r Request) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Op {
	case OpList:
		c.send(Reply{Type: ReplyQuestions, Questions: s.questions()})
	case OpWatch:
		// Under s.mu, so that no question is missed between the ones
		// waiting now and the events that follow, or seen twice.
		c.watching = true
		c.send(Reply{Type: ReplyWatching})
		for _, q := range s.questions() {
			c.send(Reply{Type: ReplyEvent, Event: &Event{Type: EventAsked, Question: &q}})
		}
	case OpChallenge:
		w := s.waiting[r.ID]
		if w == nil {
			c.send(errorReply(CodeUnknownID, "no question %q waits in this vm-run process (pid %d)", r.ID, os.Getpid()))
			return
		}
		code := newCode()
		c.challenges[r.ID] = code
		c.send(Reply{Type: ReplyChallenge, Challenge: &Challenge{Question: w.q, Code: code}})
	case OpApprove, OpDeny:
		c.send(s.answer(c, r))
	}
}
