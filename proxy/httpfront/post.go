package httpfront

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"time"
)

// post serves "Sending Messages to the Server": one JSON-RPC message per
// POST; a notification or response gets 202 Accepted with no body, a
// request gets its response as JSON or on an SSE stream.
func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, codeInvalid, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, codeInvalid, "body too large")
			return
		}
		httpError(w, http.StatusBadRequest, codeParse, "cannot read body")
		return
	}
	m, err := parseMessage(body)
	if err != nil {
		code := codeInvalid
		if !errors.Is(err, errBatch) {
			code = codeParse
		}
		httpError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	wantSSE := accepts(r, "text/event-stream")
	if m.kind == kindRequest && !wantSSE && !accepts(r, "application/json") {
		httpError(w, http.StatusNotAcceptable, codeInvalid, "Accept must list application/json and text/event-stream")
		return
	}
	// JSON unless the call may stream: a tools/call is where progress
	// notifications and the server's own requests come from.
	sse := wantSSE && (m.method == "tools/call" || !accepts(r, "application/json"))

	var s *session
	if m.method == "initialize" {
		// "Session Management", item 1: the session id is assigned on
		// the response to initialize, so initialize must not carry one.
		if r.Header.Get(HeaderSessionID) != "" || m.kind != kindRequest {
			httpError(w, http.StatusBadRequest, codeInvalid, "initialize must come without "+HeaderSessionID)
			return
		}
		if s = h.newSession(w, r); s == nil {
			return
		}
		s.mu.Lock()
		s.initKey = m.idKey
		s.mu.Unlock()
		w.Header().Set(HeaderSessionID, s.id)
	} else if s = h.lookup(w, r); s == nil || !h.checkVersion(w, r, s) {
		return
	}
	s.postStarted()
	defer s.postEnded()

	if m.kind != kindRequest {
		if !s.send(m.line, r.Context().Done()) {
			httpError(w, http.StatusNotFound, codeInvalid, "session ended")
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	st, ok := s.openStream(sse, m)
	if !ok {
		httpError(w, http.StatusBadRequest, codeInvalid, "request id already in flight")
		return
	}
	defer s.closeStream(st, m.idKey)
	if !s.send(m.line, r.Context().Done()) {
		if m.method == "initialize" {
			s.end("initialize abandoned")
		}
		httpError(w, http.StatusNotFound, codeInvalid, "session ended")
		return
	}
	answered := h.serveStream(w, r, s, st, m)
	if m.method == "initialize" {
		s.mu.Lock()
		ok := s.version != ""
		s.mu.Unlock()
		if !answered || !ok {
			// A session whose initialize failed serves no one: end it
			// rather than keep a sandbox for an id nobody will use.
			s.end("initialize failed")
		}
	}
}

// get serves "Listening for Messages from the Server": an SSE stream for
// messages not tied to a request. A new GET replaces the session's
// earlier one (the client reconnects after a network failure before the
// front may notice it). The front keeps no event ids, so Last-Event-ID
// resumes nothing ("Resumability and Redelivery" is a MAY).
func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	if !accepts(r, "text/event-stream") {
		httpError(w, http.StatusNotAcceptable, codeInvalid, "Accept must list text/event-stream")
		return
	}
	s := h.lookup(w, r)
	if s == nil || !h.checkVersion(w, r, s) {
		return
	}
	st, _ := s.openStream(true, nil)
	defer s.closeStream(st, "")
	h.serveStream(w, r, s, st, nil)
}

// delete ends a session ("Session Management", item 5).
func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	s := h.lookup(w, r)
	if s == nil || !h.checkVersion(w, r, s) {
		return
	}
	if err := s.end("deleted by the client"); err != nil {
		h.logf("session %s: close: %v", s.id, err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveStream writes st's messages to the client until the response to m
// has been written (m nil: the GET stream, until the session ends), the
// client goes away, or the stream is dropped. It reports whether m's
// response was written. When the session ends first, a pending request
// gets -32603: the server will not answer it.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, s *session, st *stream, m *message) bool {
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if st.sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if !write([]byte(": stream open\n\n")) {
			return false
		}
	}
	emit := func(line []byte) bool {
		if st.sse {
			return write(sseEvent(line))
		}
		w.Header().Set("Content-Type", "application/json")
		return write(line)
	}
	var tick <-chan time.Time
	if st.sse {
		t := time.NewTicker(h.cfg.KeepAlive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case o := <-st.q:
			if !emit(o.line) {
				return false
			}
			if o.final {
				return true
			}
		case <-tick:
			if !write([]byte(": keepalive\n\n")) {
				return false
			}
		case <-s.done:
			// Deliver what the server said before it went, then tell a
			// request still waiting that no answer will come.
			for {
				select {
				case o := <-st.q:
					if !emit(o.line) {
						return false
					}
					if o.final {
						return true
					}
					continue
				default:
				}
				break
			}
			if m != nil {
				emit(errorLine(m.id, codeInternal, "the session ended before the server answered"))
			}
			return false
		case <-st.gone:
			return false
		case <-r.Context().Done():
			// "Disconnection SHOULD NOT be interpreted as the client
			// cancelling its request": the server is not told; the client
			// cancels with notifications/cancelled.
			return false
		}
	}
}
