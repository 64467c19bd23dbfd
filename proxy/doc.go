// Package proxy is vm-run's MCP stdio proxy: it stands between the MCP
// client (vm-run's own stdin and stdout) and the sandboxed MCP server (pipes
// to its stdin and stdout), frames newline-delimited JSON-RPC 2.0 in both
// directions, correlates requests with responses, owns the MCP roots the
// server learns, and enforces the tool policy of the profile's `tools:`
// section (package policy). Every decision reaches a [Recorder] (the audit
// ledger) before it takes effect.
//
//	pol, err := policy.DecodePolicy(node, hook) // or policy.Strict()
//	err = proxy.Run(ctx, proxy.Config{
//		Policy:    pol,
//		Workspace: "/home/me/project",
//		Recorder:  proxy.Ledger(ledger), // or proxy.Discard
//		Log:       os.Stderr,
//	}, os.Stdin, os.Stdout, serverStdin, serverStdout)
//
// # What passes, what is judged
//
// Messages no policy concerns pass byte for byte: initialize, ping,
// resource and prompt listings the policy leaves whole, completion,
// logging, progress and cancellation notifications, tasks. Roots are
// rewritten (see Roots below). The policy
// judges tools/call (by tool name and arguments), resources/read and
// resources/subscribe (by URI), prompts/get (by name and arguments), and the
// server's sampling/createMessage and elicitation/create requests (also when
// a 2026-07-28 result asks for them as inputRequests). It filters
// tools/list, resources/list and prompts/list page by page, keeping
// nextCursor, so a client does not see what no call could reach.
//
// A request for a method the proxy does not know is answered -32601 and
// never forwarded; an unknown notification is dropped: the policy cannot
// judge what it does not know.
//
// # Denials
//
// A denied call never reaches the server. The answer names the rule and the
// reason and says that retrying will not help. Its shape depends on what the
// method can carry:
//
//   - tools/call: a result with isError: true and one text content item,
//     because MCP asks that tool failures go in the result where the model
//     sees them (a JSON-RPC error is often shown only to the user);
//   - every other method (resources/read, prompts/get, and the server's
//     sampling and elicitation requests): a JSON-RPC error with code
//     [CodePolicyDenied] (-32030).
//
// Both carry {"rule", "reason", "retryable": false} under the [MetaKey] key
// (in _meta of the tool result, in data of the error). A call whose params
// cannot be read (no tool name, arguments not an object) is not a denial but
// a malformed request: -32602, recorded with rule [RuleInvalid].
//
// # Bad input
//
// Each line is parsed in full before anything is done with it. Answers go
// to whichever side sent the line:
//
//   - not one JSON text in UTF-8 (lone surrogate escapes and nesting deeper
//     than 512 included): -32700 with id null;
//   - a batch array, a non-object, a missing or wrong "jsonrpc", an id that
//     is null, fractional or beyond 2^53-1, a key given twice in one object,
//     a request with result or error, params that are not structured:
//     -32600 (with the id when it is readable, else null);
//   - an id already in flight in the same direction: -32600;
//   - an unknown method: -32601; unreadable params of a judged call: -32602;
//   - a line over Config.MaxLine: discarded as it streams, and answered as
//     soon as it crosses the limit, from its first bytes: a client request
//     gets -32600 under its id (null when the id is not among them); the
//     client request a server answer belongs to gets -32603 and the outcome
//     too_large; when the id cannot be read, every waiting request does
//     (toolong.go);
//   - a malformed response, or a response to an id not in flight: dropped
//     and logged (JSON-RPC never answers a response), except that the
//     server's malformed answer to a pending request becomes -32603 for the
//     client, which would otherwise wait forever.
//
// Nothing unparsed is ever forwarded.
//
// When the server's output ends, every request still waiting gets -32603
// and [Run] returns [ErrServerExited]. When the client's input ends, Run
// closes the server's stdin, calls Config.ClientClosed (the launcher's cue
// for its grace period, SIGTERM and SIGKILL) and forwards the server's
// remaining output. A server that hangs holds only its own requests:
// Config.CallTimeout, if set, answers them -32603 and sends the server
// notifications/cancelled, counting from the request or from the server's
// last progress notification for it (progress.go); the client's own
// cancellations are forwarded and forget the request.
//
// # Roots
//
// The proxy owns MCP roots. A server such as server-filesystem replaces the
// directories it serves with the client's roots and reads relative paths
// against the first, so every roots list the client sends (its answer to
// the server's roots/list, and roots among the inputResponses of a 2026-07-28
// request) is rewritten before the server sees it: a root that is not a
// file:// URI of an existing directory inside the workspace (after symbolic
// links) is dropped, a kept one is sent as the URI of the directory it
// really names, and an [audit.Roots] record of what was offered, kept and
// dropped is on disk first. Every root the server was told becomes a base
// ([policy.CallInfo].Bases), as are directories inside the workspace named
// on the server's command line (Config.Bases): a relative path is judged
// against the workspace and each base and must be allowed under all.
//
// # Order
//
// Everything the client sends goes to the server in the client's order,
// through the outbox (outbox.go); answers to the server's own requests do
// not wait in it. A judged call waits there until its decision is durable.
// A call with paths is judged only once every earlier call that may write
// has been answered, a relative one only while no roots change is under
// way, and new roots reach the server only once the relative calls judged
// against the old ones have been answered (order.go): a client that does
// not wait for its answers cannot slip a call between a link's move and
// its use, or a path between two roots.
//
// # Embedded resources
//
// A resource the server embeds in a tool result, a prompt or a
// resources/read answer is judged as a resources/read of its URI; an
// answer that embeds a denied one is withheld, the requester gets the
// denial, and the outcome is content_denied (embedded.go).
//
// # Ledger
//
// The [Recorder] gets an [audit.Decision] for each judged call (method,
// tool, the arguments as sent, verdict, rule, reason, the paths the call
// really leads to, latency) and returns only when it is durable; only then
// is the call forwarded or the denial sent. A call alone is recorded on the
// reader's goroutine; when the client has more waiting, the reader reads on
// and one recording goroutine hands the decisions waiting to a
// [BatchRecorder] together, so they share a sync (recording.go). The ledger alone redacts: it
// stores secret arguments as hashes of their real values. If Record fails,
// the call is denied with [policy.RuleLedger] and Config.OnRecorderError
// hears of it. The [audit.Outcome] of an allowed call (status, size,
// duration) is queued before its answer leaves the proxy; if that fails,
// the requester gets -32603 instead of the answer.
//
// Memory is bounded by Config.MaxLine and Config.MaxPending, not by
// traffic: a line is held whole once (up to MaxLine), a line over the limit
// is discarded as it streams, a writer that blocks blocks its reader, and
// the outbox holds at most MaxPending messages. Writes are batched while
// more input is already buffered: a flood costs a write per buffer, not per
// message.
//
// # Asking a person
//
// A call under an ask rule (policy.Ask) waits for a person while the proxy
// serves everything else (ask.go): it leaves the outbox, its decision
// (verdict ask) and an [audit.ApprovalRequested] are made durable, and
// the question goes to the client itself, as an elicitation/create of
// vm-run's own, when the client declared the elicitation capability
// (elicit.go), else to Config.Approver (the approval socket of `vm-run
// approvals`); with neither, the call is denied at once. The answer is
// recorded (approval_granted, approval_denied, approval_expired) before it
// takes effect. A grant puts the call back at the end of the outbox to be
// judged again, and it is forwarded only if that judgement leads to the
// same grant key (policy.GrantKey: the same arguments and the same
// resolved paths); a denial, a timeout (the rule's timeout, 120 s by
// default) or a failed channel answers it as a denial by the ask rule,
// recorded as a decision of its own. A notifications/cancelled from the
// client withdraws the question (the client's dialog is cancelled in
// turn) and reaches no one else: the server never saw the call. A grant
// "for the rule's ttl" lets the same call through without a question until
// it ends, each time recorded as approval_granted by channel
// "remembered". The server cannot answer or withdraw a question: vm-run's
// request ids to the client are its own ("vm-run-approval-" and a
// per-session nonce), a server request using one is refused and a
// server's cancellation naming one dropped. Only the client's calls are
// asked about: a server's sampling or elicitation request, and a resource
// embedded in an answer, that an ask rule selects are refused as a deny
// rule would refuse them (the client puts those before its user anyway,
// and an answer cannot wait for a person without holding the call).
//
// # Observe mode and hidden tools
//
// Under a policy in observe mode ([policy.Policy.Observing]) a call the
// policy denies is forwarded and its decision recorded with verdict
// would_deny; lists are not filtered. A malformed request and a decision
// the ledger cannot record are still refused. The first tools/list page
// from which the policy removes (or in observe mode would remove) tools
// makes the proxy say so once on Config.Log, with the count, the names,
// the rules and what to do (hidden.go): a server whose tools all vanish
// otherwise looks broken, not governed.
//
// # Secrets
//
// When the launcher handed the server secrets (a profile's secrets:,
// as environment variables), Config.Scrubber holds their values and every
// line the server sends is scrubbed before anything else reads it
// (scrub.go): responses, requests and notifications alike, so that the
// policy, the filters, the proxy's own errors and log lines quoting the
// server, and the client see only the scrubbed line. A value found (raw,
// percent-encoded, base64 or base64url, JSON-escaped: package
// proxy/secrets says what is and is not caught) is replaced by "[redacted:
// secret NAME]", and an [audit.SecretRedacted] per secret (forms, count,
// the method, and the decision of the call answered) is recorded durably
// before the line goes on. A line that no longer parses once redacted (a
// redacted key can repeat another), or whose redaction the ledger cannot
// record, is withheld: the request it answers gets -32603, a request of
// the server's gets -32603 back, a notification is dropped. Without a
// Scrubber the check costs one nil comparison per line.
//
// # Pinned tool definitions
//
// With Config.Pins set (vm-run always sets it), each tools/list page is
// compared with the definitions pinned for the profile and server command
// (package pins) before it reaches the client (pinning.go): a tool seen
// for the first time is pinned quietly; a changed one keeps its old pin,
// is recorded as an [audit.ToolChanged] (durable first, once per
// definition per session) and is treated as the policy's tools.on_change
// says ([policy.Policy.ChangeAction]): deny withholds it from the list and
// denies calls to it with rule [RulePins] and a reason that names `vm-run
// pins show` and `vm-run pins accept`; ask keeps it listed while someone
// can be asked (the client through elicitation, or Config.Approver) and
// makes each call to it an ask decision by rule [RulePins], put to a person
// as an ask rule's call is (approve once, default timeout), and with no
// one to ask does as deny does; allow lets it through. A call
// to a tool the session has not listed is judged by the pin file. If the
// pin store or the ledger fails, the tools concerned are withheld and
// denied whatever on_change says. In observe mode a withheld tool stays
// listed and a denied call is forwarded as would_deny, like the policy's
// own denials. The pin file's lock is taken on the server's reader, so a
// page waits while another vm-run updates the same key.
//
// # Log
//
// Config.Log gets one line per refused or dropped message, each starting
// "vm-run: proxy: " once; pass the stream as it is.
package proxy
