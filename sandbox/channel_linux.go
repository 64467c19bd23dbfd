package sandbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The channel between the parent and the init stage: one AF_UNIX stream
// socketpair, the init stage's end on descriptor chanFd; the message
// sequence is drawn in doc.go ("The channel").
//
// A message is a 4-byte length in native byte order, then that many bytes
// of JSON, written with one sendmsg(2) together with its descriptors, if
// any: the kernel hands a message's descriptors to the recvmsg(2) that
// reads its first byte, and never merges data carrying descriptors with
// other data in one read (unix_stream_read_generic), so reading the
// length with room for them gets exactly that message's.

// chanFd is the init stage's end of the channel. Trees of a private home
// follow it (firstTreeFd).
const chanFd = 3

// maxChanMsg bounds one message: a spec holds the seccomp program and the
// environment, far below this.
const maxChanMsg = 64 << 20

// maxChanFds bounds the descriptors one message may carry.
const maxChanFds = 8

// Message types.
const (
	msgSpec    = "spec"    // parent → init: the spec, once, first
	msgSignal  = "signal"  // parent → init: a signal for the command
	msgStarted = "started" // init → parent: the command runs
	msgError   = "error"   // init → parent: setup failed; the init stage exits
	msgExit    = "exit"    // init → parent: the command ended, last
)

// chanMsg is one message on the channel; Type says which field is set.
type chanMsg struct {
	Type    string      `json:"type"`
	Spec    *Spec       `json:"spec,omitempty"`
	Signal  int         `json:"signal,omitempty"`
	Started int         `json:"started,omitempty"` // the command's pid inside
	Error   *SetupError `json:"error,omitempty"`
	Exit    *Status     `json:"exit,omitempty"`
}

// channel is one end of the socketpair. send and recv may be used from
// different goroutines; sends are serialised by sendMu.
type channel struct {
	f      *os.File
	sendMu sync.Mutex
}

// newChannelPair returns the parent's end and the init stage's end, both
// close-on-exec (the init stage's is dup'ed onto chanFd by the spawn,
// which clears the flag there).
func newChannelPair() (*channel, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	// The parent's end in the runtime's poller, so that closing it wakes
	// a goroutine reading it; the init stage's stays blocking.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return &channel{f: os.NewFile(uintptr(fds[0]), "channel")}, os.NewFile(uintptr(fds[1]), "channel"), nil
}

// send writes m with fds attached. It does not take ownership of fds.
func (c *channel) send(m *chanMsg, fds ...int) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(body) > maxChanMsg || len(fds) > maxChanFds {
		return fmt.Errorf("channel: %s message too large (%d bytes, %d descriptors)", m.Type, len(body), len(fds))
	}
	buf := make([]byte, 4+len(body))
	binary.NativeEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	rc, err := c.f.SyscallConn()
	if err != nil {
		return os.ErrClosed
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for len(buf) > 0 {
		var n int
		var serr error
		if err := rc.Write(func(fd uintptr) bool {
			n, serr = unix.SendmsgN(int(fd), buf, oob, nil, unix.MSG_NOSIGNAL)
			return serr != unix.EAGAIN
		}); err != nil {
			// Only a closed file fails here (the runtime's "use of
			// closed file"): this end is closed.
			return os.ErrClosed
		}
		if serr != nil {
			if serr == unix.EPIPE || serr == unix.ECONNRESET {
				return os.ErrProcessDone
			}
			return os.NewSyscallError("sendmsg", serr)
		}
		buf, oob = buf[n:], nil // descriptors go with the first byte
	}
	return nil
}

// recv reads the next message and the descriptors it carries, which the
// caller then owns. At the peer's end it returns io.EOF.
func (c *channel) recv() (*chanMsg, []int, error) {
	var head [4]byte
	fds, err := c.read(head[:], true)
	if err != nil {
		return nil, nil, err
	}
	n := binary.NativeEndian.Uint32(head[:])
	if n > maxChanMsg {
		closeFds(fds)
		return nil, nil, fmt.Errorf("channel: message of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := c.read(body, false); err != nil {
		closeFds(fds)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, err
	}
	// Both ends are the same binary: a field one does not know is a bug.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m chanMsg
	if err := dec.Decode(&m); err != nil {
		closeFds(fds)
		return nil, nil, fmt.Errorf("channel: %w", err)
	}
	return &m, fds, nil
}

// read fills b, taking the descriptors of the first read when withFds.
// Descriptors arriving later are closed: the sender attaches them to a
// message's first byte only.
func (c *channel) read(b []byte, withFds bool) ([]int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fds []int
	oob := make([]byte, unix.CmsgSpace(maxChanFds*4))
	for got := 0; got < len(b); {
		var n, oobn int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b[got:], oob, unix.MSG_CMSG_CLOEXEC)
			return rerr != unix.EAGAIN
		}); err != nil {
			closeFds(fds)
			return nil, err
		}
		if rerr != nil {
			closeFds(fds)
			return nil, os.NewSyscallError("recvmsg", rerr)
		}
		if oobn > 0 {
			got := parseRights(oob[:oobn])
			if withFds && fds == nil {
				fds = got
			} else {
				closeFds(got)
			}
		}
		if n == 0 {
			closeFds(fds)
			if got == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		got += n
	}
	return fds, nil
}

// parseRights returns the descriptors of SCM_RIGHTS messages in oob.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// close closes this end: the peer reads io.EOF, and, for the init stage,
// sees the parent gone.
func (c *channel) close() error {
	err := c.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
