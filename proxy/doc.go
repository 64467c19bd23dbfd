// Package proxy is vm-run's MCP stdio proxy: it stands between the MCP
// client (vm-run's own stdin and stdout) and the sandboxed MCP server (pipes
// to its stdin and stdout), frames newline-delimited JSON-RPC 2.0 in both
// directions, correlates requests with responses, and enforces the tool
// policy of the profile's `tools:` section. Every decision reaches a
// [Recorder] (the audit ledger) before it takes effect.
//
//	pol, err := proxy.DecodePolicy(node, hook) // or proxy.Strict()
//	err = proxy.Run(ctx, proxy.Config{
//		Policy:    pol,
//		Workspace: "/home/me/project",
//		Recorder:  ledger, // or proxy.Discard
//		Log:       os.Stderr,
//	}, os.Stdin, os.Stdout, serverStdin, serverStdout)
//
// # What passes, what is judged
//
// Messages no policy concerns pass byte for byte: initialize, ping,
// resource and prompt listings the policy leaves whole, completion,
// logging, progress and cancellation notifications, roots, tasks. The policy
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
//     [CodePolicyDenied] (-32003).
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
//   - a line over Config.MaxLine: discarded as it streams; from the client
//     answered -32600 with id null, from the server dropped and logged;
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
// notifications/cancelled; the client's own cancellations are forwarded
// and forget the request.
//
// # Ledger
//
// The [Recorder] gets each [Decision] (method, tool, redacted arguments,
// verdict, rule, reason, latency) and returns only when it is durable; only
// then is the call forwarded or the denial sent. If Record fails, the call
// is denied with [RuleLedger] and Config.OnRecorderError hears of it. The
// [Outcome] of an allowed call (status, size, duration) is recorded before
// its answer leaves the proxy; if that fails, the requester gets -32603
// instead of the answer.
//
// Memory is bounded by Config.MaxLine and Config.MaxPending, not by
// traffic: lines are read through a fixed buffer, a line over the limit is
// discarded as it streams, and a writer that blocks blocks its reader.
//
// # Policy schema
//
// The `tools:` section of a profile, decoded by [DecodePolicy]:
//
//	tools:
//	  default_action: deny      # allow | deny; absent means deny
//	  defaults:                 # optional per-kind override of default_action
//	    resource: allow         # kinds: tool resource prompt sampling elicitation
//	  classes:                  # add to the built-in classes
//	    read:
//	      tools: [my_reader]    # tool-name globs
//	    fetch:
//	      tools: ["http_*"]
//	      path_args: [file]     # arguments holding paths (string or list)
//	      read_only: true       # server annotations may veto allows
//	  rules:
//	    - id: allow-docs
//	      allow: ["read(docs/*)", "read(*.md)"]
//	    - id: block-src-writes
//	      reason: sources are reviewed, not edited by agents
//	      deny: ["write(src/*)", "write(lib/*)"]
//	    - id: misc
//	      allow:
//	        - echo                          # tool named echo (or glob: get_*)
//	        - tool(read)                    # a tool named like a class
//	        - resource(file:///srv/docs/**) # URI glob
//	        - prompt(review_*)
//	        - sampling                      # the server's sampling requests
//	        - tool: search_files            # mapping form
//	          paths: ["src/**"]
//	          args:
//	            pattern: {glob: "*.go"}
//	            query: {regex: "[a-z ]+"}   # anchored: must match all
//
// The seeds' example, `rules`, `default_action` and all, is a valid
// `tools:` section (its `network:` key belongs to the profile, not here).
//
// A matcher string is WORD or WORD(ARGUMENT). sampling and elicitation take
// no argument; tool(NAME), resource(URI) and prompt(NAME) take a glob; a
// class name takes an optional path glob, as does any other word, which is a
// tool-name glob. The built-in classes are "read" and "write", holding the
// tools of @modelcontextprotocol/server-filesystem by what they do, with
// path arguments path, paths, source and destination (see
// [BuiltinClasses]).
//
// Name globs: "*" any run of characters, "?" one, "[a-z]" and "[!a]"
// classes, "\" quotes. URI globs are the same except that "*" and "?" stop
// at "/" and "**" does not. Path globs are gitignore-like and relative to
// the workspace: a pattern with a "/" is anchored at the workspace root, one
// without matches at any depth ("*.md" is "**/*.md"), "./*.md" anchors it;
// "*" stays within one name, "**" spans any number of names (none
// included). Absolute patterns and ".." are errors.
//
// A path matcher in an allow list grants a call when every path argument
// lies at or beneath a match ("read(docs/*)" allows docs/a and docs/a/b but
// not docs itself; "read(docs)" or "read(docs/**)" includes it). In a deny
// list it refuses a call when any path argument touches a match, beneath it
// or above it ("write(src/*)" also refuses moving src away). A matcher with
// paths never matches a call without path arguments. Argument constraints
// must all hold; in a deny list an argument no pattern can describe (an
// object) counts as a match.
//
// Path arguments are checked before any rule: invalid UTF-8, NUL and
// control characters, "..", "~", absolute paths outside the workspace,
// leading or trailing blanks and quotes, and characters Unicode
// normalisation would change deny the call ([RulePaths]), even under
// default_action: allow. Paths are compared lexically and case-sensitively,
// as Linux compares names; symbolic links are not followed (Landlock bounds
// what a link inside the workspace can reach). Resource URIs with dot
// segments or percent-encoded dots, slashes, backslashes, percent signs or
// NULs are denied ([RuleURI]).
//
// Order: deny beats allow beats the default. Tool annotations are the
// server's claims: they can tighten a decision and never loosen it. An
// allow through a read_only class (the built-in "read" is one) does not
// apply to a tool the server annotates readOnlyHint: false or
// destructiveHint: true.
//
// # Built-in policies
//
// [Strict] is the policy of the built-in strict profiles: default deny, the
// "read" class allowed in the workspace, resources and prompts allowed,
// everything else (writes, unknown tools, sampling, elicitation) denied.
// Reading inside the workspace discloses nothing the sandbox does not
// already give the server, while writes and unknown tools change things and
// must be named in a profile; sampling and elicitation are channels from a
// hostile server to the model and the user. [Permissive] allows everything
// but keeps the path checks.
package proxy
