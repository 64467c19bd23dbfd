package httpfront

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoint is the path the caller mounts the [Handler] on: the transport's
// single "MCP endpoint" that takes POST and GET.
const Endpoint = "/mcp"

// Header names of the transport. Go canonicalises header names, so these
// match however the client spells them.
const (
	HeaderSessionID       = "Mcp-Session-Id"
	HeaderProtocolVersion = "Mcp-Protocol-Version"
)

// A Starter starts the server side of one MCP session.
//
// Start is called once per initialize request that arrives without a
// session id, with id the new session's id (32 hex digits from
// crypto/rand, also sent to the client in Mcp-Session-Id). ctx bounds the
// start only: it ends when the client gives up on the initialize POST, and
// the Session returned must outlive it. Start must be safe for concurrent
// use; a Start that fails or hangs holds up only that client.
type Starter interface {
	Start(ctx context.Context, id string) (Session, error)
}

// A Session is the server side of one MCP session, spoken as the stdio
// transport speaks: one JSON-RPC message per line, UTF-8, no embedded
// newlines.
//
// In receives what the client sends; the Handler writes whole lines to it
// from one goroutine, and closes it when the session ends. Out yields what
// goes back to the client; the Handler reads it from one goroutine until it
// returns an error or io.EOF, which ends the session (a crashed server).
// Close ends the server side and releases it (for vm-run: ends the
// sandbox); after Close, Out must return promptly. The Handler calls
// Close exactly once, after closing In, whether the session ended by
// DELETE, idle timeout, [Handler.Close] or the end of Out.
type Session interface {
	In() io.WriteCloser
	Out() io.Reader
	Close() error
}

// An Authorizer decides who may reach the endpoint. Authorize is called for
// every request, before the body is read and before any session is looked
// up, and must be safe for concurrent use. It returns nil to admit r; an
// error wrapping [ErrUnauthenticated] refuses it with 401 (the client may
// retry with credentials), any other error with 403. The client learns
// only the status: the error goes to Config.Refused, never on the wire. An
// Authorizer comparing secrets should do so in constant time
// (crypto/subtle).
type Authorizer interface {
	Authorize(r *http.Request) error
}

// AuthorizerFunc adapts a function to [Authorizer].
type AuthorizerFunc func(r *http.Request) error

// Authorize calls f(r).
func (f AuthorizerFunc) Authorize(r *http.Request) error { return f(r) }

// AllowAll admits every request. It is for listeners that authenticate
// peers themselves (a unix socket whose accept checks SO_PEERCRED) and for
// tests; a missing Authorizer is an error, never an open door.
var AllowAll Authorizer = AuthorizerFunc(func(*http.Request) error { return nil })

// ErrUnauthenticated is what an [Authorizer] wraps when r carries no valid
// credentials, as opposed to valid ones that are not allowed.
var ErrUnauthenticated = errors.New("httpfront: no valid credentials")

// Config is the Handler's configuration. Zero values take the defaults
// named on each field.
type Config struct {
	Starter    Starter    // required
	Authorizer Authorizer // required; see AllowAll

	// AllowedOrigins lists the Origin header values admitted, exactly
	// ("https://ide.example.com", "http://localhost:8700"). A request with
	// an Origin not listed gets 403 ("Security Warning": servers "MUST
	// validate the Origin header on all incoming connections"); one
	// without Origin (no browser) is admitted.
	AllowedOrigins []string
	// AllowedHosts, when set, lists the host names (without port,
	// compared without case) a request's Host may name: a page that
	// rebinds its own name to 127.0.0.1 then still sends its own name,
	// and gets 403, whatever its Origin. A front on a loopback address
	// lists "localhost", "127.0.0.1" and "::1"; empty admits any Host.
	AllowedHosts []string

	MaxSessions  int           // live sessions; 64. Over it: 503 + Retry-After
	RetryAfter   time.Duration // the Retry-After of that 503; 5 s
	MaxBodyBytes int64         // a POST body; 4 MiB. Over it: 413
	// MaxMessageBytes bounds one line from a Session's Out; 16 MiB. A
	// longer one is discarded and the request it answers gets -32603.
	MaxMessageBytes int
	// IdleTimeout ends a session that has had no POST in flight for this
	// long; 30 minutes. An open GET stream does not keep a session alive.
	IdleTimeout time.Duration
	// StreamBuffer is the number of messages one SSE stream may have
	// queued for a client that reads slowly; 64. A stream that overflows
	// is closed, so a stuck client never stalls its session's server.
	StreamBuffer int
	// HeldMessages bounds the server-initiated messages held for a
	// session with no stream to carry them; 64.
	HeldMessages int
	// KeepAlive is the interval of SSE comments on an idle stream, which
	// finds dead connections; 25 s.
	KeepAlive time.Duration
	// WriteTimeout bounds each write to a client; 30 s.
	WriteTimeout time.Duration
	// ProtocolVersions are the MCP revisions the front accepts in
	// MCP-Protocol-Version and as the outcome of initialize; default
	// 2025-03-26, 2025-06-18 and 2025-11-25.
	ProtocolVersions []string

	// Refused, if set, hears of every request refused for its Origin or by
	// the Authorizer (status 401 or 403), with the reason.
	Refused func(r *http.Request, status int, reason error)
	// Log gets one line per dropped message or ended session, each
	// starting "vm-run: httpfront: "; nil discards them.
	Log io.Writer
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxSessions, 64)
	def(&c.MaxMessageBytes, 16<<20)
	def(&c.StreamBuffer, 64)
	def(&c.HeldMessages, 64)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	defDur(&c.RetryAfter, 5*time.Second)
	defDur(&c.IdleTimeout, 30*time.Minute)
	defDur(&c.KeepAlive, 25*time.Second)
	defDur(&c.WriteTimeout, 30*time.Second)
	if len(c.ProtocolVersions) == 0 {
		c.ProtocolVersions = []string{"2025-03-26", "2025-06-18", "2025-11-25"}
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Handler is the http.Handler of the MCP endpoint. Each MCP session it
// creates has a [Session] of its own from the [Starter].
type Handler struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]*session
	starting int // sessions being started, counted against MaxSessions
	closed   bool
}

// New returns a Handler for cfg. It fails without a Starter or an
// Authorizer.
func New(cfg Config) (*Handler, error) {
	if cfg.Starter == nil {
		return nil, errors.New("httpfront: Config.Starter is nil")
	}
	if cfg.Authorizer == nil {
		return nil, errors.New("httpfront: Config.Authorizer is nil (use AllowAll if the listener authenticates)")
	}
	cfg.setDefaults()
	return &Handler{cfg: cfg, sessions: map[string]*session{}}, nil
}

// Close ends every session (closing its In, then calling its Close) and
// refuses new ones with 503. Requests in flight get 404 or, for a request
// waiting on its answer, -32603.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.end("front closed"))
	}
	return errors.Join(errs...)
}

// Sessions returns the number of live sessions.
func (h *Handler) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func (h *Handler) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Log, "vm-run: httpfront: "+format+"\n", args...)
}

// ServeHTTP checks Origin and authorisation for every request, then serves
// POST, GET and DELETE; anything else gets 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.cfg.AllowedHosts) > 0 && !hostAllowed(r.Host, h.cfg.AllowedHosts) {
		h.refuse(w, r, http.StatusForbidden, fmt.Errorf("host %q not allowed", r.Host))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !slices.Contains(h.cfg.AllowedOrigins, o) {
		h.refuse(w, r, http.StatusForbidden, fmt.Errorf("origin %q not allowed", o))
		return
	}
	if err := h.cfg.Authorizer.Authorize(r); err != nil {
		status := http.StatusForbidden
		if errors.Is(err, ErrUnauthenticated) {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		h.refuse(w, r, status, err)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodGet:
		h.get(w, r)
	case http.MethodDelete:
		h.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpError(w, http.StatusMethodNotAllowed, codeInvalid, "method not allowed")
	}
}

// refuse answers with the bare status text: a refusal says nothing that
// helps whoever was refused.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason error) {
	if h.cfg.Refused != nil {
		h.cfg.Refused(r, status, reason)
	}
	http.Error(w, http.StatusText(status), status)
}

// httpError answers with a JSON-RPC error response that has no id, as the
// transport allows for a body the server "cannot accept".
func httpError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(errorLine(nil, code, msg))
}

// lookup finds the session r names. It answers 400 without the header
// ("Session Management", item 2) and 404 for a session that is unknown or
// over (item 3), which tells the client to initialize anew (item 4).
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) *session {
	id := r.Header.Get(HeaderSessionID)
	if id == "" {
		httpError(w, http.StatusBadRequest, codeInvalid, "missing "+HeaderSessionID)
		return nil
	}
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s == nil {
		httpError(w, http.StatusNotFound, codeInvalid, "session not found")
		return nil
	}
	return s
}

// checkVersion applies "Protocol Version Header": an invalid or unsupported
// MCP-Protocol-Version gets 400; so does one other than the version the
// session negotiated. Its absence is allowed (the spec then assumes
// 2025-03-26, and the session knows better).
func (h *Handler) checkVersion(w http.ResponseWriter, r *http.Request, s *session) bool {
	v := r.Header.Get(HeaderProtocolVersion)
	if v == "" {
		return true
	}
	s.mu.Lock()
	negotiated := s.version
	s.mu.Unlock()
	if !slices.Contains(h.cfg.ProtocolVersions, v) || (negotiated != "" && v != negotiated) {
		httpError(w, http.StatusBadRequest, codeInvalid, "unsupported "+HeaderProtocolVersion+" "+strconv.Quote(v))
		return false
	}
	return true
}

// accepts reports whether the Accept header admits the media type.
func accepts(r *http.Request, media string) bool {
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		t, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && (t == media || t == "*/*" || t == strings.SplitN(media, "/", 2)[0]+"/*") {
			return true
		}
	}
	return false
}

// newSession reserves a slot, starts the server side and registers it.
func (h *Handler) newSession(w http.ResponseWriter, r *http.Request) *session {
	h.mu.Lock()
	if h.closed || len(h.sessions)+h.starting >= h.cfg.MaxSessions {
		h.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int((h.cfg.RetryAfter+time.Second-1)/time.Second)))
		httpError(w, http.StatusServiceUnavailable, codeInternal, "too many sessions")
		return nil
	}
	h.starting++
	h.mu.Unlock()

	id := newID()
	srv, err := h.cfg.Starter.Start(r.Context(), id)
	h.mu.Lock()
	h.starting--
	if err == nil && h.closed {
		err = errors.New("front closed")
	}
	if err != nil {
		h.mu.Unlock()
		if srv != nil {
			srv.In().Close()
			srv.Close()
		}
		h.logf("start session %s: %v", id, err)
		httpError(w, http.StatusServiceUnavailable, codeInternal, "cannot start a session")
		return nil
	}
	s := newSession(h, id, srv)
	h.sessions[id] = s
	h.mu.Unlock()
	s.run()
	return s
}

func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// hostAllowed reports whether the Host header names one of hosts, port
// aside.
func hostAllowed(host string, hosts []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return slices.ContainsFunc(hosts, func(a string) bool { return strings.EqualFold(a, host) })
}
