package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Verify splits its input into chunks of whole lines. Worker goroutines
// check each line's layout and hash, which is where the time goes and which
// needs nothing from other lines; the caller's goroutine then walks the
// results in order to check the chain. Every line is still hashed exactly
// as documented; only the order of the work changes.

// chunkSize is the size of a chunk unless a line is longer. The first
// inlineBytes are scanned in the caller's goroutine: for a small ledger,
// handing chunks to other threads costs more than it saves.
// They are variables so that tests can exercise chunk boundaries.
var (
	chunkSize   = 512 << 10
	inlineBytes = 2 << 20
)

// chunks recycles chunk buffers across Verify calls.
var chunks = sync.Pool{New: func() any { return &chunk{buf: make([]byte, 0, chunkSize)} }}

// chunk is a run of whole lines; the last one lacks its newline only at
// the end of the input.
type chunk struct {
	buf     []byte
	lines   []scanned
	tooLong bool // buf begins with a line longer than MaxLineSize
	done    chan struct{}
}

// scanned is a worker's verdict on one line.
type scanned struct {
	start, end int // line is buf[start:end], newline excluded
	terminated bool
	fr         frame
	err        error // from parseFrame
	hashOK     bool
}

func (c *chunk) scan() {
	b := c.buf
	for start := 0; start < len(b); {
		end, next := len(b), len(b)
		if i := bytes.IndexByte(b[start:], '\n'); i >= 0 {
			end, next = start+i, start+i+1
		}
		s := scanned{start: start, end: end, terminated: next > end}
		s.fr, s.err = parseFrame(b[start:end])
		s.hashOK = s.err == nil && s.fr.hashOK()
		c.lines = append(c.lines, s)
		start = next
	}
}

// pipeline reads chunks and keeps up to depth of them in the workers.
type pipeline struct {
	r       io.Reader
	carry   []byte // the start of a line cut by the previous read
	eof     bool
	readErr error
	inline  int // bytes still to scan in the caller's goroutine
	work    chan *chunk
	pending []*chunk
	depth   int
}

func newPipeline(r io.Reader) *pipeline {
	return &pipeline{r: r, inline: inlineBytes, depth: 1}
}

// startWorkers starts the worker goroutines; stop ends them.
func (p *pipeline) startWorkers() {
	workers := min(runtime.GOMAXPROCS(0), 8)
	p.work = make(chan *chunk, 2*workers)
	p.depth = 2 * workers
	for range workers {
		go func() {
			for c := range p.work {
				c.scan()
				close(c.done)
			}
		}()
	}
}

// stop ends the workers once they finish what they hold. Chunks still
// pending may be in a worker's hands, so they are left to the garbage
// collector rather than put back in the pool.
func (p *pipeline) stop() {
	if p.work != nil {
		close(p.work)
	}
}

// next returns the next chunk, scanned, or nil after the last one. A read
// error is returned after the chunks read before it.
func (p *pipeline) next() (*chunk, error) {
	for !p.eof && len(p.pending) < p.depth {
		c, err := p.read()
		if err != nil {
			p.readErr, p.eof = err, true
			break
		}
		if c == nil {
			p.eof = true
			break
		}
		p.pending = append(p.pending, c)
		if c.tooLong {
			// The rest of the input cannot be split into lines.
			p.eof = true
			close(c.done)
			break
		}
		if p.inline > 0 {
			p.inline -= len(c.buf)
			c.scan()
			close(c.done)
			continue
		}
		if p.work == nil {
			p.startWorkers()
		}
		p.work <- c
	}
	if len(p.pending) == 0 {
		return nil, p.readErr
	}
	c := p.pending[0]
	p.pending = p.pending[1:]
	<-c.done
	return c, nil
}

// recycle returns a chunk the caller is done with.
func (p *pipeline) recycle(c *chunk) {
	if cap(c.buf) == chunkSize {
		chunks.Put(c)
	}
}

// read returns a chunk of whole lines, nil at EOF.
func (p *pipeline) read() (*chunk, error) {
	c := chunks.Get().(*chunk)
	c.buf, c.lines, c.tooLong = c.buf[:0], c.lines[:0], false
	c.done = make(chan struct{})
	c.buf = append(c.buf, p.carry...)
	p.carry = p.carry[:0]
	for {
		n, err := io.ReadFull(p.r, c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if len(c.buf) == 0 {
				chunks.Put(c)
				return nil, nil
			}
			return c, nil
		}
		if err != nil {
			chunks.Put(c)
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		if i := bytes.LastIndexByte(c.buf, '\n'); i >= 0 {
			p.carry = append(p.carry, c.buf[i+1:]...)
			c.buf = c.buf[:i+1]
			return c, nil
		}
		if len(c.buf) > MaxLineSize+1 {
			c.tooLong = true
			return c, nil
		}
		// A line longer than the buffer: grow it.
		c.buf = append(c.buf, make([]byte, cap(c.buf))...)[:len(c.buf)]
	}
}
