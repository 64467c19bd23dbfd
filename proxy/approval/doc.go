// Package approval puts a question to a person and brings back the answer:
// the channels through which vm-run asks before a call under an ask rule
// goes ahead, or before a secret under approve: ask is handed over.
//
// [Approver] is the contract every channel meets. The MCP proxy (package
// proxy) asks through the client itself, with an elicitation/create of
// its own, when the client declared the elicitation capability; otherwise
// through the approval socket that `vm-run approvals` talks to: [Socket].
//
//	s, err := approval.Listen(approval.Options{})
//	if err != nil {
//		return err // no approvals directory of the caller's: say why
//	}
//	defer s.Close()
//	ans, err := s.Ask(ctx, approval.Question{ID: approval.NewID(), ...})
//	if err != nil {
//		return err // expired, withdrawn or closed: the call does not go ahead
//	}
//
// # The approvals directory
//
// Every vm-run process that may ask serves one socket, named by its pid
// and a random suffix, in [Dir]: $XDG_RUNTIME_DIR/vm-run/approvals, else
// /run/user/UID/vm-run/approvals when that runtime directory is the
// caller's, else vm-run-approvals-UID in the temp dir. The directories
// vm-run makes are mode 0700 and are checked every time (a directory, not
// a symbolic link, the caller's, no group or other bits); anything else
// is refused with a [*DirError] and a hint, because the socket is only as
// private as its directory. The socket listens from [Listen] to
// [Socket.Close], which removes it; a vm-run killed with SIGKILL leaves
// its file behind, and `vm-run approvals list` reports such stale sockets.
//
// # Who may connect
//
// On accept the socket reads its peer's credentials from the kernel
// (SO_PEERCRED, unix(7)), never from anything the peer says, and admits
// only a process with the socket owner's uid in the owner's own user
// namespace. Root is not admitted to a user's socket: it could become the
// user anyway, and keeping it out keeps "uid=N" in the ledger the account
// that owns the session. The user namespace check stands behind the
// sandbox's own walls: the sandboxed server runs in a user namespace of
// its own whose uid maps to the caller's, so were the socket ever visible
// inside, the uid alone would let it approve its own calls. Approving from
// a container or a sandboxed terminal (a Flatpak, say) is refused for the
// same reason. The answer's By is "uid=N pid=M" from those credentials.
//
// # The protocol
//
// One JSON object per line each way ([Request], [Reply]). The socket
// speaks first. Requests are at most [MaxRequest] bytes and parsed
// strictly: an unknown field, op or scope, a malformed ID or code is a
// bad_request reply, and the connection stays usable; a longer line ends
// it. Every reply is written under a deadline and queued without
// waiting: a client that does not read is dropped, never waited for. A
// connection must send its next request within 30 s, unless it watches or
// holds a challenge (then until the question's deadline); at most 32 are
// served at once.
//
//	vm-run approvals                           vm-run (Socket)
//	     |  connect                                 |
//	     |----------------------------------------->|  SO_PEERCRED: uid, user namespace
//	     |<-----------------------------------------|  {"type":"hello","hello":{"proto":1,"pid":P,"socket":"P-xxxxxxxx.sock"}}
//	     |                                          |  (or {"type":"error","error":{"code":"peer_refused",...}}, then close)
//	     |  {"op":"list"}                           |
//	     |----------------------------------------->|
//	     |<-----------------------------------------|  {"type":"questions","questions":[Question...]}
//	     |                                          |
//	     |  {"op":"challenge","id":"Q"}             |  a fresh code for Q, valid on this
//	     |----------------------------------------->|  connection only, for one approve
//	     |<-----------------------------------------|  {"type":"challenge","challenge":{"question":{...},"code":"K7M2QD"}}
//	     |  the person reads the question and the   |
//	     |  code on the terminal, types the code    |
//	     |                                          |  (should Q end meanwhile:
//	     |<-----------------------------------------|   {"type":"event","event":{"type":"ended","id":"Q","why":"expired"}})
//	     |  {"op":"approve","id":"Q","scope":"once","code":"K7M2QD"}
//	     |----------------------------------------->|  code checked, and voided if wrong
//	     |<-----------------------------------------|  {"type":"done"}: Ask returns the grant
//	     |                                          |
//	     |  {"op":"deny","id":"Q","reason":"..."}   |  no code: a no is always safe
//	     |----------------------------------------->|
//	     |<-----------------------------------------|  {"type":"done"}
//	     |                                          |
//	     |  {"op":"watch"}                          |
//	     |----------------------------------------->|
//	     |<-----------------------------------------|  {"type":"watching"}
//	     |<-----------------------------------------|  {"type":"event","event":{"type":"asked","question":{...}}}  one per question waiting,
//	     |<-----------------------------------------|  {"type":"event","event":{"type":"ended","id":"Q","why":"answered"}}  then as they come
//
// A refused request is answered {"type":"error","error":{"code":C,
// "message":M}} with C one of the Code constants: unknown_id (no such
// question waits here, or it ended), no_challenge, wrong_code,
// ttl_not_offered (scope ttl on a question whose rule has no ttl),
// expired, bad_request, too_long, timeout, busy, peer_refused. A
// question ends "answered", "expired" (its Deadline passed), "withdrawn"
// (the caller's context ended: the client cancelled the call, or the
// session ends) or "closed" (the socket closed).
//
// # The human-visible step
//
// Approving takes a one-time code that the socket makes for one question
// and sends only to the connection that asked for it, and `vm-run
// approvals approve` insists on a terminal: it opens /dev/tty (the
// controlling terminal, not stdin or stdout, which a tool shell pipes),
// requires being in its foreground process group, discards input typed
// ahead, shows the whole question there with the code, and sends the
// approve only with what the person types back. Without a controlling
// terminal it fails before it connects. An agent that runs commands
// through a tool shell with pipes, as MCP clients' agents do, therefore
// cannot approve its own calls with the stock command, and keystrokes
// queued before the question was shown cannot match a code not yet made.
// Deny needs none of this: refusing is always safe.
//
// # What it does not stop
//
// The code proves attention at a terminal, not who sits there; it is no
// secret from processes of the same account. An agent with an unsandboxed
// shell of its own on the same account can connect to the socket and
// send the code it was given, or run the command under a pseudo-terminal
// it drives (script(1), expect), or ptrace vm-run where
// /proc/sys/kernel/yama/ptrace_scope allows it, or edit the profile so
// that nothing is asked. What the socket guarantees is that the sandboxed
// server never answers. It cannot reach the socket: the built-in
// profiles cover /run (so /run/user/UID) and /tmp (the fallback, when
// TMPDIR is unset) with empty tmpfs in the sandbox's own mount namespace,
// and XDG_RUNTIME_DIR is not in their environment; their seccomp filter
// refuses socket(AF_UNIX) unless the profile opts in (dev does); and the
// sandbox's own network namespace and Landlock's scoping keep abstract
// names apart, though the socket has none. A runtime directory elsewhere
// is hidden only if the profile hides it or grants nothing above it; and
// should the sandbox reach the socket, the user namespace check refuses
// it.
package approval
