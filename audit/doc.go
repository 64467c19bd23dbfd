// Package audit owns vm-run's ledger: an append-only, hash-chained JSON Lines
// file in which every session and every policy decision is on disk before
// it takes effect.
//
//	l, err := audit.Open(path, audit.Options{Profile: "strict", ProfileHash: h})
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//	if _, err := l.Log(ctx, audit.Decision{Tool: "write_file", Verdict: audit.VerdictDeny, Rule: "block-src"}); err != nil {
//		return err // not recorded: the decision must not take effect
//	}
//
// [Ledger.Append] returns only after the record's line is written and
// fdatasync'ed. Appends that arrive while the handle is busy are committed
// together, with one write and one fdatasync (group commit), and the next
// batch is written while the previous one syncs. After a sync, the next
// batch is not written before the appenders it answered have woken up, so
// that those that append again at once join it; a lone append is never
// held back, and nothing waits on a timer. [Verify] checks a whole ledger;
// [ResolvePath] finds it; [Redact] says what is kept of event fields.
//
// # Line format (version 1)
//
// Every line is one JSON object with exactly these members, in this order,
// with no whitespace outside the data value, ending in a newline (0x0A):
//
//	v             format version: 1
//	seq           sequence number: 1 for the first record, then +1 a line
//	time          when the writer wrote it: RFC 3339, UTC, nine fractional
//	              digits, e.g. "2025-01-02T03:04:05.001000000Z"
//	host          host name of the writer
//	session       session id of the writer's handle ([NewSessionID])
//	pid, uid      process and user id of the writer
//	event         event type: ledger_genesis, ledger_recovered,
//	              session_start, session_end, decision, ...
//	profile       name of the profile in force ("" if none)
//	profile_hash  hash of that profile, as the profile package states it
//	data          the event's own fields: a JSON object
//	prev          hash of the previous record: 64 lower-case hex digits
//	hash          hash of this line: 64 lower-case hex digits
//
// For example (testdata/example.jsonl):
//
//	{"v":1,"seq":1,"time":"2025-01-02T03:04:05.001000000Z","host":"host-1","session":"0123456789abcdef","pid":4242,"uid":1000,"event":"ledger_genesis","profile":"strict","profile_hash":"sha256:abababababababababababababababababababababababababababababababab","data":{"format":1,"algorithm":"sha256"},"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"b033025eaaea814b0465cfdd877b721f854a902b7468f896e874e9037f67e500"}
//	{"v":1,"seq":3,"time":"2025-01-02T03:04:05.003000000Z","host":"host-1","session":"0123456789abcdef","pid":4242,"uid":1000,"event":"decision","profile":"strict","profile_hash":"sha256:abababababababababababababababababababababababababababababababab","data":{"method":"tools/call","request_id":7,"tool":"read_file","verdict":"allow","rule":"allow-docs","args":{"path":"docs/intro.md"}},"prev":"5e2c08197b51eac27ff3cd34f63868418775208daa062501fa8a4ef38b32748d","hash":"29d53dee24088ac1f5df246b5be0130c0be5184c6e3492181a4b7d8965a1ba50"}
//
// # Hashed bytes and the chain
//
// A line's hash is the SHA-256 of the line's bytes from its first byte, the
// "{", up to and including the closing quote of the prev value: everything
// before the 9 bytes `,"hash":"`. The hashed bytes thus include prev, which
// chains each record to the one before. The last 75 bytes of a line, newline
// not counted, are always `,"hash":"` + 64 hex digits + `"}`, and the 74
// before them `,"prev":"` + 64 hex digits + `"`, so a reader finds both
// without parsing. Verification never re-encodes anything: it hashes the
// bytes as stored.
//
// The chain starts at a genesis record: the first line of a new ledger has
// seq 1, prev of 64 ASCII zeros, event ledger_genesis and data
// {"format":1,"algorithm":"sha256"}. Every later record has seq one more
// than the record before it and prev equal to that record's hash.
//
// # Torn writes and recovery
//
// A crash in the middle of a write (power cut, SIGKILL, ENOSPC) leaves a
// proper prefix of a line at the end of the file, never acknowledged. The
// next writer, holding the lock, finds the last intact record by walking
// back over such prefixes, adds a newline if the file lacks one, and writes
// a ledger_recovered record chained from that last intact record, with data
//
//	{"torn_offset":O,"torn_length":N,"torn_sha256":"<hex>"}
//
// naming the torn bytes [O, O+N) of the file (the newline before the
// recovery record excluded) and their SHA-256. The torn bytes may span
// several lines when a writer crashed while recovering. A final record that
// is complete except for its newline is intact: the next writer adds the
// newline and chains from it. Anything else at the end of the file is
// damage, not a tear: writers refuse to append after it ([ErrCorrupt]).
//
// [Verify] reports a torn segment as a [Warning], not an error, when every
// line of it is a proper prefix of a record and it either ends the file or
// is followed by a ledger_recovered record naming exactly its bytes.
//
// # Verification
//
// Verify reads a ledger as a stream and checks each line's layout (a strict
// scanner: the member order above, valid JSON, valid UTF-8), its hash, its
// prev and its seq. The first bad line ends it with a [*VerifyError] naming
// the line, its offset and the [Problem]: bad JSON, hash mismatch, broken
// chain, sequence gap, bad recovery record. A changed, inserted, deleted,
// duplicated or reordered line is caught, except lines cut off the end of
// the file: the chain alone cannot show that. Keep the head a verify
// reports (seq and hash) somewhere else and pass it back as an [Anchor] to
// detect that too. An attacker who can rewrite the file can recompute every
// hash; the chain shows accidents and edits, not a determined forger.
//
// # Many writers
//
// Several processes may append to one ledger. A writer holds an open file
// description lock (fcntl F_OFD_SETLKW) on the whole file while it writes
// and syncs, releasing it whenever it has nothing left to sync and at least
// every 16 batches; after taking it, if the file's size is not where its
// own last write ended, it re-reads the tail to learn the last seq and
// hash. The file is opened with
// O_APPEND, created with mode 0600 (and missing parent directories with
// 0700), and never truncated, rewritten or rotated by vm-run. A handle
// whose file was renamed or replaced fails with [ErrReplaced].
//
// # Failing closed
//
// A write or fdatasync error kills the handle: that Append and every later
// one return a [*WriteError] that matches [ErrDead] and the errno. The
// handle never writes or syncs again: after a failed fsync the kernel may
// have dropped the dirty pages, so a retried fsync could succeed without
// the data being on disk. Whatever needed the record must not happen.
// [Hint] turns such errors into advice for the user.
//
// # Redaction
//
// Append stores event fields after [Redact]: values under keys matching
// [Options.RedactKeys] ([DefaultRedactKeys] by default) become their
// SHA-256, strings longer than [Options.RedactLimit] ([DefaultRedactLimit]
// by default) are cut, with their length and SHA-256 kept.
//
// # Reading
//
// [ParseLine] decodes one line into a [Record]; [Filter] and [Stats] serve
// `vm-run audit show`, `tail` and `stats`, [NetStats] for the network
// records of net.go.
package audit
