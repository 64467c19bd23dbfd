// Package httpfront is the MCP Streamable HTTP transport of `vm-run serve`
// (revisions 2025-06-18 and 2025-11-25, "Basic / Transports"): an
// [http.Handler] for the MCP endpoint that gives each MCP session a
// [Session] of its own from a [Starter], and carries the session's
// newline-delimited JSON-RPC between the HTTP client and that Session. For
// vm-run a Session is one sandbox with the stdio proxy (package proxy) in
// front of its server; this package knows nothing of either.
//
//	h, err := httpfront.New(httpfront.Config{
//		Starter:        starter,    // one sandbox per session
//		Authorizer:     bearer,     // or httpfront.AllowAll behind SO_PEERCRED
//		AllowedOrigins: []string{"http://localhost:8700"},
//	})
//	mux.Handle(httpfront.Endpoint, h) // "/mcp"
//	defer h.Close()                   // ends every session
//
// # Messages
//
// The client POSTs one JSON-RPC message per request; the front reads its
// envelope (parse errors, batches and non-integer ids get 400), compacts it
// onto one line and writes it to the Session's In. A notification or a
// response gets 202 Accepted. A request gets its response, routed back by
// request id, either as one application/json body or on a text/event-stream
// (SSE) stream: SSE for tools/call, so that progress and the server's own
// requests can reach the client during the call, JSON otherwise (unless the
// client accepts only SSE). What the server sends unasked goes, one stream
// per message, to the request whose progress token it names, else to the
// session's GET stream; a server request with no GET stream open goes to
// the oldest SSE stream of a pending POST (a client need not open GET); the
// rest waits, bounded, for a GET.
//
//	client                        Handler                          Session
//	  │ POST initialize ────────────▶ │ Starter.Start(ctx, id) ─────▶ │
//	  │                               │ line ──────────────────────▶ In
//	  │ ◀── 200 JSON, Mcp-Session-Id  │ ◀────────────────────── response Out
//	  │ POST notifications/initialized│ line ──────────────────────▶ In
//	  │ ◀── 202 Accepted              │                               │
//	  │ GET (Accept: event-stream) ─▶ │ standby stream                │
//	  │ POST tools/call ────────────▶ │ line ──────────────────────▶ In
//	  │ ◀── SSE: progress             │ ◀──────── notifications/progress
//	  │ ◀── SSE on GET: elicitation   │ ◀────── elicitation/create (req)
//	  │ POST elicitation answer ────▶ │ line ──────────────────────▶ In
//	  │ ◀── 202 Accepted              │                               │
//	  │ ◀── SSE: result, stream ends  │ ◀──────────────── tools/call result
//	  │ DELETE ─────────────────────▶ │ In.Close, Session.Close ────▶ │
//	  │ ◀── 204 No Content            │                               │
//
// # Refusals
//
// Every request is checked first for its Host (one not in
// Config.AllowedHosts, when set, gets 403) and its Origin ("Security
// Warning": one not in Config.AllowedOrigins gets 403; both against DNS
// rebinding) and then by
// the [Authorizer] (401 or 403 with no detail). Then, per "Streamable
// HTTP": a method other than POST, GET and DELETE gets 405; a request
// other than initialize without Mcp-Session-Id gets 400, with an unknown or
// ended one 404 (the client then initializes anew); an MCP-Protocol-Version
// the front does not speak, or other than the one the session negotiated,
// 400 ("Protocol Version Header"); a body over Config.MaxBodyBytes 413; a
// new session over Config.MaxSessions 503 with Retry-After.
//
// # Sessions
//
// A session ends on DELETE, after Config.IdleTimeout with no POST, when
// its Out ends (the server crashed: requests still waiting get -32603 and
// the id 404 from then on), or on [Handler.Close]; each way, the front
// closes its In and calls its Close once. A session whose initialize fails,
// or whose server chooses a revision the front does not speak, is ended at
// once.
//
// # Memory and isolation
//
// Each session has its own goroutines for In and Out; a POST waits for its
// server only as long as its client does. Messages to a client queue on
// its stream (Config.StreamBuffer); a stream that overflows is closed
// rather than stall its server, and every write has Config.WriteTimeout.
// A body is at most Config.MaxBodyBytes, a server line Config.MaxMessageBytes
// (longer ones are discarded as they stream), held messages
// Config.HeldMessages. One slow client or hung server holds only its own
// session.
//
// # Not done here
//
// Event ids and resumption ("Resumability and Redelivery" is a MAY): a
// broken SSE stream loses what was on it, and Last-Event-ID opens a fresh
// GET stream. The stateless 2026-07-28 draft (server/discover): such a
// request without a session gets 400 and the Go SDK's client falls back
// to initialize.
package httpfront
