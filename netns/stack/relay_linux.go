//go:build linux

package stack

import (
	"errors"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/vm-run/vm-run/audit"
)

// Copy buffers. A relay holds a buffer only while bytes move through it,
// not while it waits for them, so idle connections cost none. Up to
// maxBigBufs large buffers are lent at once, for bulk streams; beyond
// that each read gets a small one. Together they bound the stack's
// relay buffers to maxBigBufs×bigBuf plus two small ones per connection.
const (
	bigBuf     = 256 << 10
	smallBuf   = 16 << 10
	maxBigBufs = 64
)

var (
	bigBufs   = sync.Pool{New: func() any { b := make([]byte, bigBuf); return &b }}
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	bigLent   atomic.Int32
)

func getBuf() *[]byte {
	if bigLent.Add(1) <= maxBigBufs {
		return bigBufs.Get().(*[]byte)
	}
	bigLent.Add(-1)
	return smallBufs.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if len(*b) == bigBuf {
		bigBufs.Put(b)
		bigLent.Add(-1)
		return
	}
	smallBufs.Put(b)
}

// relay carries one allowed connection between the sandbox (inside) and
// its upstream, both ways, until both have closed their side, one fails,
// it stays idle for Limits.IdleTimeout or the stack closes.
type relay struct {
	s      *Stack
	a      *attempt
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	inside *gonet.TCPConn
	up     net.Conn

	out, in atomic.Uint64 // payload to and from the upstream
	// last is when either direction last read, in nanoseconds since
	// start (monotonic).
	last  atomic.Int64
	start time.Time
	timer *time.Timer

	once sync.Once
	mu   sync.Mutex
	// reason is why vm-run ended the relay, "" when both sides closed.
	reason string
}

// relay runs the connection's relay in the calling goroutine (the one
// the forwarder gave the SYN) and a second one, and records its NetClose
// when both directions are done. first is what was read inside before
// dialling (the ClientHello): it goes upstream first.
func (s *Stack) relay(a *attempt, up net.Conn, first []byte) {
	r := &relay{s: s, a: a, ep: a.ep, wq: a.wq, inside: a.conn, up: up, start: time.Now()}
	if tc, ok := up.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	s.mu.Lock()
	a.relayed = true
	s.handshakes--
	closed := s.closed
	if !closed {
		s.relays[r] = struct{}{}
		// Joins the handler goroutine, which holds its own count.
		s.wg.Add(1)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.relays, r)
		s.conns--
		s.mu.Unlock()
		r.mu.Lock()
		reason := r.reason
		r.mu.Unlock()
		s.recordClose(a, r.out.Load(), r.in.Load(), reason)
	}()
	if closed {
		// Close began after the allow record: end at once.
		r.end("session end")
		r.closeBoth()
		return
	}
	r.timer = time.AfterFunc(s.lim.IdleTimeout, r.checkIdle)
	defer r.timer.Stop()

	down := make(chan struct{})
	go func() {
		defer s.wg.Done()
		defer close(down)
		r.pump(r.inside, r.upstreamReader(), &r.in, &s.n.bytesIn, "upstream")
	}()
	if len(first) > 0 {
		if _, err := up.Write(first); err != nil {
			r.end("upstream: " + err.Error())
		} else {
			r.out.Add(uint64(len(first)))
			s.n.bytesOut.Add(uint64(len(first)))
		}
	}
	r.pump(r.up, r.insideReader(), &r.out, &s.n.bytesOut, "sandbox")
	<-down
	r.closeBoth()
}

// A reader waits for bytes and returns them in a lent buffer (given back
// with putBuf once written), io.EOF when its side has closed, or another
// error.
type reader func() (b *[]byte, n int, err error)

// pump copies from read to dst until read's side ends, then half-closes
// dst (a FIN to its peer), so that a program that shuts down its sending
// side still gets its answer. Any error ends the whole relay. from names
// the side read, for the ledger.
func (r *relay) pump(dst net.Conn, read reader, n, total *atomic.Uint64, from string) {
	for {
		bp, k, err := read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				return
			}
			r.end(from + ": " + err.Error())
			return
		}
		r.last.Store(int64(time.Since(r.start)))
		_, werr := dst.Write((*bp)[:k])
		putBuf(bp)
		if werr != nil {
			r.end(peer(from) + ": " + werr.Error())
			return
		}
		n.Add(uint64(k))
		total.Add(uint64(k))
	}
}

// insideReader reads the sandbox's side straight from the netstack
// endpoint, waiting on its queue with no buffer lent.
func (r *relay) insideReader() reader {
	entry, ch := waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	r.wq.EventRegister(&entry)
	return func() (*[]byte, int, error) {
		for {
			bp := getBuf()
			w := tcpip.SliceWriter(*bp)
			res, terr := r.ep.Read(&w, tcpip.ReadOptions{})
			switch terr.(type) {
			case nil:
				// Lets receive-buffer auto-tuning see what was read, as
				// gonet's Read does.
				r.ep.ModerateRecvBuf(res.Count)
				return bp, res.Count, nil
			case *tcpip.ErrWouldBlock:
				putBuf(bp)
				<-ch
				continue
			case *tcpip.ErrClosedForReceive:
				putBuf(bp)
				r.wq.EventUnregister(&entry)
				return nil, 0, io.EOF
			default:
				putBuf(bp)
				r.wq.EventUnregister(&entry)
				return nil, 0, errors.New(terr.String())
			}
		}
	}
}

// upstreamReader reads the upstream's side. A plain TCP connection is
// read through its descriptor once the runtime's poller says it is
// readable, so no buffer is lent while it waits; any other connection
// (one through a proxy may hold bytes already read) through its Read,
// with a small buffer lent meanwhile.
func (r *relay) upstreamReader() reader {
	tc, ok := r.up.(*net.TCPConn)
	var rc syscall.RawConn
	if ok {
		rc, ok = syscallConn(tc)
	}
	if !ok {
		return func() (*[]byte, int, error) {
			bp := smallBufs.Get().(*[]byte)
			n, err := r.up.Read(*bp)
			if n > 0 {
				return bp, n, nil
			}
			smallBufs.Put(bp)
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, 0, err
		}
	}
	return func() (*[]byte, int, error) {
		var (
			bp   *[]byte
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			bp = getBuf()
			n, rerr = unix.Read(int(fd), *bp)
			if rerr == unix.EAGAIN || rerr == unix.EINTR {
				putBuf(bp)
				return false
			}
			return true
		})
		switch {
		case err != nil:
			return nil, 0, err
		case rerr != nil:
			putBuf(bp)
			return nil, 0, os.NewSyscallError("read", rerr)
		case n == 0:
			putBuf(bp)
			return nil, 0, io.EOF
		}
		return bp, n, nil
	}
}

func syscallConn(tc *net.TCPConn) (syscall.RawConn, bool) {
	rc, err := tc.SyscallConn()
	return rc, err == nil
}

// peer is the other side of a relay.
func peer(side string) string {
	if side == "sandbox" {
		return "upstream"
	}
	return "sandbox"
}

// end stops the relay for reason: the connection is reset on both sides,
// which unblocks both directions. The first reason wins.
func (r *relay) end(reason string) {
	r.once.Do(func() {
		r.mu.Lock()
		r.reason = reason
		r.mu.Unlock()
		r.ep.Abort()
		if tc, ok := r.up.(*net.TCPConn); ok {
			// A reset rather than a FIN: the upstream must not take a
			// cut-off stream for a whole one (tcp(7), SO_LINGER 0).
			tc.SetLinger(0)
		}
		r.up.Close()
	})
}

// lingerTimeout bounds how long a connection closed inside may keep its
// unsent data: a program that stops reading (a zero window) would
// otherwise keep the closed endpoint and its send buffer alive for as
// long as it answers the stack's probes.
const lingerTimeout = 5 * time.Second

// closeBoth releases both connections once both directions are done. The
// inside one closes gracefully and is aborted if it has not finished
// within lingerTimeout (an abort of a finished endpoint does nothing).
func (r *relay) closeBoth() {
	r.up.Close()
	r.inside.Close()
	ep := r.ep
	time.AfterFunc(lingerTimeout, func() {
		switch tcp.EndpointState(ep.State()) {
		case tcp.StateClose, tcp.StateError, tcp.StateTimeWait:
			return
		}
		ep.Abort()
	})
}

// checkIdle runs when the idle timer fires: it ends a relay that has had
// no traffic for Limits.IdleTimeout, and otherwise sets the timer again
// for the rest of that time.
func (r *relay) checkIdle() {
	lim := r.s.lim.IdleTimeout
	idle := time.Since(r.start) - time.Duration(r.last.Load())
	if idle >= lim {
		r.end("idle timeout")
		return
	}
	r.timer.Reset(lim - idle)
}

// recordClose writes the NetClose of an allowed connection. Nothing waits
// on it but Close: the connection is already gone.
func (s *Stack) recordClose(a *attempt, out, in uint64, reason string) {
	ctx, cancel := s.recordCtx()
	defer cancel()
	s.cfg.Recorder.Record(ctx, audit.NetClose{
		Conn:       a.connNo,
		Name:       a.name,
		Port:       a.port,
		BytesOut:   out,
		BytesIn:    in,
		DurationNS: int64(time.Since(a.decided)),
		Reason:     reason,
	})
}
