package sandbox

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestChannel: typed messages go both ways whole, a large one included; a
// descriptor sent with a message arrives with that message and works;
// concurrent senders do not interleave; the peer's close reads as io.EOF,
// and a send to a closed peer as os.ErrProcessDone.
func TestChannel(t *testing.T) {
	parent, initEnd, err := newChannelPair()
	if err != nil {
		t.Fatal(err)
	}
	child := &channel{f: initEnd}
	defer parent.close()

	// A spec far larger than a socket buffer, with odd bytes in it.
	big := &Spec{Args: []string{strings.Repeat("x\n\"\x00é", 300_000)}, Dir: "/w"}
	go func() {
		if err := parent.send(&chanMsg{Type: msgSpec, Spec: big}); err != nil {
			t.Error(err)
		}
	}()
	m, err := child.recv()
	if err != nil || m.Type != msgSpec || m.Spec == nil || m.Spec.Args[0] != big.Args[0] {
		t.Fatalf("recv spec = %v, %v", m != nil, err)
	}

	// A descriptor travels with its message: a pipe's write end, through
	// which the test then writes.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := child.send(&chanMsg{Type: msgTUN}, int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	w.Close()
	m, fds, err := parent.recvFds(1)
	if err != nil || m.Type != msgTUN || len(fds) != 1 {
		t.Fatalf("recv tun = %+v, %v fds, %v", m, fds, err)
	}
	got := os.NewFile(uintptr(fds[0]), "passed")
	if _, err := got.Write([]byte("through")); err != nil {
		t.Fatal(err)
	}
	got.Close()
	if b, _ := io.ReadAll(r); string(b) != "through" {
		t.Errorf("read %q through the passed descriptor", b)
	}
	if flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("a received descriptor is inherited across exec")
	}

	// Concurrent senders: every message arrives whole.
	var wg sync.WaitGroup
	const senders, each = 8, 200
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := parent.send(&chanMsg{Type: msgSignal, Signal: 15}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range senders * each {
		m, err := child.recv()
		if err != nil || m.Type != msgSignal || m.Signal != 15 {
			t.Fatalf("message %d of the concurrent senders = %+v, %v", i, m, err)
		}
	}
	wg.Wait()

	// The peer's end.
	child.close()
	if _, err := parent.recv(); err != io.EOF {
		t.Errorf("recv after the peer closed = %v, want io.EOF", err)
	}
	if err := parent.send(&chanMsg{Type: msgSignal, Signal: 1}); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("send after the peer closed = %v, want os.ErrProcessDone", err)
	}
}

// TestChannelClosedEnd: sending on an end already closed says so with
// os.ErrClosed, which Process.Signal turns into os.ErrProcessDone.
func TestChannelClosedEnd(t *testing.T) {
	parent, initEnd, err := newChannelPair()
	if err != nil {
		t.Fatal(err)
	}
	initEnd.Close()
	parent.close()
	if err := parent.send(&chanMsg{Type: msgSignal, Signal: 1}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("send on a closed end = %v, want os.ErrClosed", err)
	}
}

// TestChannelUnexpectedFds: a descriptor on a message that carries none,
// or more than the receiver takes, is a protocol error, not a descriptor
// the receiver must then deal with.
func TestChannelUnexpectedFds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fds    int
		maxFds int
	}{{"none expected", 1, 0}, {"one too many", 2, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			parent, initEnd, err := newChannelPair()
			if err != nil {
				t.Fatal(err)
			}
			child := &channel{f: initEnd}
			defer parent.close()
			defer child.close()
			var fds []int
			for range tc.fds {
				fds = append(fds, int(os.Stdin.Fd()))
			}
			if err := child.send(&chanMsg{Type: msgStarted, Started: 1}, fds...); err != nil {
				t.Fatal(err)
			}
			if m, got, err := parent.recvFds(tc.maxFds); err == nil {
				t.Fatalf("recvFds(%d) of a message with %d descriptors = %+v, %v, nil; want an error", tc.maxFds, tc.fds, m, got)
			}
		})
	}
}
