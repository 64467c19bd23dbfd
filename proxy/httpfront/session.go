package httpfront

import (
	"bufio"
	"encoding/json"
	"sync"
	"time"
)

// session is one MCP session: a Session from the Starter and the HTTP
// streams that currently carry its messages to the client.
type session struct {
	h   *Handler
	id  string
	srv Session

	in      chan []byte   // lines for srv.In, written by one goroutine
	done    chan struct{} // closed when the session ends
	endOnce sync.Once
	endErr  error

	mu       sync.Mutex
	version  string             // negotiated by initialize
	initKey  string             // id of the initialize request, until answered
	pending  map[string]*stream // POSTed requests waiting, by idKey
	standby  *stream            // the GET stream, if one is open
	held     []*message         // server messages waiting for a stream
	seq      uint64             // orders streams, oldest first
	inflight int                // POSTs being served
	lastPost time.Time
	idle     *time.Timer
}

// stream is one HTTP response carrying messages to the client: a POST's
// SSE stream or JSON body, or the GET stream.
type stream struct {
	sse         bool
	seq         uint64
	progressKey string
	q           chan outgoing // bounded by Config.StreamBuffer
	gone        chan struct{} // closed when the stream is dropped
	goneOnce    sync.Once
}

// outgoing is a line for the client; final marks the response that
// completes a POST.
type outgoing struct {
	line  []byte
	final bool
}

func (st *stream) drop() { st.goneOnce.Do(func() { close(st.gone) }) }

func newSession(h *Handler, id string, srv Session) *session {
	return &session{
		h: h, id: id, srv: srv,
		in:       make(chan []byte, 16),
		done:     make(chan struct{}),
		pending:  map[string]*stream{},
		lastPost: time.Now(),
	}
}

// run starts the goroutines that move lines to and from the server side,
// and the idle timer.
func (s *session) run() {
	go s.write()
	go s.read()
	s.mu.Lock()
	s.idle = time.AfterFunc(s.h.cfg.IdleTimeout, s.checkIdle)
	s.mu.Unlock()
}

func (s *session) write() {
	w := s.srv.In()
	for {
		select {
		case line := <-s.in:
			if _, err := w.Write(line); err != nil {
				s.end("write to server: " + err.Error())
				return
			}
		case <-s.done:
			return
		}
	}
}

// send queues a line for the server. It waits while the server is not
// reading, but no longer than the client does.
func (s *session) send(line []byte, cancel <-chan struct{}) bool {
	select {
	case s.in <- line:
		return true
	case <-cancel:
	case <-s.done:
	}
	return false
}

func (s *session) read() {
	br := bufio.NewReaderSize(s.srv.Out(), 64<<10)
	for {
		line, tooLong, err := readLine(br, s.h.cfg.MaxMessageBytes)
		if err != nil {
			s.end("server output ended")
			return
		}
		if tooLong {
			s.h.logf("session %s: server line over %d bytes dropped", s.id, s.h.cfg.MaxMessageBytes)
			continue
		}
		if len(line) == 0 {
			continue
		}
		m, err := parseMessage(line)
		if err != nil {
			s.h.logf("session %s: server line dropped: %v", s.id, err)
			continue
		}
		s.route(m)
	}
}

// route sends one server message where the transport says it belongs:
//
//   - a response to the POST that carried its request ("Sending Messages to
//     the Server", item 6: the SSE stream "SHOULD eventually include a
//     JSON-RPC response for the JSON-RPC request sent in the POST body");
//   - a progress notification to the SSE stream of the request whose
//     progress token it names (messages on it "SHOULD relate to the
//     originating client request");
//   - anything else to the GET stream ("Listening for Messages from the
//     Server"); a server request with no GET stream open goes to the oldest
//     POST SSE stream, lest a client that never opens one wait forever on
//     a tool that asks it something; the rest is held until a GET arrives.
//
// Each message goes to one stream only ("Multiple Connections", item 2).
func (s *session) route(m *message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.kind == kindResponse {
		st := s.pending[m.idKey]
		if st == nil {
			s.h.logf("session %s: response to no pending request dropped", s.id)
			return
		}
		delete(s.pending, m.idKey)
		line := m.line
		if m.idKey == s.initKey {
			s.initKey = ""
			line = s.initialized(m)
		}
		s.deliver(st, outgoing{line, true})
		return
	}
	if m.method == "notifications/progress" && m.progressKey != "" {
		for _, st := range s.pending {
			if st.sse && st.progressKey == m.progressKey {
				s.deliver(st, outgoing{line: m.line})
				return
			}
		}
	}
	if s.standby != nil {
		s.deliver(s.standby, outgoing{line: m.line})
		return
	}
	if m.kind == kindRequest {
		var oldest *stream
		for _, st := range s.pending {
			if st.sse && (oldest == nil || st.seq < oldest.seq) {
				oldest = st
			}
		}
		if oldest != nil {
			s.deliver(oldest, outgoing{line: m.line})
			return
		}
	}
	s.hold(m)
}

// initialized learns the negotiated version from the initialize result.
// A result in a revision the front does not speak is replaced by an error,
// and the session ends once it has been delivered (see post).
func (s *session) initialized(m *message) []byte {
	var res struct {
		Result *struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	json.Unmarshal(m.line, &res)
	if res.Result == nil {
		return m.line
	}
	for _, v := range s.h.cfg.ProtocolVersions {
		if v == res.Result.ProtocolVersion {
			s.version = v
			return m.line
		}
	}
	return errorLine(m.id, codeInternal, "the server chose protocol version "+
		res.Result.ProtocolVersion+", which this HTTP front does not speak")
}

// deliver queues a line on st without blocking; a stream whose client has
// fallen StreamBuffer messages behind is dropped.
func (s *session) deliver(st *stream, o outgoing) {
	select {
	case st.q <- o:
	default:
		s.h.logf("session %s: stream of a slow client dropped", s.id)
		st.drop()
		if st == s.standby {
			s.standby = nil
		}
	}
}

// hold keeps a message for the next GET stream. When full, the oldest
// notification gives way; a request that finds no room is answered -32603
// so that the server does not wait for it forever.
func (s *session) hold(m *message) {
	if len(s.held) >= s.h.cfg.HeldMessages {
		for i, hm := range s.held {
			if hm.kind == kindNotification {
				s.held = append(s.held[:i], s.held[i+1:]...)
				break
			}
		}
	}
	if len(s.held) < s.h.cfg.HeldMessages {
		s.held = append(s.held, m)
		return
	}
	s.h.logf("session %s: no stream to the client; %q dropped", s.id, m.method)
	if m.kind == kindRequest {
		select {
		case s.in <- errorLine(m.id, codeInternal, "no stream open to the client"):
		default:
		}
	}
}

// openStream registers a stream. A POST's is keyed by its request id; a
// GET's replaces any earlier GET stream and takes the held messages.
func (s *session) openStream(sse bool, m *message) (*stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	st := &stream{sse: sse, seq: s.seq, gone: make(chan struct{})}
	if m == nil {
		st.q = make(chan outgoing, s.h.cfg.StreamBuffer+s.h.cfg.HeldMessages)
		if s.standby != nil {
			s.standby.drop()
		}
		s.standby = st
		for _, hm := range s.held {
			st.q <- outgoing{line: hm.line}
		}
		s.held = nil
		return st, true
	}
	if _, dup := s.pending[m.idKey]; dup {
		return nil, false
	}
	st.q = make(chan outgoing, s.h.cfg.StreamBuffer)
	st.progressKey = m.progressKey
	s.pending[m.idKey] = st
	return st, true
}

// closeStream forgets st; a late response for it is dropped.
func (s *session) closeStream(st *stream, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.drop()
	if s.pending[key] == st {
		delete(s.pending, key)
	}
	if s.standby == st {
		s.standby = nil
	}
}

// postStarted and postEnded count POSTs in flight for the idle timeout.
func (s *session) postStarted() {
	s.mu.Lock()
	s.inflight++
	s.lastPost = time.Now()
	s.mu.Unlock()
}

func (s *session) postEnded() {
	s.mu.Lock()
	s.inflight--
	s.lastPost = time.Now()
	s.mu.Unlock()
}

func (s *session) checkIdle() {
	s.mu.Lock()
	wait := s.h.cfg.IdleTimeout - time.Since(s.lastPost)
	if s.inflight > 0 {
		wait = s.h.cfg.IdleTimeout
	}
	if wait > 0 {
		s.idle.Reset(wait)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.end("idle")
}

// end ends the session once: it leaves the Handler's table (so its id
// gets 404 from now on), wakes every stream, closes the server's input
// and closes the Session.
func (s *session) end(reason string) error {
	s.endOnce.Do(func() {
		s.h.mu.Lock()
		if s.h.sessions[s.id] == s {
			delete(s.h.sessions, s.id)
		}
		s.h.mu.Unlock()
		s.mu.Lock()
		close(s.done)
		if s.idle != nil {
			s.idle.Stop()
		}
		s.mu.Unlock()
		s.h.logf("session %s ended: %s", s.id, reason)
		s.srv.In().Close()
		s.endErr = s.srv.Close()
	})
	return s.endErr
}
