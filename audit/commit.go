package audit

import (
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
	// queued requests are answered once written, without a sync of their
	// own: the next sync makes them durable (see AppendQueued).
	queued bool
}

type result struct {
	rec Record
	err error
}

// The writer keeps at most maxInflight batches written but not yet synced,
// and releases the file lock after at most maxHeld batches so that other
// processes get their turn.
const (
	maxInflight = 2
	maxHeld     = 16
)

// job is a written batch waiting for its fdatasync.
type job struct {
	batch []*request
	recs  []Record
}

// writerState is the writer goroutine's view of the file lock.
type writerState struct {
	locked   bool
	inflight int // batches written, not yet synced and answered
	held     int // batches written since the lock was taken
}

// run is the handle's writer goroutine. It takes the first waiting request
// as soon as there is one, so a lone Append is never held back; whatever
// arrives meanwhile forms the next batch. A second goroutine, syncLoop,
// syncs and answers written batches, so that the next batch is built and
// written while the previous one is being synced. A sync covers every byte
// written before it started, and each batch is answered only after a sync
// that began after its write.
func (l *Ledger) run() {
	defer close(l.done)
	syncerDone := make(chan struct{})
	go l.syncLoop(syncerDone)
	defer func() {
		close(l.toSync)
		<-syncerDone
	}()
	var st writerState
	reqs := l.reqs
	for reqs != nil || st.inflight > 0 {
		var in <-chan *request
		if reqs != nil && st.inflight < maxInflight && st.held < maxHeld {
			in = reqs
		}
		select {
		case r, ok := <-in:
			if !ok {
				reqs = nil
				break
			}
			l.write(l.drain([]*request{r}), &st)
		case <-l.synced:
			st.inflight--
		}
		if st.locked && st.inflight == 0 &&
			(reqs == nil || len(reqs) == 0 || st.held >= maxHeld || l.Err() != nil) {
			l.unlock(&st)
		}
	}
	if st.locked {
		l.unlock(&st)
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

// write takes the lock if needed and writes batch, handing it to syncLoop;
// on failure it answers the batch itself.
func (l *Ledger) write(batch []*request, st *writerState) {
	if err := l.Err(); err != nil {
		fail(batch, err)
		return
	}
	if !st.locked {
		if err := l.f.Lock(); err != nil {
			fail(batch, fmt.Errorf("lock ledger %q: %w", l.path, err))
			return
		}
		st.locked = true
		// Appends that queued while we waited for the lock join in.
		batch = l.drain(batch)
	}
	recs, err := l.writeBatch(batch)
	if err != nil {
		fail(batch, err)
		return
	}
	st.inflight++
	st.held++
	l.toSync <- job{batch: batch, recs: recs}
}

func (l *Ledger) unlock(st *writerState) {
	st.locked, st.held = false, 0
	if err := l.f.Unlock(); err != nil {
		// Other writers would wait forever on our lock: close the file,
		// which drops it, and stop here.
		l.kill(&WriteError{Path: l.path, Op: "unlock", Err: err})
		l.f.Close()
		l.fileDone = true
	}
}

// syncLoop syncs written batches and answers their appends. Batches that
// queue up while a sync runs share the next one.
func (l *Ledger) syncLoop(done chan<- struct{}) {
	defer close(done)
	var jobs []job
	// unsynced says that queued records were written after the last sync.
	unsynced := false
	defer func() {
		// Close makes queued records durable too.
		if unsynced && l.Err() == nil {
			if serr := l.f.Datasync(); serr != nil {
				l.kill(&WriteError{Path: l.path, Op: "fdatasync", Err: serr})
			}
		}
	}()
	for j := range l.toSync {
		jobs = append(jobs[:0], j)
	more:
		for {
			select {
			case j, ok := <-l.toSync:
				if !ok {
					break more
				}
				jobs = append(jobs, j)
			default:
				break more
			}
		}
		// A handle that died, here or in the writer, starts no sync; nor
		// do batches of queued records alone. A sync covers every byte
		// written before it, queued records included.
		needSync := false
		for _, j := range jobs {
			for _, r := range j.batch {
				needSync = needSync || !r.queued
			}
		}
		err := l.Err()
		if !needSync {
			unsynced = true
		} else if err == nil {
			unsynced = false
			if serr := l.f.Datasync(); serr != nil {
				werr := &WriteError{Path: l.path, Op: "fdatasync", Err: serr}
				l.kill(werr)
				err = werr
			}
		}
		for _, j := range jobs {
			for i, r := range j.batch {
				if err != nil {
					r.done <- result{err: err}
				} else {
					r.done <- result{rec: j.recs[i]}
				}
			}
			l.synced <- struct{}{}
		}
		clear(jobs)
	}
}

func fail(batch []*request, err error) {
	for _, r := range batch {
		r.done <- result{err: err}
	}
}

// genesisData is the data of a ledger's first record.
var genesisData = func() []byte {
	b, _ := json.Marshal(genesis{Format: FormatVersion, Algorithm: "sha256"})
	return b
}()

// writeBatch appends the batch's records with one write. The caller holds
// the file lock.
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
