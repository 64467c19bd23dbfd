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
// any. The kernel attaches descriptors to the bytes they were sent with
// and ends a read at the first byte that carries them when data came
// before (unix_stream_read_generic, net/unix/af_unix.c), so a message's
// descriptors arrive with the read that returns its first byte. The
// receiver asks for them only where the protocol has some (the tun
// message); descriptors on any other message, or on a later read of one,
// are a protocol error, and the channel is then of no further use.

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
	// network mode egress only, after the spec:
	msgTUN     = "tun"     // init → parent: the TUN device, as its one descriptor
	msgNetwork = "network" // parent → init: the device is attached; go on
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
	broken bool // a send failed part-way; guarded by sendMu
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
	if c.broken {
		return os.ErrClosed
	}
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
			// Half a message would garble every later one: none
			// follows it.
			if len(buf) < 4+len(body) {
				c.broken = true
				c.f.Close()
			}
			if serr == unix.EPIPE || serr == unix.ECONNRESET {
				return os.ErrProcessDone
			}
			return os.NewSyscallError("sendmsg", serr)
		}
		buf, oob = buf[n:], nil // descriptors go with the first byte
	}
	return nil
}

// recv reads the next message. At the peer's end it returns io.EOF. A
// message carrying descriptors is an error; see recvFds.
func (c *channel) recv() (*chanMsg, error) {
	m, _, err := c.recvFds(0)
	return m, err
}

// recvFds reads the next message and up to maxFds descriptors it carries,
// which the caller then owns. With maxFds 0 it asks for none, and the
// kernel discards any sent (MSG_CTRUNC), which is a protocol error.
func (c *channel) recvFds(maxFds int) (*chanMsg, []int, error) {
	var head [4]byte
	fds, err := c.read(head[:], maxFds)
	if err != nil {
		return nil, nil, err
	}
	n := binary.NativeEndian.Uint32(head[:])
	if n > maxChanMsg {
		closeFds(fds)
		return nil, nil, fmt.Errorf("channel: message of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := c.read(body, 0); err != nil {
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

// read fills b, taking up to maxFds descriptors with its first recvmsg.
// Descriptors anywhere else, or more than maxFds, are an error.
func (c *channel) read(b []byte, maxFds int) ([]int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fds []int
	var oob []byte
	if maxFds > 0 {
		oob = make([]byte, unix.CmsgSpace(maxFds*4))
	}
	for got := 0; got < len(b); {
		var n, oobn, flags int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), b[got:], oob, unix.MSG_CMSG_CLOEXEC)
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
			fds = append(fds, parseRights(oob[:oobn])...)
		}
		// The control buffer is rounded up to a multiple of 8 bytes
		// (CMSG_SPACE), so it may hold one descriptor more than asked.
		if flags&unix.MSG_CTRUNC != 0 || len(fds) > maxFds {
			closeFds(fds)
			return nil, errors.New("channel: more descriptors than the message may carry")
		}
		oob = nil // only the first read may carry them
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
