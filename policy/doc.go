// Package policy is vm-run's tool-policy language: the `tools:` section of
// a profile, and the decisions made with it. It decides on the calls the
// MCP proxy (package proxy) sees: a client's tools/call, resources/read,
// resources/subscribe and prompts/get, and a server's sampling and
// elicitation requests. It knows nothing of JSON-RPC or of transports; the
// proxy hands it a [CallInfo] and records the [audit.Decision] it returns.
//
//	pol, err := policy.DecodePolicy(node, nil)
//	d := pol.Decide(policy.CallInfo{
//		Kind:      policy.KindTool,
//		Name:      "write_file",
//		Arguments: map[string]any{"path": "src/main.c"},
//		Workspace: "/home/me/project",
//	})
//	if !d.Allowed() { ... d.Rule, d.Reason, d.Paths ... }
//
// A Decision whose Verdict is [Ask] is neither allowed nor denied yet: see
// "Asking a person" below.
//
// # Inheritance
//
// One rule, everywhere ([Inherit]): deny and ask rules accumulate down a
// profile's extends: chain and from a --policy file, and nothing later can
// remove them (a later rule with the id of an inherited deny or ask rule is
// an error, so an inherited rule's ttl and timeout cannot be lengthened
// either, and `tools: ~` drops only what was allowed); allow rules,
// default_action and defaults come from the nearest tools: section, so
// that a profile extending strict that allows reading docs/ means that and
// not "strict's reads plus docs/"; an unset default_action is deny;
// classes add up.
// Each rule remembers the file it comes from (Rule.Origin), which
// `vm-run profiles show` prints.
//
// # Observe mode
//
// A policy whose mode is observe ([Mode]) is judged as ever, but the proxy
// forwards what it denies and records it as would_deny, with the rule:
// the learn-then-enforce workflow, ending in [Generate]. Observe relaxes,
// so it cannot follow an explicit "mode: enforce" anywhere before it.
//
// Observe relaxes the policy's denials, never a person's: an ask is asked
// in observe mode as in enforce mode, and a no, or no answer, denies. And
// since observe mode would forward a denied call without asking anyone, a
// call that a deny rule (or a path check) refuses and that an ask rule
// also names, or whose kind asks by default, is asked in observe mode
// rather than forwarded; its reason says it would be denied.
//
// # Paths
//
// A path argument is judged by where it really leads when the call is
// decided, not by how it is spelled:
//
//   - Lexical checks first ([PathError]): invalid UTF-8, NUL and control
//     characters, "..", "~", absolute paths outside the workspace, leading or
//     trailing blanks and quotes, a path not in Unicode normalisation form
//     C (NFC), and characters newer than the Unicode version of vm-run's
//     normalisation tables deny the call ([RulePaths]), even under
//     default_action: allow; the reason gives the NFC spelling to use.
//   - Bases: a relative path is read against the workspace and against every
//     root the server was told ([CallInfo].Bases; the proxy owns roots), and
//     the call must be allowed under each reading.
//   - Links: each component is looked up with lstat and every symbolic link
//     followed as the kernel would (path_resolution(7)), at most 40; a path
//     whose lookup leaves the workspace at any step is denied ([RulePaths]).
//     Rules are applied to the resolved path, and deny rules also to the
//     path as spelled; the decision records the resolved paths
//     ([audit.Decision].Paths).
//   - Hard links: a file with more than one hard link has names the policy
//     cannot see; a call that may write it, or that a deny rule with paths
//     could concern, is denied.
//   - Equivalent names: a name that does not exist is looked for among the
//     entries whose NFC form is its own, as server-filesystem does; the one
//     found is followed, more than one is refused.
//   - Order: the proxy judges a call with path arguments only once every
//     earlier call that may write has been answered, and a relative one
//     only while the server's roots are not changing ([Policy.Touches];
//     package proxy, order.go): a client that pipelines its calls cannot
//     have one judged before an earlier one has moved a link into its way.
//   - Bases also include directories inside the workspace named on the
//     server's command line: server-filesystem reads relative paths against
//     the first directory it serves.
//
// Names are compared in NFC: path patterns are normalised when they are
// compiled and judged paths when they are matched, so that "A\u0301" on
// disk (NFD, or reached through a link target) meets the rules written for
// "\u00C1", and the other way round. That is the equivalence
// server-filesystem applies when a name does not exist: it takes the entry
// whose normalize("NFC") is the same. The server's Unicode tables (its
// JavaScript engine's) may be newer than vm-run's (x/text follows Unicode
// 15 before Go 1.27), so a path pattern with a character vm-run's tables do
// not have is an error. Compatibility forms (NFKC: "\uFB01" and "fi") are
// different names to the kernel and to the server, and are not folded.
// Names are compared case-sensitively, as Linux and server-filesystem on
// Linux compare them: "DOCS" is not "docs".
//
// What remains: the proxy decides, then the server acts. Between the two,
// the server itself, or a process other than the client's calls writing
// the workspace, can replace a component with a link, and the server would
// then touch another file than the one judged. The policy cannot close that window from outside the
// sandbox; the kernel layer still holds: Landlock confines the server to
// the paths the profile grants, so a swapped link can lead it only to
// places the profile lets it write anyway. A policy that must hold against
// the server itself belongs in the profile's filesystem rules, which the
// kernel enforces.
//
// # URIs
//
// Resource rules match the normalised URI ([NormalizeURI]): scheme and host
// lower-cased, file://localhost/ as file:///, percent-encoded unreserved
// characters decoded, dot segments removed. A URI whose meaning is
// ambiguous, one a server could read otherwise than the proxy (an encoded
// "/", "\", "%" or NUL, a fragment, user information, a malformed
// escape, control characters), is denied ([RuleURI]). Deny rules also match
// the URI with every number in canonical form ([NumericVariant]), because
// servers that parse numbers read "01", "1.0" and "0x1" as 1, and the URI
// without its query, which a server may ignore. The proxy also judges the
// resources a server embeds in tool results, prompts and resources/read
// answers, as a resources/read of their URIs would be, and withholds an
// answer that embeds a denied one; a completion/complete of a prompt's
// arguments is judged as getting the prompt.
//
// # Schema
//
// The `tools:` section of a profile, decoded by [DecodePolicy]:
//
//	tools:
//	  default_action: deny      # allow | ask | deny; absent means deny
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
//	    - id: review-shell
//	      reason: commands run with the user's rights outside the workspace
//	      ask: [run_command, "write(.github/**)"]
//	      ttl: 15m                # a grant may be remembered this long; absent: once
//	      timeout: 60s            # then the call is denied; absent: 120s
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
// Ask matchers select calls as deny matchers do (a path touching a
// pattern is enough, an argument no pattern can describe counts as a
// match): asking is a restriction, and errs towards asking.
//
// Order: deny beats ask beats allow beats the default. Tool annotations are
// the server's claims: they can tighten a decision and never loosen it. An
// allow through a read_only class (the built-in "read" is one) does not
// apply to a tool the server annotates readOnlyHint: false or
// destructiveHint: true; under default_action: ask such a call is asked,
// under allow or deny it is denied. No annotation turns an ask into an
// allow.
//
// # Asking a person
//
// A call an ask matcher selects, or that no rule allows under an ask
// default, gets a Decision with Verdict [Ask], the rule's id (or
// [RuleDefault]) and a reason for the person. [audit.Decision.Allowed] is false
// for it, so code that knows nothing of asking denies it. The proxy looks
// the rule up with [Policy.AskRule] ([AskParams]: ttl and timeout; a
// default ask is once only, with the default timeout), asks a person for
// at most the timeout (1s to 1h, default 120s; no answer denies), and
// offers approval once or, when the rule has a ttl (at most 24h), for the
// ttl.
//
// A grant for the ttl covers later calls that are the same call, and no
// other. Two calls are the same exactly when [GrantKey] gives both the
// same key, that is, when all of these are equal:
//
//   - the kind (tool, resource, prompt, sampling, elicitation);
//   - the name as the client sent it, byte for byte: the tool or prompt
//     name, or the resource URI before normalisation;
//   - the rule that asks (its id);
//   - the workspace, and the set of bases (roots) relative paths are read
//     against;
//   - the paths the call really leads to when it is decided (links
//     followed; [audit.Decision].Paths), so a link swapped between two
//     calls makes the second ask again;
//   - the arguments, as canonical JSON: object keys sorted by their
//     bytes, list order kept, strings compared exactly (no Unicode
//     normalisation: "é" and "é" differ), numbers by their
//     JSON text as sent ("1", "1.0" and "1e0" differ), and a number never
//     equal to a string.
//
// Everything else may differ: the request id, the time, the client's
// other calls. Each difference errs towards asking again.
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
package policy
