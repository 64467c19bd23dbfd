// Package pins keeps the tool definitions an MCP server has presented, per
// profile and server command, in a store outside the sandbox, so that a
// server cannot change what a tool says to the model once a person has
// come to trust it (the "rug pull": a description that turns into
// instructions to read ~/.ssh, an input schema that grows a field for
// them, an annotation that stops saying read-only).
//
// The proxy (package proxy, Config.Pins) compares every tools/list page
// with the pins before the page reaches the client; the profile's
// `tools.on_change` ([github.com/vm-run/vm-run/policy.OnChange]) says what happens
// to a tool that changed; `vm-run pins list|show|accept` lets a person see
// and accept changes.
//
//	store, err := pins.OpenStore(dir) // pins.DefaultDir()
//	set, err := store.Open(pins.Key{Profile: "strict", Argv: argv})
//	def, err := pins.Parse(toolJSON) // one tool of a tools/list result
//	results, err := set.Check([]pins.Definition{def})
//	// results[0].Status: pins.New, pins.Same, pins.Changed (with Summary)
//
// # What is pinned
//
// A tool's definition is reduced to [Fields] (name, title, description,
// inputSchema, outputSchema, annotations), written in canonical JSON
// ([Canonical]: object keys sorted, no white space, numbers by value) and
// hashed with SHA-256. Two listings that say the same thing in other JSON
// hash alike; any change of content is a new hash. _meta, icons, execution
// and members MCP does not define are left out: _meta is reserved for
// implementations and servers put per-session values in it, icons are for
// people, and none of them is what the model reads as the tool. A member
// that is null counts as absent.
//
// # Keys and files
//
// The pins of one profile and one server command form a [Key]: the
// profile as vm-run was given it (a name, or a file's absolute path) and
// the command exactly as given after --. The file is
// <store>/<hex SHA-256 of ["vm-run pins v1", profile, argv...]>.json; the
// same server under another profile, or started with other arguments, has
// pins of its own. The store is $XDG_STATE_HOME/vm-run/pins, or
// ~/.local/state/vm-run/pins ([DefaultDir]); vm-run keeps it out of the
// sandbox's reach (a profile that grants it is refused), since a server
// that could write its pins could accept its own next definition.
//
// A pin file holds, per tool, the pinned hash and definition (the
// definition only up to [MaxDefinition]; over it, the hash alone), when it
// was pinned, and the definition last seen that differs from the pin, so
// that `vm-run pins show` can say what changed and `accept` pins exactly
// what the server presented.
//
// # Safety of the store
//
// The directory is created with mode 0700 and pin files are written with
// mode 0600. On every read the directory and the file must belong to the
// caller (the effective uid) and be closed to group and others, and a
// pin file is opened without following a symbolic link; anything else is
// [ErrUnsafe]. A file that does not parse, names another key, holds an
// unknown member or a definition its hash does not name is [ErrCorrupt].
// Errors are [*StoreError] values with a Hint.
//
// Writes are atomic: a temporary file in the same directory, fsync, rename
// over the pin file, fsync of the directory. A crash leaves the old file
// or the new one. Many vm-run processes may share a pin file (systemd
// units on a build host): each read-modify-write ([Store.Update],
// [Set.Check], [Store.Accept]) holds flock(2) on <id>.lock, which the
// renames of the pin file do not replace, and reads the file afresh under
// it, so no process writes over another's pins.
//
// # A session
//
// [Set.Check] runs on each tools/list page:
//
//   - a tool seen for the first time is pinned quietly: the pin file is the
//     record, with the time, and the ledger gets nothing, since nothing was
//     decided (vm-run says on stderr how many tools it pinned);
//   - a tool whose definition is the pinned one passes, and loses any
//     last-seen definition (the server went back);
//   - a tool whose definition differs keeps its pin; the new definition is
//     kept as last seen, and the proxy records an audit.ToolChanged (both
//     hashes, the fields changed, a summary, the action) before the page
//     reaches the client, once per definition per session;
//   - a tool that is no longer listed keeps its pin: a server that drops a
//     tool for a session and brings it back changed is still caught.
//
// What happens to a changed tool is the profile's tools.on_change:
//
//   - deny: it is removed from the list, and a call to it is denied with
//     rule vm-run:pins and a reason that names `vm-run pins show` and
//     `vm-run pins accept`;
//   - ask (the default): it stays listed, and each call to it is put to a
//     person first (once; package proxy's ask handling); where no one can
//     be asked it is treated as deny, with a reason that says approval is
//     needed;
//   - allow: it is listed and callable, and the change is recorded. The
//     old pin stays until a person accepts the new definition, so every
//     session records the change again, rather than one permissive session
//     making the new definition the trusted one.
//
// A call to a tool that this session has not listed (a client that kept a
// list from an earlier session) is judged by the pin file: if the tool's
// last listing in any session differed from its pin and was not accepted,
// it is treated as changed; otherwise the policy alone judges it.
//
// # Failure
//
// Nothing fails open. A pin file vm-run cannot trust (unsafe or corrupt)
// stops the launch, exit status 125, with a hint: treating every tool as
// new would hand a rug-pulling server a clean slate. When the store fails
// during a session (a file that turned corrupt, a full disk), every tool
// of that page is withheld and calls to it are denied, whatever on_change
// says; so is a changed tool whose tool_changed record the ledger could
// not take.
//
// # Bounds
//
// A server chooses its tools' names, count and text. A summary ([Diff]) is
// at most [MaxSummary] bytes, quotes at most a few words of a description
// and a few property names, and escapes every control and non-printing
// character, since it goes to the ledger, to stderr and to a terminal. A
// key holds at most [MaxTools] pins; a tool beyond them cannot be pinned
// and is treated as changed ([Unpinnable]).
//
// # The command
//
//	vm-run pins list                                   # every key with pins
//	vm-run pins list --profile strict -- npx -y SERVER  # its tools, changed ones marked
//	vm-run pins show TOOL --profile strict -- npx -y SERVER
//	vm-run pins accept TOOL --profile strict -- npx -y SERVER
//	vm-run pins accept --all --profile strict -- npx -y SERVER
//
// The profile and the command must be given as they are given to vm-run,
// since together they are the key. accept says what it accepted, from
// which hash to which, and what changed.
package pins
