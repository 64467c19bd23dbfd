package approval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Client is one connection to an approval socket: `vm-run approvals`'s
// side of the protocol. Its methods other than Events and Close must not
// be called concurrently.
type Client struct {
	// Hello is the socket's first line: the vm-run process behind it.
	Hello Hello

	nc      net.Conn
	replies chan Reply
	events  chan Event
	err     error // why the reader ended; read after replies is closed
}

// ErrStale is the error of Dial on a socket file that no process listens
// on any more: a vm-run that died without removing it.
var ErrStale = errors.New("no vm-run process listens on it")

// Dial connects to the approval socket at path and reads its hello.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("approval socket %q: %w", path, ErrStale)
		}
		return nil, fmt.Errorf("connect to approval socket %q: %w", path, err)
	}
	c := &Client{nc: nc, replies: make(chan Reply, 1), events: make(chan Event, 256)}
	go c.read()
	r, err := c.receive(ctx, ReplyHello)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("approval socket %q: %w", path, err)
	}
	if r.Hello.Proto != ProtocolVersion {
		nc.Close()
		return nil, fmt.Errorf("approval socket %q speaks protocol %d, this vm-run %d: use the vm-run binary that serves it", path, r.Hello.Proto, ProtocolVersion)
	}
	c.Hello = *r.Hello
	return c, nil
}

// read delivers the broker's lines: events on c.events, the rest on
// c.replies, until the connection ends.
func (c *Client) read() {
	br := bufio.NewReader(c.nc)
	defer close(c.events)
	defer close(c.replies)
	for {
		line, err := readLine(br, MaxReply)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("vm-run closed the connection")
			}
			c.err = err
			return
		}
		var r Reply
		if err := json.Unmarshal(line, &r); err != nil {
			c.err = fmt.Errorf("reply: %w", err)
			return
		}
		if r.Type == ReplyEvent {
			if r.Event == nil {
				c.err = errors.New("reply: event without its event")
				return
			}
			c.events <- *r.Event
			continue
		}
		c.replies <- r
	}
}

// readLine reads a line of at most limit bytes, without its newline.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var buf bytes.Buffer
	for {
		part, err := br.ReadSlice('\n')
		if buf.Len()+len(part) > limit {
			return nil, fmt.Errorf("reply over %d bytes", limit)
		}
		buf.Write(part)
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			if buf.Len() > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// receive waits for the next reply, which must be of type want; an error
// reply is returned as its *Error.
func (c *Client) receive(ctx context.Context, want string) (Reply, error) {
	select {
	case r, ok := <-c.replies:
		switch {
		case !ok:
			return Reply{}, c.err
		case r.Type == ReplyError && r.Error != nil:
			return r, r.Error
		case r.Type != want || want == ReplyHello && r.Hello == nil ||
			want == ReplyChallenge && r.Challenge == nil:
			return r, fmt.Errorf("vm-run answered %q where %q was due", r.Type, want)
		}
		return r, nil
	case <-ctx.Done():
		c.nc.Close()
		return Reply{}, ctx.Err()
	}
}

func (c *Client) roundTrip(ctx context.Context, req Request, want string) (Reply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Reply{}, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultLimits.write)
	}
	c.nc.SetWriteDeadline(deadline)
	if _, err := c.nc.Write(append(b, '\n')); err != nil {
		return Reply{}, fmt.Errorf("send %s: %w", req.Op, err)
	}
	return c.receive(ctx, want)
}

// List returns the questions waiting on the socket, oldest first.
func (c *Client) List(ctx context.Context) ([]Question, error) {
	r, err := c.roundTrip(ctx, Request{Op: OpList}, ReplyQuestions)
	return r.Questions, err
}

// Challenge asks for the one-time code that approves question id on this
// connection, and returns it with the question as it stands. From here
// on, Events delivers the question's end should it end before Approve.
func (c *Client) Challenge(ctx context.Context, id string) (Challenge, error) {
	r, err := c.roundTrip(ctx, Request{Op: OpChallenge, ID: id}, ReplyChallenge)
	if err != nil {
		return Challenge{}, err
	}
	return *r.Challenge, nil
}

// Approve approves question id for scope (audit.ScopeOnce or
// audit.ScopeTTL) with the code of this connection's challenge. It
// returns nil only when the answer counted.
func (c *Client) Approve(ctx context.Context, id, scope, code string) error {
	_, err := c.roundTrip(ctx, Request{Op: OpApprove, ID: id, Scope: scope, Code: code}, ReplyDone)
	return err
}

// Deny denies question id, with what the person said, if anything.
func (c *Client) Deny(ctx context.Context, id, reason string) error {
	_, err := c.roundTrip(ctx, Request{Op: OpDeny, ID: id, Reason: reason}, ReplyDone)
	return err
}

// Watch turns the connection into a stream: Events delivers the questions
// waiting now, each as EventAsked, then every question asked or ended.
func (c *Client) Watch(ctx context.Context) error {
	_, err := c.roundTrip(ctx, Request{Op: OpWatch}, ReplyWatching)
	return err
}

// Events delivers the events of a watch or of a challenge's question. It
// is closed when the connection ends; Err then says why.
func (c *Client) Events() <-chan Event { return c.events }

// Err says why the connection ended, once Events is closed.
func (c *Client) Err() error { return c.err }

// Close hangs up.
func (c *Client) Close() error { return c.nc.Close() }
