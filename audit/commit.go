package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// batch is a group commit: appends queued together, written with one
// write and made durable by one sync, which it may share with other batches
// written before that sync began. An append joins the batch that is open
// when it arrives and waits for the batch's done channel; a batch closes to
// newcomers when the writer takes it. Answering a whole batch with one
// close, rather than each append with a send, keeps the cost of waking
// many appenders low.
type batch struct {
	reqs     []request
	size     int  // bytes of data in reqs
	needSync bool // some request is not queued (see AppendQueued)
	// attached counts the requests someone waits for; a batch of detached
	// requests alone (see Enqueue) waits for company, or for lazyDelay.
	attached int
	born     time.Time

	// Set by the writer; read by the appenders after done is closed.
	seq0  uint64       // sequence number of reqs[0]
	prev0 [hexLen]byte // hash of the record before reqs[0]
	err   error
	done  chan struct{}

	// waiting counts the appenders that have not yet woken up with the
	// answer, or given up on it (see Ledger.resume).
	waiting atomic.Int32
}

// request is one pending Append, in its batch.
type request struct {
	event string
	data  []byte
	// queued requests are answered once written, without a sync of their
	// own: the next sync makes them durable (see AppendQueued).
	queued bool
	// detached requests have no appender waiting for them (see Enqueue).
	detached bool
	// Set by the writer.
	time time.Time
	hash [hexLen]byte
}

func newBatch(capHint int) *batch {
	return &batch{reqs: make([]request, 0, capHint), done: make(chan struct{}), born: time.Now()}
}

// lazyDelay is how long records nobody waits for (Enqueue) may stay in
// memory before they are written on their own: usually the next append
// takes them along in its write, which saves a write of their own.
const lazyDelay = 50 * time.Millisecond

// finish answers every append of b with err, or with its record if err is
// nil. After it, nothing but the appenders touches b.
func (b *batch) finish(err error) {
	b.err = err
	close(b.done)
}

// enqueue adds an append to the open batch, or opens one, and returns the
// batch and the append's index in it.
func (l *Ledger) enqueue(r request) (*batch, int, error) {
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return nil, 0, ErrClosed
	}
	b := l.open
	if b == nil || len(b.reqs) >= maxBatch || b.size >= maxBatchBytes {
		b = newBatch(l.batchHint)
		l.pending = append(l.pending, b)
		l.open = b
	}
	i := len(b.reqs)
	b.reqs = append(b.reqs, r)
	if !r.detached {
		b.waiting.Add(1)
		b.attached++
	}
	b.size += len(r.data)
	b.needSync = b.needSync || !r.queued
	// The writer sleeps only when nothing is pending, or when it has all
	// the batches in flight it may have or waits for appenders to wake up
	// (see run), and then it looks again when that changes. A detached
	// request does not wake it: it rides along with the next append, or
	// goes after lazyDelay.
	wake := !r.detached
	l.qmu.Unlock()
	if wake {
		l.signal()
	}
	return b, i, nil
}

// enqueueAll adds appends to the open batch, or opens batches, under one
// hold of the lock, so that the writer cannot take a batch between them:
// they go out together. It returns each append's batch.
func (l *Ledger) enqueueAll(rs []request) ([]*batch, error) {
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return nil, ErrClosed
	}
	out := make([]*batch, len(rs))
	for j, r := range rs {
		b := l.open
		if b == nil || len(b.reqs) >= maxBatch || b.size >= maxBatchBytes {
			b = newBatch(max(l.batchHint, len(rs)))
			l.pending = append(l.pending, b)
			l.open = b
		}
		b.reqs = append(b.reqs, r)
		b.waiting.Add(1)
		b.attached++
		b.size += len(r.data)
		b.needSync = true
		out[j] = b
	}
	l.qmu.Unlock()
	l.signal()
	return out, nil
}

// commitDirect writes and syncs r on the caller's goroutine when the ledger
// is idle: the writer holds no file lock, nothing is in flight, and nothing
// pending but records nobody waits for (Enqueue), which go along first. A
// lone append then costs no hand-off to the writer and the syncer, which
// is most of what it costs besides the sync on a loaded machine. ok is
// false when the ledger is busy: the caller enqueues as usual, and appends
// that arrive meanwhile do so too, and are committed together by the
// writer once this one is done.
func (l *Ledger) commitDirect(r request) (rec Record, ok bool, err error) {
	if !l.wmu.TryLock() {
		return Record{}, false, nil
	}
	defer l.wmu.Unlock()
	if l.inflight.Load() != 0 {
		return Record{}, false, nil
	}
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return Record{}, false, nil
	}
	var along []*batch
	for _, pb := range l.pending {
		if pb.attached != 0 {
			l.qmu.Unlock()
			return Record{}, false, nil
		}
	}
	along, l.pending, l.open = l.pending, nil, nil
	l.qmu.Unlock()

	b := newBatch(1)
	for _, pb := range along {
		b.reqs = append(b.reqs, pb.reqs...)
	}
	i := len(b.reqs)
	b.reqs = append(b.reqs, r)
	err = l.commitNow(b)
	for _, pb := range along {
		pb.finish(err)
	}
	if err != nil {
		return Record{}, true, err
	}
	return l.record(b, i), true, nil
}

// commitNow locks the file, writes b, syncs and unlocks. Call with wmu.
func (l *Ledger) commitNow(b *batch) error {
	if err := l.Err(); err != nil {
		return err
	}
	if err := l.f.Lock(); err != nil {
		return fmt.Errorf("lock ledger %q: %w", l.path, err)
	}
	err := l.writeBatch(b, true)
	if err == nil {
		// The sync covers what the writer wrote before, queued records
		// included.
		l.unsynced.Store(false)
		if serr := l.f.Datasync(); serr != nil {
			err = &WriteError{Path: l.path, Op: "fdatasync", Err: serr}
			l.kill(err)
		}
	}
	if uerr := l.f.Unlock(); uerr != nil {
		werr := &WriteError{Path: l.path, Op: "unlock", Err: uerr}
		l.kill(werr)
		if err == nil {
			err = werr
		}
	}
	return err
}

// The writer keeps at most maxInflight batches written but not yet synced,
// and releases the file lock after at most maxHeld batches so that other
// processes get their turn.
const (
	maxInflight = 2
	maxHeld     = 16
)

// writerState is the writer goroutine's view of the file lock.
type writerState struct {
	locked   bool
	fresh    bool // the lock was taken since the last batch written
	inflight int  // batches written, not yet synced and answered
	held     int  // batches written since the lock was taken
	// answered are batches answered since the writer last found all of
	// their appenders awake.
	answered []*batch
	// lazy is when the first pending batch, of detached records alone, is
	// due to be written on its own (zero: no such batch waits).
	lazy time.Time
}

// resume is called by an appender once it has its answer, or has given up
// on it. The last appender of a batch to do so wakes the writer, which
// may be waiting for it (see run).
func (l *Ledger) resume(b *batch) {
	if b.waiting.Add(-1) == 0 {
		l.signal()
	}
}

// signal wakes the writer, or makes it look again once it is done with
// what it is doing.
func (l *Ledger) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// waking reports whether some appender of a batch answered lately has not
// yet woken up.
func (st *writerState) waking() bool {
	st.answered = slices.DeleteFunc(st.answered, func(b *batch) bool { return b.waiting.Load() == 0 })
	return len(st.answered) > 0
}

// run is the handle's writer goroutine. It takes the pending batch as soon
// as there is one, so a lone Append is never held back; whatever arrives
// meanwhile forms the next batch. A second goroutine, syncLoop, syncs and
// answers written batches, so that the next batch is built and written
// while the previous one is being synced. A sync covers every byte written
// before it started, and each batch is answered only after a sync that
// began after its write.
//
// The writer does not take a batch while an appender that a sync has just
// answered has yet to wake up: a goroutine that appends again, as soon as
// it has its answer, joins that batch instead of the one after, and the
// writer does not release the file lock under it. This is no timer: it
// waits only for goroutines that are already runnable, and a lone append
// never waits, as the append before it has long woken up. Fewer, larger
// batches mean fewer writes and syncs, which is where most of a ledger's
// CPU time goes once many goroutines append.
func (l *Ledger) run() {
	defer close(l.done)
	syncerDone := make(chan struct{})
	go l.syncLoop(syncerDone)
	var st writerState
	for {
		waking := st.waking()
		if st.inflight < maxInflight && st.held < maxHeld && !waking {
			b, closed := l.take(&st)
			if b != nil {
				l.write(b, &st)
				continue
			}
			if closed && st.inflight == 0 {
				break
			}
		}
		if st.locked && st.inflight == 0 && !waking {
			// Nothing is pending, or this handle has had its turn, or it
			// is dead: let other processes have the file.
			l.unlock(&st)
			continue
		}
		var due <-chan time.Time
		var t *time.Timer
		if !st.lazy.IsZero() {
			t = time.NewTimer(time.Until(st.lazy))
			due = t.C
		}
		select {
		case <-l.wake:
		case b := <-l.synced:
			st.inflight--
			l.inflight.Add(-1)
			st.answered = append(st.answered, b)
		case <-due:
		}
		if t != nil {
			t.Stop()
		}
	}
	// Close makes queued records durable, under the lock like any sync.
	close(l.toSync)
	<-syncerDone
	if st.locked {
		l.unlock(&st)
	}
}

// take returns the first pending batch, after taking the file lock if the
// writer does not hold it; nil if nothing is pending, with whether the
// handle is closed. A batch that cannot be written is answered here.
func (l *Ledger) take(st *writerState) (b *batch, closed bool) {
	l.qmu.Lock()
	n := len(l.pending)
	closed = l.closed
	st.lazy = time.Time{}
	if n > 0 && !closed && l.pending[0].attached == 0 {
		if due := l.pending[0].born.Add(lazyDelay); time.Now().Before(due) {
			st.lazy = due
			n = 0
		}
	}
	l.qmu.Unlock()
	if n == 0 {
		return nil, closed
	}
	var err error
	if err = l.Err(); err == nil && !st.locked {
		// The right to write comes with the file lock, and goes with it
		// (unlock): an appender committing directly holds it meanwhile.
		l.wmu.Lock()
		if err = l.f.Lock(); err != nil {
			l.wmu.Unlock()
			err = fmt.Errorf("lock ledger %q: %w", l.path, err)
		} else {
			st.locked, st.fresh = true, true
		}
	}
	// Appends that queued while we waited for the lock are in the batch.
	l.qmu.Lock()
	b = l.pending[0]
	n = copy(l.pending, l.pending[1:])
	l.pending[n] = nil
	l.pending = l.pending[:n]
	if b == l.open {
		l.open = nil
	}
	l.batchHint = max(len(b.reqs), 8)
	l.qmu.Unlock()
	if err != nil {
		b.finish(err)
		return nil, false
	}
	return b, false
}

// write writes b and hands it to syncLoop; on failure it answers b itself.
func (l *Ledger) write(b *batch, st *writerState) {
	if err := l.writeBatch(b, st.fresh); err != nil {
		b.finish(err)
		return
	}
	st.fresh = false
	st.inflight++
	l.inflight.Add(1)
	st.held++
	l.toSync <- b
}

func (l *Ledger) unlock(st *writerState) {
	st.locked, st.held = false, 0
	defer l.wmu.Unlock()
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
	var jobs []*batch
	defer func() {
		// Close makes queued records durable too.
		if l.unsynced.Load() && l.Err() == nil {
			if serr := l.f.Datasync(); serr != nil {
				l.kill(&WriteError{Path: l.path, Op: "fdatasync", Err: serr})
			}
		}
	}()
	for b := range l.toSync {
		jobs = append(jobs[:0], b)
	more:
		for {
			select {
			case b, ok := <-l.toSync:
				if !ok {
					break more
				}
				jobs = append(jobs, b)
			default:
				break more
			}
		}
		// A handle that died, here or in the writer, starts no sync; nor
		// do batches of queued records alone. A sync covers every byte
		// written before it, queued records included.
		needSync := false
		for _, b := range jobs {
			needSync = needSync || b.needSync
		}
		err := l.Err()
		if !needSync {
			l.unsynced.Store(true)
		} else if err == nil {
			l.unsynced.Store(false)
			if serr := l.f.Datasync(); serr != nil {
				werr := &WriteError{Path: l.path, Op: "fdatasync", Err: serr}
				l.kill(werr)
				err = werr
			}
		}
		for _, b := range jobs {
			b.finish(err)
			l.synced <- b
		}
		clear(jobs)
	}
}

// writeBatch appends the batch's records with one write. The caller holds
// the file lock, and took it since its last batch if fresh.
func (l *Ledger) writeBatch(b *batch, fresh bool) error {
	same, err := l.f.SamePath()
	if err != nil {
		return fmt.Errorf("ledger %q: %w", l.path, err)
	}
	if !same {
		err := fmt.Errorf("ledger %q: %w", l.path, ErrReplaced)
		l.kill(err)
		return err
	}
	var t tailState
	size := l.end
	if !l.known || fresh {
		// While the writer holds the lock, no other writer appends: the
		// file ends where our last write did. Once it took the lock
		// anew, another process may have appended, or this is our first
		// batch: learn the chain's head from the file.
		if size, err = l.f.Size(); err != nil {
			return fmt.Errorf("ledger %q: %w", l.path, err)
		}
		if !l.known || size != l.end {
			l.known = false
			if t, err = scanTail(l.f, size); err != nil {
				var ce *CorruptError
				if errors.As(err, &ce) {
					ce.Path = l.path
					return ce
				}
				return fmt.Errorf("ledger %q: %w", l.path, err)
			}
			l.seq, l.prev = t.seq, t.prev
		}
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
		e := dataEncoder{keys: l.redact}
		e.recovered(t.torn)
		seq++
		buf, prev = appendLine(buf, &l.hdr, seq, l.now(), EventRecovered, e.buf, &prev)
	}
	b.seq0, b.prev0 = seq+1, prev
	for i := range b.reqs {
		r := &b.reqs[i]
		seq++
		r.time = l.now().UTC()
		buf, prev = appendLine(buf, &l.hdr, seq, r.time, r.event, r.data, &prev)
		r.hash = prev
	}
	if cap(buf) <= 1<<20 {
		l.buf = buf
	}

	if _, err := l.f.Write(buf); err != nil {
		werr := &WriteError{Path: l.path, Op: "write", Err: err}
		l.kill(werr)
		return werr
	}
	l.known, l.end, l.seq, l.prev = true, size+int64(len(buf)), seq, prev
	return nil
}

// genesisData is the data of a ledger's first record.
var genesisData = func() []byte {
	b, _ := json.Marshal(genesis{Format: FormatVersion, Algorithm: "sha256"})
	return b
}()

// record returns the record of b.reqs[i]; b is finished, without error.
func (l *Ledger) record(b *batch, i int) Record {
	r := &b.reqs[i]
	prev := &b.prev0
	if i > 0 {
		prev = &b.reqs[i-1].hash
	}
	// One string holds both hashes: one allocation, not two.
	var both [2 * hexLen]byte
	copy(both[:], prev[:])
	copy(both[hexLen:], r.hash[:])
	hashes := string(both[:])
	return Record{
		Version: FormatVersion, Seq: b.seq0 + uint64(i), Time: r.time,
		Host: l.opts.Host, Session: l.opts.SessionID, PID: l.opts.PID, UID: l.opts.UID,
		Event: r.event, Profile: l.opts.Profile, ProfileHash: l.opts.ProfileHash,
		Data: r.data, Prev: hashes[:hexLen], Hash: hashes[hexLen:],
	}
}
