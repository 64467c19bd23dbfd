package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// headMax is how much of a line over the limit the reader keeps: enough
// for the members a message starts with ("jsonrpc", "id", "method"), so
// that the request it answers can be answered at once.
const headMax = 4 << 10

// lineReader splits a stream into lines without holding more than max bytes
// of any one. A longer line is reported as soon as it crosses max, with its
// first headMax bytes, and the rest of it is skipped up to its newline by
// the calls that follow: a peer that writes without end never makes the
// reader hold more than max bytes, nor keeps the proxy from answering.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	// skipping: the rest of a line over max is still to be discarded.
	skipping bool
	last     int // length of the last line returned
}

func newLineReader(r io.Reader, max int) *lineReader {
	// As large as the pipes vm-run asks for: a large message arrives in
	// few reads.
	return &lineReader{br: bufio.NewReaderSize(r, 1<<20), max: max}
}

// next returns the next line without its newline (a final line without one
// counts). The slice is valid until the following call. tooLong reports a
// line over max as soon as the bytes read cross max, without waiting for
// its newline: line is then its first headMax bytes, and the rest of it is
// discarded by the next call before it reads another line.
func (r *lineReader) next() (line []byte, tooLong bool, err error) {
	if r.skipping {
		if err := r.skip(); err != nil {
			return nil, false, err
		}
	}
	// A buffer grown for one large message is let go once lines are small
	// again: memory follows the current traffic, not the largest message
	// ever seen.
	if cap(r.buf) > 4<<20 && r.last < cap(r.buf)/4 {
		r.buf = nil
	}
	r.buf = r.buf[:0]
	for {
		chunk, err := r.available()
		if err != nil {
			if errors.Is(err, io.EOF) && len(r.buf) > 0 {
				r.last = len(r.buf)
				return r.buf, false, nil
			}
			return nil, false, err
		}
		i := bytes.IndexByte(chunk, '\n')
		n := len(chunk)
		if i >= 0 {
			n = i // the newline is consumed, not kept
		}
		if len(r.buf)+n > r.max {
			head := append(r.buf, chunk[:min(n, max(0, headMax-len(r.buf)))]...)
			r.buf = head[:min(len(head), headMax)]
			r.last = 0
			r.skipping = i < 0
			if i >= 0 {
				r.br.Discard(i + 1)
			} else {
				r.br.Discard(len(chunk))
			}
			return r.buf, true, nil
		}
		r.grow(n)
		r.buf = append(r.buf, chunk[:n]...)
		if i >= 0 {
			r.br.Discard(i + 1)
			r.last = len(r.buf)
			return r.buf, false, nil
		}
		r.br.Discard(len(chunk))
	}
}

// available returns what is buffered, reading once if nothing is: a pipe
// read returns what the writer has written so far, so a line is seen to
// cross the limit as it arrives.
func (r *lineReader) available() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	return r.br.Peek(r.br.Buffered())
}

// skip discards input up to and including the next newline.
func (r *lineReader) skip() error {
	for {
		chunk, err := r.available()
		if err != nil {
			r.skipping = false
			return err
		}
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			r.br.Discard(i + 1)
			r.skipping = false
			return nil
		}
		r.br.Discard(len(chunk))
	}
}

// buffered reports whether more input is already read: another line may
// follow at once, so a writer may wait with its flush.
func (r *lineReader) buffered() bool { return r.br.Buffered() > 0 }

// grow makes room for n more bytes, doubling but never past max, so a long
// line cannot make append overshoot the limit.
func (r *lineReader) grow(n int) {
	need := len(r.buf) + n
	if need <= cap(r.buf) {
		return
	}
	c := min(max(2*cap(r.buf), need), r.max)
	nb := make([]byte, len(r.buf), c)
	copy(nb, r.buf)
	r.buf = nb
}

var errWriterClosed = errors.New("writer closed")

// lineWriter serialises whole lines onto one stream. A write blocks while
// the reader on the other side does not read: that is the back-pressure
// that keeps memory bounded.
//
// While hold is set, lines stay in the buffer (up to its size) instead of
// being flushed one by one: the reader that feeds this writer sets it while
// more of its input is already buffered, and flushes once it is not, so a
// flood of small messages costs a write(2) per 64 KiB, not per message.
type lineWriter struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer
	closed bool
	err    error
	hold   atomic.Bool
}

func newLineWriter(w io.Writer, c io.Closer) *lineWriter {
	return &lineWriter{w: bufio.NewWriterSize(w, 256<<10), closer: c}
}

func (lw *lineWriter) writeLine(line []byte) error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.closed {
		return errWriterClosed
	}
	if lw.err != nil {
		return lw.err
	}
	if _, err := lw.w.Write(line); err != nil {
		lw.err = err
		return err
	}
	lw.err = lw.w.WriteByte('\n')
	if lw.err == nil && !lw.hold.Load() {
		lw.err = lw.w.Flush()
	}
	return lw.err
}

// batch sets hold when more input is waiting, and flushes when it is not.
// The reader feeding the writer calls it after each line.
func (lw *lineWriter) batch(more bool) {
	lw.hold.Store(more)
	if more {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !lw.closed && lw.err == nil && lw.w.Buffered() > 0 {
		lw.err = lw.w.Flush()
	}
}

// finish writes what is buffered, then closes like close: the orderly end
// of a stream (the client's input ended and everything queued has gone).
// Lines held back by batch would otherwise be lost.
func (lw *lineWriter) finish() {
	lw.mu.Lock()
	if !lw.closed && lw.err == nil {
		lw.err = lw.w.Flush()
	}
	lw.mu.Unlock()
	lw.close()
}

// close stops further writes and closes the underlying stream if it has a
// closer. It may be called while a write is blocked: closing a pipe makes
// that write fail, so close does not take the lock to close.
func (lw *lineWriter) close() {
	if lw.closer != nil {
		lw.closer.Close()
	}
	lw.mu.Lock()
	lw.closed = true
	lw.mu.Unlock()
}
