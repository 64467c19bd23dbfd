package proxy

import "sync"

// The outbox carries the client's messages to the server in the order the
// client sent them, each once it may go: a judged call once its decision is
// durable, everything else at once but never ahead of what came before it
// (a notifications/cancelled must not overtake its request). The client's
// reader does not wait for the ledger: it judges a call, hands its record
// to the ledger and reads on, so that the decisions of concurrent calls
// share one fdatasync (the ledger's group commit), and the outbox writes
// each call when its turn comes.
//
//	client reader          recorder goroutines        outbox (one writer at a time)
//	  judge A ──push A──────────────────────────────▶ [A …]
//	  Record(A) async ──▶ Record(A) ……… durable ──finish A──▶ write A
//	  judge B ──push B──────────────────────────────▶ [B …]
//	  notification C ──push C (ready)───────────────▶ [B C] waits for B
//	                       Record(B) … durable ──finish B──▶ write B, write C
//
// Whoever makes the head of the queue ready writes it and every ready item
// behind it: the reader when it pushes a ready item onto an empty queue
// (the common case: no copy, no hand-off), else the goroutine that
// finished the head. Writing happens outside the lock by one goroutine at
// a time (draining), so order holds. The queue holds at most max items;
// the reader waits for room, so a server that stops reading stops the
// client's reader, and memory stays bounded.
type outbox struct {
	write func(line []byte) error

	mu       sync.Mutex
	room     sync.Cond // signalled when items shrink or draining ends
	items    []*outItem
	bytes    int // of the copied lines in items
	max      int
	draining bool
	closed   bool
	onEmpty  func() // set by close: runs once the queue is empty
}

// outItem is one message for the server.
type outItem struct {
	line []byte
	// ready: the message may be written (or dropped) once it is at the
	// head; drop: it is not to be written after all (a denial).
	ready, drop bool
	// sent runs after the write, with its error; nil for messages whose
	// failure only needs logging (see proxy.forwarded).
	sent func(err error)
}

// outboxBytes bounds the messages the outbox holds copies of: beyond it,
// the reader waits until the queue has drained, so that the proxy holds
// one large message at a time (the one being read), plus this.
const outboxBytes = 4 << 20

func newOutbox(max int, write func([]byte) error) *outbox {
	o := &outbox{write: write, max: max}
	o.room.L = &o.mu
	return o
}

// push appends it to the queue, waiting while the queue is full unless
// nowait. A ready item pushed onto an empty queue is written at once by the
// caller, and its line is not copied: the caller's buffer is still valid.
//
// The proxy passes nowait while calls are parked (order.go): one of them
// may wait for an answer only the client's reader can pass on (say, to an
// elicitation the server made while running an earlier write), and a
// reader waiting for room would never read it. Requests are bounded then by
// Config.MaxPending all the same.
func (o *outbox) push(it *outItem, nowait bool) {
	o.mu.Lock()
	for !nowait && (len(o.items) >= o.max || len(o.items) > 0 && o.bytes+len(it.line) > outboxBytes) {
		o.room.Wait()
	}
	if !(it.ready && len(o.items) == 0 && !o.draining) {
		it.line = clone(it.line)
		o.bytes += len(it.line)
	}
	o.items = append(o.items, it)
	o.drainLocked()
	o.mu.Unlock()
}

// finish marks it ready, or dropped, and writes what the queue allows.
func (o *outbox) finish(it *outItem, drop bool) {
	o.mu.Lock()
	it.ready, it.drop = true, drop
	o.drainLocked()
	o.mu.Unlock()
}

// drainLocked writes the ready items at the head of the queue, unless
// another goroutine is doing so (it will see them). Call with o.mu held;
// it is released while writing.
func (o *outbox) drainLocked() {
	if o.draining {
		return
	}
	o.draining = true
	for len(o.items) > 0 && o.items[0].ready {
		it := o.items[0]
		o.items[0] = nil
		o.items = o.items[1:]
		o.bytes -= len(it.line)
		o.room.Broadcast()
		o.mu.Unlock()
		if !it.drop {
			err := o.write(it.line)
			if it.sent != nil {
				it.sent(err)
			}
		}
		o.mu.Lock()
	}
	if len(o.items) == 0 {
		o.items = o.items[:0:0] // let the backing array go
		if o.closed && o.onEmpty != nil {
			f := o.onEmpty
			o.onEmpty = nil
			o.mu.Unlock()
			f()
			o.mu.Lock()
		}
	}
	o.draining = false
	o.room.Broadcast()
}

// close runs f once every queued item has been written or dropped: at once
// when the queue is empty. No push may follow.
func (o *outbox) close(f func()) {
	o.mu.Lock()
	o.closed = true
	o.onEmpty = f
	o.drainLocked()
	o.mu.Unlock()
}

// waitEmpty waits until nothing is queued or being written. Not while
// calls are parked: see push.
func (o *outbox) waitEmpty() {
	o.mu.Lock()
	for len(o.items) > 0 || o.draining {
		o.room.Wait()
	}
	o.mu.Unlock()
}

// empty reports whether nothing is queued or being written.
func (o *outbox) empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items) == 0 && !o.draining
}
