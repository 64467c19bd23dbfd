package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// request is one pending Append.
type request struct {
	event string
	data  []byte
	done  chan result // buffered: the writer never blocks on a caller
}

type result struct {
	rec Record
	err error
}

// run is the handle's writer goroutine. It takes the first waiting request
// as soon as there is one, so a lone Append is never held back; whatever
// arrives while a commit is in progress forms the next batch.
func (l *Ledger) run() {
	defer close(l.done)
	batch := make([]*request, 0, 64)
	for r := range l.reqs {
		batch = l.commit(l.drain(append(batch[:0], r)))
		clear(batch)
	}
}

// drain adds the requests already queued to batch, without waiting.
func (l *Ledger) drain(batch []*request) []*request {
	size := 0
	for _, r := range batch {
		size += len(r.data)
	}
	for len(batch) < maxBatch && size < maxBatchBytes {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			size += len(r.data)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch under the file lock and answers every request in it.
func (l *Ledger) commit(batch []*request) []*request {
	if err := l.Err(); err != nil {
		return fail(batch, err)
	}
	if err := l.f.Lock(); err != nil {
		return fail(batch, fmt.Errorf("lock ledger %q: %w", l.path, err))
	}
	// Appends that queued while we waited for the lock join this batch.
	batch = l.drain(batch)
	recs, err := l.writeBatch(batch)
	if uerr := l.f.Unlock(); uerr != nil {
		// The records are durable, but other writers would wait forever
		// on our lock: close the file, which drops it, and stop here.
		l.kill(&WriteError{Path: l.path, Op: "unlock", Err: uerr})
		l.f.Close()
		l.fileDone = true
	}
	if err != nil {
		return fail(batch, err)
	}
	for i, r := range batch {
		r.done <- result{rec: recs[i]}
	}
	return batch
}

func fail(batch []*request, err error) []*request {
	for _, r := range batch {
		r.done <- result{err: err}
	}
	return batch
}

// genesisData is the data of a ledger's first record.
var genesisData = func() []byte {
	b, _ := json.Marshal(genesis{Format: FormatVersion, Algorithm: "sha256"})
	return b
}()

// writeBatch appends the batch's records with one write and one fdatasync.
// The caller holds the file lock.
func (l *Ledger) writeBatch(batch []*request) ([]Record, error) {
	same, err := l.f.SamePath()
	if err != nil {
		return nil, fmt.Errorf("ledger %q: %w", l.path, err)
	}
	if !same {
		err := fmt.Errorf("ledger %q: %w", l.path, ErrReplaced)
		l.kill(err)
		return nil, err
	}
	size, err := l.f.Size()
	if err != nil {
		return nil, fmt.Errorf("ledger %q: %w", l.path, err)
	}
	var t tailState
	if !l.known || size != l.end {
		// Another process appended since our last write, or this is our
		// first: learn the chain's head from the file.
		l.known = false
		if t, err = scanTail(l.f, size); err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				ce.Path = l.path
				return nil, ce
			}
			return nil, fmt.Errorf("ledger %q: %w", l.path, err)
		}
		l.seq, l.prev = t.seq, t.prev
	}

	buf := l.buf[:0]
	seq, prev := l.seq, l.prev
	if t.needNL {
		buf = append(buf, '\n')
	}
	if t.empty {
		seq++
		buf, prev = appendLine(buf, &l.hdr, seq, l.now(), EventGenesis, genesisData, &prev)
	}
	if t.torn != nil {
		data, err := json.Marshal(t.torn)
		if err != nil {
			return nil, fmt.Errorf("encode recovery record: %w", err)
		}
		seq++
		buf, prev = appendLine(buf, &l.hdr, seq, l.now(), EventRecovered, data, &prev)
	}
	recs := make([]Record, len(batch))
	for i, r := range batch {
		seq++
		p := prev
		now := l.now().UTC()
		buf, prev = appendLine(buf, &l.hdr, seq, now, r.event, r.data, &p)
		recs[i] = l.record(seq, now, r, p, prev)
	}
	if cap(buf) <= 1<<20 {
		l.buf = buf
	}

	if _, err := l.f.Write(buf); err != nil {
		werr := &WriteError{Path: l.path, Op: "write", Err: err}
		l.kill(werr)
		return nil, werr
	}
	if err := l.f.Datasync(); err != nil {
		werr := &WriteError{Path: l.path, Op: "fdatasync", Err: err}
		l.kill(werr)
		return nil, werr
	}
	l.known, l.end, l.seq, l.prev = true, size+int64(len(buf)), seq, prev
	return recs, nil
}

func (l *Ledger) record(seq uint64, t time.Time, r *request, prev, hash [hexLen]byte) Record {
	return Record{
		Version: FormatVersion, Seq: seq, Time: t,
		Host: l.opts.Host, Session: l.opts.SessionID, PID: l.opts.PID, UID: l.opts.UID,
		Event: r.event, Profile: l.opts.Profile, ProfileHash: l.opts.ProfileHash,
		Data: r.data, Prev: string(prev[:]), Hash: string(hash[:]),
	}
}

// tailState is what a writer must know about the end of the file before
// appending.
type tailState struct {
	empty  bool         // no bytes at all: write the genesis record
	seq    uint64       // sequence number of the last intact record
	prev   [hexLen]byte // its hash (zeroHash if there is none)
	needNL bool         // the file does not end in a newline
	torn   *Recovered   // unfinished writes after the last intact record
}

// Tail scanning reads the file backwards in chunks, growing up to
// maxTailScan; beyond that the damage is not a torn write.
const (
	tailChunk   = 64 << 10
	maxTailScan = 8 * MaxLineSize
)

// scanTail finds the last intact record of a file of size bytes and any
// torn write after it.
func scanTail(f ledgerFile, size int64) (tailState, error) {
	if size == 0 {
		return tailState{empty: true, prev: zeroHash}, nil
	}
	n := min(size, tailChunk)
	for {
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, size-n); err != nil {
			return tailState{}, fmt.Errorf("read tail: %w", err)
		}
		t, more, err := parseTail(buf, size-n)
		if !more {
			return t, err
		}
		if n == size || n >= maxTailScan {
			return t, &CorruptError{Offset: size - n, Msg: fmt.Sprintf("no intact record in the last %d bytes", n)}
		}
		n = min(size, 4*n)
	}
}

// parseTail examines buf, the last bytes of the file from offset base on.
// It walks lines from the end: proper prefixes of a record (what a torn
// write leaves, possibly ended by the newline of a writer that crashed
// while recovering) are skipped, the first intact record ends the walk, and
// anything else is damage. more asks for a longer buf.
func parseTail(buf []byte, base int64) (t tailState, more bool, err error) {
	end := len(buf)
	terminated := buf[end-1] == '\n'
	tornEnd := end
	if terminated {
		tornEnd--
	}
	t.needNL = !terminated
	lineEnd := tornEnd
	region := -1
	for {
		start := bytes.LastIndexByte(buf[:lineEnd], '\n') + 1
		if start == 0 && base > 0 {
			return t, true, nil
		}
		line := buf[start:lineEnd]
		fr, ferr := parseFrame(line)
		switch {
		case ferr == nil && fr.hashOK():
			t.seq = fr.seq
			copy(t.prev[:], fr.hash)
			t.torn = tornRange(buf, base, region, tornEnd)
			return t, false, nil
		case ferr == nil:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "hash mismatch in the last record"}
		case len(line) > 0 && errors.Is(ferr, errTruncated):
			region = start
		case len(line) == 0:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "empty line"}
		default:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "not a record: " + ferr.Error()}
		}
		if start == 0 {
			// Nothing intact at all: the first write was torn.
			t.prev = zeroHash
			t.torn = tornRange(buf, base, region, tornEnd)
			return t, false, nil
		}
		lineEnd = start - 1
	}
}

func tornRange(buf []byte, base int64, start, end int) *Recovered {
	if start < 0 {
		return nil
	}
	sum := sha256.Sum256(buf[start:end])
	return &Recovered{
		TornOffset: base + int64(start),
		TornLength: int64(end - start),
		TornSHA256: hex.EncodeToString(sum[:]),
	}
}
