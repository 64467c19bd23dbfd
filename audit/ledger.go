package audit

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe the writer of a ledger handle; every record it appends
// carries them.
type Options struct {
	// Host defaults to os.Hostname().
	Host string
	// SessionID defaults to NewSessionID().
	SessionID string
	// PID and UID default, when zero, to those of the calling process.
	PID, UID int
	// Profile and ProfileHash name the profile in force ("" if none).
	Profile, ProfileHash string
	// Mode is the permission of a ledger Open creates; 0 means 0600.
	Mode fs.FileMode
	// RedactKeys are the keys whose values are stored as hashes (see
	// [Redact]); nil means DefaultRedactKeys, an empty non-nil slice none.
	RedactKeys []string
	// RedactLimit is the longest string stored whole; 0 means
	// DefaultRedactLimit, a negative value no limit.
	RedactLimit int
}

// ledgerFile is the file a Ledger appends to: the OS file on Linux, a
// fault-injecting wrapper in tests.
type ledgerFile interface {
	Lock() error
	Unlock() error
	Size() (int64, error)
	SamePath() (bool, error)
	ReadAt(p []byte, off int64) (int, error)
	Write(p []byte) (int, error)
	Datasync() error
	Close() error
}

// Ledger is an open handle on a ledger file. It is safe for concurrent use:
// one goroutine per handle writes and another syncs, and appends that
// arrive while they are busy are committed together, with one write and
// one sync.
type Ledger struct {
	path     string
	opts     Options // with defaults filled in
	hdr      header
	redact   *keyMatcher
	limit    int
	overhead int // line bytes besides event name and data, at most
	// scrub, once set, takes values that must never be stored out of
	// every record's data (SetScrubber).
	scrub atomic.Pointer[Scrubber]

	f    ledgerFile
	now  func() time.Time
	done chan struct{}

	// Between the appenders and the writer goroutine.
	qmu       sync.Mutex
	pending   []*batch // oldest first
	open      *batch   // the last of pending, still taking appends
	closed    bool
	batchHint int           // size of the last batch taken
	wake      chan struct{} // see signal

	// Between the writer goroutine and syncLoop.
	toSync chan *batch
	synced chan *batch // batches answered
	dead   atomic.Pointer[error]

	// wmu is the right to lock and write the file: the writer goroutine
	// holds it while it holds the file lock, an appender that commits
	// directly (commitDirect) while it does. inflight counts the batches
	// the writer has written and not yet had synced.
	wmu      sync.Mutex
	inflight atomic.Int32
	// unsynced: records nobody waits for were written after the last
	// sync (Close syncs them).
	unsynced atomic.Bool

	// Owned by whoever holds wmu.
	known    bool   // end, seq and prev describe the file
	end      int64  // file size after our last write
	seq      uint64 // sequence number of the last record
	prev     [hexLen]byte
	buf      []byte
	fileDone bool // f was closed early, after a failed unlock
}

// Open opens the ledger at path for appending, creating the file (mode
// o.Mode, 0600 by default) and its parent directories (0700) if missing.
// Open writes nothing; the first Append writes the genesis record of a new
// ledger, or a recovery record after a torn write.
func Open(path string, o Options) (*Ledger, error) {
	if o.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("open ledger %q: get host name: %w", path, err)
		}
		o.Host = h
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.UID == 0 {
		o.UID = os.Getuid()
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	f, err := openFile(path, o.Mode)
	if err != nil {
		return nil, err
	}
	l, err := newLedger(path, o, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// maxBatch and maxBatchBytes bound one group commit.
const (
	maxBatch      = 4096
	maxBatchBytes = 16 << 20
)

func newLedger(path string, o Options, f ledgerFile) (*Ledger, error) {
	if o.SessionID == "" {
		o.SessionID = NewSessionID()
	}
	hdr, err := newHeader(o.Host, o.SessionID, o.Profile, o.ProfileHash, o.PID, o.UID)
	if err != nil {
		return nil, fmt.Errorf("open ledger %q: %w", path, err)
	}
	keys := o.RedactKeys
	if keys == nil {
		keys = DefaultRedactKeys
	}
	redact := newKeyMatcher(keys)
	limit := o.RedactLimit
	if limit == 0 {
		limit = DefaultRedactLimit
	}
	probe, _ := appendLine(nil, &hdr, math.MaxUint64, time.Now(), "", nil, &zeroHash)
	l := &Ledger{
		path:     path,
		opts:     o,
		hdr:      hdr,
		redact:   redact,
		limit:    limit,
		overhead: len(probe),
		f:        f,
		now:      time.Now,
		wake:     make(chan struct{}, 1),
		toSync:   make(chan *batch, maxInflight),
		synced:   make(chan *batch, maxInflight),
		done:     make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Path returns the ledger's file name as given to Open.
func (l *Ledger) Path() string { return l.path }

// SessionID returns the session id written into every record.
func (l *Ledger) SessionID() string { return l.opts.SessionID }

// Err returns the error that killed the handle, or nil while it is alive.
func (l *Ledger) Err() error {
	if p := l.dead.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Ledger) kill(err error) {
	l.dead.CompareAndSwap(nil, &err)
}

// Append records an event of type typ whose data is fields encoded as a
// JSON object (nil: {}), redacted as Options say.
//
// Append returns nil only after the record's line, and every line before
// it, is on disk: written and fdatasync'ed. On any error the caller must
// act as if nothing was recorded, and not do what the record was for; the
// line may or may not be in the file. A write or sync error kills the
// handle: that Append and every later one fail with an error matching
// ErrDead. If ctx ends first, Append returns its error.
func (l *Ledger) Append(ctx context.Context, typ string, fields any) (Record, error) {
	return l.append(ctx, typ, fields, false)
}

// AppendQueued appends like Append but returns once the line is written,
// before it is on disk: it becomes durable with the next sync, which the
// next Append (or Close) starts, so it never costs a sync of its own. For
// records that follow what they record, such as the outcome of a call whose
// decision was appended with Append; a crash may lose the last of them,
// and verify then reports a torn write, never a broken chain.
func (l *Ledger) AppendQueued(ctx context.Context, typ string, fields any) (Record, error) {
	return l.append(ctx, typ, fields, true)
}

// LogAll appends the events in order, like Log each, but hands them to the
// writer together and waits once: they share a batch, and so a write and a
// sync. It returns an error per event, nil where the event is on disk; an
// event that cannot be encoded fails alone, a write or sync error fails all
// that were in its batch.
func (l *Ledger) LogAll(ctx context.Context, evs []Event) []error {
	errs := make([]error, len(evs))
	var reqs []request
	var index []int // reqs[j] is evs[index[j]]
	for k, ev := range evs {
		typ := ev.EventType()
		data, err := l.encode(ev)
		if err == nil {
			if n := l.overhead + len(typ) + len(data); n > MaxLineSize {
				err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, MaxLineSize)
			}
		}
		if err != nil {
			errs[k] = fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
			continue
		}
		reqs = append(reqs, request{event: typ, data: data})
		index = append(index, k)
	}
	if len(reqs) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for _, k := range index {
			errs[k] = fmt.Errorf("append %s to ledger %q: %w", evs[k].EventType(), l.path, err)
		}
		return errs
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := l.Err(); err != nil {
		return fail(err)
	}
	batches, err := l.enqueueAll(reqs)
	if err != nil {
		return fail(err)
	}
	for j, b := range batches {
		select {
		case <-b.done:
			errs[index[j]] = b.err
		case <-ctx.Done():
			errs[index[j]] = fmt.Errorf("append to ledger %q: %w", l.path, ctx.Err())
		}
		l.resume(b)
	}
	return errs
}

// Enqueue appends like AppendQueued but returns at once, before the line is
// even written: it goes out with the next batch the writer takes, and is
// made durable by the next sync (of an Append, or Close). It fails at once
// when the handle is dead or closed, or the record is malformed; a write
// error after it returns kills the handle, and every later Append reports
// it. For records that follow what they record and that no caller waits
// on, such as the outcome of a call, whose answer need not wait for the
// writer: under load, a write queued behind a sync in progress would hold
// it up for that sync.
func (l *Ledger) Enqueue(ctx context.Context, typ string, fields any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	if !validEventName(typ) || typ == EventGenesis || typ == EventRecovered {
		return fmt.Errorf("append to ledger %q: %w %q", l.path, ErrEventName, typ)
	}
	data, err := l.encode(fields)
	if err != nil {
		return fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	if n := l.overhead + len(typ) + len(data); n > MaxLineSize {
		return fmt.Errorf("append %s to ledger %q: %w: %d bytes, limit %d", typ, l.path, ErrTooLarge, n, MaxLineSize)
	}
	if err := l.Err(); err != nil {
		return err
	}
	if _, _, err := l.enqueue(request{event: typ, data: data, queued: true, detached: true}); err != nil {
		return fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	return nil
}

func (l *Ledger) append(ctx context.Context, typ string, fields any, queued bool) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	if !validEventName(typ) || typ == EventGenesis || typ == EventRecovered {
		return Record{}, fmt.Errorf("append to ledger %q: %w %q", l.path, ErrEventName, typ)
	}
	data, err := l.encode(fields)
	if err != nil {
		return Record{}, fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	if n := l.overhead + len(typ) + len(data); n > MaxLineSize {
		return Record{}, fmt.Errorf("append %s to ledger %q: %w: %d bytes, limit %d", typ, l.path, ErrTooLarge, n, MaxLineSize)
	}
	if err := l.Err(); err != nil {
		return Record{}, err
	}
	if !queued {
		if rec, ok, err := l.commitDirect(request{event: typ, data: data}); ok {
			return rec, err
		}
	}
	b, i, err := l.enqueue(request{event: typ, data: data, queued: queued})
	if err != nil {
		return Record{}, fmt.Errorf("append %s to ledger %q: %w", typ, l.path, err)
	}
	if cancel := ctx.Done(); cancel != nil {
		select {
		case <-b.done:
		case <-cancel:
			l.resume(b)
			return Record{}, fmt.Errorf("append %s to ledger %q: %w", typ, l.path, ctx.Err())
		}
	} else {
		<-b.done // context.Background and the like: no select needed
	}
	l.resume(b)
	if b.err != nil {
		return Record{}, b.err
	}
	return l.record(b, i), nil
}

// Log appends ev under its own event type; see Append.
func (l *Ledger) Log(ctx context.Context, ev Event) (Record, error) {
	return l.Append(ctx, ev.EventType(), ev)
}

// encode turns fields into the compact, redacted JSON object stored as the
// record's data. It runs in the caller's goroutine, so that encoding and
// redaction of concurrent appends run in parallel.
func (l *Ledger) encode(fields any) ([]byte, error) {
	if fields == nil {
		return []byte("{}"), nil
	}
	if d, ok := fields.(Decision); ok && d.Kind == "resource" && len(l.redact.norm) > 0 {
		d.Tool, d.URI = redactURI(d.Tool, l.redact.norm), redactURI(d.URI, l.redact.norm)
		fields = d
	}
	bp := encodeBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			encodeBufs.Put(bp)
		}
	}()
	e := dataEncoder{buf: (*bp)[:0], keys: l.redact, limit: l.limit}
	redact, err := e.fields(fields)
	*bp = e.buf
	if err != nil {
		return nil, fmt.Errorf("encode event fields: %w", err)
	}
	data := e.buf
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("event fields must encode to a JSON object, not %.20q", data)
	}
	if redact {
		if data, err = redactJSON(data, l.redact.norm, l.limit); err != nil {
			return nil, err
		}
	} else {
		data = bytes.Clone(data)
	}
	if s := l.scrub.Load(); s != nil {
		data = (*s).Scrub(data)
	}
	return data, nil
}

// Scrubber replaces, in a record's encoded data, values that must never
// be stored, such as the secrets a session handed to its server, which a
// client may also send in a call. Scrub returns data itself when it finds
// nothing; what it puts in a value's place holds no '"' and no '\', so the
// data stays one JSON object.
type Scrubber interface {
	Scrub(data []byte) []byte
}

// SetScrubber makes every record appended from now on pass through s
// before it is hashed and written. Records appended earlier are as they
// were.
func (l *Ledger) SetScrubber(s Scrubber) {
	l.scrub.Store(&s)
}

// encodeBufs holds the buffers encode writes into before it copies the
// result, at its exact size, for the record; maxPooledBuf bounds what it
// keeps.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

// Close waits for pending appends to be committed and closes the file.
// Appends after Close fail with ErrClosed.
func (l *Ledger) Close() error {
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return nil
	}
	l.closed = true
	l.qmu.Unlock()
	l.signal()
	<-l.done
	if l.fileDone {
		return nil
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close ledger %q: %w", l.path, err)
	}
	return nil
}
